"""Instructions a rebuild spends an event, part by part, counted by callgrind.

Run from the repository root::

    .venv/bin/python bench/rebuild_parts.py                 # the first 50,000 events
    .venv/bin/python bench/rebuild_parts.py --events 20000 --log /tmp/other.db

The log is `bench/projections.py --shape runs`'s (250,000 events, under
/tmp/fleet-bench-projections; written first if missing). Its rows are read
with bare `sqlite3` in pages of the runner's size, uncounted; then, on the
one thread, each part is counted on its own (callgrind, `--instr-atstart=no`,
switched on and off around it and dumped): `decode`, the rows to undecoded
events (`RowDecoder`); `load`, the data of the types some read model reads
validated by their models (`load_data`, as `fold_page` does); `fold5`, the
five read models folded over those pages (their gates' small models
included); then each read model alone over pages decoded and loaded afresh.
The read itself (aiosqlite's thread, the GIL's hand-overs) is not here:
`bench/instructions.py --only rebuild` counts the whole. Needs valgrind.
Nothing here is a test.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from contextlib import closing
from itertools import compress
from operator import attrgetter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    del sys.path[0]  # bench/projections.py would shadow the package

LOG = Path("/tmp/fleet-bench-projections/runs-v2-250000.db")
NAMES = ("agents", "fleet", "graph", "board", "runs")


def _control(*args: str) -> None:
    # From another thread, as bench/instructions.py does: the main thread is counted.
    def run() -> None:
        subprocess.run(["callgrind_control", *args, str(os.getpid())], capture_output=True)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()


def _counted(label: str, part: Callable[[], Any]) -> None:
    _control("-z")
    _control("-i", "on")
    part()
    _control("-i", "off")
    _control("-d", label)


def child(log: Path, events: int) -> None:
    """Count each part (this process is under callgrind)."""
    from events import load_data
    from events._decoding import RowDecoder
    from events.sqlite._rows import SELECT_COLUMNS
    from projections import default_projections
    from projections._checkpoints import Snapshots
    from projections._folding import PAGE, Slot, fold_page

    with closing(sqlite3.connect(log)) as conn:
        rows = conn.execute(
            f"SELECT {SELECT_COLUMNS} FROM events WHERE position <= ? ORDER BY position",
            (events,),
        ).fetchall()
    pages = [rows[i : i + PAGE] for i in range(0, len(rows), PAGE)]
    decoder = RowDecoder()
    type_of = attrgetter("type")
    reads = frozenset().union(*(Slot(p, None).read_names or () for p in default_projections()))

    def decode() -> list[Any]:
        return [decoder.decode_all(page, lenient=True) for page in pages]

    def loaded() -> list[Any]:
        decoded = decode()
        for page in decoded:
            load_data(compress(page, map(reads.__contains__, map(type_of, page))))
        return decoded

    def folding(names: tuple[str, ...], decoded: list[Any]) -> Callable[[], None]:
        slots = [Slot(p, p.initial()) for p in default_projections() if p.name in names]
        snapshots = Snapshots(5000, 512)

        def run() -> None:
            for page in decoded:
                fold_page(page, slots, snapshots, {}, True)

        return run

    gc.disable()  # the rebuild pauses it per page; here no collection lands in a part
    _counted("noop", lambda: None)
    _counted("decode", decode)
    decoded = decode()
    _counted(
        "load",
        lambda: [load_data(compress(p, map(reads.__contains__, map(type_of, p)))) for p in decoded],
    )
    _counted("fold5", folding(NAMES, decoded))
    for name in NAMES:
        _counted(f"fold-{name}", folding((name,), loaded()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--log", type=Path, default=LOG)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.log, args.events)
        return
    if not args.log.exists():
        subprocess.run(
            [sys.executable, str(HERE / "projections.py"), "--events", "250000", "--shape", "runs"],
            check=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                "--events",
                str(args.events),
                "--log",
                str(args.log),
            ],
            check=True,
            capture_output=True,
        )
        counts: dict[str, int] = {}
        for dump in sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:])):
            text = dump.read_text()
            label = next(
                ln.split()[-1] for ln in text.splitlines() if ln.startswith("desc: Trigger")
            )
            counts[label] = int(
                next(ln.split()[1] for ln in text.splitlines() if ln.startswith("totals:"))
            )
    noop = counts.pop("noop")
    print(f"instructions an event, first {args.events:,} events of {args.log}:")
    for label, total in counts.items():
        print(f"  {label:14} {(total - noop) / args.events:9,.0f}")


if __name__ == "__main__":
    main()
