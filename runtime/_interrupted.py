"""Tool calls cut short by a crash: what a resumed agent does with each, by its kind.

    expected = await write_expectations(toolbox, workspace, calls)   # at request time
    settled = await settle_interrupted(call, toolbox, workspace)      # on resume

A call requested but not completed when its process died may or may not have
had its effect. It is never repeated blindly (`_tools.py`, note 2):

- a "read" (or a tool that declares `idempotent = True`) runs again;
- a "write" is checked against the file: its ToolCallRequested recorded the
  sha256 of the file before the call and of what the call writes, so a file
  still as before is written again, a file already as after is left alone
  (the call is reported applied), and a file that holds anything else is not
  touched: the model is told the call was interrupted;
- a "command" is not run again: the model gets a tool error saying so.

Each is recorded as `ToolCallInterrupted` (its resolution) before the call's
ToolCallCompleted.

Notes (do not fix without reading this):
1. The hashes are computed when the calls are requested, in order, over a
   simulated state of the files: two writes to one file in one response
   expect what the first leaves. A write whose result cannot be computed
   (an edit that would not apply) leaves its file unknown to the calls after
   it, which then record no hash and count as commands on resume.
2. A tool whose effect is itself in the log (the orchestrator's tools:
   creating, commanding, deleting agents) declares `recover`: it looks for
   that effect after the call was requested, and answers the call's result
   if it is there (already applied), or None if not (the call runs again).
3. A file is read to hash it as the tools read (`Sandbox.current`): walked
   inside the workspace, its last name not followed, never waiting on a FIFO,
   a regular file of at most `MAX_EDIT_BYTES` read whole. A write whose file
   cannot be read so (a socket, a FIFO, a folder, a huge or unreadable file,
   a path out of the workspace) records no hashes: the call itself will fail
   or be refused, and on resume it counts as a command. (Reading by name
   waited forever on a FIFO and failed the agent on a socket, before its
   response was recorded.)
4. All of it runs in one thread: an edit of a 16 MB file is ~90 ms of
   decoding, replacing and hashing, and it ran on the event loop, once per
   call of the response (ten edits of one such file: the loop stood still
   for about a second, every agent and the server with it).
5. Writes to one file in one response are settled as a chain: a file that
   holds what a later write of the chain leaves had this one applied too
   (all of them ran, in order, before the process stopped, and only their
   ToolCallCompleted were lost: `_tool_calls.py`, note 1). Checked one by
   one, each but the last was taken for a file "changed since the call",
   not run, and the model told its edits had failed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from events.errors import FleetError

from ._conversation import PendingCall
from ._sandbox import Sandbox
from ._tools import Toolbox, ToolContext, ToolResult
from ._workspace import Workspace

__all__ = ["ABSENT", "Settled", "settle_interrupted", "sha256_of", "write_expectations"]

ABSENT = "absent"
"""The hash recorded for a file that does not exist."""

Resolution = Literal["ran_again", "already_applied", "not_run"]


def sha256_of(data: bytes | None) -> str:
    """The recorded hash of a file's content; `ABSENT` for no file."""
    return ABSENT if data is None else hashlib.sha256(data).hexdigest()


_SANDBOX = Sandbox()  # reads only: it needs no log to protect


def _current(workspace: Workspace, target: str) -> tuple[str, bytes | None] | None:
    """The workspace path a write names and what its file holds now (None: no file), or
    None if it cannot be read to check (note 3). Blocking: call it in a thread."""
    try:
        return _SANDBOX.current(workspace, target)
    except FleetError:
        return None


@dataclass(frozen=True, slots=True)
class _Write:
    """A write call's tool, its validated input and the path it writes, as given."""

    tool: Any
    input: BaseModel
    target: str


def _write_of(toolbox: Toolbox, workspace: Workspace, call: PendingCall) -> _Write | None:
    """The call as a checkable write, or None (not a write, or not one we can check)."""
    try:
        name, raw = toolbox.resolve(call.name, call.input)
        if toolbox.kind(name) != "write":
            return None
        tool = toolbox.get(name)
        validated = toolbox.validate(name, raw)
        target = getattr(validated, "file_path", None)
        if not isinstance(target, str) or getattr(tool, "written", None) is None:
            return None
        return _Write(tool, validated, target)
    except (FleetError, ValueError):
        return None


async def write_expectations(
    toolbox: Toolbox, workspace: Workspace, calls: Sequence[PendingCall]
) -> dict[str, tuple[str | None, str | None]]:
    """For each write call of `calls` (by tool_use_id): the file's hash before and after it.

    In a thread (note 4): files of up to `MAX_EDIT_BYTES` are read, edited and hashed.
    """
    return await asyncio.to_thread(_expectations, toolbox, workspace, calls)


