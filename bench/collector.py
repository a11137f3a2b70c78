"""What the cyclic garbage collector costs a reader of a large log, against a base tree.

Run from the repository root::

    .venv/bin/python bench/collector.py                         # this tree alone
    .venv/bin/python bench/collector.py --base /tmp/base        # against another tree

`--base` is another checkout of fleet (say `git archive <commit> | tar -x -C
/tmp/base`): each measure runs in a fresh process per tree, the two trees
alternating, `--repeat` times; medians and the same-run ratio are printed.
The log is `bench/projections.py`'s (1M events by default: run that first).

Measures, each over the whole log:
- wire: read as wire JSON (`encode_event` of every event, the data never
  decoded), as the API's event pages, SSE catch-up and exports do;
- fleet fold: the fleet read model folded from position 0, as a start after a
  new version of it does: it counts every event and decodes the data of few;
and for each, the seconds the cyclic collector ran (`gc.callbacks`) and how
many collections. Nothing here is a test; the machine's noise is in the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG = Path("/tmp/fleet-bench-projections/runs-v2-1000000.db")
MEASURES = ("wire", "fleet fold")

CHILD = r"""
import asyncio, gc, json, sys, time
sys.path.insert(0, sys.argv[1])
from events import SQLiteEventStore, encode_event
from projections import FleetProjection
from projections._checkpoints import Snapshots
from projections._folding import Slot, fold

collector = {"s": 0.0, "n": 0}
started = []
def timed(phase, info):
    if phase == "start":
        started.append(time.perf_counter())
    else:
        collector["s"] += time.perf_counter() - started.pop()
        collector["n"] += 1
gc.callbacks.append(timed)

async def wire(store):
    position = 0
    while page := await store.read_all(after=position, limit=2000, lenient=True):
        position = page[-1].position
        for event in page:
            encode_event(event)

async def fleet_fold(store):
    slot = Slot(FleetProjection(), FleetProjection().initial())
    await fold(store, [slot], await store.head(), Snapshots(every=0, limit=1), quiet=True)

async def main(measure, log):
    async with SQLiteEventStore(log, readonly=True) as store:
        head = await store.head()
        run = wire if measure == "wire" else fleet_fold
        t = time.perf_counter()
        await run(store)
        seconds = time.perf_counter() - t
    print(json.dumps({"events": head, "s": seconds, "gc_s": collector["s"], "gc_n": collector["n"]}))

asyncio.run(main(sys.argv[2], sys.argv[3]))
"""


def measure(tree: Path, name: str, log: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), name, str(log)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=LOG)
    parser.add_argument("--base", type=Path, help="another fleet tree to compare against")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.log.exists():
        sys.exit(f"no log at {args.log}: run bench/projections.py --shape runs first")
    trees = {"this tree": ROOT} | ({"base": args.base} if args.base else {})
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.repeat):
        for name in MEASURES:
            for label in reversed(list(trees)):  # the base first, then this tree
                results.setdefault((label, name), []).append(measure(trees[label], name, args.log))
    events = next(iter(results.values()))[0]["events"]
    print(f"{args.log} ({events:,.0f} events), median of {args.repeat}, fresh process each")
    print(f"{'measure':<12} {'tree':<10} {'ev/s':>10} {'collector s':>12} {'collections':>12}")
    for name in MEASURES:
        for label in trees:
            runs = results[(label, name)]
            rate = statistics.median(events / r["s"] for r in runs)
            gc_s = statistics.median(r["gc_s"] for r in runs)
            gc_n = statistics.median(r["gc_n"] for r in runs)
            print(f"{name:<12} {label:<10} {rate:>10,.0f} {gc_s:>12.2f} {gc_n:>12.0f}")
        if args.base:
            ratios = [
                b["s"] / t["s"]
                for t, b in zip(results[("this tree", name)], results[("base", name)], strict=True)
            ]
            print(
                f"{name:<12} this tree ÷ base, same-run ratios: {', '.join(f'{r:.2f}x' for r in ratios)}"
            )


if __name__ == "__main__":
    main()
