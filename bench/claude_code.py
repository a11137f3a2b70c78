"""The claude-code engine beside fleet's own loop: start time and overhead per step, in one run.

Run from the repository root (needs `fleet[claude-code]`)::

    .venv/bin/python bench/claude_code.py              # 5 agents of each engine, alternating
    .venv/bin/python bench/claude_code.py --agents 2

Workload: the same scout on the sample repository (rename `count_words`,
write the findings): 4 model responses and 6 tool calls per agent, against
the offline simulator on loopback, one agent at a time, the two engines
alternating so that the machine's load falls on both alike. Each agent gets a
fresh copy of the repository and a fresh log.

Figures (medians over the agents of each engine):
- start: `create_agent(..., task)` until the first ModelResponded is in the
  log. For claude-code that is the SDK starting Claude Code (its bundled CLI),
  Claude Code's own start-up and the first request; for fleet, the first request.
- per step: from the first ModelResponded to AgentCompleted, divided by the
  steps after the first (each step: the tools of one answer and the next model
  call). The difference between the engines is Claude Code's overhead per step
  (its own loop, the SDK's control protocol, hook callbacks, fleet's mapping).
- total: create until AgentCompleted, and the ratio claude-code / fleet.

The machine has 2 cores and other work may be running: the figures are
indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The repository's packages before this folder's scripts (bench/hooks.py is not `hooks`).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events import EventFilter
from runtime import RuntimeOptions, open_runtime, prepare_workspace

TASK = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."


async def one(engine: str, folder: Path) -> dict[str, float]:
    """One scout on `engine`: seconds to its first step, per later step, in all."""
    workspace = await prepare_workspace(folder / "repo")
    options = RuntimeOptions(db=folder / "fleet.db", workspace=workspace, env={})
    async with open_runtime(options) as rt:
        where = EventFilter.of(types=["ModelResponded", "AgentCompleted", "AgentFailed"])
        subscription = rt.store.subscribe(after=await rt.store.head(), where=where)
        began = time.perf_counter()
        await rt.fleet.create_agent("scout", "scout", TASK, engine=engine)  # type: ignore[arg-type]
        first = None
        steps = 0
        async with asyncio.timeout(300):
            async for event in subscription:
                now = time.perf_counter()
                if event.type == "ModelResponded":
                    steps += 1
                    first = first or now
                elif event.type == "AgentCompleted":
                    break
                else:
                    raise RuntimeError(f"the {engine} scout failed: {event.data}")
        await subscription.aclose()  # type: ignore[attr-defined]
        assert first is not None
        assert steps > 1
        return {
            "start": first - began,
            "step": (now - first) / (steps - 1),
            "total": now - began,
            "steps": steps,
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=5, help="agents of each engine")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"fleet": [], "claude-code": []}
    with tempfile.TemporaryDirectory() as tmp:
        await one("claude-code", Path(tmp) / "warm")  # the binary's first start reads it in
        for i in range(args.agents):
            for engine in runs:
                runs[engine].append(await one(engine, Path(tmp) / f"{engine}-{i}"))

    def median(engine: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[engine])

    steps = runs["fleet"][0]["steps"]
    print(f"scout: {steps:.0f} model responses, 6 tool calls; {args.agents} agents per engine")
    print(f"{'median':<10}{'fleet':>12}{'claude-code':>14}{'ratio':>9}")
    for key, label in (("start", "start"), ("step", "per step"), ("total", "total")):
        fleet, cc = median("fleet", key), median("claude-code", key)
        print(f"{label:<10}{fleet * 1000:>10.0f}ms{cc * 1000:>12.0f}ms{cc / fleet:>8.1f}x")
    overhead = median("claude-code", "step") - median("fleet", "step")
    print(f"claude-code's overhead per step: {overhead * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
