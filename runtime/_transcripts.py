"""The model responses of a Claude Code session, read from its transcript (JSON Lines).

    reader = TranscriptReader()
    for response in await reader.read("/home/me/.claude/projects/-w/<session>.jsonl"):
        response.request_id, response.model, response.usage, response.agent_id

A Claude Code hook payload names the session's transcript (`transcript_path`),
and a subagent's (`agent_transcript_path` at SubagentStop; Claude Code keeps
it in `<session>/subagents/agent-<agent_id>.jsonl` beside the session's). Each
assistant message there carries the API's `usage`; `read()` returns the
responses written since the last read of that file.

Notes (do not fix without reading this):
1. Claude Code writes one line per content block of an assistant message,
   each with the whole message's usage. A response is identified by its
   request id (`requestId`, else `message.id`): the id Claude Code's
   OpenTelemetry `api_request` also carries, so a caller that counts both
   sources can count each request once.
2. Incremental: the reader keeps, per file, the byte offset of the first line
   it has not returned. The assistant lines at the very end of the file are
   held back until a later line follows them (their message may still be
   streaming) or the caller says the session stopped (`final=True`). A file
   that got shorter is read again from its start; a partial last line waits.
3. The path comes from a posted payload: only an absolute path to a regular
   file whose name ends in `.jsonl` is read, at most `max_bytes` per call,
   and parsed in a worker thread (never on the event loop: 16 MB of JSON
   took the loop a third of a second).
4. A line longer than `max_bytes` is skipped once it is whole (its newline
   written), with a warning: read from its start again and again, it held
   every line after it back for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events import ModelResponded, Usage

from ._models import ModelTable, PriceTable
from .errors import UnknownModel

__all__ = [
    "DEFAULT_MAX_READ_BYTES",
    "TranscriptReader",
    "TranscriptResponse",
    "readable_transcript",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024
"""The most a single `read()` takes from one file; the rest waits for the next call."""


@dataclass(frozen=True, slots=True)
class TranscriptResponse:
    """One model response of the transcript: its request id, model, usage and who asked."""

    request_id: str
    model: str
    usage: Usage
    stop_reason: str | None = None
    # Claude Code's `agentId` on a subagent's lines, else None (the session's own).
    agent_id: str | None = None
    at: datetime | None = None

    def as_event(self, agent_id: str, models: ModelTable, prices: PriceTable) -> ModelResponded:
        """This response as `agent_id`'s `ModelResponded`, priced at its date's price.

        A model the tables do not know costs 0 and leaves the context window unknown.
        """
        cost, limit = 0.0, None
        try:
            limit = models.resolve(self.model).context_window
            cost = prices.cost(self.model, self.usage, self.at.date() if self.at else None)
        except UnknownModel:
            logger.debug("transcript model %r is not in the model table: priced at 0", self.model)
        return ModelResponded(
            agent_id=agent_id,
            message_id=self.request_id,
            model=self.model,
            stop_reason=self.stop_reason,
            usage=self.usage,
            cost_usd=cost,
            context_limit=limit,
        )


@dataclass(slots=True)
class _File:
    offset: int = 0


def readable_transcript(path: Any) -> str | None:
    """`path` when it may be read as a transcript (note 3), else None. Touches no file."""
    if not isinstance(path, str) or not path.endswith(".jsonl") or not os.path.isabs(path):
        return None
    return os.path.normpath(path)


@dataclass(slots=True)
class TranscriptReader:
    """Reads transcripts incrementally (note 2); one instance per process is enough."""

    max_bytes: int = DEFAULT_MAX_READ_BYTES
    _files: dict[str, _File] = field(default_factory=dict)

    async def read(self, path: str, *, final: bool = False) -> list[TranscriptResponse]:
        """The responses written to `path` since the last read (all of them when `final`).

        Returns [] for a path that is not a readable transcript (note 3) or
        cannot be read now; never raises for the file's content.
        """
        checked = readable_transcript(path)
        if checked is None:
            return []
        state = self._files.setdefault(checked, _File())
        while True:
            try:
                # Read and parsed in the thread: up to `max_bytes` of JSON (note 3).
                read, lines, entries = await asyncio.to_thread(
                    _parsed_from, checked, state, self.max_bytes
                )
            except OSError as e:
                logger.debug("transcript %s not read: %s", checked, e)
                return []
            if lines or read < self.max_bytes:
                break
            # One line longer than a read: skipped, or it would be read again forever (note 4).
            end = await asyncio.to_thread(_end_of_line, checked, state.offset + read)
            if end is None:
                return []  # it is still being written: looked at again next time
            logger.warning(
                "transcript %s: a line of %d bytes at offset %d skipped (over %d)",
                checked, end - state.offset, state.offset, self.max_bytes,
            )  # fmt: skip
            state.offset = end
        # A chunk cut at max_bytes holds nothing back: more lines follow it in the file.
        keep = len(entries) if final or read >= self.max_bytes else _held_back(entries)
        # The lines held back (and a partial last line) are read again next time.
        state.offset += sum(lines[:keep])
        return _responses(entries[:keep])


def _parsed_from(
    path: str, state: _File, limit: int
) -> tuple[int, list[int], list[dict[str, Any] | None]]:
    """What `_read_from` read (its length), and its complete lines: the bytes each takes
    with its newline, and each parsed (`_entry`)."""
    chunk = _read_from(path, state, limit)
    lines = _complete_lines(chunk)
    return len(chunk), [len(line) + 1 for line in lines], [_entry(line) for line in lines]


def _end_of_line(path: str, start: int) -> int | None:
    """The offset just past the first newline at or after `start`, None if the file ends
    first. Read in blocks, none of them kept."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        f.seek(start)
        at = start
        while block := f.read(1024 * 1024):
            found = block.find(b"\n")
            if found >= 0:
                return at + found + 1
            at += len(block)
    return None


