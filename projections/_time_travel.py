"""The runner's time travel: its snapshots, kept, persisted, made behind long folds, folded from.

`ProjectionRunner` owns one `TimeTravel` over its slots. The snapshots'
bookkeeping is `Snapshots` (`_checkpoints.py`); this class writes them to the
log's checkpoint store, restores where they are on start, takes one on the
live fold every `spacing` positions, has a background fold make those a
long fold left out (`_backfill.py`), and answers `state_at` from the nearest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from events import EventStore, Snapshot, StoreClosed, gc_paused

from ._backfill import backfill, needs_backfill, snapshot_data
from ._checkpoints import Snapshots, copy_state
from ._folding import Slot, fold

__all__ = ["TimeTravel", "cancel_and_wait"]

logger = logging.getLogger(__name__)


class TimeTravel:
    """Snapshots of the slots `slots` (the runner's, by name), every `every` positions."""

    def __init__(
        self,
        store: EventStore,
        slots: Mapping[str, Slot],
        *,
        every: int,
        limit: int,
        behind: int,
    ) -> None:
        self.snapshots = Snapshots(every, limit)
        self._store = store
        self._checkpoints = store.checkpoints
        self._slots = slots
        self._behind = behind
        self._lock = asyncio.Lock()
        self._backfill: asyncio.Task[None] | None = None

    async def restore(self) -> None:
        """Know of the snapshots persisted by earlier runs (`_checkpoints.py`, note 2)."""
        if not self.snapshots.every:
            return
        for slot in self._slots.values():
            positions = await self._checkpoints.snapshot_positions(
                slot.name, slot.projection.version
            )
            self.snapshots.restore(slot.name, positions)

    def inline(self, slots: Iterable[Slot], until: int) -> set[str]:
        """The slots whose fold to `until` takes its snapshots as it goes: all but those
        folding more than `behind` events from 0, whose snapshots a backfill makes."""
        return {s.name for s in slots if s.position > 0 or until <= self._behind}

    def take(self, slot: Slot) -> None:
        """On the live fold: a snapshot of `slot` if its position is due one."""
        spacing = self.snapshots.spacing(slot.name)
        if spacing and slot.position % spacing == 0:
            blob = Snapshots.pack(slot.projection.dump(slot.state))
            self.snapshots.add(slot.name, slot.position, blob)

    async def persist(self) -> None:
        """Write the new snapshots and delete the obsolete ones (a cache: errors are logged).

        One batch at a time, in the order they were taken: a rebuild's
        "delete them all" must land before the snapshots it makes next.
        """
        async with self._lock:
            changes = self.snapshots.changes()
            if not changes or self._store.readonly:
                return  # read-only: the blobs stay in memory
            checkpoints = self._checkpoints
            try:
                for name in changes.cleared:
                    await checkpoints.delete_snapshots(name)
                for name, positions in changes.dropped.items():
                    await checkpoints.delete_snapshots(name, positions=positions)
                new = [
                    Snapshot(name, self._slots[name].projection.version, position, blob)
                    for name, blobs in changes.new.items()
                    if name in self._slots
                    for position, blob in blobs.items()
                ]
                if new:
                    await checkpoints.save_snapshots(new)
            except StoreClosed:
                raise
            except Exception:
                logger.exception(
                    "could not persist projection snapshots (time travel folds longer)"
                )
                return
            self.snapshots.persisted(changes)

    def start_backfill(self, until: int) -> None:
        """Make, in the background, the snapshots the slots lack up to `until`."""
        slots = list(self._slots.values())
        if self._backfill is not None or not needs_backfill(self.snapshots, slots, until):
            return
        self._backfill = asyncio.create_task(
            backfill(self._store, self._checkpoints, slots, self.snapshots, until, self.persist),
            name="fleet-projections-snapshots",
        )
        self._backfill.add_done_callback(self._backfill_done)

    async def stop_backfill(self) -> None:
        """Cancel a running backfill and wait for it to end."""
        task, self._backfill = self._backfill, None
        if task is not None:
            await cancel_and_wait(task)

    async def made(self) -> None:
        """Return once a running backfill has ended; its errors are logged, not raised."""
        while self._backfill is not None and not self._backfill.done():
            await asyncio.wait({self._backfill})

    def _backfill_done(self, task: asyncio.Task[None]) -> None:
        if task is self._backfill:
            self._backfill = None
        if not task.cancelled() and task.exception() is not None:
            logger.error("time-travel snapshots not made", exc_info=task.exception())

    async def state_at(self, slot: Slot, position: int) -> Any:
        """The state of `slot`'s projection as of `position`, folded from the nearest
        snapshot, or from the live state when that is nearer. Raises `ProjectionFailed`."""
        name, projection = slot.name, slot.projection
        # The live state is the nearest start when it is at or before `position`.
        live_first = slot.failed is None and slot.position <= position
        nearest = self.snapshots.best(name, position)
        found = None
        if nearest is not None and not (live_first and nearest[0] < slot.position):
            found = await snapshot_data(
                self._checkpoints, self.snapshots, name, projection.version, position
            )
        start, data = (0, None) if found is None else found
        with gc_paused(long_lived=True):  # loading a large state makes many objects, no cycles
            if found is None and live_first:
                # Copied here, on the loop, so the copy is of one consistent state.
                start, data = slot.position, copy_state(projection.dump(slot.state))
            state = projection.initial() if data is None else projection.load(data)
        past = Slot(projection, state, start)
        # A query takes no snapshots on its way: packing a large state would
        # cost it more than its fold (rebuilds and the live fold take them).
        await fold(self._store, [past], position, Snapshots(0, 1), quiet=True)
        if past.failed is not None:
            raise past.failed
        return past.state


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end.

    Cancels again while it runs: on Python 3.11, an `asyncio.wait_for` inside
    the task (the store's subscription polls with one) swallows a cancellation
    that lands as its inner wait completes, and the task would go on forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("background task %s ended with %r", task.get_name(), task.exception())
