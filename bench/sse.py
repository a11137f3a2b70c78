"""Live-stream delivery: fleet's SSE broadcaster against a bare sse-starlette broadcast.

Run from the repository root::

    .venv/bin/python bench/sse.py            # the full table (about three minutes)
    .venv/bin/python bench/sse.py --quick    # fewer points (about a minute)

Three processes per measurement, all on 127.0.0.1:

- a server: uvicorn with the app, and an appender in the same event loop that
  appends events to the SQLite log at a steady rate (each carries the wall
  time its append was called, `t0`);
- a client process holding N SSE connections (raw sockets, HTTP/1.0), which
  records for every event and every connection `receipt time - t0`;
- this driver, which starts both, tells the appender when to go, and reads
  the server's CPU time from /proc.

"fleet" is `api.create_app` as `fleet serve` runs it (without the agent
runtime, idle here). "bare" is the usual sse-starlette broadcast, the
baseline: the same store, projection runner and appender, one follower
putting each event into an unbounded `asyncio.Queue` per client, and each
client's generator yielding a `ServerSentEvent` per event (so JSON and SSE
encoding per subscriber, one send per event, no bound on a slow client's
queue). The 0-subscriber row is what both pay without any stream.

Figures: delivery latency p50/p99 at a fixed rate, the server's CPU (% of one
core), and the highest rate (doubling from the fixed one) held with every
event delivered to every client, no cut-off, the appender on schedule and a
p99 under one second. Ratios are fleet / bare (under 1 is better for
latency and CPU). The machine has 2 cores and other work may be running: the
figures are indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_T0 = re.compile(rb'"t0": ?([0-9.]+)')
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the server process ---------------------------------------------------------


def _event(t0: float, pad: str) -> Any:
    from events import ExternalHookReceived, Meta, NewEvent

    data = ExternalHookReceived(
        source_app="bench",
        session_id="bench",
        hook_event_name="Notification",
        payload={"t0": t0, "hook_event_name": "Notification", "session_id": "bench", "pad": pad},
    )
    return NewEvent(data, Meta(agent_id="ext-bench", source="ingest"))


async def _append_steadily(store: Any, rate: float, seconds: float) -> tuple[int, float]:
    """Append `rate` events per second for `seconds` (concurrent appends: group commit)."""
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    pad = "x" * 150  # about 400 bytes of JSON per event, a typical tool event
    pending: set[asyncio.Task[Any]] = set()
    start = loop.time()
    sent = 0
    while sent < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while sent < due:
            task = asyncio.create_task(store.append("bench", [_event(time.time(), pad)]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*pending)
    return total, loop.time() - start


def _bare_app(db: Path) -> Any:
    """The baseline: a plain sse-starlette broadcast with a queue per client."""
    from sse_starlette import EventSourceResponse, ServerSentEvent
    from starlette.applications import Starlette
    from starlette.routing import Route

    from events import SQLiteEventStore
    from projections import ProjectionRunner

    queues: set[asyncio.Queue[Any]] = set()

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        # The projection runner too, as in fleet's app: only the broadcast differs.
        async with SQLiteEventStore(db) as store, ProjectionRunner(store):
            app.state.store = store
            head = await store.head()

            async def follow() -> None:
                async for event in store.subscribe(after=head):
                    for queue in queues:
                        queue.put_nowait(event)

            task = asyncio.create_task(follow())
            yield
            task.cancel()
            while not task.done():  # see api/_broadcast.py note 5
                task.cancel()
                await asyncio.wait([task], timeout=0.01)

    async def stream(request: Any) -> Any:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        queues.add(queue)

        async def events() -> AsyncIterator[Any]:
            try:
                while True:
                    event = await queue.get()
                    yield ServerSentEvent(
                        data=json.dumps(event.to_json_dict()), id=str(event.position)
                    )
            finally:
                queues.discard(queue)

        return EventSourceResponse(events())

    return Starlette(routes=[Route("/v1/events/stream", stream)], lifespan=lifespan)


async def _serve(kind: str, db: Path) -> None:
    import logging

    import uvicorn

    # A client leaving mid-stream makes asyncio warn on every later write: not a figure.
    logging.getLogger("asyncio").setLevel(logging.ERROR)

    from api import ApiConfig, create_app
    from api._transport import FleetH11Protocol

    app: Any = create_app(ApiConfig(db=db, runtime=False)) if kind == "fleet" else _bare_app(db)
    # fleet as `fleet serve` runs it: with the protocol that lets a stream see its buffers.
    http: Any = FleetH11Protocol if kind == "fleet" else "h11"
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on", http=http
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    store = app.services.store if kind == "fleet" else app.state.store
    print("port", server.servers[0].sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            break
        rate, seconds = float(line[1]), float(line[2])
        total, elapsed = await _append_steadily(store, rate, seconds)
        cut_offs = app.services.broadcaster.cut_offs if kind == "fleet" else 0
        print("appended", total, elapsed, cut_offs, flush=True)
    if kind == "fleet":
        app.shutting_down()
    server.should_exit = True
    await task


# -- the client process ---------------------------------------------------------


@dataclass
class _Connection:
    latencies: list[float]
    count: int = 0
    ended: bool = False


async def _client(port: int, path: str, connection: _Connection, ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    ready.set()
    rest = b""
    latencies = connection.latencies
    try:
        while True:
            chunk = await reader.read(2**20)
            if not chunk:
                connection.ended = True
                return
            now = time.time()
            data = rest + chunk
            # Frames end with a blank line: "\n\n" (fleet) or "\r\n\r\n" (sse-starlette's default).
            end = max(data.rfind(b"\n\n") + 2, data.rfind(b"\r\n\r\n") + 4)
            if end < 4:
                rest = data
                continue
            complete, rest = data[:end], data[end:]
            stamps = _T0.findall(complete)
            connection.count += len(stamps)
            latencies.extend(now - float(t) for t in stamps)
    finally:
        writer.close()


async def _clients(port: int, count: int, path: str) -> None:
    connections = [_Connection([]) for _ in range(count)]
    readies = [asyncio.Event() for _ in range(count)]
    tasks = [
        asyncio.create_task(_client(port, path, c, r))
        for c, r in zip(connections, readies, strict=True)
    ]
    await asyncio.gather(*(r.wait() for r in readies))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
    expected = int(line[1])
    deadline = loop.time() + 5
    # ASYNC110: polling many counters; an event per connection would cost every read.
    while loop.time() < deadline and any(c.count < expected and not c.ended for c in connections):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(x for c in connections for x in c.latencies)
    result = {
        "p50": _quantile(latencies, 0.5),
        "p99": _quantile(latencies, 0.99),
        "complete": sum(c.count >= expected for c in connections),
        "ended": sum(c.ended for c in connections),
    }
    print(json.dumps(result), flush=True)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


# -- the driver -----------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class Result:
    kind: str
    subscribers: int
    rate: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # % of one core
    client_cpu: float
    held: bool
    note: str


def measure(kind: str, subscribers: int, rate: float, seconds: float) -> Result:
    """One run on a fresh log: N subscribers, `rate` events/s for `seconds`."""
    with tempfile.TemporaryDirectory() as folder:
        me = [sys.executable, __file__]
        server = subprocess.Popen(
            [*me, "--serve", kind, "--db", str(Path(folder) / "bench.db")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdin is not None
        assert server.stdout is not None
        try:
            port = int(server.stdout.readline().split()[1])
            client = None
            if subscribers:
                client = subprocess.Popen(
                    [*me, "--clients", str(subscribers), "--port", str(port)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert client.stdout is not None
                assert client.stdout.readline().strip() == "ready"
            time.sleep(0.2)
            # CPU over the append window: delivery runs alongside it in a steady state.
            cpu_before = _cpu_seconds(server.pid)
            client_before = _cpu_seconds(client.pid) if client is not None else 0.0
            wall_before = time.monotonic()
            server.stdin.write(f"append {rate} {seconds}\n")
            server.stdin.flush()
            _, total, elapsed, cut_offs = server.stdout.readline().split()
            wall = time.monotonic() - wall_before
            cpu = _cpu_seconds(server.pid) - cpu_before
            client_cpu = (_cpu_seconds(client.pid) - client_before) if client is not None else 0.0
            summary: dict[str, Any] = {"p50": 0.0, "p99": 0.0, "complete": 0, "ended": 0}
            if client is not None:
                assert client.stdin is not None
                assert client.stdout is not None
                client.stdin.write(f"expect {total}\n")
                client.stdin.flush()
                summary = json.loads(client.stdout.readline())
                client.wait(10)
        finally:
            if server.poll() is None:
                server.stdin.write("quit\n")
                server.stdin.flush()
                server.wait(15)
    on_schedule = float(elapsed) <= seconds * 1.05 + 0.05
    notes = []
    if int(cut_offs):
        notes.append(f"{cut_offs} cut off")
    if subscribers and summary["complete"] < subscribers:
        notes.append(f"{subscribers - summary['complete']} incomplete")
    if not on_schedule:
        notes.append(f"appender late ({float(elapsed):.2f}s)")
    if summary["p99"] >= 1.0:
        notes.append("p99 >= 1 s")
    return Result(
        kind, subscribers, rate, summary["p50"] * 1000, summary["p99"] * 1000,
        100 * cpu / wall, 100 * client_cpu / wall, not notes, ", ".join(notes),
    )  # fmt: skip


def highest_rate(
    kind: str, subscribers: int, start: float, ceiling: float, seconds: float
) -> float:
    """The highest rate held: doubling from `start` while held, else halving (0 if none)."""

    def holds(rate: float) -> bool:
        result = measure(kind, subscribers, rate, seconds)
        verdict = "held" if result.held else f"not held: {result.note}"
        print(f"    {kind:>5} {subscribers:>3} subs {rate:>6.0f}/s: {verdict}", flush=True)
        return result.held

    rate = start
    if not holds(rate):
        while rate > 100:
            rate /= 2
            if holds(rate):
                return rate
        return 0.0
    while rate * 2 <= ceiling and holds(rate * 2):
        rate *= 2
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer points, shorter runs")
    parser.add_argument("--serve", choices=["fleet", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, Path(args.db)))
        return
    if args.clients:
        asyncio.run(_clients(args.port, args.clients, "/v1/events/stream"))
        return

    rate, seconds = 1000.0, 2.0 if args.quick else 4.0
    counts = [0, 1, 50] if args.quick else [0, 1, 50, 200]
    print(f"SSE delivery at {rate:.0f} events/s for {seconds:.0f} s (median of runs; "
          f"CPU in % of one core; {os.cpu_count()} cores)\n", flush=True)  # fmt: skip
    rows = []
    for n in counts:
        trials = 1 if args.quick else 3
        runs = {k: [measure(k, n, rate, seconds) for _ in range(trials)] for k in ("fleet", "bare")}
        rows.append((n, {k: _median(v) for k, v in runs.items()}))
    header = (f"{'subs':>4} | {'fleet p50':>9} {'p99':>7} {'cpu':>5} | {'bare p50':>8} {'p99':>7} "
              f"{'cpu':>5} | {'p50 x':>6} {'p99 x':>6} {'cpu x':>6} | notes")  # fmt: skip
    print(header)
    print("-" * len(header))
    for n, by_kind in rows:
        f, b = by_kind["fleet"], by_kind["bare"]
        notes = "; ".join(f"{r.kind}: {r.note}" for r in (f, b) if r.note)
        print(
            f"{n:>4} | {f.p50_ms:>7.1f}ms {f.p99_ms:>5.1f}ms {f.server_cpu:>4.0f}% | "
            f"{b.p50_ms:>6.1f}ms {b.p99_ms:>5.1f}ms {b.server_cpu:>4.0f}% | "
            f"{_ratio(f.p50_ms, b.p50_ms):>6} {_ratio(f.p99_ms, b.p99_ms):>6} "
            f"{_ratio(f.server_cpu, b.server_cpu):>6} | {notes}",
            flush=True,
        )
    print("\nHighest rate held (from 1000/s, doubling or halving; every event to every client,")
    print("no cut-off, appender on schedule, p99 under 1 s):")
    ceiling = 8000.0 if args.quick else 32000.0
    limits = []
    for n in [1, 50] if args.quick else [1, 50, 200]:
        held = {k: highest_rate(k, n, rate, ceiling, seconds / 2) for k in ("fleet", "bare")}
        limits.append((n, held))
    for n, held in limits:
        print(f"  {n:>3} subscribers: fleet {held['fleet']:>6.0f}/s, bare {held['bare']:>6.0f}/s, "
              f"ratio {_ratio(held['fleet'], held['bare'])}")  # fmt: skip


def _median(results: list[Result]) -> Result:
    ordered = sorted(results, key=lambda r: r.p99_ms)
    return ordered[len(ordered) // 2]


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


if __name__ == "__main__":
    main()
