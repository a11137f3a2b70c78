"""The projection runner: folds the log into every read model, exactly once.

`async with ProjectionRunner(store) as runner:` loads each projection's
checkpoint from the log's checkpoint store (`store.checkpoints`), folds the
events after it up to the head, then follows `store.subscribe` in a background
task. Each projection has its own position (the last event folded into its
state); an event at or below it is a duplicate and is skipped. Checkpoints
are written every `checkpoint_every` events or `checkpoint_interval` seconds
and on close, never per event (they share the log's writer with the events).
On a store opened read-only, checkpoints are read but never written.

Notes (do not fix without reading this):
1. An event whose type this code does not know (`events.UnknownEvent`, a
   newer fleet wrote it) is logged as an error naming its position and
   skipped: every projection's position moves past it so the runner goes on.
2. A projection whose `apply` raises is stopped at the last position it
   applied (its half-applied state is never checkpointed) and every read of
   it raises `ProjectionFailed`; the other projections go on. `rebuild(name)`
   starts it afresh.
3. Bulk folds (catch-up at start, rebuild, time travel) go a page at a time
   (`_folding.py`). Rebuilds and time travel fold states nobody else holds;
   only the catch-up in `start()` folds the live states, before anyone can
   read them. The live fold applies one event at a time as the subscription
   delivers it, skipping the event classes a projection does not fold.
4. A fold from 0 of more than `snapshots_behind` events (first start on a log,
   a new projection version, `rebuild`) takes no time-travel snapshots; a
   background task makes them once the runner serves (`_backfill.py`), and
   so does every start that finds some missing (a backfill cut short).
   `snapshots_made()` waits for it.
5. A view is made with the cyclic garbage collector paused: a view makes many
   containers and no cycles, and the young collections its allocations set
   off walked them again and again beside a large state. The agents view at
   1M events (8,565 cards) took 537-673 ms with the collector on and 198-206
   ms with it paused (`BENCHMARKS.md`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self

from events import (
    Checkpoint,
    EventStore,
    RecordedEvent,
    StoreClosed,
    StoreUnavailable,
    UnknownEvent,
    gc_paused,
)

from ._agents import AgentsProjection
from ._base import Projection
from ._board import BoardProjection
from ._checkpoints import decode_state, encode_state
from ._fleet import FleetProjection
from ._folding import Slot, fold
from ._graph import GraphProjection
from ._runs import RunsProjection
from ._time_travel import TimeTravel, cancel_and_wait
from .errors import (
    InvalidPosition,
    ProjectionFailed,
    ProjectionTimeout,
    RunnerClosed,
    UnknownProjection,
)

__all__ = ["DEFAULT_PROJECTIONS", "ProjectionRunner", "default_projections"]

logger = logging.getLogger(__name__)


def default_projections() -> tuple[Projection[Any], ...]:
    """New instances of the built-in read models: agents, fleet, graph, board, runs."""
    return (
        AgentsProjection(),
        FleetProjection(),
        GraphProjection(),
        BoardProjection(),
        RunsProjection(),
    )


DEFAULT_PROJECTIONS: tuple[Projection[Any], ...] = default_projections()

"""The built-in read models (stateless objects: safe to share between runners)."""


class ProjectionRunner:
    """Keeps read models up to date with the log and answers them now or at any position."""

    def __init__(
        self,
        store: EventStore,
        projections: Sequence[Projection[Any]] | None = None,
        *,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 1.0,
        snapshot_every: int = 5_000,
        max_snapshots: int = 512,
        snapshots_behind: int = 50_000,
    ) -> None:
        """Args:
        checkpoint_every: write checkpoints after this many events...
        checkpoint_interval: ...or this many seconds after an event, whichever first.
        snapshot_every: keep a snapshot for time travel every this many positions
            (0: none), persisted in the checkpoint store; at most `max_snapshots`
            per projection (past that, every other one goes and the spacing doubles).
        snapshots_behind: a fold from position 0 of more events than this takes its
            snapshots afterwards, in the background (note 4).

        Raises `ValueError` for duplicate projection names or bad numbers.
        """
        chosen = DEFAULT_PROJECTIONS if projections is None else tuple(projections)
        names = [p.name for p in chosen]
        if len(set(names)) != len(names):
            raise ValueError(f"projection names must be unique, got {names}")
        if checkpoint_every < 1 or checkpoint_interval <= 0:
            raise ValueError("checkpoint_every must be >= 1 and checkpoint_interval > 0")
        if snapshot_every < 0 or max_snapshots < 1 or snapshots_behind < 0:
            raise ValueError(
                "snapshot_every and snapshots_behind must be >= 0 and max_snapshots >= 1"
            )
        self._store = store
        self._slots = {p.name: Slot(p, p.initial()) for p in chosen}
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._travel = TimeTravel(
            store,
            self._slots,
            every=snapshot_every,
            limit=max_snapshots,
            behind=snapshots_behind,
        )
        self._checkpoints = store.checkpoints
        self._checkpoint_lock = asyncio.Lock()
        self._since_checkpoint = 0
        self._checkpoints_failing = False
        self._advanced = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._stopped: RunnerClosed | None = None
        self._state = "new"

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> Self:
        """Load checkpoints, catch up to the log's head, then follow it in the background.

        Raises `events.StoreError` if the checkpoints cannot be read or written,
        `RunnerClosed` if the runner was already started or closed.
        """
        if self._state != "new":
            raise RunnerClosed(f"the projection runner is already {self._state}")
        self._state = "starting"
        try:
            await self._load_checkpoints()
            await self._travel.restore()
            head = await self._store.head()
            for slot in self._slots.values():
                if slot.position > head:
                    logger.warning(
                        "checkpoint of projection %r is at position %d, past the log's head %d "
                        "(another log?): rebuilding from position 0",
                        slot.name,
                        slot.position,
                        head,
                    )
                    slot.state, slot.position = slot.projection.initial(), 0
                    slot.dirty = True
                    self._travel.snapshots.clear(slot.name)
            await fold(
                self._store,
                list(self._slots.values()),
                head,
                self._travel.snapshots,
                quiet=False,
                persist=self._travel.persist,
                snapshot=self._travel.inline(self._slots.values(), head),
            )
            await self._checkpoint()
        except BaseException:
            self._state = "closed"
            raise
        self._follower = asyncio.create_task(self._follow(), name="fleet-projections-follow")
        self._flusher = asyncio.create_task(self._flush(), name="fleet-projections-flush")
        self._state = "open"
        self._travel.start_backfill(self.position)
        return self

    async def __aenter__(self) -> Self:
        if self._state == "new":
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self, *, checkpoint: bool = True) -> None:
        """Stop following the log and write a last checkpoint. Safe to call twice.

        `checkpoint=False` skips the last checkpoint, leaving on disk what a
        crash would leave (the last periodic one).
        """
        if self._state in ("closing", "closed"):
            return
        self._state = "closing"
        await self._travel.stop_backfill()
        for task in (self._follower, self._flusher):
            if task is not None:
                await cancel_and_wait(task)
        try:
            if checkpoint:
                await self._checkpoint()
        except Exception:
            logger.exception("could not write the last projection checkpoints")
        finally:
            self._state = "closed"
            self._stopped = self._stopped or RunnerClosed()
            self._advanced.set()

    @property
    def closed(self) -> bool:
        return self._state in ("closing", "closed")

    @property
    def failure(self) -> str | None:
        """Why the runner no longer follows the log (it stopped, or was closed), or None
        while it does (a health check's question: its views answer 503 meanwhile)."""
        if self._stopped is not None:
            return str(self._stopped) or type(self._stopped).__name__
        if self._state != "open":
            return f"the projection runner is {self._state}"
        return None

    # -- reading ------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The projections' names, in registration order."""
        return list(self._slots)

    @property
    def position(self) -> int:
        """The last position every working projection has applied."""
        healthy = [s.position for s in self._slots.values() if s.failed is None]
        return min(healthy or [s.position for s in self._slots.values()] or [0])

    def positions(self) -> dict[str, int]:
        """Each projection's last applied position."""
        return {name: slot.position for name, slot in self._slots.items()}

    def projection(self, name: str) -> Projection[Any]:
        """The projection object registered as `name`. Raises `UnknownProjection`."""
        return self._slot(name).projection

    def state(self, name: str) -> Any:
        """The live state of `name`: read it, never mutate it (it changes as events arrive).

        Raises `UnknownProjection`, `ProjectionFailed`, `RunnerClosed`.
        """
        self._check_usable()
        slot = self._slot(name)
        if slot.failed is not None:
            raise slot.failed
        return slot.state

    def view(self, name: str) -> dict[str, Any]:
        """The current JSON view of `name` (a new object). Raises like `state`."""
        projection, state = self._slot(name).projection, self.state(name)
        with gc_paused():  # note 5
            return projection.view(state)

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        """One agent's card from the agents view, or None if it was never created."""
        projection = self.projection("agents")
        if isinstance(projection, AgentsProjection):
            return projection.agent_view(self.state("agents"), agent_id)
        return self._card("agents", agent_id)

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run's card from the runs view, or None if it never started."""
        projection = self.projection("runs")
        if isinstance(projection, RunsProjection):
            return projection.run_view_by_id(self.state("runs"), run_id)
        return self._card("runs", run_id)

    def _card(self, name: str, card_id: str) -> dict[str, Any] | None:
        """The card of `card_id` in view `name`'s list of the same name, found by its id (a
        projection registered in place of fleet's own, without a lookup of its own)."""
        for card in self.view(name).get(name, []):
            if card.get("id") == card_id:
                return dict(card)
        return None

    # ASYNC109: `timeout` is part of the interface the runtime and the API call.
    async def wait_for(self, position: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once every working projection has applied `position` (read your writes).

        Raises `ProjectionTimeout` (a `TimeoutError`) after `timeout` seconds,
        `RunnerClosed` if the runner is closed or stopped following the log.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.position < position:
            self._check_usable()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProjectionTimeout(position, self.position, timeout)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._advanced.wait()

    async def offer(self, events: Iterable[RecordedEvent]) -> int:
        """Apply events the caller already holds (e.g. just appended); returns how many.

        Positions already applied are skipped (duplicates, out of order); the
        first position beyond the next one stops the offer, since the
        subscription delivers every event in order anyway. A runner that has
        stopped or closed applies nothing (0), and does not raise: the events
        are in the log already, and a caller that appended them must not be
        told its write failed (an HTTP client would send it again).
        """
        if self._state != "open" or self._stopped is not None:
            logger.debug("offered events not applied: the runner is %s", self._state)
            return 0
        applied = 0
        for event in sorted(events, key=lambda e: e.position):
            if event.position <= self.position:
                logger.debug("offered event at position %d is already applied", event.position)
                continue
            if event.position != self.position + 1:
                logger.debug(
                    "offered event at position %d leaves a gap; left to the subscription",
                    event.position,
                )
                break
            self._apply(event)
            applied += 1
        if self._since_checkpoint >= self._checkpoint_every:
            await self._try_checkpoint()  # the offered events are applied whatever it says
        return applied

    async def state_at(self, name: str, position: int) -> Any:
        """The state of `name` as of `position` (time travel): a new object, yours to keep.

        Raises `InvalidPosition` when `position` is negative or past the head,
        `UnknownProjection`, `ProjectionFailed` if the fold raises, `RunnerClosed`.
        """
        self._check_usable()
        slot = self._slot(name)
        await self._check_position(position)
        return await self._travel.state_at(slot, position)

    async def view_at(self, name: str, position: int) -> dict[str, Any]:
        """The JSON view of `name` as of `position`. Raises like `state_at`."""
        self._check_usable()
        slot = self._slot(name)
        if slot.failed is None and position == slot.position and not self.closed:
            return self.view(name)
        state = await self.state_at(name, position)
        with gc_paused():  # note 5
            return slot.projection.view(state)

    async def rebuild(self, name: str | None = None) -> int:
        """Fold `name` (or every projection) again from position 0 and swap it in.

        The live projections keep serving while the rebuild folds (note 3).
        Returns the position the rebuilt states reached. Clears a failure.
        Raises `UnknownProjection`, `ProjectionFailed`, `RunnerClosed`.
        """
        self._check_usable()
        names = list(self._slots) if name is None else [self._slot(name).name]
        fresh = [
            Slot(self._slots[n].projection, self._slots[n].projection.initial()) for n in names
        ]
        await self._travel.stop_backfill()  # it would add snapshots of the old states
        for slot in fresh:
            self._travel.snapshots.clear(slot.name)
        target = max(await self._store.head(), self.position)
        inline = self._travel.inline(fresh, target)
        while True:
            await fold(
                self._store,
                fresh,
                target,
                self._travel.snapshots,
                quiet=True,
                persist=self._travel.persist,
                snapshot=inline,
            )
            for slot in fresh:
                if slot.failed is not None:
                    raise slot.failed
            self._check_usable()
            target = self.position
            if all(slot.position >= target for slot in fresh):
                break
        for slot in fresh:  # no await in this loop: the swap is atomic for the follower
            live = self._slots[slot.name]
            live.state, live.position, live.failed, live.dirty = (
                slot.state,
                slot.position,
                None,
                True,
            )
            logger.info("projection %r rebuilt up to position %d", slot.name, slot.position)
        await self._checkpoint()
        self._travel.start_backfill(self.position)
        return min(slot.position for slot in fresh)

    async def snapshots_made(self) -> None:
        """Return once the time-travel snapshots made behind a long fold are all taken
        (`_backfill.py`); at once when none are being made."""
        await self._travel.made()

    # -- internals ----------------------------------------------------------

    def _slot(self, name: str) -> Slot:
        slot = self._slots.get(name)
        if slot is None:
            raise UnknownProjection(name, list(self._slots))
        return slot

    def _check_usable(self) -> None:
        if self._state != "open":
            raise self._stopped or RunnerClosed(f"the projection runner is {self._state}")
        if self._stopped is not None:
            raise self._stopped

    async def _check_position(self, position: int) -> None:
        if position < 0:
            raise InvalidPosition(position, await self._store.head())
        if position > self.position:
            head = await self._store.head()
            if position > head:
                raise InvalidPosition(position, head)

    async def _load_checkpoints(self) -> None:
        stored = await self._checkpoints.load_checkpoints()
        for slot in self._slots.values():
            checkpoint = stored.get(slot.name)
            version = slot.projection.version
            if checkpoint is None:
                logger.debug("projection %r has no checkpoint: folding from 0", slot.name)
                continue
            if checkpoint.version != version:
                logger.info(
                    "projection %r changed from version %d to %d: rebuilding from position 0",
                    slot.name,
                    checkpoint.version,
                    version,
                )
                continue
            try:
                with gc_paused(long_lived=True):
                    slot.state = slot.projection.load(decode_state(checkpoint.state))
            except Exception:
                logger.exception(
                    "checkpoint of projection %r does not load: rebuilding from position 0",
                    slot.name,
                )
                slot.state = slot.projection.initial()
                continue
            slot.position = checkpoint.position
            logger.debug("projection %r resumes after position %d", slot.name, slot.position)

    async def _follow(self) -> None:
        try:
            async for event in self._store.subscribe(after=self.position, lenient=True):
                if event.position > self.position + 1:
                    await self._fill_gap(event.position)
                self._apply(event)
                if self._since_checkpoint >= self._checkpoint_every:
                    await self._try_checkpoint()
        except asyncio.CancelledError:
            raise
        except StoreClosed:
            self._stopped = RunnerClosed("the projection runner stopped: the event store closed")
        except Exception as e:
            logger.exception("projection runner stopped following the log")
            self._stopped = RunnerClosed(f"the projection runner stopped following the log: {e}")
        else:
            self._stopped = RunnerClosed("the projection runner stopped: the event store closed")
        self._advanced.set()

    async def _fill_gap(self, position: int) -> None:
        # The subscription promises no gaps; if one shows anyway, read it rather than skip it.
        logger.warning(
            "events %d to %d missing from the subscription: reading them",
            self.position + 1,
            position - 1,
        )
        for event in await self._store.read_all(
            after=self.position, until=position - 1, lenient=True
        ):
            self._apply(event)

    def _apply(self, event: RecordedEvent) -> None:
        position = event.position
        unknown = type(event.data) is UnknownEvent
        if unknown:
            logger.error(
                "event at position %d has unknown type %r (written by a newer fleet?): "
                "skipped by every projection",
                position,
                event.type,
            )
        applied = False
        for slot in self._slots.values():
            if position <= slot.position or slot.failed is not None:
                continue
            applied = True
            if not unknown and (slot.types is None or type(event.data) in slot.types):
                try:
                    slot.state = slot.projection.apply(slot.state, event)
                except Exception as e:
                    failed = isinstance(e, ProjectionFailed) and e.name == slot.name
                    slot.failed = e if failed else ProjectionFailed(slot.name, position, e)  # type: ignore[assignment]
                    logger.exception("projection %r failed at position %d", slot.name, position)
                    continue
            slot.position = position
            slot.dirty = True
            self._travel.take(slot)
        if not applied:
            logger.debug("event at position %d was already applied: skipped", position)
            return
        self._since_checkpoint += 1
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def _flush(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_interval)
            if any(slot.dirty for slot in self._slots.values()):
                await self._try_checkpoint()

    async def _try_checkpoint(self) -> None:
        """Write the checkpoints; a log that refuses the write (a full disk) is logged once
        and retried later, since the states are whole in memory and nothing is lost."""
        try:
            await self._checkpoint()
        except StoreUnavailable as e:
            if not self._checkpoints_failing:
                logger.warning("could not write projection checkpoints (%s); will retry", e)
            self._checkpoints_failing = True
            return
        except Exception:
            logger.exception("could not write projection checkpoints; will retry")
            return
        if self._checkpoints_failing:
            logger.warning("projection checkpoints are written again")
            self._checkpoints_failing = False

    async def _checkpoint(self) -> None:
        async with self._checkpoint_lock:
            rows: list[Checkpoint] = []
            written: list[Slot] = []
            for slot in self._slots.values():
                if slot.dirty and slot.failed is None:
                    p = slot.projection
                    rows.append(
                        Checkpoint(
                            slot.name, p.version, slot.position, encode_state(p.dump(slot.state))
                        )
                    )
                    written.append(slot)
                    slot.dirty = False
            self._since_checkpoint = 0
            await self._travel.persist()
            if not rows:
                return
            if self._store.readonly:
                logger.debug("read-only log: checkpoints not written %s", [r.name for r in rows])
                return
            try:
                await self._checkpoints.save_checkpoints(rows)
            except BaseException:
                for slot in written:
                    slot.dirty = True
                raise
            logger.debug("checkpoints written: %s", {r.name: r.position for r in rows})
