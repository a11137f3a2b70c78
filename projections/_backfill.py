"""Time-travel snapshots made behind a long fold, while the runner already serves.

A fold from position 0 of a long log takes no snapshots (`_checkpoints.py`,
note 4): each is a copy of the whole state, and taking them as it goes made
the rebuild of a million events twice as slow. `backfill` takes them
afterwards: for every projection whose snapshots have a gap (`first_gap`), a
fold of its own copy of the state, from the snapshot before the gap (or 0)
up to `until`, taking the snapshots on its way, as a time-travel query folds
a past state. The live states are not touched; the fold awaits between
pages, so the runner serves meanwhile, and a time-travel query before it ends
folds from the nearest snapshot there is.

Notes (do not fix without reading this):
1. Starting at the last snapshot before the gap, not at 0, makes a backfill cut
   short (the server stopped) resume where it was on the next start.
2. A snapshot that does not load is a missing one: the backfill starts from 0
   for that projection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from events import CheckpointStore, EventStore, gc_paused

from ._checkpoints import Snapshots, SnapshotUnreadable
from ._folding import Slot, fold

__all__ = ["backfill", "needs_backfill", "snapshot_data"]

logger = logging.getLogger(__name__)


def needs_backfill(snapshots: Snapshots, slots: Sequence[Slot], until: int) -> bool:
    """Whether any working slot lacks a snapshot a fold from 0 to `until` would take."""
    return any(
        slot.failed is None and snapshots.first_gap(slot.name, until) is not None for slot in slots
    )


async def backfill(
    store: EventStore,
    checkpoints: CheckpointStore,
    live: Sequence[Slot],
    snapshots: Snapshots,
    until: int,
    persist: Callable[[], Awaitable[None]],
) -> None:
    """Take the snapshots the slots `live` lack up to `until`, folding copies of their states.

    Errors are logged, not raised: snapshots are a cache.
    """
    slots: list[Slot] = []
    for slot in live:
        if slot.failed is not None:
            continue
        start = snapshots.first_gap(slot.name, until)
        if start is None:
            continue
        slots.append(await _slot_at(checkpoints, snapshots, slot, start))
    if not slots:
        return
    logger.info(
        "making time-travel snapshots up to position %d: %s",
        until,
        ", ".join(f"{slot.name} from {slot.position}" for slot in slots),
    )
    await fold(store, slots, until, snapshots, quiet=True, persist=persist)
    await persist()
    for slot in slots:
        if slot.failed is not None:
            logger.warning("time-travel snapshots of %r stop at %d", slot.name, slot.position)
    logger.info("time-travel snapshots made up to position %d", until)


async def snapshot_data(
    checkpoints: CheckpointStore, snapshots: Snapshots, name: str, version: int, position: int
) -> tuple[int, Any] | None:
    """The latest snapshot of `name` at or before `position`, from memory or the checkpoint
    store, unpacked: `(its position, the dumped state)`; None when there is none, or it
    does not load (logged: a cache, fold without it)."""
    found = snapshots.best(name, position)
    if found is None:
        return None
    at, blob = found
    if blob is None:  # persisted only (`_checkpoints.py`, note 2)
        stored = await checkpoints.best_snapshot(name, version, at)
        if stored is None:
            return None
        at, blob = stored.position, stored.blob
    try:
        # On a thread, read a frame at a time (`_checkpoints._Frames`): unpickling a large
        # state takes tens of ms, and the loop gets its turns between two frames.
        return at, await asyncio.to_thread(_unpack, blob)
    except SnapshotUnreadable as e:
        logger.warning("snapshot of %r at %d skipped: %s", name, at, e)
        return None


def _unpack(blob: bytes) -> Any:
    with gc_paused(long_lived=True):  # loading a large state makes many objects, no cycles
        return Snapshots.unpack(blob)


async def _slot_at(
    checkpoints: CheckpointStore, snapshots: Snapshots, live: Slot, start: int
) -> Slot:
    """A copy of `live`'s projection at the snapshot at `start` (the initial state at 0)."""
    projection = live.projection
    if start > 0:
        found = await snapshot_data(checkpoints, snapshots, live.name, projection.version, start)
        if found is not None:
            with gc_paused(long_lived=True):
                return Slot(projection, projection.load(found[1]), found[0])
    return Slot(projection, projection.initial(), 0)
