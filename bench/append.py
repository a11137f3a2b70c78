"""Append and read throughput of fleet's SQLite event store, against eventsourcing.

Run from the repository root::

    .venv/bin/python bench/append.py            # the full table (about a minute)
    .venv/bin/python bench/append.py --quick    # smaller sizes, one trial

Every workload runs on a fresh database file in a temporary folder, `trials`
times, and the median is printed. The baseline is the `eventsourcing` library's
SQLite application recorder (`eventsourcing.sqlite.SQLiteApplicationRecorder`,
file database in WAL mode), measured in the same run on the same payloads:
the same JSON bytes, one stream per appender, optimistic concurrency on every
append (eventsourcing's primary key on (originator_id, originator_version),
fleet's `expected_version`). Concurrent appenders are asyncio tasks for fleet
and threads for eventsourcing (its API is synchronous).

Reads: fleet's figure is `iter_all` decoded into typed pydantic events;
eventsourcing's is `select_notifications` pages of raw stored events (bytes,
not decoded), so the comparison is in eventsourcing's favour.

The machine has 2 cores and other work may be running: the figures are
indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from events import Meta, NewEvent, SQLiteEventStore, ToolCallCompleted


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
            name="read_file",
            result="def main() -> None:\n    print('hello')\n" * 2,
            duration_ms=1.5,
            files_read=[f"src/module_{i % 50}.py"],
        ),
        Meta(run_id="run-bench", agent_id=f"agent-{agent}", source="runtime"),
    )


# -- fleet ----------------------------------------------------------------------


async def fleet_single(path: Path, concurrency: int, total: int) -> float:
    per_task = total // concurrency
    events = [[make_event(i, a) for i in range(per_task)] for a in range(concurrency)]
    async with SQLiteEventStore(path) as store:

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


async def fleet_batches(path: Path, size: int, count: int) -> float:
    batches = [[make_event(i, b) for i in range(size)] for b in range(count)]
    async with SQLiteEventStore(path) as store:
        start = time.perf_counter()
        for b, batch in enumerate(batches):
            await store.append(f"agent-{b}", batch, expected_version=0)
        elapsed = time.perf_counter() - start
    return size * count / elapsed


async def fleet_read(path: Path, total: int) -> float:
    async with SQLiteEventStore(path) as store:
        batch = [make_event(i, 0) for i in range(1_000)]
        for b in range(total // 1_000):
            await store.append(f"agent-{b}", batch)
        start = time.perf_counter()
        n = 0
        async for _ in store.iter_all():
            n += 1
        elapsed = time.perf_counter() - start
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
            [StoredEvent(originator, v, "ToolCallCompleted", es_payload(v, 0)) for v in range(1, 1_001)]
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


# -- the table ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    fleet: float
    baseline: float
    aim: str


def median_of(trials: int, run: Callable[[Path], float]) -> float:
    results = []
    for _ in range(trials):
        with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
            results.append(run(Path(tmp) / "log.db"))
    return statistics.median(results)


def measure(sizes: Sizes) -> list[Row]:
    rows: list[Row] = []
    t = sizes.trials
    for concurrency, total in sizes.single_total.items():
        fleet = median_of(t, lambda p: asyncio.run(fleet_single(p, concurrency, total)))
        base = median_of(t, lambda p: es_single(p, concurrency, total))
        aim = ">= 25,000/s" if concurrency == 64 else "> baseline"
        rows.append(Row(f"append 1 event, {concurrency} concurrent", fleet, base, aim))
    for size, count in sizes.batches.items():
        fleet = median_of(t, lambda p: asyncio.run(fleet_batches(p, size, count)))
        base = median_of(t, lambda p: es_batches(p, size, count))
        aim = ">= 250,000/s" if size == 1_000 else "> baseline"
        rows.append(Row(f"append batches of {size:,}", fleet, base, aim))
    fleet = median_of(t, lambda p: asyncio.run(fleet_read(p, sizes.read_events)))
    base = median_of(t, lambda p: es_read(p, sizes.read_events))
    rows.append(Row(f"read_all {sizes.read_events:,} (decoded)", fleet, base, ">= 300,000/s"))
    return rows


def render(rows: list[Row]) -> str:
    header = ("workload", "fleet events/s", "eventsourcing events/s", "ratio", "aim")
    lines = [header] + [
        (r.workload, f"{r.fleet:,.0f}", f"{r.baseline:,.0f}", f"{r.fleet / r.baseline:.2f}x", r.aim)
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        out.append("| " + " | ".join(cells) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one trial")
    parser.add_argument("--trials", type=int, default=None, help="trials per workload (median)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.trials is not None:
        sizes = Sizes(sizes.single_total, sizes.batches, sizes.read_events, args.trials)
    print(f"fleet SQLite event store vs eventsourcing {_es_version()} (median of {sizes.trials})")
    print(render(measure(sizes)))


def _es_version() -> str:
    from importlib.metadata import version

    return version("eventsourcing")


if __name__ == "__main__":
    main()
