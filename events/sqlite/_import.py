"""Another log's run, written into this one in one transaction (`import_run`).

Notes (do not fix without reading this):
1. The import is a `Job` of the store's writer (`_writer.py`, note 6): one
   transaction on the writer's connection, not `append`s. Appends cannot
   carry an event's original `recorded_at` (every projection's times,
   durations and critical paths come from it, so a run imported through
   `append` would show all of its waits as zero), and one append per stream
   cannot be all-or-nothing across streams. The transaction checks that no
   stream of the run exists (what `expected_version=NO_STREAM` checks per
   append), gives the events new positions after the head in their
   original order, keeps stream versions, maps `causation_id`s to the new
   positions (None when the cause is not in the run), and widens `spans` as
   the writer does.
2. Imported events keep their `recorded_at`, so `recorded_at` is not
   monotonic along positions in a log that received an import; nothing in
   fleet relies on that.
3. The events are taken in chunks from an iterable that may read a spool
   file (`events.import_stream`), on a worker thread, so that a run of any
   size is written with a bounded amount of it in memory
   (`events/_import_chunks.py`, which PostgreSQL's import shares). Each chunk's new
   streams are checked against the log before the chunk is inserted (a
   stream seen in an earlier chunk was checked then); on the first stream
   that exists, the rest is only read to name every such stream, and the
   transaction is rolled back. A cause is found among the earlier events by
   its old position (they are strictly increasing: `parse_export` checks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aiosqlite

from .._decoding import microseconds
from .._import_chunks import Remap, take_chunk
from .._store import ImportedEvent
from ..errors import ImportConflict
from ._rows import UPSERT_SPAN

__all__ = ["insert_run"]

_STREAM_BATCH = 500  # stream ids per `IN (...)` (SQLite allows 32766 parameters)

_INSERT = (
    "INSERT INTO events (position, stream_id, version, type, schema_version, data, run_id, "
    "agent_id, parent_id, causation_id, correlation_id, source, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def insert_run(
    conn: aiosqlite.Connection, run_id: str, events: Iterable[ImportedEvent]
) -> int:
    """Insert `events` after the head (inside the writer's transaction); the first position.

    `events` is iterated once, in chunks, on a worker thread (note 3). Raises
    `ImportConflict` when a stream of `events` exists already.
    """
    ((head,),) = await conn.execute_fetchall("SELECT COALESCE(MAX(position), 0) FROM events")
    remap = Remap(int(head))
    iterator = iter(events)
    seen: set[str] = set()
    existing: list[str] = []
    while True:
        chunk = await asyncio.to_thread(take_chunk, iterator)
        if not chunk:
            break
        new = list(dict.fromkeys(e.stream_id for e in chunk if e.stream_id not in seen))
        seen.update(new)
        existing += await _existing(conn, new)
        if existing:
            continue  # nothing more is inserted; the rest is read to name every conflict
        params, spans = await asyncio.to_thread(_rows, remap, chunk)
        # Dropped before the next chunk is taken: one chunk in memory at a time.
        del chunk
        await conn.executemany(_INSERT, params)
        await conn.executemany(UPSERT_SPAN, spans)
        del params
    if existing:
        raise ImportConflict(run_id, existing)
    return int(head) + 1


async def _existing(conn: aiosqlite.Connection, streams: list[str]) -> list[str]:
    found: list[str] = []
    for i in range(0, len(streams), _STREAM_BATCH):
        batch = streams[i : i + _STREAM_BATCH]
        marks = ",".join("?" * len(batch))
        rows = await conn.execute_fetchall(
            f"SELECT DISTINCT stream_id FROM events WHERE stream_id IN ({marks})", batch
        )
        found += [str(row[0]) for row in rows]
    return found


def _rows(
    remap: Remap, events: list[ImportedEvent]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows to insert (positions and causation ids remapped) and their spans."""
    spans: dict[tuple[str, str], list[int]] = {}
    params = []
    for event in events:
        position = remap.place(event)
        meta = event.meta
        for kind, key in (("run", meta.run_id), ("agent", meta.agent_id)):
            if key is not None:
                span = spans.setdefault((kind, key), [position, position])
                span[1] = position
        params.append(
            (
                position, event.stream_id, event.version, event.type, event.schema_version,
                event.data, meta.run_id, meta.agent_id, meta.parent_id,
                remap.cause(meta.causation_id), meta.correlation_id, meta.source,
                microseconds(event.recorded_at),
            )
        )  # fmt: skip
    return params, [(*key, *span) for key, span in spans.items()]
