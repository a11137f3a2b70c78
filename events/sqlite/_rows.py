"""The SQLite log's tables, its queries, and the reader connection.

Notes (do not fix without reading this):
1. Meta ids go in as `''` (and `causation_id` as `0`, see
   `events/_encoding.py`, note 1) and the INSERT turns them into NULL with
   NULLIF, so a row reads back with None where the meta had None.
2. Reads go through their own aiosqlite connection (`PageReader`): one
   `execute_fetchall` per page, so one hop to its thread and back, and the
   rows are decoded on the event loop by the shared `RowDecoder`
   (`events/_decoding.py`); `SELECT_COLUMNS` is its row layout.
3. `recorded_at` is stored as integer microseconds since the epoch (UTC).
4. The cyclic garbage collector is paused while a page is decoded and while
   the writer numbers a group (`events/_decoding.py`, note 3).
5. Reads filtered by run or agent use `spans`, a block-range index (what
   PostgreSQL calls BRIN): the first and last position of each run id and
   agent id, kept by the writer in the transaction of the rows it covers. A run's
   and an agent's events are appended while they live, so their span is
   short, and a filtered read scans the span instead of the whole log. B-tree
   indexes on (run_id, position) and (agent_id, position) did the same job
   at a quarter of the cost of every insert (1.1 us of 3.9 us per row).
6. Rows go in by a hundred per INSERT statement (`insert_rows`) rather than
   one per `executemany` step: a fifth less time per row, because SQLite
   runs one statement instead of resetting and stepping one per row. A run
   of events of one append binds its position, stream, version and time
   once per statement, and the events' values column by column as
   `encode_batch` gave them (`insert_columns`): no row is built on the event
   loop. When its events share their type and meta (`Encoded.uniform`), those
   are bound once too and each event binds only its data (`insert_uniform`):
   binding 1 value a row instead of 9 takes a quarter off SQLite's time a row
   (2.8 against 3.8 us in a bare `sqlite3` test on a loaded machine), and
   their NULLs are bound as None, once, rather than turned from '' by a
   NULLIF on every row (0.15 us a row).
7. The projections' checkpoints and snapshots are tables of the same file
   (`projection_checkpoints`, `projection_snapshots`), created with the log's
   schema and written through the same writer (`_checkpoints.py`).
8. A small group goes in as one statement through `pending`, a TEMP view of
   the writer's connection (no other connection, and no other process, sees
   it or its triggers): its INSTEAD OF triggers insert each row and widen the
   spans from the rows that carry a first position. One statement is atomic,
   so the writer can queue its COMMIT behind it without waiting for it
   (`_writer.py`, note 1). The triggers cost SQLite about 1.4 us a row more
   than a plain INSERT (4.0 against 2.6 us in a bare `sqlite3` test), which
   is why large groups insert directly and widen the spans with a statement
   of their own.
9. An append of up to `INSERT_ROWS` events of one type and meta (a group of
   that append alone) is one statement too, through `pending_append`, a
   TEMP view whose row is the whole append (its data in columns d0 to d99):
   its INSTEAD OF trigger inserts the events and widens the run's and the
   agent's span. SQLite's time a row is that of `insert_uniform` (1.5 us in
   a bare `sqlite3` test, both ways), and the append takes one round trip
   instead of two and one statement sent instead of four (BEGIN, INSERT,
   spans, COMMIT). Larger appends would pay for it: the trigger's rows cost
   SQLite a third more than a plain INSERT's at 1,000 events.
10. A read's `skippable` tests (`events.DataTest`, a reader's own test of
   the events of a type, such as the agents read model's of hook events)
   are made in SQL on the stored JSON (`json_extract`), so the rows that
   fail never reach Python: SQLite runs them on the reading connection's
   thread, which does not hold the GIL while a statement steps, and a time
   travel of the agents read model no longer reads, decodes and validates
   the hook events it would drop (38% of a recorded log; 0.82 of the
   query's instructions, `BENCHMARKS.md`, twenty-first pass). A row whose
   JSON does not parse (`json_valid`), or of another schema version than
   this fleet's, is kept: its reader's decoding names it or upcasts it. (One
   that parses with a field of a type its model refuses fails the test like
   any other and is left out of that read; a rebuild still names it.) Only
   `read_all` makes them: a subscription wants every event.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite

from .._catalogue import EVENT_TYPES
from .._decoding import Row, RowDecoder
from .._envelope import RecordedEvent
from .._store import DataTest, EventFilter
from ..errors import NotADatabase, StoreClosed, StoreError, StoreUnavailable
from ._connection import connect
from ._errors import translated

__all__ = [
    "APPLICATION_ID",
    "BACKFILL_SPANS",
    "INSERT_ROWS",
    "PENDING",
    "PENDING_APPEND",
    "PENDING_PARAMS",
    "ROW_PARAMS",
    "SCHEMA",
    "SELECT_COLUMNS",
    "UPSERT_SPAN",
    "PageReader",
    "insert_append",
    "insert_columns",
    "insert_pending",
    "insert_rows",
    "insert_uniform",
    "select_events",
]

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
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name       TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS projection_snapshots (
    name     TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    position INTEGER NOT NULL,
    blob     BLOB    NOT NULL,
    PRIMARY KEY (name, version, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    key        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
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
APPLICATION_ID = 0x666C7431  # "flt1": marks a file as a fleet log
INSERT_ROWS = 100


@functools.lru_cache(maxsize=INSERT_ROWS)
def insert_rows(count: int) -> str:
    """An INSERT of `count` rows (at most `INSERT_ROWS`) in one statement (note 6)."""
    return _INSERT_INTO + ",".join([_ROW] * count)


# The writer connection's own view (note 8): a row of `events` plus, on the row
# that ends a run's or an agent's part of a group, the first position of that
# part, so the triggers widen its span in the statement that inserts the rows.
_COLUMNS = (
    "position, stream_id, version, recorded_at, type, schema_version, data, "
    "run_id, agent_id, parent_id, causation_id, correlation_id, source"
)
_WIDEN = (
    "INSERT INTO spans (kind, key, first, last) VALUES ('{kind}', NEW.{kind}_id, "
    "NEW.{kind}_first, NEW.position) ON CONFLICT (kind, key) DO UPDATE "
    "SET first = MIN(first, excluded.first), last = MAX(last, excluded.last);"
)
PENDING = f"""
CREATE TEMP VIEW IF NOT EXISTS pending AS
SELECT {_COLUMNS}, 0 AS run_first, 0 AS agent_first FROM main.events WHERE 0;
CREATE TEMP TRIGGER IF NOT EXISTS pending_row INSTEAD OF INSERT ON pending BEGIN
INSERT INTO events ({_COLUMNS}) VALUES (NEW.position, NEW.stream_id, NEW.version,
    NEW.recorded_at, NEW.type, NEW.schema_version, NEW.data, NULLIF(NEW.run_id, ''),
    NULLIF(NEW.agent_id, ''), NULLIF(NEW.parent_id, ''), NULLIF(NEW.causation_id, 0),
    NULLIF(NEW.correlation_id, ''), NEW.source);