def _read_from(path: str, state: _File, limit: int) -> bytes:
    # O_NONBLOCK: opening a FIFO (or a device) named like a transcript must not block the thread.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if info.st_size < state.offset:  # rewritten or truncated: read it again (note 2)
            state.offset = 0
        f.seek(state.offset)
        return f.read(limit)


def _complete_lines(chunk: bytes) -> list[bytes]:
    end = chunk.rfind(b"\n")
    return [] if end < 0 else chunk[:end].split(b"\n")


def _entry(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None  # a line that is not JSON is skipped, not fatal
    return value if isinstance(value, dict) else None


def _is_assistant(entry: dict[str, Any] | None) -> bool:
    return entry is not None and entry.get("type") == "assistant"


def _held_back(entries: list[dict[str, Any] | None]) -> int:
    """How many entries to return: all but the trailing assistant lines (note 2)."""
    keep = len(entries)
    while keep > 0 and _is_assistant(entries[keep - 1]):
        keep -= 1
    return keep


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(raw: dict[str, Any]) -> Usage:
    split: dict[str, Any] = (
        raw["cache_creation"] if isinstance(raw.get("cache_creation"), dict) else {}
    )
    return Usage(
        input_tokens=_int(raw.get("input_tokens")),
        output_tokens=_int(raw.get("output_tokens")),
        cache_creation_input_tokens=_int(raw.get("cache_creation_input_tokens")),
        cache_read_input_tokens=_int(raw.get("cache_read_input_tokens")),
        cache_creation_5m_input_tokens=_int(split.get("ephemeral_5m_input_tokens")),
        cache_creation_1h_input_tokens=_int(split.get("ephemeral_1h_input_tokens")),
    )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _responses(entries: list[dict[str, Any] | None]) -> list[TranscriptResponse]:
    """One response per request id, from its last line (the fullest usage; note 1)."""
    found: dict[str, TranscriptResponse] = {}
    for entry in entries:
        if entry is None or not _is_assistant(entry):
            continue
        message = entry.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
            continue
        request_id = entry.get("requestId") or message.get("id")
        model = message.get("model")
        if not isinstance(request_id, str) or not request_id or not isinstance(model, str):
            continue
        if model == "<synthetic>":
            continue  # Claude Code's own stand-in messages (errors, interruptions): no request
        agent = entry.get("agentId")
        stop = message.get("stop_reason")
        found.pop(request_id, None)  # the latest line wins, in file order
        found[request_id] = TranscriptResponse(
            request_id=request_id,
            model=model,
            usage=_usage(message["usage"]),
            stop_reason=stop if isinstance(stop, str) else None,
            agent_id=agent if isinstance(agent, str) and agent else None,
            at=_timestamp(entry.get("timestamp")),
        )
    return list(found.values())
