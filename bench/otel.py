"""OpenTelemetry export: spans/s for a large run against reading it alone; live lag at 1,000 events/s.

Run from the repository root::

    .venv/bin/python bench/otel.py                    # a run of 100,000 events, 10 s live
    .venv/bin/python bench/otel.py --events 20000 --seconds 5   # a quick look

Part 1, a synthetic run of `--events` events (an orchestrator and 24 agents;
each step a model response, a tool request and its completion; the
orchestrator sleeps on the agents), written once under /tmp. Timed
`--repeat` times each, medians shown, in this one process:

- read: `read_run`, the run's events read and decoded (what every export reads);
- map: read, then `map_events` (the GenAI spans, no network);
- export: `export_run` to a real OTLP/HTTP receiver in another process that
  decodes every request with `opentelemetry-proto` (read, map, the SDK's
  `ReadableSpan`s, its protobuf encoding and the HTTP posts).

Part 2, the live exporter (`LiveExporter`, as `fleet serve --otlp-endpoint`
runs it) on a fresh log while this process appends agent steps at
`--rate` events/s for `--seconds`: how far behind the head it is, in events
(sampled every 20 ms) and in time (from an event's append to the checkpoint
that says it was sent).

The machine has 2 cores and other work may be running: figures are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))

from api.otel import (  # noqa: E402
    CheckpointPositions,
    LiveExporter,
    SpanSender,
    export_run,
    map_events,
)
from events import (  # noqa: E402
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentWaiting,
    AgentWoke,
    Meta,
    ModelResponded,
    NewEvent,
    RunCompleted,
    RunStarted,
    SQLiteEventStore,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
    read_run,
)

CACHE = Path(tempfile.gettempdir()) / "fleet-bench-otel"
RUN_ID = "bench-otel"
ORCH = "orchestrator-bench"
AGENTS = 24


# -- the receiver (another process) ------------------------------------------------------


def _serve_receiver(port: int) -> None:
    import uvicorn
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    count = [0]

    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        count[0] += sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    async def spans(request: Request) -> Response:
        return JSONResponse({"spans": count[0]})

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"]),
                            Route("/spans", spans)])  # fmt: skip
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Receiver:
    """The receiver process: started, waited for, stopped."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--receiver", str(self.port)], cwd=ROOT
        )

    async def ready(self) -> None:
        import httpx

        async with httpx.AsyncClient() as http, asyncio.timeout(30):
            while True:
                try:
                    await http.get(f"{self.url}/spans")
                    return
                except httpx.TransportError:
                    await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- the synthetic run --------------------------------------------------------------------


def _step(agent_id: str, index: int, step: int, meta: Meta) -> list[NewEvent]:
    call = f"toolu_{index:02d}_{step:06d}"
    path = f"src/module_{step % 50}.py"
    return [
        NewEvent(ModelResponded(
            agent_id=agent_id, message_id=f"msg_{call}", model="claude-haiku-4-5",
            stop_reason="tool_use", turn=step + 1, duration_ms=900.0,
            content=[{"type": "text", "text": f"Reading {path}."},
                     {"type": "tool_use", "id": call, "name": "Read", "input": {"file_path": path}}],
            usage=Usage(input_tokens=1200 + step, output_tokens=40, cache_read_input_tokens=800),
            cost_usd=0.0012,
        ), meta),
        NewEvent(ToolCallRequested(agent_id=agent_id, tool_use_id=call, name="Read",
                                   input={"file_path": path}), meta),
        NewEvent(ToolCallCompleted(agent_id=agent_id, tool_use_id=call, name="Read",
                                   result="def handler(request):\n    return 42\n" * 4,
                                   duration_ms=0.4, files_read=[path]), meta),
    ]  # fmt: skip