END;
CREATE TEMP TRIGGER IF NOT EXISTS pending_run INSTEAD OF INSERT ON pending
WHEN NEW.run_first > 0 BEGIN {_WIDEN.format(kind="run")} END;
CREATE TEMP TRIGGER IF NOT EXISTS pending_agent INSTEAD OF INSERT ON pending
WHEN NEW.agent_first > 0 BEGIN {_WIDEN.format(kind="agent")} END;
"""
PENDING_PARAMS = ROW_PARAMS + 2


# The writer connection's view for one append of up to `INSERT_ROWS` events of one
# type and meta (note 9): a row of it is the whole append, its data in d0, d1, ...
_APPEND_DATA = ", ".join(f"'' AS d{k}" for k in range(INSERT_ROWS))
_APPEND_ROWS = " UNION ALL ".join(f"SELECT {k} AS k, NEW.d{k} AS d" for k in range(INSERT_ROWS))
_APPEND_SPAN = (
    "INSERT INTO spans (kind, key, first, last) SELECT '{kind}', NEW.{kind}_id, NEW.position, "
    "NEW.position + NEW.count - 1 WHERE NEW.{kind}_id IS NOT NULL ON CONFLICT (kind, key) "
    "DO UPDATE SET first = MIN(first, excluded.first), last = MAX(last, excluded.last);"
)
PENDING_APPEND = f"""
CREATE TEMP VIEW IF NOT EXISTS pending_append AS
SELECT 0 AS position, '' AS stream_id, 0 AS version, 0 AS recorded_at, '' AS type,
    0 AS schema_version, '' AS run_id, '' AS agent_id, '' AS parent_id, 0 AS causation_id,
    '' AS correlation_id, '' AS source, 0 AS count, {_APPEND_DATA} WHERE 0;
