"""Instructions per append and per agent step, counted by callgrind: the same on a busy machine.

Run from the repository root::

    .venv/bin/python bench/instructions.py                  # this checkout
    .venv/bin/python bench/instructions.py --base HEAD~3    # and another commit, side by side
    .venv/bin/python bench/instructions.py --only append-1,step

Times on a shared 2-core machine move by a fifth between runs a minute apart;
the instructions a piece of code executes do not (the same code, inputs and
environment give the same count to 0.1%). Each workload runs in a child
process under `valgrind --tool=callgrind --instr-atstart=no
--separate-threads=yes`, which counts user-space instructions of every thread
of the process; the child switches counting on only around the measured part
(`callgrind_control -i on|off`, from a worker thread), after a warm-up. The
figures: instructions per unit on the event loop's thread, on the other
threads (aiosqlite's connection threads, `asyncio.to_thread`'s workers) and
in all. What they do not count: the kernel (system calls, fsync), the waits,
and anything in another process (the model simulator runs in its own). The
other threads' count includes the worker thread that switches counting off
(about half a million instructions a workload: 1,000 an append of `append-1`).

Workloads (each on a fresh SQLite log in a temporary folder):

- `append-1`: one appender, 500 appends of one event (a typical tool call);
- `append-64`: 64 appenders at once, 40 appends of one event each;
- `batch-100`, `batch-1000`: appends of 100 and 1,000 events to new streams;
- `step`: 10 scouts one after another on the offline simulator, as
  `bench/agents.py` runs them (4 steps each: a model call, its tools, events);
- `respond`: the model calls of those steps alone, a scout's requests sent
  one after another through `ModelClient.respond` as `bench/agents.py`'s
  baseline sends them (no agent, no log, no tools): the floor a step stands on, so `step` less `respond` is the
  runtime's own part of a step;
- `floor-1`, `floor-100`, `floor-1000`: the floor under `append-1`, `batch-100`
  and `batch-1000`, as `bench/append.py` prints it ("raw through aiosqlite"):
  the same events' rows encoded before counting, inserted into a five-column
  table through aiosqlite, one awaited INSERT a transaction, or BEGIN,
  `executemany` and COMMIT a batch. Each `append-1` and `batch-*` row over its
  floor is what fleet adds to the least any store on aiosqlite must do,
  without the noise of timing it;
- `rebuild`: the five read models folded from position 0 of a log of 50,000
  events shaped as `bench/projections.py --shape runs` writes them (the log
  is written first, uncounted);
- `travel`: the agents read model folded over the last 5,000 positions of
  such a log of 20,000, from its state at 15,000 (folded uncounted): what a
  time-travel query does after unpacking its snapshot, at its worst;
  `travel-graph`, `travel-fleet`, `travel-runs`: the same of the other read
  models.

With `--base REV`, the commit `REV` is unpacked (`git archive`) into a
temporary folder and each workload runs on both trees in turn; the last
column is this checkout's count over the base's. Needs valgrind (`apt-get
install valgrind`); a run takes a minute or two. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Run as a script, this file's folder comes first on sys.path, where bench/hooks.py would
# shadow the `hooks` package: take it off. The child gets the tree it measures, then its
# bench folder (for `append` and `agents`), on PYTHONPATH.
if sys.path and Path(sys.path[0]).resolve() == HERE:
    del sys.path[0]
WORKLOADS = (
    "append-1",
    "floor-1",
    "append-64",
    "batch-100",
    "floor-100",
    "batch-1000",
    "floor-1000",
    "step",
    "respond",
    "rebuild",
    "travel",
    "travel-graph",
    "travel-fleet",
    "travel-runs",
)
UNITS = {
    "step": "step",
    "respond": "request",
    "batch-100": "event",
    "batch-1000": "event",
    "floor-100": "event",
    "floor-1000": "event",
    "rebuild": "event",
    "travel": "position",
    "travel-graph": "position",
    "travel-fleet": "position",
    "travel-runs": "position",
}


# -- in the child, under callgrind ---------------------------------------------------------


def _count(on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
        capture_output=True,
        check=False,
    )


async def _measured(part: Callable[[], Awaitable[int]]) -> int:
    """Run `part` with counting on; its number of units."""
    await asyncio.to_thread(_count, True)
    try:
        return await part()
    finally:
        await asyncio.to_thread(_count, False)


async def _appends(path: Path, concurrency: int, per: int) -> int:
    from append import make_event  # bench/append.py of the tree measured

    from events import open_store

    warm = 5
    events = [[make_event(i, a) for i in range(per + warm)] for a in range(concurrency)]
    async with open_store(path) as store:

        async def appender(a: int, versions: range) -> None:
            for version in versions:
                await store.append(f"agent-{a}", [events[a][version]], expected_version=version)

        async def run(versions: range) -> int:
            async with asyncio.TaskGroup() as tg:
                for a in range(concurrency):
                    tg.create_task(appender(a, versions))
            return concurrency * len(versions)

        await run(range(warm))
        return await _measured(lambda: run(range(warm, warm + per)))


async def _batches(path: Path, size: int, count: int) -> int:
    from append import make_event

    from events import open_store

    batches = [[make_event(i, b) for i in range(size)] for b in range(count + 2)]
    async with open_store(path) as store:
        for b in range(2):
            await store.append(f"agent-{b}", batches[b], expected_version=0)

        async def run() -> int:
            for b in range(2, count + 2):
                await store.append(f"agent-{b}", batches[b], expected_version=0)
            return size * count

        return await _measured(run)


async def _floor(path: Path, size: int, count: int) -> int:
    """`bench/append.py`'s raw loop through aiosqlite: `count` transactions of `size` rows
    (one: a single awaited INSERT, autocommit), the rows encoded before counting."""
    import aiosqlite

    # Only what every commit's bench/append.py has: `--base` runs this file on older trees.
    from append import RAW_INSERT, aio_prepare, raw_payload

    warm = 2
    batches = [
        [(f"agent-{b}", v, "ToolCallCompleted", raw_payload(v, b)) for v in range(1, size + 1)]
        for b in range(count + warm)
    ]
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await aio_prepare(conn)

        async def run(part: list[list[tuple[str, int, str, str]]]) -> int:
            for batch in part:
                if size == 1:
                    await conn.execute(RAW_INSERT, batch[0])
                else:
                    await conn.execute("BEGIN IMMEDIATE")
                    await conn.executemany(RAW_INSERT, batch)
                    await conn.execute("COMMIT")
            return size * len(part)

        await run(batches[:warm])
        return await _measured(lambda: run(batches[warm:]))


async def _steps(tmp: Path, scouts: int, *, respond_only: bool = False) -> int:
    import agents as bench  # bench/agents.py of the tree measured

    from events import SQLiteEventStore
    from runtime import ModelClient, prepare_workspace

    repos = tmp / "repos"
    with bench.SimulatorProcess() as url:
        async with (
            SQLiteEventStore(tmp / "fleet.db") as store,
            ModelClient.from_env(simulator_base_url=url, env={}) as client,
        ):
            await bench.sequential(store, client, repos, "warm", 2, None)
            if respond_only:
                # the warm-up scouts' requests, as bench/agents.py's baseline sends them
                requests = await bench.recorded(store, "warm")
                return await _measured(lambda: _respond_only(bench, client, requests))
            workspace = await prepare_workspace(repos / "measured")
            agents = await bench._agents(store, client, workspace, "measured", scouts, None)

            async def run() -> int:
                for agent in agents:
                    await agent.run_until_idle()
                return sum(agent.stats.steps for agent in agents)

            return await _measured(run)


async def _respond_only(bench: Any, client: Any, requests: Any) -> int:
    """`bench/agents.py`'s own baseline: `requests` sent one after another through
    `ModelClient.respond`, `rounds(1)` times; the number of requests sent."""
    await bench.baseline(client, requests)
    return int(bench.rounds(1)) * len(requests.conversations)


async def _rebuild(path: Path, events: int) -> int:
    from events import SQLiteEventStore

    bench = await _runs_log(path, events)
    async with SQLiteEventStore(path) as store:
        head = await store.head()

        async def run() -> int:
            *_, runner = await bench.rebuild_seconds(store)
            await runner.aclose(checkpoint=False)
            return head

        return await _measured(run)


async def _travel(path: Path, events: int, name: str) -> int:
    from events import SQLiteEventStore
    from projections import default_projections
    from projections._checkpoints import Snapshots
    from projections._folding import Slot, fold

    await _runs_log(path, events)
    async with SQLiteEventStore(path) as store:
        head = await store.head()
        start = head - 5_000
        projection = next(p for p in default_projections() if p.name == name)
        slot = Slot(projection, projection.initial())
        await fold(store, [slot], start, Snapshots(0, 1), quiet=True)  # the snapshot's state

        async def run() -> int:
            await fold(store, [slot], head, Snapshots(0, 1), quiet=True)
            return head - start

        return await _measured(run)


async def _runs_log(path: Path, events: int) -> Any:
    """A log of `events` written at `path` (uncounted) as `bench/projections.py --shape
    runs` writes it, by that file of the tree measured (loaded by path: its name is the
    package's); that module."""
    from events import SQLiteEventStore

    spec = importlib.util.spec_from_file_location("bench_projections", _bench("projections.py"))
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    async with SQLiteEventStore(path) as store:
        await bench.append_until(store, bench.RunsOfAgents(random.Random(7)), events)
    return bench


def _bench(name: str) -> Path:
    """A file of the bench folder on PYTHONPATH (the tree measured)."""
    return next(Path(p) / name for p in sys.path if (Path(p) / name).exists())


def child(workload: str, units_file: Path) -> None:
    """Run one workload (this process is under callgrind); write its number of units."""

    async def main() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "fleet.db"
            match workload:
                case "append-1":
                    return await _appends(path, 1, 500)
                case "floor-1":
                    return await _floor(path, 1, 500)
                case "floor-100":
                    return await _floor(path, 100, 30)
                case "floor-1000":
                    return await _floor(path, 1_000, 6)
                case "append-64":
                    return await _appends(path, 64, 40)
                case "batch-100":
                    return await _batches(path, 100, 30)
                case "batch-1000":
                    return await _batches(path, 1_000, 6)
                case "step":
                    return await _steps(Path(tmp), 10)
                case "respond":
                    return await _steps(Path(tmp), 10, respond_only=True)
                case "rebuild":
                    return await _rebuild(path, 50_000)
                case "travel":
                    return await _travel(path, 20_000, "agents")
                case "travel-graph" | "travel-fleet" | "travel-runs":
                    return await _travel(path, 20_000, workload.removeprefix("travel-"))
            raise ValueError(f"unknown workload {workload!r}")

    units_file.write_text(str(asyncio.run(main())))


# -- in the parent -------------------------------------------------------------------------


def count(tree: Path, workload: str) -> tuple[int, int]:
    """(event loop's thread, other threads) instructions per unit of `workload` in `tree`."""
    with tempfile.TemporaryDirectory() as tmp:
        out, units = Path(tmp) / "cg.out", Path(tmp) / "units"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "bench")])}
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(tree / "bench" / "instructions.py"),
                "--child",
                workload,
                str(units),
            ],
            env=env,
            cwd=tree,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode != 0 or not units.exists():
            # valgrind's own lines start with ==pid==; the rest is the workload's error
            said = [line for line in done.stderr.splitlines() if not line.startswith("==")]
            sys.exit(f"{workload} failed in {tree}:\n" + "\n".join(said[-15:]))
        n = int(units.read_text())
        totals = {}
        for part in Path(tmp).glob("cg.out-*"):  # one file per thread: cg.out-01, -02, ...
            for line in part.read_text().splitlines():
                if line.startswith("totals:"):
                    totals[int(part.name.rsplit("-", 1)[1])] = int(line.split()[1])
    loop = totals.pop(1, 0)  # thread 1: the main thread, which runs the event loop
    return loop // n, sum(totals.values()) // n


