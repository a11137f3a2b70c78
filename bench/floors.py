"""What an agent's step costs before any of the runtime's Python: its thread hops and commits.

Run from the repository root::

    .venv/bin/python bench/floors.py            # about half a minute
    .venv/bin/python bench/floors.py --quick

An agent's step does blocking work the event loop must not do: SQLite's
commits (aiosqlite's connection thread) and the file tools, the write
expectations and the transcript (`asyncio.to_thread`). Each is a round trip
to another thread, and on a small virtual machine a round trip costs CPU of
its own, whatever the work: both threads are woken, the GIL changes hands,
and a durable commit adds its `fdatasync`. This prints, measured in the
same run:

- the CPU (user + system, this process) of one round trip to a thread with
  nothing to do: `asyncio.to_thread` of a no-op, and an aiosqlite `SELECT 1`;
- the CPU of one durable commit through aiosqlite: a one-row INSERT in WAL
  mode with `synchronous=FULL` (the store's setting), in the folder the log
  would be in;
- the round trips one scout makes a step, counted (each call to aiosqlite's
  connection thread and each `asyncio.to_thread`, by what it runs), on the
  offline simulator as `bench/agents.py` runs it;
- their product: the CPU a step those round trips cost by themselves, the
  floor under the runtime's own overhead a step while commits stay durable
  and the event loop never blocks.

The counting wraps `asyncio.to_thread` and aiosqlite's `Connection._execute`
in this process only, to count calls; the unit costs are measured without
them. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import resource
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agents as bench  # bench/agents.py: its simulator process and scouts
import aiosqlite

from events import SQLiteEventStore
from runtime import ModelClient, prepare_workspace


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _per_call(n: int, call: Callable[[], Awaitable[Any]]) -> float:
    """CPU microseconds a call, over `n` calls one after another."""
    started = _cpu()
    for _ in range(n):
        await call()
    return (_cpu() - started) / n * 1e6


def _noop() -> None:
    return None


async def unit_costs(folder: Path, n: int, trials: int) -> dict[str, float]:
    """Median CPU (µs) of a thread hop, an aiosqlite hop and a durable commit."""
    hop, aio, commit = [], [], []
    async with aiosqlite.connect(folder / "floor.db", isolation_level=None) as conn:
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        row = ("x" * 300,)
        for _ in range(trials):
            hop.append(await _per_call(n, lambda: asyncio.to_thread(_noop)))
            aio.append(await _per_call(n, lambda: conn.execute("SELECT 1")))
            commit.append(
                await _per_call(n, lambda: conn.execute("INSERT INTO t (data) VALUES (?)", row))
            )
    return {
        "thread hop (asyncio.to_thread)": statistics.median(hop),
        "aiosqlite hop (SELECT 1)": statistics.median(aio),
        "durable commit (aiosqlite, FULL)": statistics.median(commit),
    }


async def hops_a_step(folder: Path, scouts: int) -> tuple[dict[str, float], int]:
    """Round trips a step of `scouts` scouts one after another, by what they run."""
    counts: collections.Counter[str] = collections.Counter()
    to_thread, execute = asyncio.to_thread, aiosqlite.Connection._execute

    async def counted_to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        counts[f"to_thread {getattr(func, '__qualname__', func)}"] += 1
        return await to_thread(func, *args, **kwargs)

    async def counted_execute(self: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
        counts[f"aiosqlite {getattr(fn, '__qualname__', fn)}"] += 1
        return await execute(self, fn, *args, **kw)  # type: ignore[no-untyped-call]

    with bench.SimulatorProcess() as url:
        async with (
            SQLiteEventStore(folder / "fleet.db") as store,
            ModelClient.from_env(simulator_base_url=url, env={}) as client,
        ):
            await bench.sequential(store, client, folder / "repos", "warm", 2, None)
            workspace = await prepare_workspace(folder / "repos" / "measured")
            agents = await bench._agents(store, client, workspace, "measured", scouts, None)
            asyncio.to_thread = counted_to_thread
            aiosqlite.Connection._execute = counted_execute  # type: ignore[method-assign]
            try:
                for agent in agents:
                    await agent.run_until_idle()
            finally:
                asyncio.to_thread = to_thread
                aiosqlite.Connection._execute = execute  # type: ignore[method-assign]
    steps = sum(agent.stats.steps for agent in agents)
    return {k: v / steps for k, v in counts.items()}, steps


def _cost_of(name: str, units: dict[str, float]) -> float:
    """The unit cost a counted round trip is charged: a commit, an aiosqlite or a thread hop."""
    if name == "aiosqlite Connection.execute":  # the store's writer: its INSERT and COMMIT
        return units["durable commit (aiosqlite, FULL)"]
    if name.startswith("aiosqlite"):
        return units["aiosqlite hop (SELECT 1)"]
    return units["thread hop (asyncio.to_thread)"]


async def main(quick: bool) -> None:
    n, trials, scouts = (500, 3, 5) if quick else (2_000, 5, 20)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        units = await unit_costs(folder, n, trials)
        per_step, steps = await hops_a_step(folder, scouts)
    print(f"CPU a round trip, this process (median of {trials} runs of {n:,}):")
    for name, us in units.items():
        print(f"  {name:36}{us:8.1f} µs")
    print(f"\nround trips a step ({scouts} scouts one after another, {steps} steps):")
    total = 0.0
    for name, count in sorted(per_step.items(), key=lambda kv: -kv[1]):
        cost = count * _cost_of(name, units)
        total += cost
        print(f"  {count:5.2f}  {name:44}{cost / 1000:6.3f} ms")
    print(f"  {sum(per_step.values()):5.2f}  {'in all':44}{total / 1000:6.3f} ms a step")
    print(
        "\n(aiosqlite Connection.execute is the store's writer, charged as a durable commit;\n"
        " the other aiosqlite calls are reads, charged as a hop; the rest are thread hops.)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and scouts")
    asyncio.run(main(parser.parse_args().quick))
