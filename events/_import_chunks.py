"""An imported run taken chunk by chunk: what every backend's `import_run` shares.

A run of any size is imported with a bounded part of it in memory: the
events are taken from their iterable (which may read a spool file,
`events.import_stream`) a chunk at a time, on a worker thread, and each
chunk is numbered after the log's head as it comes (`Remap`): new positions
in the run's order, and causes that name an earlier event of the run moved
to its new position (8 bytes an event are kept to find them).
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections.abc import Iterator

from ._store import ImportedEvent

__all__ = ["CHUNK", "CHUNK_CHARS", "Remap", "take_chunk"]

CHUNK = 2_000  # events taken from the iterable at once ...
CHUNK_CHARS = 4 * 1024 * 1024  # ... or fewer, once their data holds this many characters


def take_chunk(iterator: Iterator[ImportedEvent]) -> list[ImportedEvent]:
    """The next chunk of `iterator` (empty at its end); call it on a worker thread."""
    chunk: list[ImportedEvent] = []
    chars = 0
    for event in itertools.islice(iterator, CHUNK):
        chunk.append(event)
        chars += len(event.data)
        if chars >= CHUNK_CHARS:
            break
    return chunk


class Remap:
    """New positions after `head`, and causes remapped, chunk after chunk."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.old = array("q")  # the old positions so far, increasing: 8 bytes an event

    @property
    def last(self) -> int:
        """The new position of the last event placed (the head when none was)."""
        return self.head + len(self.old)

    def place(self, event: ImportedEvent) -> int:
        """`event`'s new position (events are placed in the run's order)."""
        self.old.append(event.position)
        return self.head + len(self.old)

    def cause(self, position: int | None) -> int | None:
        """The new position of the event at old `position`, if it is one of the run's placed
        so far (a cause comes before its effect: `parse_export` checks)."""
        if position is None:
            return None
        index = bisect.bisect_left(self.old, position)
        if index < len(self.old) and self.old[index] == position:
            return self.head + index + 1
        return None