CREATE TEMP TRIGGER IF NOT EXISTS pending_append_rows INSTEAD OF INSERT ON pending_append BEGIN
INSERT INTO events ({_COLUMNS}) SELECT NEW.position + k, NEW.stream_id, NEW.version + k,
    NEW.recorded_at, NEW.type, NEW.schema_version, d, NEW.run_id, NEW.agent_id, NEW.parent_id,
    NEW.causation_id, NEW.correlation_id, NEW.source FROM ({_APPEND_ROWS}) WHERE k < NEW.count;
{_APPEND_SPAN.format(kind="run")}
{_APPEND_SPAN.format(kind="agent")}
END;
"""


@functools.lru_cache(maxsize=INSERT_ROWS)
def insert_append(count: int) -> str:
    """The INSERT of one append of `count` events of one type and meta (at most
    `INSERT_ROWS`) through `pending_append`, one statement (note 9).

    Its parameters are those of `insert_uniform`, then `count`, then each
    event's data.
    """
    data = ", ".join(f"d{k}" for k in range(count))
    return (
        "INSERT INTO pending_append (position, stream_id, version, recorded_at, type, "
        "schema_version, run_id, agent_id, parent_id, causation_id, correlation_id, source, "
        f"count, {data}) VALUES ({', '.join(['?'] * (13 + count))})"
    )


@functools.lru_cache(maxsize=128)
def insert_pending(count: int) -> str:
    """An INSERT of `count` rows through the `pending` view, in one statement (note 8)."""
    row = f"({', '.join(['?'] * PENDING_PARAMS)})"
    return f"INSERT INTO pending ({_COLUMNS}, run_first, agent_first) VALUES " + ",".join(
        [row] * count
    )


_META_SQL = (
    "NULLIF(?{}, ''), NULLIF(?{}, ''), NULLIF(?{}, ''), NULLIF(?{}, 0), NULLIF(?{}, ''), ?{}"
)


@functools.lru_cache(maxsize=INSERT_ROWS)
def insert_uniform(count: int) -> str:
    """An INSERT of `count` consecutive events of one stream, of one type and meta
    (at most `INSERT_ROWS`; note 6).

    Its parameters are the first position, the stream, the first version,
    recorded_at, the type, the schema version and the six meta values (None
    for none: bound once, so NULLIF would only cost), then each event's data.
    """
    rows = [
        f"(?1 + {k}, ?2, ?3 + {k}, ?4, ?5, ?6, ?{13 + k}, ?7, ?8, ?9, ?10, ?11, ?12)"
        for k in range(count)
    ]
    return _INSERT_INTO + ",".join(rows)


@functools.lru_cache(maxsize=INSERT_ROWS)
def insert_columns(count: int) -> str:
    """An INSERT of `count` consecutive events of one stream (at most `INSERT_ROWS`; note 6).

    Its parameters are the first position, the stream, the first version and
    recorded_at, then each of the nine stored columns (type, schema version,
    data, the six meta values) for every event, column after column.
    """
    rows = []
    for k in range(count):
        at = [5 + column * count + k for column in range(9)]
        rows.append(
            f"(?1 + {k}, ?2, ?3 + {k}, ?4, ?{at[0]}, ?{at[1]}, ?{at[2]}, "
            f"{_META_SQL.format(*at[3:])})"
        )
    return _INSERT_INTO + ",".join(rows)


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


def select_events(
    after: int,
    until: int | None,
    where: EventFilter | None,
    limit: int | None,
    *,
    skip: bool = False,
) -> tuple[str, list[Any]]:
    """The SELECT of a page of the log, `after < position <= until`, and its parameters.

    A run or agent filter narrows the position range to that id's span
    (note 5); SQLite takes one range on the rowid, so the bounds are folded
    into one `position > MAX(...)` and one `position <= MIN(...)`. With `skip`,
    the filter's `skippable` tests leave out the rows that fail them (note 10).
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
        for test in where.skippable if skip else ():
            clauses.append(_skippable(test, params))
    ranges = [f"position > {_fold('MAX', lower)}"]
    if upper:
        ranges.append(f"position <= {_fold('MIN', upper)}")
    sql = (
        f"SELECT {SELECT_COLUMNS} FROM events WHERE {' AND '.join(ranges + clauses)} "
        "ORDER BY position LIMIT ?"
    )
    return sql, [*lower_params, *upper_params, *params, -1 if limit is None else limit]


_NOWHERE = 2**63 - 1


