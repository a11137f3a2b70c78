"""Rebuild rate, memory and time-travel latency of fleet's read models.

Run from the repository root::

    .venv/bin/python bench/projections.py                  # 1,000,000 events
    .venv/bin/python bench/projections.py --events 100000  # a quick run

The first run writes synthetic fleet logs through the store (batched,
group-committed appends) and keeps them under /tmp for the next runs: copies
at a quarter, half and all of `--events`, so memory can be compared as the
log grows. Two shapes (`--shape`, both by default):

- runs: scout-plan-build runs like the ones fleet records (an orchestrator,
  three scouts, a planner and a builder per run; each tool call a model
  response, a request, a PreToolUse and a PostToolUse hook and a completion;
  waits, task moves, deletions), a Claude Code session every tenth run; a
  model's answer, a tool's request and its result about as large as in a
  recorded run (`BODIES`). The number of agents grows with the log, and so
  do the states.
- long-lived: one endless run of 41 agents on 200 shared files. The entities
  are fixed, so this shows what the read models keep per event: nothing.

Each size is measured in a fresh process, after deleting the log's
projection checkpoints; reads and rebuilds run twice, interleaved, and the
better of each is shown (the machine is shared, the figures are noisy):

- raw: the physical limit, bare `sqlite3` pages of the same rows with each
  row's data through `json.loads` (no store, no typed events);
- baseline: reading the whole log through the store (`read_all` pages,
  decoded to typed events), folding nothing;
- rebuild: `ProjectionRunner(store).start()` with no checkpoint, i.e. all
  five read models folded from position 0 (and their checkpoints written);
  events/s, the ratio to the baseline, the fold's own rate derived from the
  two (1 / (1/rebuild - 1/read): what folding adds to reading), and events
  per second of the process's CPU time (steadier on a busy machine);
- memory: the process's peak RSS, its RSS before the rebuild, and the size
  of the five states as checkpoint JSON;
- time travel around the middle of the log (positions no snapshot is at):
  `state_at` per read model with the snapshots the rebuild kept (for the
  agents model, split into the snapshot's unpacking and the fold after it),
  and for the agents model in a runner restarted from its checkpoints ("cold": nothing
  in memory; the snapshots the rebuild persisted in the checkpoint store,
  where this version has them, or a fold from 0 before it), then again;
- time travel at the worst positions: the last before each of the last five
  snapshots (the longest fold from the snapshot before, the largest states).

The machine has 2 cores and other work may be running: the figures are
indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name
# would shadow the `projections` package: take the folder off the path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentWaiting,
    AgentWoke,
    ExternalHookReceived,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    RunCompleted,
    RunStarted,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
    encode_event,
    load_data,
)
from projections import ProjectionRunner
from projections._backfill import snapshot_data
from projections._checkpoints import Snapshots
from projections._folding import Slot, fold

TOOLS = ("Read", "Grep", "Glob", "Write", "Edit", "Bash")
# What a model says and a read returns, sized as a recorded run has them (`make demo`'s
# plan-build-review-ship: a model's answer about 970 bytes of JSON, a tool's result 875,
# its request 409), so a fold decodes what it would on a log fleet recorded.
_PYTHON = "def word_count(text: str) -> int:\n    return len(text.split())\n\n"
BODIES = tuple(f"# src/m{i}.py\n" + _PYTHON * (8 + i % 12) for i in range(40))
SAYINGS = tuple(
    f"I have read {i} of the files the task names; the change touches the counting module "
    "and its tests, and the report that prints the totals. " * (1 + i % 2)
    for i in range(20)
)
# The synthetic logs' format: bumped when what they hold changes, so old copies are not reused.
LOG_FORMAT = 2
SCOUT_CALLS, PLANNER_CALLS, BUILDER_CALLS = 20, 15, 60


# -- the synthetic log ------------------------------------------------------


class RunWriter:
    """Builds the events of one scout-plan-build run, in the order fleet would append them."""

    def __init__(self, number: int, rng: random.Random) -> None:
        self.run = f"r{number:06d}"
        self.rng = rng
        self.events: list[tuple[str, NewEvent]] = []

    def add(self, stream: str, data: Any, agent: str | None = None) -> None:
        self.events.append((stream, NewEvent(data, Meta(run_id=self.run, agent_id=agent))))

    def agent(self, name: str, role: str, model: str, parent: str | None) -> str:
        agent_id = f"{self.run}-{name}"
        self.add(
            f"agent-{agent_id}",
            AgentCreated(
                agent_id=agent_id,
                name=name,
                role=role,
                model=model,
                parent_id=parent,
                workspace=f"/ws/{self.run}",
                tools=list(TOOLS),
            ),
            agent_id,
        )
        self.add(
            f"agent-{agent_id}",
            AgentCommanded(agent_id=agent_id, prompt=f"{role}: do your part", by=parent or "user"),
            agent_id,
        )
        return agent_id

    def call(
        self, agent_id: str, n: int, *, writes: str | None = None, reads: str | None = None
    ) -> None:
        rng = self.rng
        stream = f"agent-{agent_id}"
        tool = "Write" if writes else "Read" if reads else rng.choice(TOOLS)
        use = f"{agent_id}-{n}"
        usage = Usage(
            input_tokens=rng.randrange(200, 3000),
            output_tokens=rng.randrange(50, 800),
            cache_read_input_tokens=rng.randrange(0, 20_000),
        )
        path = writes or reads or f"src/m{n % 200}.py"
        tool_input: dict[str, Any] = {"file_path": path}
        if tool in ("Write", "Edit"):
            tool_input["content"] = rng.choice(BODIES)[:400]
        self.add(
            stream,
            ModelResponded(
                agent_id=agent_id,
                message_id=f"msg_{use}",
                model="sim",
                stop_reason="tool_use",
                content=[
                    {"type": "text", "text": f"Next, {tool} {path}: {rng.choice(SAYINGS)}"},
                    {"type": "tool_use", "id": use, "name": tool, "input": tool_input},
                ],
                usage=usage,
                cost_usd=usage.input_tokens * 3e-6,
                duration_ms=rng.uniform(1.0, 40.0),
                turn=n,
            ),
            agent_id,
        )
        self.add(
            stream,
            ToolCallRequested(agent_id=agent_id, tool_use_id=use, name=tool, input=tool_input),
            agent_id,
        )
        decision = "deny" if rng.random() < 0.01 else "allow"
        self.add(
            stream,
            HookInvoked(
                point="PreToolUse",
                kind="python",
                agent_id=agent_id,
                tool_use_id=use,
                decision=decision,
            ),
            agent_id,
        )
        read = [reads] if reads else [f"src/m{rng.randrange(200)}.py"] if tool in TOOLS[:3] else []
        written = (
            [writes] if writes else [f"src/m{rng.randrange(200)}.py"] if tool == "Edit" else []
        )
        self.add(
            stream,
            ToolCallCompleted(
                agent_id=agent_id,
                tool_use_id=use,
                name=tool,
                result=rng.choice(BODIES) if tool in TOOLS[:3] else f"wrote {path}",
                blocked=decision == "deny",
                duration_ms=rng.uniform(0.1, 20.0),
                files_read=read,
                files_written=written,
            ),
            agent_id,
        )
        self.add(
            stream,
            HookInvoked(point="PostToolUse", kind="python", agent_id=agent_id, tool_use_id=use),
            agent_id,
        )

    def build(self) -> list[tuple[str, NewEvent]]:
        run = self.run
        self.add(f"run-{run}", RunStarted(run_id=run, task="Migrate", pattern="scout-plan-build"))
        self.add(f"task-{run}", TaskCreated(task_id=run, title="Migrate"))
        orch = self.agent("orchestrator", "orchestrator", "opus", None)
        scouts = [self.agent(f"scout-{i}", "scout", m, orch) for i, m in enumerate("abc")]
        self.add(f"agent-{orch}", AgentWaiting(agent_id=orch, on=scouts), orch)
        for n in range(SCOUT_CALLS):  # the scouts work at once: their calls interleave
            for i, scout in enumerate(scouts):
                last = n == SCOUT_CALLS - 1
                self.call(scout, n, writes=f"relevant-{i}.md" if last else None)
        for i, scout in enumerate(scouts):
            self.add(
                f"agent-{scout}",
                AgentCompleted(agent_id=scout, artifacts=[f"relevant-{i}.md"]),
                scout,
            )
        self.add(
            f"agent-{orch}",
            AgentWoke(agent_id=orch, on=scouts, changed=scouts, waited_ms=30_000),
            orch,
        )
        for step, role, calls, reads, writes in (
            ("BUILD", "planner", PLANNER_CALLS, "relevant-0.md", "plan.md"),
            ("REVIEW", "builder", BUILDER_CALLS, "plan.md", "src/app.py"),
        ):
            worker = self.agent(role, role, "sonnet", orch)
            self.add(f"agent-{orch}", AgentWaiting(agent_id=orch, on=[worker]), orch)
            for n in range(calls):
                self.call(
                    worker,
                    n,
                    reads=reads if n == 0 else None,
                    writes=writes if n == calls - 1 else None,
                )
            self.add(f"agent-{worker}", AgentCompleted(agent_id=worker, artifacts=[writes]), worker)
            self.add(
                f"agent-{orch}",
                AgentWoke(agent_id=orch, on=[worker], changed=[worker], waited_ms=60_000),
                orch,
            )
            self.add(f"task-{run}", TaskMoved(task_id=run, column=step, assignee=worker))
        self.add(f"agent-{orch}", AgentCompleted(agent_id=orch, summary="done"), orch)
        for agent_id in [*scouts, f"{run}-planner", f"{run}-builder"]:
            self.add(f"agent-{agent_id}", AgentDeleted(agent_id=agent_id, by=orch), agent_id)
        self.add(f"task-{run}", TaskMoved(task_id=run, column="DONE"))
        self.add(f"run-{run}", RunCompleted(run_id=run, duration_ms=120_000))
        return self.events


def claude_code_session(number: int) -> list[tuple[str, NewEvent]]:
    session = f"cc{number:06d}"
    hooks: list[tuple[str, dict[str, Any]]] = [
        ("SessionStart", {"source": "startup"}),
        ("UserPromptSubmit", {"prompt": "fix the tests"}),
    ]
    for n in range(10):
        call = {
            "tool_name": "Read",
            "tool_input": {"file_path": f"/repo/m{n}.py"},
            "tool_use_id": f"{session}-{n}",
        }
        hooks += [("PreToolUse", call), ("PostToolUse", {**call, "tool_response": {}})]
    hooks.append(("Stop", {}))
    return [
        (
            f"ext-{session}",
            NewEvent(
                ExternalHookReceived(
                    source_app="repo",
                    session_id=session,
                    hook_event_name=name,
                    payload={
                        "session_id": session,
                        "cwd": "/repo",
                        "hook_event_name": name,
                        **payload,
                    },
                ),
                Meta(source="ingest"),
            ),
        )
        for name, payload in hooks
    ]


class LongLivedFleet:
    """One run that never ends: an orchestrator and 40 workers working on 200 shared files.

    Every round each worker makes one tool call; the orchestrator waits on
    three of them and wakes; every fifth round a task moves. The entities are
    fixed, so the read models' states should not grow with the log.
    """

    WORKERS = 40

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.writer = RunWriter(0, rng)
        self.round = 0

    def next_events(self) -> list[tuple[str, NewEvent]]:
        w = self.writer
        w.events = []
        rng = self.rng
        if self.round == 0:
            w.add(f"run-{w.run}", RunStarted(run_id=w.run, task="Keep the lights on"))
            orch = w.agent("orchestrator", "orchestrator", "opus", None)
            self.workers = [
                w.agent(f"w{i}", "builder", "sonnet", orch) for i in range(self.WORKERS)
            ]
            for t in range(10):
                w.add(f"task-t{t}", TaskCreated(task_id=f"t{t}", title=f"task {t}"))
        orch = f"{w.run}-orchestrator"
        for worker in self.workers:
            f = f"src/m{rng.randrange(200)}.py"
            w.call(worker, self.round, **({"writes": f} if rng.random() < 0.3 else {"reads": f}))
        awaited = rng.sample(self.workers, 3)
        w.add(f"agent-{orch}", AgentWaiting(agent_id=orch, on=awaited), orch)
        w.add(
            f"agent-{orch}",
            AgentWoke(agent_id=orch, on=awaited, changed=awaited[:1], waited_ms=1000.0),
            orch,
        )
        if self.round % 5 == 0:
            column = ("PLAN", "BUILD", "REVIEW", "SHIP", "DONE")[self.round // 5 % 5]
            t = f"t{self.round // 5 % 10}"
            w.add(f"task-{t}", TaskMoved(task_id=t, column=column, assignee=awaited[0]))
        self.round += 1
        return w.events


async def append_batches(store: SQLiteEventStore, events: list[tuple[str, NewEvent]]) -> None:
    """Append `events` in order, one append per run of one stream, committed in groups."""
    batches: list[tuple[str, list[NewEvent]]] = []
    for stream, event in events:
        if batches and batches[-1][0] == stream:
            batches[-1][1].append(event)
        else:
            batches.append((stream, [event]))
    # Submitted in order, committed in groups: positions keep this order.
    await asyncio.gather(*(store.append(stream, batch) for stream, batch in batches))


async def append_until(store: SQLiteEventStore, source: Any, target: int) -> None:
    """Append the source's events until the log holds `target` events."""
    while await store.head() < target:
        await append_batches(store, source.next_events())


