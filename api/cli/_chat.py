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
the same `View`, `Followed` and `converse`.

Standard library only at import (`api/cli/__init__.py`, note 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import console
from ._run import SIMULATOR_NOTICE, _add_run_options, _options

if TYPE_CHECKING:
    from events import RecordedEvent

__all__ = ["Followed", "View", "configure", "converse"]

_QUIT = frozenset({"/quit", "/exit"})
_SHOWN = frozenset(
    {"ChatMessagePosted", "ModelResponded", "AgentCreated", "AgentCompleted", "AgentFailed",
     "AgentDeleted"}
)  # fmt: skip


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `fleet chat`."""
    parser.add_argument(
        "--conversation", metavar="ID", help="carry on this conversation (else a new one)"
    )
    parser.add_argument(
        "--workspace", metavar="DIR", default=".", help="the repository the agents work in"
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


class View:
    """What the terminal shows: answers, progress lines, or JSON Lines with `--json`."""

    def __init__(self, *, as_json: bool, echo: bool) -> None:
        self.as_json = as_json
        self.echo = echo  # echo the person's messages (input not typed at a terminal)
        self.author = f"terminal-{os.getpid()}"  # who the messages typed here are from
        self.prompt = ""  # the prompt on screen, while a line is being typed at a terminal
        self.names: dict[str, str] = {}

    def say(self, markup: str) -> None:
        """Print a line; over a prompt being shown, above it (the prompt is drawn again)."""
        if self.as_json:
            return
        if self.prompt:
            sys.stdout.write("\r\x1b[K")  # the prompt's line, cleared
        console().print(markup, highlight=False)
        if self.prompt:
            sys.stdout.write(self.prompt)
            sys.stdout.flush()

    def event(self, event: RecordedEvent, orchestrator: str | None) -> None:
        data: Any = event.data
        if self.as_json:
            if event.type == "ChatMessagePosted":
                sys.stdout.write(json.dumps(event.to_json_dict()) + "\n")
                sys.stdout.flush()
            return
        from rich.markup import escape

        kind = event.type
        if kind == "ChatMessagePosted":
            if data.role == "orchestrator":
                who = "orchestrator" if data.author != "fleet" else "fleet"
                self.say(f"[bold green]{who}>[/] {escape(data.text)}")
            elif self.echo or data.author != self.author:
                by = "" if data.author == self.author else f" ({escape(data.author)})"
                self.say(f"[bold]you{by}>[/] {escape(data.text)}")
        elif kind == "AgentCreated":
            self.names[data.agent_id] = data.name
            if data.agent_id != orchestrator and data.role != "orchestrator":
                self.say(f"  [green]+[/] {escape(data.name)} ({data.role}, {data.model})")
        elif kind == "ModelResponded" and data.agent_id == orchestrator:
            texts = [str(b.get("text", "")) for b in data.content if b.get("type") == "text"]
            said = " ".join(" ".join(texts).split())
            if said and data.stop_reason == "tool_use":  # its last words are the answer
                self.say(f"  [dim]orchestrator: {escape(said)}[/]")
        elif kind in ("AgentCompleted", "AgentFailed", "AgentDeleted"):
            if data.agent_id == orchestrator:
                return
            name = escape(self.names.get(data.agent_id, data.agent_id))
            mark = {"AgentCompleted": "[green]✓[/]", "AgentFailed": "[red]✗[/]"}.get(kind, "-")
            word = {"AgentCompleted": "completed", "AgentFailed": "failed"}.get(kind, "deleted")
            extra = f": {escape(data.error)}" if kind == "AgentFailed" else ""
            self.say(f"  {mark} {name} {word}{extra}")


class Followed:
    """One conversation as the log shows it: what of it to show, and which messages are answered.

    Fed the log's events in order, from this process's store or a server's SSE stream.
    """

    def __init__(self, cid: str, orchestrator: str | None, view: View) -> None:
        self.cid = cid
        self.orchestrator = orchestrator  # known from its first answer or its creation
        self.view = view
        self._answered: dict[int, asyncio.Event] = {}

    def answered(self, position: int) -> asyncio.Event:
        """Set once the message at `position` has its answer (before or after this call)."""
        return self._answered.setdefault(position, asyncio.Event())

    def see(self, event: RecordedEvent) -> None:
        data: Any = event.data
        if event.type == "ChatMessagePosted":
            if data.conversation_id != self.cid:
                return
            if data.agent_id and self.orchestrator is None:
                self.orchestrator = data.agent_id
        elif event.meta.run_id != f"chat-{self.cid}":
            return
        elif event.type == "AgentCreated" and data.role == "orchestrator":
            self.orchestrator = self.orchestrator or data.agent_id
        self.view.event(event, self.orchestrator)
        if event.type == "ChatMessagePosted" and data.reply_to is not None:
            self.answered(data.reply_to).set()


async def _chat(args: argparse.Namespace, workspace: Path) -> int:
    from events import EventFilter
    from runtime import open_runtime

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
            where = EventFilter.of(types=sorted(_SHOWN))
            async for event in rt.store.subscribe(after=after, where=where):
                followed.see(event)

        async def post(text: str) -> int:
            return (await chat.post(text, cid, author=view.author)).position

        follower = asyncio.create_task(follow(), name="chat-follow")
        if args.conversation is not None:
            chat.resume(cid)  # what was left unanswered
        await converse(
            followed, post, follower, carried_on=args.conversation is not None,
            again=f"fleet chat --conversation {cid}",
        )  # fmt: skip
    return 0


async def converse(
    followed: Followed,
    post: Callable[[str], Awaitable[int]],
    follower: asyncio.Task[None],
    *,
    carried_on: bool,
    again: str,
) -> None:
    """Read lines, post each (`post` returns its position) and wait for its answer, until
    the end of input or /quit; `follower` feeds `followed` meanwhile (it is cancelled at the
    end, and its failure ends the conversation with its error). `again` carries it on."""
    view, cid = followed.view, followed.cid
    said = carried_on
    try:
        if carried_on:
            view.say(f"conversation [bold]{cid}[/] (run chat-{cid}), carried on")
        else:
            view.say(
                f"conversation [bold]{cid}[/] (run chat-{cid}): carry it on later with\n"
                f"  {again}\n"
                "slash commands: /help; end with Ctrl-D or /quit"
            )
        while True:
            prompt = "you> " if sys.stdin.isatty() and not view.as_json else ""
            view.prompt = prompt
            line = await _read_line(prompt)
            view.prompt = ""
            if line is None and prompt:
                sys.stdout.write("\n")  # Ctrl-D leaves the cursor after the prompt
            if line is None or line.strip() in _QUIT:
                break
            if not line.strip():
                continue
            said = True
            position = await post(line.rstrip("\n"))
            answer = asyncio.ensure_future(followed.answered(position).wait())
            await asyncio.wait({answer, follower}, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done():
                answer.cancel()
                follower.result()  # its error; else it ended, which it does not on its own
                raise RuntimeError("the log stopped being followed")
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    if said:
        view.say(f"bye: carry on with [bold]{again}[/]")


async def _read_line(prompt: str) -> str | None:
    """One line of input (None at end of input), read in a thread so the log is followed."""

    def read() -> str | None:
        try:
            return input(prompt) if prompt else (sys.stdin.readline() or None)
        except EOFError:
            return None

    return await asyncio.to_thread(read)
