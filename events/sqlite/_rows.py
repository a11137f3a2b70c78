"""The SQLite log's table, and the mapping between its rows and events.

Notes (do not fix without reading this):
1. Meta ids go in as `''` (and `causation_id` as `0`) and the INSERT turns them
   into NULL with NULLIF. Python's sqlite3 binds `None` through its adapter
   protocol (two failed attribute look-ups per value, ~0.2 us each), which was
   a quarter of the cost of a batch insert; a `str` or an `int` binds directly.
   So an empty id is refused at append (`meta_params`): it would read back as None.
2. Reads go through their own aiosqlite connection (`PageReader`): one
   `execute_fetchall` per page, so one hop to its thread and back, and the
   rows are decoded on the event loop. Decoding is the hot path of every
   read: the data of a current-schema type goes straight to its model's JSON
   validator; Meta objects are shared between
   rows with the same meta (they are immutable), and so is `recorded_at` between
   rows of one commit. Any other row (an old schema, an unknown type) takes the
   slow path through `upcast`.
3. `recorded_at` is stored as integer microseconds since the epoch (UTC):
   cheaper to decode than ISO text, and exact.
4. The cyclic garbage collector is paused while a page is decoded
   (`gc_paused`). Each event is half a dozen new container objects (the model,
   its dict and field set, lists, the envelope) that the collector would
   otherwise walk and promote ten times per page; none of them forms a cycle.
   Pausing for one page (at most a few milliseconds, no await inside) made
   reads 1.3 to 3 times faster, the more so the larger the process's heap. A
   caller that disabled the collector itself is left as it was.
5. Reads filtered by run or agent use `spans`, a block-range index (what
   PostgreSQL calls BRIN): the first and last position of each run id and
   agent id, kept by the writer in the transaction of the rows it covers. A run's
   and an agent's events are appended while they live, so their span is
   short, and a filtered read scans the span instead of the whole log. B-tree
   indexes on (run_id, position) and (agent_id, position) did the same job
   at a quarter of the cost of every insert (1.1 us of 3.9 us per row).
6. Rows go in by a hundred per INSERT statement (`insert_rows`) rather than
   one per `executemany` step: a fifth less time per row, because SQLite
   runs one statement instead of resetting and stepping one per row.
"""

from __future__ import annotations

import functools
import gc
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiosqlite
from pydantic import ValidationError

from .._catalogue import EVENT_TYPES, EventModel, UnknownEvent
from .._envelope import Meta, RecordedEvent, new_recorded
from .._store import EventFilter
from .._upcasting import upcast
from ..errors import InvalidEvent, StoreClosed, StoreError, UnknownEventType

__all__ = [
    "BACKFILL_SPANS",
    "INSERT_ROWS",
    "ROW_PARAMS",
    "SCHEMA",
    "SELECT_COLUMNS",
    "UPSERT_SPAN",
    "PageReader",
    "Row",
    "RowDecoder",
    "gc_paused",
    "insert_rows",
    "meta_params",
    "select_events",
]

