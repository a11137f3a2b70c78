"""One run out of a log and into another: checksummed JSON Lines.

    summary = await export_run(store, "run-1a2b", Path("run.jsonl"))
    export = await read_export(Path("run.jsonl"))        # every check, nothing written
    result = await import_run(other_store, export)       # one transaction

A run is every event of its streams: `run-<id>`, `task-<id>` and each stream
holding an event whose `meta.run_id` is the run (its conductor's and its
agents'), in position order. The file (format version 1) is UTF-8, one JSON
object per line::

    {"format": "fleet-run", "version": 1, "run_id": ..., "exported_at": ..., "head": ...}
    {"position": ..., "stream_id": ..., "version": ..., "type": ..., "schema": ...,
     "data": {...}, "meta": {...}, "recorded_at": ...}          one line per event
    {"end": "fleet-run", "events": N, "streams": {stream_id: count}, "sha256": ...}

The trailer's SHA-256 covers every byte before it (header and event lines,
each with its newline): a truncated, reordered or edited file is refused, and
so is one whose events are out of position order, whose stream versions are
not contiguous from 1, whose data does not match its type, or whose events
are in a stream that is not one of the run's (note 3). The SHA-256 is a
checksum against accidents, not a proof of origin: anyone can recompute it
after an edit. A signed export (`sign_key`) adds `"hmac_sha256"` to the
trailer, an HMAC-SHA256 with a shared key over the same bytes; an import
with `verify_key` refuses a file without it or with a wrong one.

Event lines are `events.encode_event(event, schema=True)`: the wire JSON of
`GET /v1/events` plus the data's schema version.

Notes (do not fix without reading this):
1. Everything is checked (`_export_format.py`) before anything is written; the write is the
   backend's `EventStore.import_run`: ONE transaction, not `append`s, since
   appends cannot carry an event's original `recorded_at` (every
   projection's times, durations and critical paths come from it) and one
   append per stream cannot be all-or-nothing across streams. It checks that
   no stream of the run exists, gives the events new positions after the
   head in their original order, keeps stream versions, and maps
   `causation_id`s to the new positions (None when the cause is not in the
   run).
2. Imported events keep their `recorded_at`, so `recorded_at` is not
   monotonic along positions in a log that received an import; nothing in
   fleet relies on that.
3. A run's streams are `run-<id>`, `task-<id>` (or `task-<id>-...`, names
   under the run's own), a conversation's `chat-<conversation>` when the run
   is that conversation's (its id is the stream's name), and `agent-<agent_id>` whose
   first event is the `AgentCreated` of that agent, and each of its events
   has `meta.run_id` = the run (what `export_run` selects). An import refuses
   any other stream: a resealed file must not plant events in another
   session's or agent's stream (`session-victim`) that does not exist yet
   in the target log.
4. `import_stream` (`_import_stream.py`) holds a bounded amount of the upload in memory whatever its
   size: lines are checked as they arrive (one line at most `max_line_bytes`)
   and the checked rows are spooled to an anonymous temporary file, which the
   store's one import transaction then reads back chunk by chunk. Nothing is
   written to the log until the whole file has checked (trailer included).
5. `export_run` writes a file beside the target and renames it over, so a
   reader never sees half an export. That is for files only: renaming over
   a FIFO (`fleet export -o pipe` into `fleet import pipe`) or a device
   (`-o /dev/stdout`, `/dev/null`) replaced it with a plain file, which as
   root destroyed the device node. Those are written in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._catalogue import RunStarted
from ._envelope import RecordedEvent
from ._export_format import (
    _SIGNATURE,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    ImportResult,
    RunExport,
    RunExported,
    _check_key,
    _Digests,
)
from ._store import EventFilter, EventStore
from ._wire import encode_event
from .errors import EventTooLarge, InvalidEvent, RunNotFound

_WRITE_CHUNK = 1 << 20  # bytes handed to a file write at once

__all__ = ["export_lines", "export_run", "import_run", "read_run"]

# -- export -----------------------------------------------------------------------


def _line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


async def _find_run(store: EventStore, run_id: str) -> None:
    first = await store.read_stream(f"run-{run_id}", limit=1, lenient=True)
    if not first or not isinstance(first[0].data, RunStarted):
        raise RunNotFound(run_id)


async def _run_events(
    store: EventStore, run_id: str, until: int | None
) -> AsyncIterator[RecordedEvent]:
    """The run's events up to `until`, each of its streams checked to be whole."""
    counts: dict[str, int] = {}
    where = EventFilter.of(run_id=run_id)
    async for event in store.iter_all(until=until, where=where, lenient=True):
        count = counts[event.stream_id] = counts.get(event.stream_id, 0) + 1
        if event.version != count:
            raise InvalidEvent(
                f"stream {event.stream_id!r} holds events that are not of run {run_id!r} "
                f"(version {event.version} is the run's event number {count} there)"
            )
        yield event
    for stream_id, count in counts.items():
        after = await store.read_stream(stream_id, after_version=count, limit=1, lenient=True)
        if after and (until is None or after[0].position <= until):
            raise InvalidEvent(
                f"stream {stream_id!r} goes on with an event that is not of run {run_id!r} "
                f"(position {after[0].position}): the run cannot be taken out of it whole"
            )


