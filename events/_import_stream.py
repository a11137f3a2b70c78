"""A run's export streamed into the log with bounded memory (module note 4 of `_export.py`).

    async with await spool_export(chunks, max_line_bytes=...) as spooled:   # checked as it arrives
        result = await import_stream(store, spooled)                        # one transaction

Lines are checked as they arrive by the same checker `parse_export` uses, and
the checked rows are spooled to an anonymous temporary file, which the store's
one import transaction reads back chunk by chunk: nothing is written to the
log until the whole file has checked, trailer included.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterable, Iterator
from datetime import datetime
from typing import IO, Any

from ._encoding import DEFAULT_MAX_EVENT_BYTES
from ._envelope import Meta
from ._export_format import _CHECK_CHUNK, _SIGNATURE, ImportResult, _Checker
from ._store import EventStore, ImportedEvent
from .errors import EventTooLarge

__all__ = ["SpooledExport", "import_stream", "spool_export"]


class _Feeder:
    """Splits arriving bytes into lines for a checker, holding at most one partial line."""

    def __init__(self, checker: _Checker, max_line_bytes: int) -> None:
        self.checker = checker
        self.max_line_bytes = max_line_bytes
        self.tail = b""
        self.number = 0

    def feed(self, data: bytes) -> None:
        buffer = self.tail + data if self.tail else data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            self.line(buffer[start:end])
            start = end + 1
        self.tail = buffer[start:]
        if len(self.tail) > self.max_line_bytes:
            raise self.checker.fail(
                f"a line longer than {self.max_line_bytes} bytes (no event is that large)",
                self.number + 1,
            )

    def close(self) -> dict[str, Any]:
        if self.tail:  # the last line, without its newline: cut short, or saved without
            self.line(self.tail, ended=False)
            self.tail = b""
        return self.checker.complete()

    def line(self, body: bytes, *, ended: bool = True) -> None:
        self.number += 1
        if len(body) > self.max_line_bytes:
            raise self.checker.fail(
                f"a line longer than {self.max_line_bytes} bytes (no event is that large)",
                self.number,
            )
        if not body.strip():
            raise self.checker.fail("a blank line (not a JSON Lines run export)", self.number)
        self.checker.feed(self.number, body + b"\n", ended=ended)


def _spool_row(event: ImportedEvent) -> bytes:
    meta = event.meta
    return (
        json.dumps(
            [
                event.position, event.stream_id, event.version, event.type,
                event.schema_version, event.data,
                [meta.run_id, meta.agent_id, meta.parent_id, meta.causation_id,
                 meta.correlation_id, meta.source],
                event.recorded_at.isoformat(),
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        + b"\n"
    )  # fmt: skip


def _spooled_rows(spool: IO[bytes], max_event_bytes: int) -> Iterator[ImportedEvent]:
    """The checked rows back from the spool, in order (blocking reads: a worker thread's)."""
    spool.seek(0)
    for raw in spool:
        position, stream, version, kind, schema, data, meta, at = json.loads(raw)
        if len(data) * 4 > max_event_bytes and len(data.encode()) > max_event_bytes:
            raise EventTooLarge(stream, kind, len(data.encode()), max_event_bytes)
        yield ImportedEvent(
            position,
            stream,
            version,
            kind,
            schema,
            data,
            Meta(*meta),
            datetime.fromisoformat(at),
        )


class SpooledExport:
    """An export checked whole as it arrived, its rows spooled to an anonymous temporary file.

    Made by `spool_export`; use as `async with`: closing drops the spool.
    `import_into` writes it to a log (more than once, into different logs).
    """

    def __init__(self, spool: IO[bytes], checker: _Checker, trailer: dict[str, Any]) -> None:
        self._spool = spool
        self.run_id = checker.run_id
        self.source = checker.source
        self.events = checker.count
        self.streams = dict(checker.versions)
        self.sha256: str = trailer["sha256"]
        self.signed = _SIGNATURE in trailer

    async def __aenter__(self) -> SpooledExport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Drop the spool. Safe to call twice."""
        await asyncio.to_thread(self._spool.close)

    async def import_into(self, store: EventStore) -> ImportResult:
        """Append the run to `store`'s log in one transaction (module note 1).

        Raises `ImportConflict`, `EventTooLarge` (over this store's limit), the
        store's errors; in every case nothing is written.
        """
        if self._spool.closed:
            raise ValueError("this export's spool is closed")
        rows = _spooled_rows(self._spool, store.max_event_bytes)
        first = await store.import_run(self.run_id, rows)
        return ImportResult(
            self.run_id, self.events, tuple(self.streams), first, first + self.events - 1
        )


async def spool_export(
    chunks: AsyncIterable[bytes],
    *,
    source: str = "<export>",
    verify_key: bytes | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> SpooledExport:
    """Check an export as it arrives (module note 4); returns it spooled, ready to import.

    `chunks` are the file's bytes in any split (a request body, a file read in
    blocks). Memory stays bounded whatever the size: one line at most (a line
    longer than any event of `max_event_bytes` can be is refused), plus a
    megabyte of input. With `verify_key`, an unsigned or wrongly signed file
    is refused. Raises `ExportInvalid`, `EventTooLarge`, `OSError` when the
    spool cannot be written (a full temporary folder).
    """
    # A line holds one event's data JSON-escaped (at most 6 bytes a character,
    # for control characters) plus its envelope.
    max_line = max_event_bytes * 6 + 64 * 1024
    spool = await asyncio.to_thread(tempfile.TemporaryFile, "w+b")
    try:

        def spooled(row: ImportedEvent) -> None:
            spool.write(_spool_row(row))

        checker = _Checker(
            source, verify_key=verify_key, sink=spooled, max_event_bytes=max_event_bytes
        )
        feeder = _Feeder(checker, max_line)
        pending: list[bytes] = []
        size = 0
        async for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= _CHECK_CHUNK:
                await asyncio.to_thread(feeder.feed, b"".join(pending))
                pending, size = [], 0
        if pending:
            await asyncio.to_thread(feeder.feed, b"".join(pending))
        trailer = await asyncio.to_thread(feeder.close)
        await asyncio.to_thread(spool.flush)
    except BaseException:
        await asyncio.to_thread(spool.close)
        raise
    return SpooledExport(spool, checker, trailer)


async def import_stream(
    store: EventStore,
    chunks: AsyncIterable[bytes],
    *,
    source: str = "<export>",
    verify_key: bytes | None = None,
) -> ImportResult:
    """Check an export as it arrives, then import it in one transaction (module notes 1, 4).

    `spool_export` then `SpooledExport.import_into`, with the store's event
    size limit. Raises `ExportInvalid`, `EventTooLarge`, `ImportConflict`, the
    store's errors; in every case nothing is written.
    """
    export = await spool_export(
        chunks, source=source, verify_key=verify_key, max_event_bytes=store.max_event_bytes
    )
    async with export:
        return await export.import_into(store)
