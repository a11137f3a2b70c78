"""What a lean read saves: validating an event's stored JSON whole, or just the fields
the read models read.

Run from the repository root::

    .venv/bin/python bench/lean.py                  # the first 250,000 events
    .venv/bin/python bench/lean.py --log /tmp/other.db --events 50000

The log is `bench/projections.py --shape runs`'s (250,000 events, under
/tmp/fleet-bench-projections; run that first). For each event type some
built-in read model reads lean (`lean`, `projections/_lean.py`), the stored
JSON of its events is validated in pages of the fold's size, the collector
paused as a fold pauses it, best of five: by the whole model (what a fold
did when two read models read the type), by each read model's lean model,
and by the union of their fields (what a fold of all of them does now, once
an event). Microseconds an event, and the union's ratio to the whole.
Nothing here is a test.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    del sys.path[0]  # bench/projections.py would shadow the package

LOG = Path("/tmp/fleet-bench-projections/runs-v2-250000.db")


def per_event(validate: Callable[[str], Any], texts: list[str], page: int) -> float:
    """Seconds an event to validate `texts`, a page at a time, best of five."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for i in range(0, len(texts), page):
            kept = [validate(text) for text in texts[i : i + page]]  # a page lives, as in a fold
        del kept
        best = min(best, time.perf_counter() - started)
    return best / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=250_000)
    parser.add_argument("--log", type=Path, default=LOG)
    args = parser.parse_args()
    if not args.log.exists():
        sys.exit(f"no log at {args.log}: run bench/projections.py --shape runs first")

    from events import EVENT_TYPES
    from projections import default_projections
    from projections._folding import PAGE
    from projections._lean import Lean, union

    readers: dict[str, list[tuple[str, Lean]]] = {}
    for projection in default_projections():
        for lean in getattr(projection, "lean", ()):
            readers.setdefault(lean.type_name, []).append((projection.name, lean))
    with closing(sqlite3.connect(args.log)) as conn:
        rows = conn.execute(
            "SELECT type, data FROM events WHERE position <= ? ORDER BY position", (args.events,)
        ).fetchall()
    print(f"{len(rows):,} events of {args.log.name}; validation, µs an event (best of 5):")
    gc.disable()
    for name, leans in sorted(readers.items()):
        texts = [data for type_, data in rows if type_ == name]
        whole = per_event(EVENT_TYPES[name].__pydantic_validator__.validate_json, texts, PAGE)
        line = f"  {name} ({len(texts):,}, {sum(map(len, texts)) / len(texts):,.0f} bytes): "
        line += f"whole {whole * 1e6:.2f}"
        for reader, lean in leans:
            line += f", {reader}'s {len(lean.fields)} fields {per_event(lean.validate_json, texts, PAGE) * 1e6:.2f}"
        if len(leans) > 1:
            shared = per_event(union(lean for _, lean in leans).validate_json, texts, PAGE)
            line += f", their union {shared * 1e6:.2f} ({shared / whole:.2f} of whole)"
        print(line)


if __name__ == "__main__":
    main()