def _agent(index: int, run_id: str) -> tuple[str, Meta, list[NewEvent]]:
    agent_id = f"agent{index:02d}"
    meta = Meta(run_id=run_id, agent_id=agent_id, parent_id=ORCH)
    start = [
        NewEvent(AgentCreated(agent_id=agent_id, name=f"worker-{index}", role="scout",
                              model="claude-haiku-4-5", parent_id=ORCH), meta),
        NewEvent(AgentCommanded(agent_id=agent_id, prompt="find the call sites", by=ORCH), meta),
    ]  # fmt: skip
    return agent_id, meta, start


async def _start_run(store: SQLiteEventStore, run_id: str) -> Meta:
    run_meta = Meta(run_id=run_id)
    orch = Meta(run_id=run_id, agent_id=ORCH)
    await store.append(f"run-{run_id}", [NewEvent(RunStarted(run_id=run_id, task="bench",
                                                             pattern="bench"), run_meta)])  # fmt: skip
    created = AgentCreated(
        agent_id=ORCH, name="orchestrator", role="orchestrator", model="pattern:bench"
    )
    waiting = AgentWaiting(agent_id=ORCH, on=[f"agent{i:02d}" for i in range(AGENTS)])
    await store.append(f"agent-{ORCH}", [NewEvent(created, orch), NewEvent(waiting, orch)])
    return run_meta


async def _end_run(store: SQLiteEventStore, run_id: str) -> None:
    orch = Meta(run_id=run_id, agent_id=ORCH)
    woke = AgentWoke(agent_id=ORCH, on=[f"agent{i:02d}" for i in range(AGENTS)])
    await store.append(
        f"agent-{ORCH}", [NewEvent(woke, orch), NewEvent(AgentCompleted(agent_id=ORCH), orch)]
    )
    await store.append(
        f"run-{run_id}", [NewEvent(RunCompleted(run_id=run_id), Meta(run_id=run_id))]
    )