Row = tuple[Any, ...]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL CHECK (stream_id <> ''),
    version        INTEGER NOT NULL CHECK (version > 0),
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    run_id         TEXT,
    agent_id       TEXT,
    parent_id      TEXT,
    causation_id   INTEGER,
    correlation_id TEXT,
    source         TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE TABLE IF NOT EXISTS spans (
    kind  TEXT    NOT NULL,
    key   TEXT    NOT NULL,
    first INTEGER NOT NULL,
    last  INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
DROP INDEX IF EXISTS events_by_run;
DROP INDEX IF EXISTS events_by_agent;
CREATE TRIGGER IF NOT EXISTS events_are_immutable BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;
CREATE TRIGGER IF NOT EXISTS events_are_never_deleted BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are never deleted'); END;
"""

# The parameter order of a row: the four the writer assigns, then what
# `append` encodes up front (see `meta_params`), so a row is one extend.
_INSERT_INTO = (
    "INSERT INTO events (position, stream_id, version, recorded_at, type, schema_version, data, "
    "run_id, agent_id, parent_id, causation_id, correlation_id, source) VALUES "
)
_ROW = (
    "(?, ?, ?, ?, ?, ?, ?, "
    "NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, 0), NULLIF(?, ''), ?)"
)
ROW_PARAMS = 13
INSERT_ROWS = 100


@functools.lru_cache(maxsize=INSERT_ROWS)
def insert_rows(count: int) -> str:
    """An INSERT of `count` rows (at most `INSERT_ROWS`) in one statement (note 6)."""
    return _INSERT_INTO + ",".join([_ROW] * count)


# Widen the span of a run or an agent id (note 5).
UPSERT_SPAN = (
    "INSERT INTO spans (kind, key, first, last) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (kind, key) DO UPDATE "
    "SET first = MIN(first, excluded.first), last = MAX(last, excluded.last)"
)

# Builds `spans` from the rows, for a log written before it existed (idempotent).
BACKFILL_SPANS = "".join(
    f"INSERT INTO spans (kind, key, first, last) "
    f"SELECT '{kind}', {column}, MIN(position), MAX(position) FROM events "
    f"WHERE {column} IS NOT NULL GROUP BY {column} "
    f"ON CONFLICT (kind, key) DO UPDATE "
    f"SET first = MIN(first, excluded.first), last = MAX(last, excluded.last);"
    for kind, column in (("run", "run_id"), ("agent", "agent_id"))
)

SELECT_COLUMNS = (
    "position, stream_id, version, type, schema_version, data, run_id, agent_id, "
    "parent_id, causation_id, correlation_id, source, recorded_at"
)


_SOURCES = frozenset(("runtime", "hook", "ingest", "replay", "api"))


def meta_params(meta: Meta) -> tuple[str, str, str, int, str, str]:
    """The meta's INSERT parameters, None as '' / 0 (see note 1).

    Raises `InvalidEvent` if `meta` cannot be stored as given: an id that is
    empty or not a string, a causation id that is not a position, a source
    that is not a `Source`.
    """
    if type(meta) is not Meta:
        raise InvalidEvent(f"meta must be a Meta, got {type(meta).__name__}")
    run, agent, parent = meta.run_id, meta.agent_id, meta.parent_id
    causation, correlation, source = meta.causation_id, meta.correlation_id, meta.source
    if (
        (run is None or (type(run) is str and run))
        and (agent is None or (type(agent) is str and agent))
        and (parent is None or (type(parent) is str and parent))
        and (correlation is None or (type(correlation) is str and correlation))
        and (causation is None or (type(causation) is int and causation > 0))
        and source in _SOURCES
    ):
        return (run or "", agent or "", parent or "", causation or 0, correlation or "", source)
    for name in ("run_id", "agent_id", "parent_id", "correlation_id"):
        value = getattr(meta, name)
        if value is not None and (type(value) is not str or not value):
            raise InvalidEvent(f"meta.{name} must be a non-empty string or None, got {value!r}")
    if source not in _SOURCES:
        raise InvalidEvent(f"meta.source must be one of {sorted(_SOURCES)}, got {source!r}")
    raise InvalidEvent(f"meta.causation_id must be a position >= 1 or None, got {causation!r}")


def select_events(
    after: int, until: int | None, where: EventFilter | None, limit: int | None
) -> tuple[str, list[Any]]:
    """The SELECT of a page of the log, `after < position <= until`, and its parameters.

    A run or agent filter narrows the position range to that id's span
    (note 5); SQLite takes one range on the rowid, so the bounds are folded
    into one `position > MAX(...)` and one `position <= MIN(...)`.
    """
    lower: list[str] = ["?"]
    lower_params: list[Any] = [after]
    upper: list[str] = []
    upper_params: list[Any] = []
    if until is not None:
        upper.append("?")
        upper_params.append(until)
    clauses: list[str] = []
    params: list[Any] = []
    if where is not None:
        if where.stream_ids is not None:
            clauses.append(f"stream_id IN ({','.join('?' * len(where.stream_ids))})")
            params.extend(sorted(where.stream_ids))
        if where.types is not None:
            clauses.append(f"type IN ({','.join('?' * len(where.types))})")
            params.extend(sorted(where.types))
        spanned = (("run", "run_id", where.run_id), ("agent", "agent_id", where.agent_id))
        for kind, column, value in spanned:
            if value is None:
                continue
            clauses.append(f"{column} = ?")
            params.append(value)
            # A missing span means no such event: an empty range.
            lower.append(
                f"COALESCE((SELECT first - 1 FROM spans WHERE kind = '{kind}' AND key = ?), "
                f"{_NOWHERE})"
            )
            lower_params.append(value)
            upper.append(f"COALESCE((SELECT last FROM spans WHERE kind = '{kind}' AND key = ?), 0)")
            upper_params.append(value)
    ranges = [f"position > {_fold('MAX', lower)}"]
    if upper:
        ranges.append(f"position <= {_fold('MIN', upper)}")
    sql = (
        f"SELECT {SELECT_COLUMNS} FROM events WHERE {' AND '.join(ranges + clauses)} "
        "ORDER BY position LIMIT ?"
    )
    return sql, [*lower_params, *upper_params, *params, -1 if limit is None else limit]


_NOWHERE = 2**63 - 1


def _fold(function: str, terms: list[str]) -> str:
    # One-argument MAX and MIN are aggregates in SQLite: use them with two or more.
    return terms[0] if len(terms) == 1 else f"{function}({', '.join(terms)})"


_Validate = Callable[[str], Any]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a block with no await in it (note 4)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class RowDecoder:
    """Turns rows into `RecordedEvent`s, sharing equal Meta and timestamps (note 2).

    One per store; not thread-safe (it is only used on the event loop).
    """

    _MAX_METAS = 4096

    def __init__(self) -> None:
        # type -> (current schema version, JSON validator of its model)
        self._fast: dict[str, tuple[int, _Validate]] = {
            name: (cls.SCHEMA_VERSION, cls.__pydantic_validator__.validate_json)
            for name, cls in EVENT_TYPES.items()
        }
        self._metas: dict[tuple[Any, ...], Meta] = {}
        self._last_us = -1
        self._last_at = datetime.fromtimestamp(0, UTC)

    def decode_all(self, rows: list[Row], *, lenient: bool) -> list[RecordedEvent]:
        """Decode `rows`; raises `UnknownEventType` (strict) or `StoreError` (corrupt row)."""
        with gc_paused():
            return self._decode_all(rows, lenient)

    def _decode_all(self, rows: list[Row], lenient: bool) -> list[RecordedEvent]:
        fast = self._fast
        metas = self._metas
        out: list[RecordedEvent] = []
        append = out.append
        for row in rows:
            entry = fast.get(row[3])
            if entry is not None and entry[0] == row[4]:
                try:
                    data = entry[1](row[5])
                except ValidationError as e:
                    raise _undecodable(row, e) from e
            else:
                data = self._slow_data(row, lenient)
            key = row[6:12]
            meta = metas.get(key)
            if meta is None:
                meta = self._meta(key)
            recorded_us = row[12]
            if recorded_us != self._last_us:
                self._last_at = datetime.fromtimestamp(recorded_us / 1_000_000, UTC)
                self._last_us = recorded_us
            append(new_recorded(row[0], row[1], row[2], data, meta, self._last_at))
        return out

    def _meta(self, key: tuple[Any, ...]) -> Meta:
        if len(self._metas) >= self._MAX_METAS:
            self._metas.clear()
        meta = self._metas[key] = Meta(*key)
        return meta

    @staticmethod
    def _slow_data(row: Row, lenient: bool) -> EventModel:
        position, type_, schema, text = row[0], row[3], row[4], row[5]
        cls = EVENT_TYPES.get(type_)
        if cls is None or schema > cls.SCHEMA_VERSION:
            # A type, or a schema of a known type, written by a newer fleet.
            newer = None if cls is None else schema
            if not lenient:
                raise UnknownEventType(position, type_, schema_version=newer)
            try:
                raw = json.loads(text)
            except ValueError as e:
                raise _undecodable(row, e) from e
            return UnknownEvent(type=type_, raw=raw if isinstance(raw, dict) else {"value": raw})
        try:
            return cls.model_validate(upcast(type_, schema, json.loads(text)))
        except (ValidationError, ValueError) as e:
            raise _undecodable(row, e) from e


def _undecodable(row: Row, error: Exception) -> StoreError:
    return StoreError(
        f"event at position {row[0]} ({row[3]}, schema {row[4]}) does not decode: {error}"
    )


class PageReader:
    """A read-only aiosqlite connection; each call fetches one page in one hop (note 2)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        self._decoder = RowDecoder()  # used on the event loop only
        self._closed = False

    async def open(self) -> None:
        """Connect. Raises `StoreError` if the file cannot be read."""
        try:
            # Not `mode=ro`: opening a WAL file read-only fails when no other
            # connection holds its -shm file. `query_only` keeps it read-only.
            conn = await aiosqlite.connect(self._path, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self._path}: {e}") from e
        try:
            await conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            await conn.execute("PRAGMA query_only = 1")
        except BaseException as e:
            await conn.close()
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"cannot open {self._path}: {e}") from e
            raise
        if self._closed:  # closed while opening
            await conn.close()
            return
        self._conn = conn

    async def aclose(self) -> None:
        """Close the connection (after any read in flight); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def events(
        self, sql: str, params: Sequence[Any], *, lenient: bool
    ) -> list[RecordedEvent]:
        """The events a SELECT of `SELECT_COLUMNS` returns, decoded on the event loop."""
        rows = await self._fetch(sql, params)
        return self._decoder.decode_all(rows, lenient=lenient)

    async def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of a query."""
        return (await self._fetch(sql, params))[0][0]

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        conn = self._conn
        if conn is None:
            raise StoreClosed()
        try:
            rows = await conn.execute_fetchall(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"reading {self._path} failed: {e}") from e
        except ValueError as e:  # aiosqlite: the connection was closed meanwhile
            if self._conn is None:
                raise StoreClosed() from e
            raise
        return cast(list[Row], rows)  # aiosqlite returns the cursor's fetchall(): a list