def _skippable(test: DataTest, params: list[Any]) -> str:
    """The clause that keeps the rows of other types, and those of `test.type` passing it
    (note 10); its parameters appended to `params`, in order. A row of another schema
    version than this fleet's is kept: the test is of the current schema's fields."""
    cls = EVENT_TYPES.get(test.type)
    params += [test.type, -1 if cls is None else cls.SCHEMA_VERSION]
    passing = []
    for name, values in test.fields:
        params.append(f"$.{name}")
        if values is None:
            passing.append("COALESCE(json_extract(data, ?), '') NOT IN ('', 0)")
        else:
            passing.append(f"json_extract(data, ?) IN ({','.join('?' * len(values))})")
            params.extend(sorted(values))
    tests = " OR ".join(passing)
    return f"(type <> ? OR schema_version <> ? OR NOT json_valid(data) OR {tests})"


def _fold(function: str, terms: list[str]) -> str:
    # One-argument MAX and MIN are aggregates in SQLite: use them with two or more.
    return terms[0] if len(terms) == 1 else f"{function}({', '.join(terms)})"


class PageReader:
    """The reading aiosqlite connection; each call fetches one page in one hop (note 2).

    With `readonly`, the file is opened with `mode=ro` and must be a fleet
    log already; otherwise the connection is made read-only with
    `query_only` (the writer connection of the same store creates the file).
    """

    def __init__(self, path: Path, *, busy_timeout_ms: int, readonly: bool = False) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._readonly = readonly
        self._conn: aiosqlite.Connection | None = None
        self._decoder = RowDecoder()  # used on the event loop only
        self._closed = False
        self.tables: frozenset[str] = frozenset()

    async def open(self) -> None:
        """Connect. Raises `StoreError` (or a subclass) if the file cannot be read."""
        try:
            conn = await self._connect("?mode=ro")
        except StoreUnavailable:
            # A WAL log in a read-only folder: SQLite cannot make the `-shm` file a reader
            # needs. With no `-wal` file, everything is in the main file and no writer can
            # be at work (it would have made one), so it is read as an immutable file.
            wal = self._path.with_name(self._path.name + "-wal")
            if not self._readonly or wal.exists():
                raise
            conn = await self._connect("?mode=ro&immutable=1")
        if self._closed:  # closed while opening
            await conn.close()
            return
        self._conn = conn

    async def _connect(self, query: str) -> aiosqlite.Connection:
        with translated("opening", self._path):
            if self._readonly:
                uri = self._path.resolve().as_uri() + query
                conn = await connect(uri, uri=True, isolation_level=None)
            else:
                conn = await connect(self._path, isolation_level=None)
        try:
            with translated("opening", self._path):
                await conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                await conn.execute("PRAGMA query_only = 1")
                if self._readonly:
                    await self._check_log(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _check_log(self, conn: aiosqlite.Connection) -> None:
        """A file opened read-only is not initialised by a writer: check it is a log."""
        ((app_id,),) = await conn.execute_fetchall("PRAGMA application_id")
        rows = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        self.tables = frozenset(str(name) for (name,) in rows)
        if app_id != APPLICATION_ID or "events" not in self.tables:
            raise NotADatabase(str(self._path))
        if "spans" not in self.tables:
            raise StoreError(
                f"{self._path} was written by an older fleet: open it once for writing "
                "(it is upgraded in place), then read-only"
            )

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
        return self.decode(await self.fetch(sql, params), lenient=lenient)

    def decode(self, rows: Sequence[Row], *, lenient: bool) -> list[RecordedEvent]:
        """Rows of `SELECT_COLUMNS` decoded on the event loop."""
        return self._decoder.decode_all(rows, lenient=lenient)

    async def sized_events(
        self, sql: str, params: Sequence[Any], *, lenient: bool
    ) -> tuple[list[RecordedEvent], int]:
        """`events`, and the characters of their data (to size the next page)."""
        rows = await self.fetch(sql, params)
        return self._decoder.decode_all(rows, lenient=lenient), sum(len(row[5]) for row in rows)

    async def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of a query."""
        return (await self.fetch(sql, params))[0][0]

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row of a query. Raises `StoreClosed`, or a translated driver error."""
        conn = self._conn
        if conn is None:
            raise StoreClosed()
        try:
            with translated("reading", self._path):
                rows = await conn.execute_fetchall(sql, params)
        except ValueError as e:  # aiosqlite: the connection was closed meanwhile
            if self._conn is None:
                raise StoreClosed() from e
            raise
        return cast(list[Row], rows)  # aiosqlite returns the cursor's fetchall(): a list