class RunsOfAgents:
    """Scout-plan-build runs one after another, a Claude Code session every tenth run."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.number = 0

    def next_events(self) -> list[tuple[str, NewEvent]]:
        events = RunWriter(self.number, self.rng).build()
        if self.number % 10 == 0:
            events += claude_code_session(self.number)
        self.number += 1
        return events


SHAPES = {"runs": RunsOfAgents, "long-lived": LongLivedFleet}


def generate(directory: Path, shape: str, sizes: list[int]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    work = directory / "growing.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    asyncio.run(grow(work, directory, shape, sizes))
    work.unlink()


async def grow(work: Path, directory: Path, shape: str, sizes: list[int]) -> None:
    source = SHAPES[shape](random.Random(7))
    started = time.perf_counter()
    for size in sizes:
        async with SQLiteEventStore(work) as store:
            await append_until(store, source, size)
            head = await store.head()
        await asyncio.to_thread(shutil.copyfile, work, log_path(directory, shape, size))
        print(f"  wrote {head:,} events ({time.perf_counter() - started:.0f} s so far)", flush=True)


def log_path(directory: Path, shape: str, size: int) -> Path:
    return directory / f"{shape}-v{LOG_FORMAT}-{size}.db"


# -- one measurement, in its own process ------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def forget_checkpoints(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS projection_checkpoints (name TEXT PRIMARY KEY, "
            "version INTEGER, position INTEGER, state TEXT, updated_at INTEGER)"
        )
        conn.execute("DELETE FROM projection_checkpoints")
        # and the time-travel snapshots, so each measure makes its own
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "projection_snapshots" in tables:
            conn.execute("DELETE FROM projection_snapshots")


async def wire_seconds(store: SQLiteEventStore) -> float:
    """Wall seconds of reading the whole log as wire JSON (`encode_event`), as the API's
    pages, an SSE catch-up and an export do."""
    started = time.perf_counter()
    position = 0
    while page := await store.read_all(after=position, limit=2000, lenient=True):
        position = page[-1].position
        for event in page:
            encode_event(event)
    return time.perf_counter() - started


async def read_seconds(store: SQLiteEventStore, *, data: bool = False) -> tuple[float, float]:
    """Wall and CPU seconds of reading the whole log through the store, folding nothing;
    with `data`, every event's data decoded too (a read decodes it on first use)."""
    started, cpu = time.perf_counter(), time.process_time()
    position = 0
    while page := await store.read_all(after=position, limit=2000, lenient=True):
        position = page[-1].position
        if data:
            load_data(page)
    return time.perf_counter() - started, time.process_time() - cpu