async def read_run(store: EventStore, run_id: str) -> list[RecordedEvent]:
    """Every event of run `run_id`, in position order (the events an export holds).

    Those are the events whose `meta.run_id` is the run: its run, task,
    conductor and agent streams, each whole, up to the log's head at the call.
    Raises `RunNotFound`, and `InvalidEvent` if one of those streams also holds
    events of something else.
    """
    await _find_run(store, run_id)
    # Up to the head as of now, as an export: a live run's streams go on while they are read.
    head = await store.head()
    return [event async for event in _run_events(store, run_id, head)]


async def export_lines(
    store: EventStore, run_id: str, *, sign_key: bytes | None = None
) -> AsyncIterator[bytes]:
    """The export of `run_id`, line by line (header, events, trailer).

    With `sign_key`, the trailer carries an HMAC-SHA256 of every line before
    it (`import_stream(..., verify_key=)` checks it). Raises `ValueError` for
    a key under `MIN_KEY_BYTES`.

    The run is looked up before the first line: `RunNotFound` is raised by
    this call, not in the middle of the iteration. Events appended to the run
    after this call are not included. An `InvalidEvent` in the middle (a
    stream of the run holding events of something else, a type this fleet
    does not know) ends the lines before the trailer: such an export is never
    importable.
    """
    if sign_key is not None:
        _check_key(sign_key)
    await _find_run(store, run_id)
    head = await store.head()
    return _lines(store, run_id, head, sign_key)


async def _lines(
    store: EventStore, run_id: str, head: int, sign_key: bytes | None
) -> AsyncIterator[bytes]:
    digest = _Digests(sign_key)
    header = _line(
        {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "run_id": run_id,
            "exported_at": datetime.now(UTC).isoformat(),
            "head": head,
        }
    )
    digest.update(header)
    yield header
    counts: dict[str, int] = {}
    async for event in _run_events(store, run_id, head):
        counts[event.stream_id] = event.version
        line = encode_event(event, schema=True) + b"\n"
        digest.update(line)
        yield line
    trailer: dict[str, Any] = {
        "end": EXPORT_FORMAT,
        "events": sum(counts.values()),
        "streams": counts,
        "sha256": digest.sha.hexdigest(),
    }
    if digest.mac is not None:
        trailer[_SIGNATURE] = digest.mac.hexdigest()
    yield _line(trailer)


def _written_where(path: Path) -> tuple[Path, Path | None]:
    """Where `export_run` writes `path`: the target, and the file beside it to rename over
    it (None: written in place, a FIFO or a device)."""
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "a folder, not a file", str(path))
    if mode is not None and not stat.S_ISREG(mode):
        return target, None
    return target, target.with_name(target.name + ".partial")


async def export_run(
    store: EventStore,
    run_id: str,
    path: str | os.PathLike[str],
    *,
    sign_key: bytes | None = None,
) -> RunExported:
    """Write run `run_id` to `path` as JSON Lines, signed with `sign_key` if given.

    A file appears whole or not at all (written beside it, then renamed; a
    symbolic link is written through). A `path` that is already something else
    than a file, a FIFO or a device (`/dev/stdout`), is written to as it is:
    renaming over it replaced the FIFO or the device with a file (note 5).
    Raises `RunNotFound`, `InvalidEvent` (an event of a type unknown to this
    fleet), `ValueError` for a signing key too short, `OSError` when the file
    cannot be written (`IsADirectoryError` for a folder).
    """
    target, partial = await asyncio.to_thread(_written_where, Path(path))
    lines = await export_lines(store, run_id, sign_key=sign_key)
    handle = await asyncio.to_thread((partial or target).open, "wb")
    size = 0
    last = b""
    try:
        chunk: list[bytes] = []
        pending = 0
        async for line in lines:
            chunk.append(line)
            pending += len(line)
            last = line
            if pending >= _WRITE_CHUNK:
                await asyncio.to_thread(handle.writelines, chunk)
                size += pending
                chunk, pending = [], 0
        await asyncio.to_thread(handle.writelines, chunk)
        size += pending
        await asyncio.to_thread(handle.close)
        if partial is not None:
            await asyncio.to_thread(os.replace, partial, target)
    except BaseException:
        handle.close()
        if partial is not None:
            with contextlib.suppress(OSError):
                partial.unlink()
        raise
    trailer = json.loads(last)
    return RunExported(
        run_id,
        target,
        trailer["events"],
        trailer["streams"],
        trailer["sha256"],
        size,
        signed=_SIGNATURE in trailer,
    )


# -- import ----------------------------------------------------------------------


async def import_run(store: EventStore, export: RunExport) -> ImportResult:
    """Append the run in `export` to `store`'s log in one transaction (module note 1).

    Every event gets a new position after the log's head, in the export's
    order; stream versions, data, meta and `recorded_at` are kept. Raises
    `ImportConflict` when a stream of the run exists already, `EventTooLarge`
    for an event over this store's size limit, `StoreError`/`StoreClosed`/
    `StoreUnavailable` for the log itself; in every case nothing is written.
    `export` is not mutated.
    """
    limit = store.max_event_bytes
    for event in export.rows:
        if len(event.data) * 4 > limit and len(event.data.encode()) > limit:
            raise EventTooLarge(event.stream_id, event.type, len(event.data.encode()), limit)
    first = await store.import_run(export.run_id, export.rows)
    return ImportResult(
        export.run_id,
        export.events,
        tuple(export.streams),
        first,
        first + export.events - 1,
    )