async def _make_log(path: Path, events: int) -> None:
    steps = max(1, (events - 8 - AGENTS * 3) // (AGENTS * 3))
    async with SQLiteEventStore(path) as store:
        await _start_run(store, RUN_ID)
        for index in range(AGENTS):
            agent_id, meta, batch = _agent(index, RUN_ID)
            for step in range(steps):
                batch += _step(agent_id, index, step, meta)
            batch.append(NewEvent(AgentCompleted(agent_id=agent_id, summary="done"), meta))
            for start in range(0, len(batch), 3000):
                await store.append(f"agent-{agent_id}", batch[start : start + 3000])
        await _end_run(store, RUN_ID)


# -- part 1 -------------------------------------------------------------------------------


async def _timed(repeat: int, work: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def part1(events: int, repeat: int) -> None:
    CACHE.mkdir(exist_ok=True)
    log = CACHE / f"run-{events}.db"
    if not log.exists():
        print(f"writing a synthetic run of about {events:,} events to {log} ...", flush=True)
        await _make_log(log, events)
    receiver = Receiver()
    try:
        await receiver.ready()
        async with SQLiteEventStore(log) as store:
            read_s, read = await _timed(repeat, lambda: read_run(store, RUN_ID))

            async def mapped() -> Any:
                return map_events(await read_run(store, RUN_ID))

            map_s, spans = await _timed(repeat, mapped)
            export_s, summary = await _timed(
                repeat, lambda: export_run(store, RUN_ID, receiver.url)
            )
    finally:
        receiver.stop()
    n, m = len(read), len(spans)
    print(f"\nPart 1: a run of {n:,} events -> {m:,} spans (median of {repeat})")
    print(f"  read the run alone       {read_s:7.2f} s   {n / read_s:10,.0f} events/s")
    print(f"  read + map to spans      {map_s:7.2f} s   {m / map_s:10,.0f} spans/s   "
          f"{map_s / read_s:4.1f}x the read")  # fmt: skip
    print(f"  export over OTLP/HTTP    {export_s:7.2f} s   {m / export_s:10,.0f} spans/s   "
          f"{export_s / read_s:4.1f}x the read  ({summary.spans:,} spans sent)")  # fmt: skip


# -- part 2 -------------------------------------------------------------------------------


def _pct(values: list[float] | list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class _Lag:
    """Samples how far the exporter is behind the appender, in events and in time."""

    def __init__(self, store: SQLiteEventStore, exporter: LiveExporter) -> None:
        self.store, self.exporter = store, exporter
        self.appended_at: dict[int, float] = {}
        self.ms: list[float] = []
        self.events: list[int] = []
        self.stop = asyncio.Event()

    async def times(self) -> None:
        seen = self.exporter.position
        while not self.stop.is_set():
            await asyncio.sleep(0.005)
            now, position = time.perf_counter(), self.exporter.position
            for p in range(seen + 1, position + 1):
                if p in self.appended_at:
                    self.ms.append((now - self.appended_at.pop(p)) * 1000)
            seen = max(seen, position)

    async def counts(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(0.02)
            self.events.append(await self.store.head() - self.exporter.position)


async def _drive(
    store: SQLiteEventStore, lag: _Lag, rate: int, seconds: float
) -> tuple[int, float]:
    """Append agent steps at `rate` events/s; (events, seconds taken).

    Every 30 ms, `rate * 0.03 / 3` agents each append one step (3 events) at
    once, as concurrent agents do (their appends share a commit).
    """
    agents = [_agent(i, "live") for i in range(AGENTS)]
    for agent_id, _, batch in agents:
        await store.append(f"agent-{agent_id}", batch)
    per_tick = max(1, round(rate * 0.03 / 3))
    tick, step, events = per_tick * 3 / rate, 0, 0

    async def one(index: int, n: int) -> None:
        agent_id, meta, _ = agents[index]
        recorded = await store.append(f"agent-{agent_id}", _step(agent_id, index, n, meta))
        now = time.perf_counter()
        for event in recorded:
            lag.appended_at[event.position] = now

    started = time.perf_counter()
    ticks = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        await asyncio.gather(*(one((step + k) % AGENTS, step + k) for k in range(per_tick)))
        step += per_tick
        events += per_tick * 3
        ticks += 1
        await asyncio.sleep(max(0.0, started + ticks * tick - time.perf_counter()))
    return events, elapsed


async def part2(rate: int, seconds: float) -> None:
    db = Path(tempfile.mkdtemp(prefix="fleet-bench-otel-live-")) / "live.db"
    receiver = Receiver()
    try:
        await receiver.ready()
        async with (
            SQLiteEventStore(db, poll_interval=0.05) as store,
            SpanSender(receiver.url) as sender,
        ):
            positions = CheckpointPositions(store.checkpoints, "otel-export bench")
            await _start_run(store, "live")
            async with LiveExporter(store, sender, positions) as exporter:
                lag = _Lag(store, exporter)
                samplers = [asyncio.create_task(lag.times()), asyncio.create_task(lag.counts())]
                events, elapsed = await _drive(store, lag, rate, seconds)
                head = await store.head()
                async with asyncio.timeout(60):
                    while exporter.position < head:  # noqa: ASYNC110 - polling a counter
                        await asyncio.sleep(0.01)
                lag.stop.set()
                await asyncio.gather(*samplers)
                sent = exporter.spans_sent
    finally:
        receiver.stop()
    print(f"\nPart 2: live export while appending {events / elapsed:,.0f} events/s for {seconds:g} s "
          f"({events:,} events, {sent:,} spans sent)")  # fmt: skip
    e, ms = lag.events, lag.ms
    print(f"  behind the head, events  p50 {_pct(e, 0.5):6.0f}   p99 {_pct(e, 0.99):6.0f}"
          f"   max {max(e, default=0):6.0f}")  # fmt: skip
    print(f"  append -> sent and saved p50 {_pct(ms, 0.5):6.1f} ms   p99 {_pct(ms, 0.99):6.1f} ms"
          f"   max {max(ms, default=0):6.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        _serve_receiver(args.receiver)
        return
    asyncio.run(part1(args.events, args.repeat))
    asyncio.run(part2(args.rate, args.seconds))


if __name__ == "__main__":
    main()
