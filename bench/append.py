"""Append and read throughput of fleet's SQLite event store, against eventsourcing.

Run from the repository root::

    .venv/bin/python bench/append.py            # the full table (about a minute)
    .venv/bin/python bench/append.py --quick    # smaller sizes, one trial
    .venv/bin/python bench/append.py --db postgresql://root@127.0.0.1/test   # PostgreSQL

Every workload runs on a fresh database file in a temporary folder, `trials`
times, interleaved with its baselines, and the median is printed. The
baseline is the `eventsourcing` library's SQLite application recorder
(`eventsourcing.sqlite.SQLiteApplicationRecorder`, file database in WAL mode,
its default synchronous=FULL), measured in the same run, two ways:

- "recorder": the recorder alone, on payloads encoded before the clock
  starts, called directly from threads (it blocks its caller during fsync);
  reads return raw stored events (bytes, not decoded). This is the strictest
  baseline: it does less work than fleet on every row.
- "like for like": what a program like fleet would have to do with it: encode
  the same pydantic events to JSON, call the recorder through
  `asyncio.to_thread` (a blocking fsync on the event loop is not allowed), and
  decode what it reads into the same pydantic events.

Two more baselines print beside them: raw `sqlite3` on the same pre-encoded rows
(the physical limit), and the same raw loop through aiosqlite (one appender and
batches): the least an append costs while SQLite is reached through aiosqlite,
the project's rule, whose every call is a round trip to the connection's thread.
Its ratio to the recorder is the most any store on aiosqlite could reach.
Under the table, the time fleet's append spends encoding the same events
(`encode_batch`, measured apart in the same run), which the recorder's rows
are spared, and the recorder's figure with it added: how fleet compares
once both do the same work before the row reaches SQLite.

Both use one stream per appender and optimistic concurrency on every append
(eventsourcing's primary key on (originator_id, originator_version), fleet's
`expected_version`). fleet's read figures are `iter_all`, whose events decode
their data into typed events when it is first read (`events/_envelope.py`,
note 1), so the first row is the read and the second the read with every
event's data decoded; its appends include encoding, checking and the
returned `RecordedEvent`s.

With `--db postgresql://...`, the same workloads run on fleet's PostgreSQL
store against eventsourcing's `PostgresApplicationRecorder` (psycopg 3, its
`eventsourcing[postgres]` extra) on the same server, each trial in a fresh
schema that is dropped afterwards, with fleet's SQLite figure beside them.

The machine has 2 cores and other work may be running: the figures are
indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiosqlite
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from events import DEFAULT_MAX_EVENT_BYTES, Meta, NewEvent, ToolCallCompleted, open_store
from events._encoding import encode_batch


@dataclass(frozen=True, slots=True)
class Sizes:
    single_total: dict[int, int]  # concurrency -> events appended in total
    batches: dict[int, int]  # batch size -> number of batches
    read_events: int
    trials: int


FULL = Sizes(
    single_total={1: 2_000, 8: 4_000, 64: 16_000},
    batches={100: 200, 1_000: 50},
    read_events=50_000,
    trials=3,
)
QUICK = Sizes(
    single_total={1: 500, 8: 1_000, 64: 4_000},
    batches={100: 50, 1_000: 10},
    read_events=10_000,
    trials=1,
)


def make_event(i: int, agent: int) -> NewEvent:
    """A typical tool-call event (about 250 bytes of JSON) with run and agent in its meta."""
    return NewEvent(
        ToolCallCompleted(
            agent_id=f"agent-{agent}",
            tool_use_id=f"toolu_{i:012d}",
            name="Read",
            result="def main() -> None:\n    print('hello')\n" * 2,
            duration_ms=1.5,
            files_read=[f"src/module_{i % 50}.py"],
        ),
        Meta(run_id="run-bench", agent_id=f"agent-{agent}", source="runtime"),
    )


# -- fleet ----------------------------------------------------------------------


async def fleet_single(path: Path | str, concurrency: int, total: int) -> float:
    per_task = total // concurrency
    events = [[make_event(i, a) for i in range(per_task)] for a in range(concurrency)]
    async with open_store(path) as store:

        async def appender(a: int) -> None:
            stream = f"agent-{a}"
            for version, event in enumerate(events[a]):
                await store.append(stream, [event], expected_version=version)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for a in range(concurrency):
                tg.create_task(appender(a))
        elapsed = time.perf_counter() - start
    return per_task * concurrency / elapsed


async def fleet_batches(path: Path | str, size: int, count: int) -> float:
    batches = [[make_event(i, b) for i in range(size)] for b in range(count)]
    async with open_store(path) as store:
        start = time.perf_counter()
        for b, batch in enumerate(batches):
            await store.append(f"agent-{b}", batch, expected_version=0)
        elapsed = time.perf_counter() - start
    return size * count / elapsed


async def fleet_read(path: Path | str, total: int, *, data: bool = False) -> float:
    """Events/s of `iter_all`; with `data`, each event's data read (decoded) too."""
    async with open_store(path) as store:
        batch = [make_event(i, 0) for i in range(1_000)]
        for b in range(total // 1_000):
            await store.append(f"agent-{b}", batch)
        start = time.perf_counter()
        n = 0
        async for event in store.iter_all():
            if data:
                event.data  # noqa: B018 (decoded on first read)
            n += 1
        elapsed = time.perf_counter() - start
    assert n == total // 1_000 * 1_000, n
    return n / elapsed


def encode_seconds(size: int, count: int) -> float:
    """Seconds an event that fleet's append spends encoding the workload's events
    (`encode_batch`, before it queues them): the recorder's rows are timed on payloads
    encoded before its clock starts, so this is work fleet does in them and it does not."""
    batches = [tuple(make_event(i, b) for i in range(size)) for b in range(count)]
    start = time.perf_counter()
    for b, batch in enumerate(batches):
        encode_batch(f"agent-{b}", batch, DEFAULT_MAX_EVENT_BYTES)
    return (time.perf_counter() - start) / (size * count)


# -- raw sqlite3: the physical limit ---------------------------------------------------

RAW_SCHEMA = """
CREATE TABLE events (
    position  INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    version   INTEGER NOT NULL,
    type      TEXT NOT NULL,
    data      TEXT NOT NULL,
    UNIQUE (stream_id, version)
)
"""
RAW_INSERT = "INSERT INTO events (stream_id, version, type, data) VALUES (?, ?, ?, ?)"


def raw_connect(path: Path) -> sqlite3.Connection:
    """A bare sqlite3 connection, WAL and synchronous=FULL like fleet's."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(RAW_SCHEMA)
    return conn


def raw_payload(i: int, agent: int) -> str:
    return make_event(i, agent).data.model_dump_json()


def raw_rows(agent: int, count: int) -> list[tuple[str, int, str, str]]:
    """Versions 1 to `count` of agent `agent`'s stream as the raw loops insert them."""
    return [
        (f"agent-{agent}", v, "ToolCallCompleted", raw_payload(v, agent))
        for v in range(1, count + 1)
    ]


def raw_single(path: Path, total: int) -> float:
    """One transaction per event, from one thread, on pre-encoded rows."""
    conn = raw_connect(path)
    rows = raw_rows(0, total)
    start = time.perf_counter()
    for row in rows:
        conn.execute(RAW_INSERT, row)  # autocommit: one fsync each
    elapsed = time.perf_counter() - start
    conn.close()
    return total / elapsed


def raw_batches(path: Path, size: int, count: int) -> float:
    """`executemany` of each batch in one transaction, on pre-encoded rows."""
    conn = raw_connect(path)
    batches = [raw_rows(b, size) for b in range(count)]
    start = time.perf_counter()
    for batch in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(RAW_INSERT, batch)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return size * count / elapsed


async def aio_single(path: Path, total: int) -> float:
    """`raw_single` through aiosqlite: one INSERT a transaction, awaited, on pre-encoded rows.

    The least one append costs on aiosqlite's thread (the project's rule): one round trip
    to it and back, around SQLite's insert and fsync."""
    rows = raw_rows(0, total)
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await aio_prepare(conn)
        start = time.perf_counter()
        for row in rows:
            await conn.execute(RAW_INSERT, row)  # autocommit: one fsync each
        elapsed = time.perf_counter() - start
    return total / elapsed


async def aio_batches(path: Path, size: int, count: int) -> float:
    """`raw_batches` through aiosqlite: BEGIN, `executemany`, COMMIT, on pre-encoded rows."""
    batches = [raw_rows(b, size) for b in range(count)]
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await aio_prepare(conn)
        start = time.perf_counter()
        for batch in batches:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.executemany(RAW_INSERT, batch)
            await conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    return size * count / elapsed


async def aio_prepare(conn: aiosqlite.Connection) -> None:
    """As `raw_connect`: WAL, synchronous=FULL, the raw table."""
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    await conn.execute(RAW_SCHEMA)


def raw_read(path: Path, total: int) -> float:
    """Pages of 1,000 rows by position, each row's data through `json.loads`."""
    conn = raw_connect(path)
    payload = raw_payload(0, 0)
    for b in range(total // 1_000):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            RAW_INSERT, [(f"agent-{b}", v, "ToolCallCompleted", payload) for v in range(1, 1_001)]
        )
        conn.execute("COMMIT")
    loads = json.loads
    start = time.perf_counter()
    n = 0
    position = 0
    while True:
        page = conn.execute(
            "SELECT position, stream_id, version, type, data FROM events "
            "WHERE position > ? ORDER BY position LIMIT 1000",
            (position,),
        ).fetchall()
        if not page:
            break
        for row in page:
            loads(row[4])
        n += len(page)
        position = page[-1][0]
    elapsed = time.perf_counter() - start
    conn.close()
    assert n == total // 1_000 * 1_000, n
    return n / elapsed


# -- eventsourcing ----------------------------------------------------------------


def es_recorder(path: Path, pool_size: int) -> SQLiteApplicationRecorder:
    datastore = SQLiteDatastore(
        str(path), pool_size=pool_size, max_overflow=0, pool_timeout=60.0, lock_timeout=60
    )
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    return recorder


def es_payload(i: int, agent: int) -> bytes:
    return make_event(i, agent).data.model_dump_json().encode()


def es_single(path: Path, concurrency: int, total: int) -> float:
    per_thread = total // concurrency
    recorder = es_recorder(path, pool_size=concurrency)
    payloads = [[es_payload(i, a) for i in range(per_thread)] for a in range(concurrency)]
    ids = [uuid4() for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)

    def appender(a: int) -> None:
        barrier.wait()
        for version, state in enumerate(payloads[a], start=1):
            recorder.insert_events([StoredEvent(ids[a], version, "ToolCallCompleted", state)])

    threads = [threading.Thread(target=appender, args=(a,)) for a in range(concurrency)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    return per_thread * concurrency / elapsed


def es_batches(path: Path, size: int, count: int) -> float:
    recorder = es_recorder(path, pool_size=1)
    batches = []
    for b in range(count):
        originator = uuid4()
        batches.append(
            [
                StoredEvent(originator, v, "ToolCallCompleted", es_payload(v, b))
                for v in range(1, size + 1)
            ]
        )
    start = time.perf_counter()
    for batch in batches:
        recorder.insert_events(batch)
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    return size * count / elapsed


def es_read(path: Path, total: int) -> float:
    recorder = es_recorder(path, pool_size=1)
    for _ in range(total // 1_000):
        originator = uuid4()
        recorder.insert_events(
            [
                StoredEvent(originator, v, "ToolCallCompleted", es_payload(v, 0))
                for v in range(1, 1_001)
            ]
        )
    start = time.perf_counter()
    n = 0
    position = 0
    while True:
        page = recorder.select_notifications(position, 1_000, inclusive_of_start=False)
        if not page:
            break
        n += len(page)
        position = page[-1].id
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    assert n == total // 1_000 * 1_000, n
    return n / elapsed


async def es_single_typed(path: Path, concurrency: int, total: int) -> float:
    per_task = total // concurrency
    recorder = es_recorder(path, pool_size=concurrency)
    events = [[make_event(i, a) for i in range(per_task)] for a in range(concurrency)]
    ids = [uuid4() for _ in range(concurrency)]

    async def appender(a: int) -> None:
        for version, event in enumerate(events[a], start=1):
            stored = StoredEvent(ids[a], version, event.type, event.data.model_dump_json().encode())
            await asyncio.to_thread(recorder.insert_events, [stored])

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for a in range(concurrency):
            tg.create_task(appender(a))
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    return per_task * concurrency / elapsed


async def es_batches_typed(path: Path, size: int, count: int) -> float:
    recorder = es_recorder(path, pool_size=1)
    batches = [[make_event(i, b) for i in range(size)] for b in range(count)]
    start = time.perf_counter()
    for batch in batches:
        originator = uuid4()
        stored = [
            StoredEvent(originator, v, e.type, e.data.model_dump_json().encode())
            for v, e in enumerate(batch, start=1)
        ]
        await asyncio.to_thread(recorder.insert_events, stored)
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    return size * count / elapsed


async def es_read_typed(path: Path, total: int) -> float:
    recorder = es_recorder(path, pool_size=1)
    for _ in range(total // 1_000):
        originator = uuid4()
        recorder.insert_events(
            [
                StoredEvent(originator, v, "ToolCallCompleted", es_payload(v, 0))
                for v in range(1, 1_001)
            ]
        )
    decode = ToolCallCompleted.model_validate_json
    start = time.perf_counter()
    n = 0
    position = 0
    while True:
        page = await asyncio.to_thread(
            recorder.select_notifications, position, 1_000, inclusive_of_start=False
        )
        if not page:
            break
        for notification in page:
            decode(notification.state)
            n += 1
        position = page[-1].id
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    assert n == total // 1_000 * 1_000, n
    return n / elapsed


# -- the table ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    fleet: float
    recorder: float
    like_for_like: float
    raw: float | None  # raw sqlite3 on pre-encoded rows (None: not measured)
    aio: float | None  # the same through aiosqlite (None: not measured)
    aim: str
    # Seconds an event of encoding the same events (`encode_seconds`; None: not measured).
    encode: float | None = None


def medians(trials: int, *runs: Callable[[Path], float] | None) -> list[float | None]:
    """The median of each run over `trials`, interleaved (A, B, C, A, B, C, ...).

    Interleaving puts the same noise from the rest of the machine on every
    contender, so the ratios hold up better than the absolute figures.
    """
    results: list[list[float]] = [[] for _ in runs]
    for _ in range(trials):
        for run, out in zip(runs, results, strict=True):
            if run is None:
                continue
            with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
                out.append(run(Path(tmp) / "log.db"))
    return [statistics.median(out) if out else None for out in results]


def measure(sizes: Sizes) -> list[Row]:
    rows: list[Row] = []
    t = sizes.trials
    for concurrency, total in sizes.single_total.items():
        fleet, raw, typed, bare, aio = medians(
            t,
            lambda p, c=concurrency, n=total: asyncio.run(fleet_single(p, c, n)),
            lambda p, c=concurrency, n=total: es_single(p, c, n),
            lambda p, c=concurrency, n=total: asyncio.run(es_single_typed(p, c, n)),
            # One thread, one transaction at a time: concurrency does not apply.
            (lambda p, n=total: raw_single(p, n)) if concurrency == 1 else None,
            (lambda p, n=total: asyncio.run(aio_single(p, n))) if concurrency == 1 else None,
        )
        aim = ">= 25,000/s" if concurrency == 64 else "> baseline"
        encode = _encoding(t, 1, total) if concurrency == 1 else None
        rows.append(
            Row(
                f"append 1 event, {concurrency} concurrent",
                *_known(fleet, raw, typed),
                bare,
                aio,
                aim,
                encode,
            )
        )
    for size, count in sizes.batches.items():
        fleet, raw, typed, bare, aio = medians(
            t,
            lambda p, s=size, n=count: asyncio.run(fleet_batches(p, s, n)),
            lambda p, s=size, n=count: es_batches(p, s, n),
            lambda p, s=size, n=count: asyncio.run(es_batches_typed(p, s, n)),
            lambda p, s=size, n=count: raw_batches(p, s, n),
            lambda p, s=size, n=count: asyncio.run(aio_batches(p, s, n)),
        )
        rows.append(
            Row(
                f"append batches of {size:,}",
                *_known(fleet, raw, typed),
                bare,
                aio,
                "> recorder",
                _encoding(t, size, count),
            )
        )
    n = sizes.read_events
    for data in (False, True):
        fleet, raw, typed, bare = medians(
            t,
            lambda p, d=data: asyncio.run(fleet_read(p, n, data=d)),
            lambda p: es_read(p, n),
            lambda p: asyncio.run(es_read_typed(p, n)),
            lambda p: raw_read(p, n),
        )
        rows.append(
            Row(f"read_all {n:,}, every data decoded", *_known(fleet, raw, typed), bare, None, "—")
            if data
            else Row(f"read_all {n:,}", *_known(fleet, raw, typed), bare, None, ">= 0.8x raw+json")
        )
    return rows


def _encoding(trials: int, size: int, count: int) -> float:
    """The median of `encode_seconds` over `trials`."""
    return statistics.median(encode_seconds(size, count) for _ in range(trials))


def _known(*figures: float | None) -> tuple[float, ...]:
    assert all(f is not None for f in figures)
    return tuple(f for f in figures if f is not None)


def render(rows: list[Row]) -> str:
    header = (
        "workload",
        "fleet events/s",
        "eventsourcing recorder",
        "fleet ÷ recorder",
        "eventsourcing like for like",
        "fleet ÷ like for like",
        "raw sqlite3",
        "fleet ÷ raw",
        "raw through aiosqlite",
        "÷ recorder",
        "fleet ÷ it",
        "aim",
    )
    lines = [header] + [
        (
            r.workload,
            f"{r.fleet:,.0f}",
            f"{r.recorder:,.0f}",
            f"{r.fleet / r.recorder:.2f}x",
            f"{r.like_for_like:,.0f}",
            f"{r.fleet / r.like_for_like:.2f}x",
            "—" if r.raw is None else f"{r.raw:,.0f}",
            "—" if r.raw is None else f"{r.fleet / r.raw:.2f}x",
            "—" if r.aio is None else f"{r.aio:,.0f}",
            "—" if r.aio is None else f"{r.aio / r.recorder:.2f}x",
            "—" if r.aio is None else f"{r.fleet / r.aio:.2f}x",
            r.aim,
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("| " + " | ".join(cells) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    encoded = [r for r in rows if r.encode is not None]
    if encoded:
        out.append(
            "\nencoding the same events as fleet's append does (encode_batch, in fleet's timed "
            "appends, not in the recorder's), µs an event; the recorder with that added:"
        )
        for r in encoded:
            assert r.encode is not None
            with_encoding = 1 / (1 / r.recorder + r.encode)
            out.append(
                f"  {r.workload}: {r.encode * 1e6:.2f} µs; recorder {with_encoding:,.0f}/s, "
                f"fleet ÷ it {r.fleet / with_encoding:.2f}x"
            )
    return "\n".join(out)


# -- PostgreSQL ------------------------------------------------------------------------


def pg_schema_url(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def pg_drop(url: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()

    asyncio.run(drop())


def pg_recorder(url: str, schema: str, pool_size: int) -> Any:
    from urllib.parse import urlsplit

    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parts = urlsplit(url)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"), host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432, user=parts.username or "postgres",
        password=parts.password or "", schema=schema, pool_size=pool_size,
    )  # fmt: skip
    with datastore.transaction(commit=True) as curs:
        curs.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    return recorder


def pg_medians(url: str, trials: int, *runs: Callable[[str], float]) -> list[float]:
    """`medians` for PostgreSQL: each run gets a fresh schema, dropped afterwards."""
    results: list[list[float]] = [[] for _ in runs]
    for _ in range(trials):
        for run, out in zip(runs, results, strict=True):
            schema = f"bench_{uuid4().hex[:12]}"
            try:
                out.append(run(schema))
            finally:
                pg_drop(url, schema)
    return [statistics.median(out) for out in results]


def es_pg_single(url: str, schema: str, concurrency: int, total: int, typed: bool) -> float:
    per_thread = total // concurrency
    recorder = pg_recorder(url, schema, concurrency)
    events = [[make_event(i, a) for i in range(per_thread)] for a in range(concurrency)]
    payloads = [[e.data.model_dump_json().encode() for e in row] for row in events]
    ids = [uuid4() for _ in range(concurrency)]

    def insert(a: int, version: int) -> None:
        state = (
            events[a][version - 1].data.model_dump_json().encode()
            if typed
            else payloads[a][version - 1]
        )
        recorder.insert_events([StoredEvent(ids[a], version, "ToolCallCompleted", state)])

    async def appender(a: int) -> None:
        for version in range(1, per_thread + 1):
            await asyncio.to_thread(insert, a, version)

    async def run() -> float:
        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for a in range(concurrency):
                tg.create_task(appender(a))
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    recorder.datastore.close()
    return per_thread * concurrency / elapsed


def es_pg_batches(url: str, schema: str, size: int, count: int) -> float:
    recorder = pg_recorder(url, schema, 1)
    batches = []
    for b in range(count):
        originator = uuid4()
        batches.append(
            [
                StoredEvent(originator, v, "ToolCallCompleted", es_payload(v, b))
                for v in range(1, size + 1)
            ]
        )
    start = time.perf_counter()
    for batch in batches:
        recorder.insert_events(batch)
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    return size * count / elapsed


def es_pg_read(url: str, schema: str, total: int, typed: bool) -> float:
    recorder = pg_recorder(url, schema, 1)
    for _ in range(total // 1_000):
        originator = uuid4()
        recorder.insert_events(
            [
                StoredEvent(originator, v, "ToolCallCompleted", es_payload(v, 0))
                for v in range(1, 1_001)
            ]
        )
    decode = ToolCallCompleted.model_validate_json
    start = time.perf_counter()
    n = 0
    position = 0
    while True:
        page = recorder.select_notifications(position, 1_000, inclusive_of_start=False)
        if not page:
            break
        for notification in page:
            if typed:
                decode(notification.state)
            n += 1
        position = page[-1].id
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    assert n == total // 1_000 * 1_000, n
    return n / elapsed


def measure_postgres(url: str, sizes: Sizes) -> list[tuple[str, float, float, float, float]]:
    """(workload, fleet PostgreSQL, recorder, like for like, fleet SQLite) per workload."""
    rows = []
    t = sizes.trials

    def sqlite(run: Callable[[Path], float]) -> float:
        return medians(t, run)[0]

    for c, n in sizes.single_total.items():
        fleet, raw, typed = pg_medians(
            url, t,
            lambda s, c=c, n=n: asyncio.run(fleet_single(pg_schema_url(url, s), c, n)),
            lambda s, c=c, n=n: es_pg_single(url, s, c, n, typed=False),
            lambda s, c=c, n=n: es_pg_single(url, s, c, n, typed=True),
        )  # fmt: skip
        lite = sqlite(lambda p, c=c, n=n: asyncio.run(fleet_single(p, c, n)))
        rows.append((f"append 1 event, {c} concurrent", fleet, raw, typed, lite))
    for size, count in sizes.batches.items():
        fleet, raw = pg_medians(
            url, t,
            lambda s, z=size, n=count: asyncio.run(fleet_batches(pg_schema_url(url, s), z, n)),
            lambda s, z=size, n=count: es_pg_batches(url, s, z, n),
        )  # fmt: skip
        lite = sqlite(lambda p, z=size, n=count: asyncio.run(fleet_batches(p, z, n)))
        rows.append((f"append batches of {size:,}", fleet, raw, raw, lite))
    n = sizes.read_events
    fleet, raw, typed = pg_medians(
        url, t,
        lambda s: asyncio.run(fleet_read(pg_schema_url(url, s), n)),
        lambda s: es_pg_read(url, s, n, typed=False),
        lambda s: es_pg_read(url, s, n, typed=True),
    )  # fmt: skip
    lite = sqlite(lambda p: asyncio.run(fleet_read(p, n)))
    rows.append((f"read_all {n:,}", fleet, raw, typed, lite))
    return rows


def render_postgres(rows: list[tuple[str, float, float, float, float]]) -> str:
    header = (
        "workload", "fleet PostgreSQL", "es recorder", "fleet ÷ recorder",
        "es like for like", "fleet ÷ like for like", "fleet SQLite",
    )  # fmt: skip
    lines = [header] + [
        (w, f"{f:,.0f}", f"{r:,.0f}", f"{f / r:.2f}x", f"{t:,.0f}", f"{f / t:.2f}x", f"{s:,.0f}")
        for w, f, r, t, s in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("| " + " | ".join(cells) + " |")
        if k == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one trial")
    parser.add_argument("--trials", type=int, default=None, help="trials per workload (median)")
    parser.add_argument(
        "--db", metavar="URL", help="a PostgreSQL server (postgresql://...): measure fleet there"
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.trials is not None:
        sizes = Sizes(sizes.single_total, sizes.batches, sizes.read_events, args.trials)
    if args.db:
        print(
            f"fleet PostgreSQL store vs eventsourcing {metadata.version('eventsourcing')} "
            f"PostgresApplicationRecorder on the same server, and fleet SQLite; events/s, "
            f"median of {sizes.trials}"
        )
        print(render_postgres(measure_postgres(args.db, sizes)))
        return
    print(
        f"fleet SQLite event store vs eventsourcing {metadata.version('eventsourcing')} "
        f"SQLiteApplicationRecorder, events/s, median of {sizes.trials}"
    )
    print(render(measure(sizes)))


if __name__ == "__main__":
    main()