def _expectations(
    toolbox: Toolbox, workspace: Workspace, calls: Sequence[PendingCall]
) -> dict[str, tuple[str | None, str | None]]:
    state: dict[str, bytes | None] = {}  # by workspace path
    unknown: set[str] = set()
    expected: dict[str, tuple[str | None, str | None]] = {}
    read: dict[str, tuple[str, bytes | None] | None] = {}  # by path as given: each read once
    for call in calls:
        write = _write_of(toolbox, workspace, call)
        if write is None:
            continue
        if write.target not in read:
            read[write.target] = _current(workspace, write.target)
        current = read[write.target]
        if current is None:  # note 3
            continue
        rel, content = current
        if rel in unknown:  # note 1
            continue
        if rel not in state:
            state[rel] = content
        before = state[rel]
        after = write.tool.written(write.input, before)
        if after is None:
            unknown.add(rel)
            expected[call.tool_use_id] = (sha256_of(before), None)
        else:
            state[rel] = after
            expected[call.tool_use_id] = (sha256_of(before), sha256_of(after))
    return expected


def _later_states(
    toolbox: Toolbox,
    workspace: Workspace,
    rel: str,
    call: PendingCall,
    later: Sequence[PendingCall],
) -> set[str]:
    """The hashes of what `rel` holds once `call` and some of the writes to it in `later`
    after it (in order, each expecting what the one before left) are applied (note 5).
    Blocking: call it in a thread."""
    states: set[str] = set()
    after = call.after_sha256
    for c in later:
        write = _write_of(toolbox, workspace, c)
        current = _current(workspace, write.target) if write is not None else None
        if current is None or current[0] != rel:  # another file, or not a write
            continue
        if after is None or c.before_sha256 != after:  # the chain of expectations ends
            break
        after = c.after_sha256
        if after is not None:
            states.add(after)
    return states


@dataclass(frozen=True, slots=True)
class Settled:
    """What becomes of an interrupted call: run it again (`result` None), or this result."""

    resolution: Resolution
    reason: str
    result: ToolResult | None = None


async def settle_interrupted(
    call: PendingCall,
    toolbox: Toolbox,
    workspace: Workspace,
    context: ToolContext,
    *,
    later: Sequence[PendingCall] = (),
) -> Settled:
    """Decide what to do with a call its process did not complete (module docstring).

    `later`: the calls of the same response after it that did not complete either, in
    order (a write whose file a later write of theirs left is applied: note 5).
    """
    try:
        name, raw = toolbox.resolve(call.name, call.input)
        kind = toolbox.kind(name)
        tool = toolbox.get(name)
        idempotent = bool(getattr(tool, "idempotent", False))
    except FleetError:  # an unknown tool, an alias's bad input: running it again gives its error
        return Settled("ran_again", "the tool is unknown or its input invalid: it fails as it did")
    if kind == "read" or idempotent:
        return Settled("ran_again", f"a {kind} call is safe to run again")
    recover = getattr(tool, "recover", None)
    if recover is not None and call.requested_at is not None:  # note 2
        try:
            found = await recover(toolbox.validate(name, raw), context, call.requested_at)
        except FleetError as e:  # it could not tell, or could not finish what it found
            text = (
                f"interrupted: the process running this {call.name} call stopped before it "
                f"completed, and its effect could not be checked: {e}"
            )
            return Settled("not_run", str(e), ToolResult(text, is_error=True))
        if found is None:
            return Settled("ran_again", "its effect is not in the log: it had not happened")
        return Settled("already_applied", "its effect is in the log", found)
    write = _write_of(toolbox, workspace, call) if kind == "write" else None
    current = None
    if write is not None and call.before_sha256 is not None:
        current = await asyncio.to_thread(_current, workspace, write.target)
    if current is not None:  # else it cannot be checked (note 3): as a command
        rel, content = current
        now = sha256_of(content)
        if now == call.before_sha256:
            return Settled("ran_again", f"{rel} is as the call expected: it had not been written")
        if call.after_sha256 is not None and (
            now == call.after_sha256
            or now in await asyncio.to_thread(_later_states, toolbox, workspace, rel, call, later)
        ):
            text = (
                f"{rel} already holds what this {call.name} call writes: it was applied before "
                "the process stopped, and was not run again"
            )
            return Settled("already_applied", text, ToolResult(text, files_written=(rel,)))
        text = (
            f"interrupted: the process running this {call.name} call stopped before it "
            f"completed, and {rel} has changed since the call was made; it was not applied "
            "again. Read the file and redo the change if it is still needed."
        )
        return Settled("not_run", f"{rel} changed since the call", ToolResult(text, is_error=True))
    text = (
        f"interrupted: the process running this {call.name} call stopped before it completed; "
        "it was not run again, since its effects cannot be checked. Check what it did, and "
        "run it again if it is still needed."
    )
    return Settled(
        "not_run", f"a {kind} call is not repeated blindly", ToolResult(text, is_error=True)
    )
