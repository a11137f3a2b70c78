"""CPU time per event of the event store's paths: steadier than wall time on a shared machine.

Run from the repository root::

    .venv/bin/python bench/store_cpu.py               # SQLite files in a temporary folder
    .venv/bin/python bench/store_cpu.py --memory      # the in-memory backend
    PYTHONPATH=/tmp/base .venv/bin/python bench/store_cpu.py   # another checkout, to compare

Wall-clock figures (`bench/append.py`) swing twofold when other work shares
the two cores, and an fsync waits on the disk, not the CPU. This prints the
process's CPU time (every thread) per event for each path the store offers,
median of `--rounds` rounds, each on fresh logs: single appends, 64 concurrent
appenders, batches of 1,000, reading every event decoded, exporting a run,
importing it (checks and the transaction), and a rebuild of the five read
models. To compare two versions, run it once against each (a `git archive`
of the other commit on `PYTHONPATH`), alternating, and compare the medians.

Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path: take it off so
# `events` is the package (of this checkout or of PYTHONPATH), not a sibling.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import events
from events import (
    AgentCreated,
    Meta,
    NewEvent,
    RunStarted,
    ToolCallCompleted,
    export_lines,
    import_run,
    parse_export,
)
from projections import ProjectionRunner

AGENTS = 7


def opener(memory: bool, folder: Path) -> Callable[[str], Any]:
    """Opens a store on a fresh log named `name` (older checkouts have no `open_store`)."""
    open_store = getattr(events, "open_store", None)

    def open_log(name: str) -> Any:
        if memory:
            return open_store("memory:")  # type: ignore[misc]
        if open_store is None:
            return events.SQLiteEventStore(folder / f"{name}.db")
        return open_store(folder / f"{name}.db")

    return open_log


def tool(i: int, agent: str) -> NewEvent:
    return NewEvent(
        ToolCallCompleted(agent_id=agent, tool_use_id=f"t{i}", name="read", result="x" * 300),
        Meta(run_id="r", agent_id=agent),
    )


def per_event(started: float, count: int) -> float:
    return (time.process_time() - started) / count * 1e6


async def one_round(open_log: Callable[[str], Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    async with open_log("single") as store:
        t = time.process_time()
        for i in range(1_500):
            await store.append("agent-a", [tool(i, "a")])
        out["append 1 event"] = per_event(t, 1_500)

    async with open_log("concurrent") as store:

        async def appender(k: int) -> None:
            for i in range(60):
                await store.append(f"agent-{k}", [tool(i, str(k))])

        t = time.process_time()
        await asyncio.gather(*(appender(k) for k in range(64)))
        out["append 1 event, 64 concurrent"] = per_event(t, 64 * 60)

    async with open_log("batches") as store:
        await store.append("run-r", [NewEvent(RunStarted(run_id="r", task="t"), Meta(run_id="r"))])
        for k in range(AGENTS):
            created = AgentCreated(agent_id=str(k), name=str(k), role="scout", model="m")
            await store.append(f"agent-{k}", [NewEvent(created, Meta(run_id="r", agent_id=str(k)))])
        t = time.process_time()
        for b in range(60):
            agent = str(b % AGENTS)
            await store.append(f"agent-{agent}", [tool(i, agent) for i in range(1_000)])
        out["append batches of 1,000"] = per_event(t, 60_000)

        t = time.process_time()
        count = 0
        async for _ in store.iter_all():
            count += 1
        out["read every event, decoded"] = per_event(t, count)

        t = time.process_time()
        lines = [line async for line in await export_lines(store, "r")]
        out["export a run"] = per_event(t, len(lines) - 2)

        t = time.process_time()
        runner = await ProjectionRunner(store).start()
        out["rebuild the five read models"] = per_event(t, count)
        await runner.aclose()

    async with open_log("imported") as target:
        t = time.process_time()
        result = await import_run(target, parse_export(b"".join(lines)))
        out["import a run (check + write)"] = per_event(t, result.events)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", action="store_true", help="the in-memory backend")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median)")
    args = parser.parse_args()
    rounds: list[dict[str, float]] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(asyncio.run(one_round(opener(args.memory, Path(tmp)))))
    backend = "in-memory" if args.memory else "SQLite"
    print(f"CPU µs per event, {backend}, median of {args.rounds} ({Path(events.__file__).parent})")
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        print(
            f"  {name:32} {statistics.median(values):8.1f}  ({min(values):.1f} to {max(values):.1f})"
        )


if __name__ == "__main__":
    main()
