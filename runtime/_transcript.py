"""An agent's transcript: JSON Lines in Claude Code's transcript line format, written as it goes.

    transcript = Transcript(transcript_path(folder, agent_id), agent_id=agent_id, cwd=workspace)
    await transcript.record(recorded_events)      # after each append to the agent's stream

Hooks get its path as `transcript_path` (and, at SubagentStop, the subagent's
as `agent_transcript_path`), so a hook script written for Claude Code that
reads the transcript finds the lines it expects. One line per message, in
the shape Claude Code writes (its format is internal to Claude Code; this
follows the lines as they are observed in `~/.claude/projects/`):

    {"type": "user", "message": {"role": "user", "content": "..."}, ...}
    {"type": "assistant", "message": {"id", "type": "message", "role", "model", "content",
                                      "stop_reason", "stop_sequence", "usage"}, ...}
    {"type": "user", "message": {"role": "user", "content": [{"type": "tool_result", ...}]},
     "toolUseResult": {...}, ...}                   # the tool's output object, when known
    {"type": "system", "subtype": "compact_boundary", ...}   # then the summary as a user line

Every line carries the envelope: `parentUuid`, `isSidechain` (true for an
agent with a parent), `userType`, `cwd`, `sessionId` (the agent id), `agentId`,
`version`, `uuid` and `timestamp` (the event's `recorded_at`). Uuids are made
from the agent id and the event's version, so a rebuilt transcript has the
same ones.

Notes (do not fix without reading this):
1. The log is the record; the transcript is a copy for hooks. A transcript
   that cannot be written (a read-only workspace, a full disk) is logged once
   and given up: the agent goes on.
2. `rebuild(events)` writes the file anew from the whole stream (a resumed
   agent, whose file may be stale or missing); `record(events)` appends.
3. Lines are written in a thread, but not one write per append: a hop to a
   thread and back costs 40 to 400 us of CPU (both threads woken), against
   ~15 us for the write itself, and three a step were a tenth of an agent's
   CPU at one agent at a time (BENCHMARKS.md, "fourth pass"). `record`
   keeps the lines, and `flush` writes those kept, in one hop, where someone
   may read the file: before hooks run, before the tools of an agent that
   can start agents run (a subagent's hooks read its parent's transcript,
   `_tool_calls.py` note 6), when an agent's public call returns (the agent
   calls it, `AgentLog.deferred`), or once `FLUSH_CHARS` are kept.
   Written on the event loop instead, the write stalled the loop for up to
   0.6 s under other processes' fsyncs (ext4's journal), with 1,000 agents.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from events import (
    AgentCommanded,
    ContextCompacted,
    ModelResponded,
    RecordedEvent,
    ToolCallCompleted,
)

from ._compaction import COMPACTED_PREFIX

__all__ = ["TRANSCRIPT_VERSION", "Transcript", "transcript_path"]

logger = logging.getLogger(__name__)

TRANSCRIPT_VERSION = "fleet"
"""The `version` field of every line (Claude Code puts its own version there)."""

FLUSH_CHARS = 64 * 1024
"""Lines kept past this many characters are written at once (note 3)."""

_NAMESPACE = uuid.UUID("6f1d4c1e-5b0e-4a9c-9a53-1f1e7d0c2b7a")


def transcript_path(folder: str | Path, agent_id: str) -> Path:
    """Where the transcript of `agent_id` is written in `folder`.

    Raises `ValueError` for an id that is not a plain file name (`../x`, `a/b`, `.x`):
    the log an agent comes from may be an imported one.
    """
    if "/" in agent_id or "\\" in agent_id or agent_id.startswith(".") or "\0" in agent_id:
        raise ValueError(f"agent id {agent_id[:80]!r} cannot name a transcript file")
    return Path(folder) / f"{agent_id}.jsonl"


class Transcript:
    """The transcript file of one agent (module docstring)."""

    def __init__(
        self, path: str | Path, *, agent_id: str, cwd: str, sidechain: bool = False
    ) -> None:
        self.path = Path(path)
        self.agent_id = agent_id
        self.cwd = cwd
        self.sidechain = sidechain
        self.responses: dict[str, Mapping[str, Any]] = {}  # tool_use_id -> output object
        self._parent: str | None = None
        self._broken = False
        self._kept: list[str] = []  # recorded, not written yet (note 3)
        self._kept_chars = 0
        self._writing = asyncio.Lock()  # one write at a time, in the order of the lines

    async def record(self, events: Iterable[RecordedEvent], *, keep: bool = False) -> None:
        """Append the lines of `events`; with `keep`, at the next `flush` (note 3). Never raises
        (note 1)."""
        lines = self._lines(events)
        if lines and not self._broken:
            self._kept += lines
            self._kept_chars += sum(map(len, lines))
            if not keep or self._kept_chars > FLUSH_CHARS:
                await self.flush()

    async def flush(self) -> None:
        """Write the lines recorded and not written yet, in order (note 3); never raises."""
        async with self._writing:
            lines, self._kept, self._kept_chars = self._kept, [], 0
            if lines and not self._broken:
                await self._write(lines, append=True)

    async def rebuild(self, events: Iterable[RecordedEvent]) -> None:
        """Write the file anew from `events`, the agent's whole stream (note 2)."""
        async with self._writing:
            self._parent = None
            self._kept, self._kept_chars = [], 0
            if not self._broken:
                await self._write(self._lines(events), append=False)

    async def _write(self, lines: Sequence[str], *, append: bool) -> None:
        text = "".join(line + "\n" for line in lines)
        try:
            await asyncio.to_thread(self._write_now, text, append)
        except OSError as e:  # note 1
            self._broken = True
            logger.warning("the transcript %s cannot be written, giving up: %s", self.path, e)

    def _write_now(self, text: str, append: bool) -> None:
        mode = "a" if append else "w"
        try:
            f = open(self.path, mode, encoding="utf-8")  # noqa: SIM115  # closed below
        except FileNotFoundError:  # the folder is made when missing, not checked at each write
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, mode, encoding="utf-8")  # noqa: SIM115  # closed below
        with f:
            f.write(text)

    # -- lines ------------------------------------------------------------------------------

    def _lines(self, events: Iterable[RecordedEvent]) -> list[str]:
        lines: list[str] = []
        for event in events:
            for i, body in enumerate(self._bodies(event)):
                # Compact, as Claude Code writes its lines; 3x faster than `json.dumps`.
                lines.append(to_json(self._envelope(event, i, body)).decode())
        return lines

    def _envelope(self, event: RecordedEvent, index: int, body: dict[str, Any]) -> dict[str, Any]:
        line_id = str(uuid.uuid5(_NAMESPACE, f"{self.agent_id}:{event.version}:{index}"))
        line = {
            "parentUuid": self._parent,
            "isSidechain": self.sidechain,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.agent_id,
            "agentId": self.agent_id,
            "version": TRANSCRIPT_VERSION,
            **body,
            "uuid": line_id,
            "timestamp": event.recorded_at.isoformat().replace("+00:00", "Z"),
        }
        self._parent = line_id
        return line

    def _bodies(self, event: RecordedEvent) -> list[dict[str, Any]]:
        data = event.data
        if isinstance(data, AgentCommanded):
            return [{"type": "user", "message": {"role": "user", "content": data.prompt}}]
        if isinstance(data, ModelResponded):
            message = {
                "id": data.message_id,
                "type": "message",
                "role": "assistant",
                "model": data.model,
                "content": data.content,
                "stop_reason": data.stop_reason,
                "stop_sequence": None,
                "usage": data.usage.model_dump(mode="json"),
            }
            return [{"type": "assistant", "message": message}]
        if isinstance(data, ToolCallCompleted):
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": data.tool_use_id,
                "content": data.result,
            }
            if data.is_error:
                block["is_error"] = True
            body: dict[str, Any] = {"type": "user", "message": {"role": "user", "content": [block]}}
            response = self.responses.pop(data.tool_use_id, None)
            body["toolUseResult"] = dict(response) if response is not None else data.result
            return [body]
        if isinstance(data, ContextCompacted):
            boundary = {
                "type": "system",
                "subtype": "compact_boundary",
                "content": "Conversation compacted",
                "compactMetadata": {"trigger": data.trigger, "preTokens": data.tokens_before},
            }
            summary = {
                "type": "user",
                "message": {"role": "user", "content": COMPACTED_PREFIX + data.summary},
                "isCompactSummary": True,
            }
            return [boundary, summary]
        return []