def _unpacked(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", rev], cwd=HERE.parent, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    # The base's own bench may predate this file, or write other logs: measure it with
    # this one, on the logs this checkout's bench/projections.py writes.
    for name in ("instructions.py", "projections.py"):
        shutil.copy(HERE / name, into / "bench" / name)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a commit to measure beside this checkout")
    parser.add_argument("--only", help=f"comma-separated workloads, of {', '.join(WORKLOADS)}")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    workloads = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        sys.exit(f"unknown workloads: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this checkout": HERE.parent}
        if args.base:
            trees[args.base] = _unpacked(args.base, Path(tmp))
        print("callgrind, instructions per unit (user space; event loop's thread + others)")
        header = "| workload | unit | " + " | ".join(
            f"{name}: loop + others = all" for name in trees
        )
        print(header + (" | this ÷ base |" if args.base else " |"))
        print("|" + "---|" * (2 + len(trees) + bool(args.base)))
        for workload in workloads:
            cells, alls = [], []
            for tree in trees.values():
                loop, others = count(tree, workload)
                cells.append(f"{loop:,} + {others:,} = {loop + others:,}")
                alls.append(loop + others)
            ratio = f" | {alls[0] / alls[1]:.3f} |" if args.base else " |"
            unit = UNITS.get(workload, "append")
            print(f"| {workload} | {unit} | " + " | ".join(cells) + ratio, flush=True)


if __name__ == "__main__":
    main()
