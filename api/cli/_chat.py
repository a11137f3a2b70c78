"""`fleet chat`: talk to the orchestrator in the terminal, the fleet's progress between answers.

    $ fleet chat --workspace repo
    conversation 3f2a9c0e1b7d (run chat-3f2a9c0e1b7d): resume it with
      fleet chat --conversation 3f2a9c0e1b7d
    you> rename `count_words` to `word_count`
      orchestrator: I'll split this up: 4 scouts search in parallel, ...
      + scout-1 (scout, claude-haiku-4-5)
      ✓ scout-1 completed
    orchestrator> DONE: 4 scouts found the relevant lines ...
    you> /status

Each line read is posted to the conversation (`runtime.Chat`), and the next
is read once it is answered, so piped input holds a scripted conversation.
Meanwhile the log is followed: the orchestrator's own words as it works, its
agents coming and going, and messages posted from elsewhere (another
terminal, the dashboard) to the same conversation. End with Ctrl-D or /quit.

With `--url`, the fleet is a running `fleet serve`'s (`_chat_remote.py`): the
lines go to its API and the log is followed through its SSE stream, shown by
the same `View`, `Followed` and `converse` (`_chat_view.py`).

Standard library only at import (`api/cli/__init__.py`, note 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

from ._chat_view import SHOWN, Followed, View, converse
from ._common import folder
from ._run import SIMULATOR_NOTICE, _add_run_options, _options

__all__ = ["configure"]


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `fleet chat`."""
    parser.add_argument(
        "--conversation", metavar="ID", help="carry on this conversation (else a new one)"
    )
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        type=folder,
        default=".",
        help="the repository the agents work in",
    )
    parser.add_argument(
        "--url", metavar="URL",
        help="join the conversation on a running `fleet serve` (e.g. http://127.0.0.1:8000) "
        "instead of running the fleet here",
    )  # fmt: skip
    parser.add_argument(
        "--token", default=None, help="with --url: the bearer token (default: $FLEET_TOKEN)"
    )
    _add_run_options(parser)
    parser.set_defaults(func=_chat_command)


def _chat_command(args: argparse.Namespace) -> int:
    if args.url is not None:
        from ._chat_remote import chat_over_http

        return asyncio.run(chat_over_http(args))
    return asyncio.run(_chat(args, Path(args.workspace).resolve()))


async def _chat(args: argparse.Namespace, workspace: Path) -> int:
    from events import EventFilter
    from runtime import open_runtime
    from runtime.errors import ChatCommandInvalid, InvalidAgentSpec

    view = View(as_json=args.json, echo=not sys.stdin.isatty())
    async with open_runtime(_options(args, workspace)) as rt:
        chat = rt.fleet.chat
        cid: str = args.conversation or uuid.uuid4().hex[:12]
        after = await rt.store.head()
        orchestrator: str | None = None
        if args.conversation is not None:
            conversation = await chat.conversation(cid)  # ConversationNotFound: exit 1
            orchestrator = conversation.orchestrator_id
            after = conversation.messages[0].position - 1  # show the conversation so far
        if rt.simulated:
            view.say(SIMULATOR_NOTICE)
        followed = Followed(cid, orchestrator, view)

        async def follow() -> None:
            where = EventFilter.of(types=sorted(SHOWN))
            async for event in rt.store.subscribe(after=after, where=where):
                followed.see(event)

        async def post(text: str) -> int:
            return (await chat.post(text, cid, author=view.author)).position

        follower = asyncio.create_task(follow(), name="chat-follow")
        if args.conversation is not None:
            chat.resume(cid)  # what was left unanswered
        refusals = await converse(
            followed, post, follower, carried_on=args.conversation is not None,
            again=f"fleet chat --conversation {cid}",
            refused=(ChatCommandInvalid, InvalidAgentSpec),  # nothing written: the chat goes on
        )  # fmt: skip
    return 1 if refusals else 0
