"""What `fleet chat` shows and how it converses, in either mode (`_chat.py`, local; and
`_chat_remote.py`, a server over HTTP): the view of the conversation and the fleet's
progress, which events of the log it follows, and the read-post-wait loop.

Notes (do not fix without reading this):
1. A line refused before anything is written (an unknown or malformed slash
   command, a line too long: the errors each mode passes as `refused`) is said
   on stderr and the chat goes on with the next line; `converse` returns how
   many were refused, and `fleet chat` then exits 1, so a script sees it. Any
   other error (the log, the server) ends the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._common import console

if TYPE_CHECKING:
    from events import RecordedEvent

__all__ = ["SHOWN", "Followed", "View", "converse"]

_QUIT = frozenset({"/quit", "/exit"})
SHOWN = frozenset(
    {"ChatMessagePosted", "ModelResponded", "AgentCreated", "AgentCompleted", "AgentFailed",
     "AgentDeleted"}
)  # fmt: skip


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
                made = f"{data.name} ({data.role}, {data.model})"
                self.say(f"  [green]+[/] {escape(made)}")
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


async def converse(
    followed: Followed,
    post: Callable[[str], Awaitable[int]],
    follower: asyncio.Task[None],
    *,
    carried_on: bool,
    again: str,
    refused: tuple[type[Exception], ...] = (),
) -> int:
    """Read lines, post each (`post` returns its position) and wait for its answer, until
    the end of input or /quit; `follower` feeds `followed` meanwhile (it is cancelled at the
    end, and its failure ends the conversation with its error). `again` carries it on.

    A line whose `post` raises one of `refused` (nothing was written) is said on stderr
    and the next is read (note 1). Returns how many lines were refused."""
    from rich.markup import escape

    view, cid = followed.view, escape(followed.cid)
    again = escape(again)  # a URL, a conversation id: text, never rich markup
    if isinstance(sys.stdin, io.TextIOWrapper):
        # A line that is not UTF-8 is refused as any bad line is (`post`), not a
        # UnicodeDecodeError traceback that ends the chat (stdin is strict in a UTF-8 locale).
        sys.stdin.reconfigure(errors="surrogateescape")
    said = carried_on
    refusals = 0
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
            try:
                position = await post(line.rstrip("\n"))
            except refused as e:
                refusals += 1
                print(f"fleet chat: not posted: {e}", file=sys.stderr, flush=True)
                continue
            said = True
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
    return refusals


async def _read_line(prompt: str) -> str | None:
    """One line of input (None at end of input), read in a thread so the log is followed."""

    def read() -> str | None:
        try:
            return input(prompt) if prompt else (sys.stdin.readline() or None)
        except EOFError:
            return None

    return await asyncio.to_thread(read)