def raw_read_seconds(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the physical limit: bare sqlite3 pages of the same rows,
    each row's data through `json.loads` (no store, no typed events)."""
    loads = json.loads
    started, cpu = time.perf_counter(), time.process_time()
    with closing(sqlite3.connect(path)) as conn:
        position = 0
        while page := conn.execute(
            "SELECT position, stream_id, version, type, schema_version, data, run_id, agent_id, "
            "parent_id, causation_id, correlation_id, source, recorded_at FROM events "
            "WHERE position > ? ORDER BY position LIMIT 2000",
            (position,),
        ).fetchall():
            for row in page:
                loads(row[5])
            position = page[-1][0]
    return time.perf_counter() - started, time.process_time() - cpu


async def rebuild_seconds(store: SQLiteEventStore) -> tuple[float, float, ProjectionRunner]:
    """A runner started on a log without checkpoints: all five folded from position 0.

    Wall and CPU seconds (this process's threads), and the runner.
    """
    await asyncio.to_thread(forget_checkpoints, store.path)
    started, cpu = time.perf_counter(), time.process_time()
    runner = await ProjectionRunner(store, checkpoint_interval=3600).start()
    return time.perf_counter() - started, time.process_time() - cpu, runner


async def travel_split(
    runner: ProjectionRunner, store: SQLiteEventStore, name: str, positions: list[int]
) -> dict[str, float]:
    """Where `state_at(name, ...)` spends its time, median over `positions`: unpacking
    the nearest snapshot (fetch, decompress, unpickle) and folding the events after it.
    The same steps as `TimeTravel.state_at`, timed apart (white-box: internals)."""
    travel = runner._travel
    projection = runner.projection(name)
    unpack, folding, folded = [], [], []
    for position in positions:
        t = time.perf_counter()
        found = await snapshot_data(
            travel._checkpoints, travel.snapshots, name, projection.version, position
        )
        if found is None:
            continue
        at, data = found
        t_fold = time.perf_counter()
        past = Slot(projection, projection.load(data), at)
        await fold(store, [past], position, Snapshots(0, 1), quiet=True)
        unpack.append(t_fold - t)
        folding.append(time.perf_counter() - t_fold)
        folded.append(position - at)
    if not unpack:
        return {}
    return {
        "unpack_ms": statistics.median(unpack) * 1000,
        "fold_ms": statistics.median(folding) * 1000,
        "positions_folded": statistics.median(folded),
        "fold_us_per_position": sum(folding) / max(1, sum(folded)) * 1e6,
    }


async def loop_stall_ms(queries: list[Any]) -> float:
    """The event loop's longest stall (ms) while `queries` run one after another: what
    every other request and stream of a server would wait, measured by a 1 ms ticker."""
    longest = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    ticking = asyncio.create_task(ticker())
    for query in queries:
        await query
    done = True
    await ticking
    return longest * 1000


async def measure(path: Path) -> dict[str, Any]:
    """Everything about one log, in this (fresh) process. Reads and rebuilds are done
    twice, interleaved, and the better of each is kept: the machine is shared."""
    result: dict[str, Any] = {}
    async with SQLiteEventStore(path) as store:
        head = await store.head()
        result["events"] = head
        result["rss_before_mb"] = rss_mb()
        raws = [await asyncio.to_thread(raw_read_seconds, path)]
        reads = [await read_seconds(store)]
        decoded = [await read_seconds(store, data=True)]
        result["wire_eps"] = head / await wire_seconds(store)
        first = await rebuild_seconds(store)
        runner = first[2]
        t = time.perf_counter()
        await runner.snapshots_made()  # made behind a long rebuild, where this fleet does that
        result["snapshots_behind_s"] = time.perf_counter() - t
        result["peak_rss_mb"] = peak_rss_mb()
        result["state_mb"] = {
            name: len(json.dumps(runner.projection(name).dump(runner.state(name)))) / 2**20
            for name in runner.names
        }
        result["agents"] = runner.view("fleet")["agents"]["total"]
        mid = head // 2 + 123
        # Around the middle, at positions no snapshot is at: median and worst.
        around = [mid - head // 9, mid - head // 23, mid, mid + head // 17, mid + head // 7]
        warm: dict[str, list[float]] = {}
        for name in runner.names:
            for position in around:
                t = time.perf_counter()
                await runner.state_at(name, position)
                warm.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        result["state_at_warm_ms"] = {k: statistics.median(v) for k, v in warm.items()}
        result["state_at_warm_max_ms"] = {k: max(v) for k, v in warm.items()}
        # The worst positions: the last before each of the last five snapshots, where the
        # fold from the one before is longest and the states are largest.
        spacing = runner._travel.snapshots.spacing("agents") or 5000
        last_snapshot = head // spacing * spacing
        worst = [last_snapshot - k * spacing - 1 for k in range(5) if last_snapshot > k * spacing]
        result["worst_positions"] = worst
        result["state_at_worst_ms"] = {}
        for name in runner.names:
            times = []
            for position in worst:
                t = time.perf_counter()
                await runner.state_at(name, position)
                times.append((time.perf_counter() - t) * 1000)
            result["state_at_worst_ms"][name] = (statistics.median(times), max(times))
        result["state_at_stall_ms"] = await loop_stall_ms(
            [runner.state_at("agents", position) for position in around]
        )
        result["agents_split"] = await travel_split(runner, store, "agents", around)
        await runner.aclose()

        async with ProjectionRunner(store, checkpoint_interval=3600) as restarted:
            t = time.perf_counter()
            await restarted.state_at("agents", mid)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            await restarted.state_at("agents", mid)
            again = time.perf_counter() - t
        result["state_at_cold_ms"] = cold * 1000
        result["state_at_after_cold_ms"] = again * 1000

        second = await rebuild_seconds(store)
        await second[2].aclose()
        reads.append(await read_seconds(store))
        decoded.append(await read_seconds(store, data=True))
        raws.append(await asyncio.to_thread(raw_read_seconds, path))
        result["raw_eps"] = head / min(wall for wall, _ in raws)
        result["rebuild_s"] = min(first[0], second[0])
        result["rebuild_eps"] = head / result["rebuild_s"]
        result["rebuild_cpu_eps"] = head / min(first[1], second[1])
        result["read_eps"] = head / min(wall for wall, _ in reads)
        result["read_cpu_eps"] = head / min(cpu for _, cpu in reads)
        result["read_data_eps"] = head / min(wall for wall, _ in decoded)
    return result


# -- the report -------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the largest log")
    parser.add_argument("--shape", choices=[*SHAPES, "both"], default="both")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/fleet-bench-projections"))
    parser.add_argument("--regenerate", action="store_true", help="write the logs again")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure))))
        return
    sizes = [args.events // 4, args.events // 2, args.events]
    for shape in SHAPES if args.shape == "both" else [args.shape]:
        report(args.dir, shape, sizes, args.regenerate)


def fold_rate(r: dict[str, Any]) -> float:
    """Events/s that folding alone would reach: what it adds to the read, inverted."""
    added = 1 / r["rebuild_eps"] - 1 / r["read_eps"]
    return 1 / added if added > 0 else float("inf")


def report(directory: Path, shape: str, sizes: list[int], regenerate: bool) -> None:
    print(f"\n== {shape}: {SHAPES[shape].__doc__.splitlines()[0]}")
    if regenerate or not all(log_path(directory, shape, s).exists() for s in sizes):
        print(f"writing the logs of {', '.join(f'{s:,}' for s in sizes)} events ...", flush=True)
        generate(directory, shape, sizes)
    results = []
    for size in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(log_path(directory, shape, size))],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))

    print("rebuild of all five read models from position 0 (a fresh process per log):")
    print(
        f"{'events':>10} {'agents':>7} {'raw+json ev/s':>13} {'read ev/s':>10} {'÷ raw':>6} "
        f"{'rebuild ev/s':>13} {'÷ raw':>6} {'÷ read':>6} "
        f"{'fold ev/s':>10} {'per CPU s':>10} {'rebuild s':>9} {'RSS before':>10} "
        f"{'peak RSS':>9} {'state JSON':>10}"
    )
    for r in results:
        print(
            f"{r['events']:>10,} {r['agents']:>7,} {r['raw_eps']:>13,.0f} {r['read_eps']:>10,.0f} "
            f"{r['read_eps'] / r['raw_eps']:>6.2f} {r['rebuild_eps']:>13,.0f} "
            f"{r['rebuild_eps'] / r['raw_eps']:>6.2f} {r['rebuild_eps'] / r['read_eps']:>6.2f} "
            f"{fold_rate(r):>10,.0f} {r['rebuild_cpu_eps']:>10,.0f} {r['rebuild_s']:>9.1f} "
            f"{r['rss_before_mb']:>8.0f}MB {r['peak_rss_mb']:>7.0f}MB "
            f"{sum(r['state_mb'].values()):>8.1f}MB"
        )
    print(
        "(per CPU s: events per second of this process's CPU time, both threads, which "
        "other work on the machine disturbs less; reading alone: "
        + ", ".join(f"{r['read_cpu_eps']:,.0f}" for r in results)
        + ")"
    )
    last = results[-1]
    print(
        f"state JSON by read model at {last['events']:,} events (MB): "
        + ", ".join(f"{k} {v:.1f}" for k, v in last["state_mb"].items())
    )
    print(
        "reading with every event's data decoded (a read decodes it on first use), ev/s (÷ raw): "
        + ", ".join(
            f"{r['read_data_eps']:,.0f} ({r['read_data_eps'] / r['raw_eps']:.2f})" for r in results
        )
    )
    print(
        "reading as wire JSON (encode_event: API pages, SSE catch-up, exports), ev/s: "
        + ", ".join(f"{r['wire_eps']:,.0f}" for r in results)
    )
    print(
        "time-travel snapshots made behind the rebuild, in the background, s: "
        + ", ".join(f"{r['snapshots_behind_s']:.1f}" for r in results)
    )
    print(f"state_at(position {last['events'] // 2 + 123:,}), the middle of {last['events']:,}:")
    print(
        "  with the snapshots made, median (worst) of 5 positions around it: "
        + ", ".join(
            f"{k} {v:.0f} ({last['state_at_warm_max_ms'][k]:.0f}) ms"
            for k, v in last["state_at_warm_ms"].items()
        )
    )
    worst = last["worst_positions"]
    print(
        f"  at the last position before each of the last {len(worst)} snapshots "
        f"({worst[-1]:,} to {worst[0]:,}), the longest folds, median (worst): "
        + ", ".join(f"{k} {m:.0f} ({w:.0f}) ms" for k, (m, w) in last["state_at_worst_ms"].items())
    )
    split = last["agents_split"]
    if split:
        print(
            f"  agents, where the time goes (medians): the snapshot unpacked {split['unpack_ms']:.0f}"
            f" ms, then {split['positions_folded']:,.0f} positions folded {split['fold_ms']:.0f} ms"
            f" ({split['fold_us_per_position']:.1f} µs a position)"
        )
    print(
        "  the event loop's longest stall during the agents queries: "
        f"{last['state_at_stall_ms']:.0f} ms"
    )
    print(
        f"  cold (restarted runner, nothing in memory), agents: {last['state_at_cold_ms']:.0f} ms; "
        f"the same again: {last['state_at_after_cold_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
