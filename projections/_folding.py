"""Folding the log into projections: a page at a time, slot by slot.

A `Slot` is a projection with a state and the last position folded into it
(the runner keeps one per read model; a rebuild or a time-travel query makes
its own). `fold` reads the log after the slots' positions and folds it in.

Notes (do not fix without reading this):
1. Bulk folds (catch-up at start, rebuild, time travel) read the log a page
   at a time through the store and fold each page on the event loop: the
   loop is held for one page (a few milliseconds) at a time, never for the
   whole log. The next page's read is asked for before a page folds; its
   query reaches the store's thread when the loop next turns, and SQLite
   needs the GIL for each row it returns, so the two overlap little (a turn
   of the loop before folding, to start the read sooner, measured no gain:
   `BENCHMARKS.md`, eighth pass).
2. The cyclic garbage collector is paused while a page is folded, as the
   store does while it decodes one (`events/_decoding.py`, note 3): a fold
   makes many small containers and no cycles, and a collection walking a
   large state several times per page made rebuilds markedly slower.
3. A projection may say which event classes it folds (`types`, e.g.
   `FoldProjection.types`); the slot then skips the others, which is most of
   the log for most read models, and positions still advance past them. A
   projection with `apply_all(state, events)` gets a page's events in one
   call (one Python call per page, not per event).
4. An event of a type this code does not know (`events.UnknownEvent`) is
   logged, naming its position, and skipped by every projection.
5. When no slot of a fold wants every event (a time-travel query or a
   rebuild of one read model; not the catch-up, the fleet counts them all),
   the store is asked for the folded types only: the store's decoding is most
   of a fold's cost, and a read model like the board folds a tiny part of the
   log. Unknown types are then not read at all.
6. For the whole of a bulk fold, awaits included, the collector's first
   threshold is raised (`gc_relaxed`, process-wide, restored when the last
   fold ends): with the default 700, each page made several young
   collections that walked the page's live events and promoted them, a fifth
   of a rebuild's CPU. Cycles are still collected, a hundred times less often;
   a fold makes none itself.
7. A long fold hands its snapshots to the runner to persist as it goes
   (`persist`), so a rebuild of a long log holds at most `PERSIST_BYTES` of
   them, not all of them until it ends.
8. A snapshot is a copy of the state (pickled) made on the loop between two
   pages, then compressed on a thread while the next pages fold (Zstandard
   releases the GIL): compression was about half of a snapshot's cost, and a
   rebuild of a long log takes dozens of them. One batch compresses at a time;
   they are kept (`Snapshots.add`) in order, before any persisting and when
   the fold ends. A fold that fails or is cancelled keeps none still in flight.
9. A projection may also say whose data it reads (`reads`, event classes),
   when it folds more than that: the fleet counts every event in its pace
   and reads the data of a few types. A page's events are decoded at once
   only for the types some slot reads; the others stay undecoded (decoded if
   ever read). Decoding was half of a fleet time-travel query (a fold of up
   to 5,000 events, `BENCHMARKS.md`).
10. A page is filtered by type for each slot and for the data to decode:
   `itertools.compress` over the page's type names, taken once a page,
   instead of a Python comprehension per filter; and the store's page says
   how many of its events are unknown (`events.Page.unknowns`), so a page
   with none is not asked event by event. Together about 3% of a rebuild of
   the five read models (`BENCHMARKS.md`, eighth pass).
11. A projection may have `gates` (`_gates.py`): for an event type it folds
   only when a few fields say so, a gate validates just those fields from
   the stored JSON; the events that pass are decoded one by one, the others
   are neither decoded nor folded by that slot. The type is left out of the
   slot's `read_names`, so the page's decoding (note 9) skips it unless
   another slot reads it. A gate may say its test as the store can make it
   (`Gate.store_test`): when every slot of a fold that folds the type gates
   it so, the read asks the store to leave out the events that fail it
   (`EventFilter.skippable`; the SQLite log does, in SQL), and they are not
   even read: a tenth to a fifth of an agents time-travel query.
12. A projection may list, per event type, the few fields its handlers read
   (`lean`, `_lean.py`): those types are left out of its `read_names` too,
   and its handlers are given just those fields of each undecoded event. A
   lean type several slots read is validated once, before they fold, by a
   model of the union of their fields (`_lean_page`), and each handler is
   given that; a type one slot reads whole is decoded whole with the page,
   for all of them. A `ModelResponded` (the agents, the fleet and the runs
   read it) costs a fold 0.4 of its whole validation this way.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter
from typing import Any

from pydantic import ValidationError

from events import (
    DataTest,
    EventFilter,
    EventStore,
    RecordedEvent,
    StoreError,
    gc_paused,
    load_data,
    peek,
)

from ._base import Projection, quiet_reports
from ._checkpoints import Snapshots, compress_all
from ._gates import Gate
from ._lean import Lean, sharing, union
from .errors import ProjectionFailed

__all__ = ["PAGE", "Slot", "fold", "fold_page", "gc_relaxed"]

logger = logging.getLogger(__name__)

PAGE = 2000
# Unsaved snapshots a fold holds before it has them persisted (note 7).
PERSIST_BYTES = 16 * 2**20
# The collector's first threshold during a bulk fold (note 6); CPython's default is 700.
RELAXED_THRESHOLD = 100_000
_TYPE = attrgetter("type")


@dataclass(slots=True)
class Slot:
    """A projection, its state and the last position folded into it."""

    projection: Projection[Any]
    state: Any
    position: int = 0
    failed: ProjectionFailed | None = None
    dirty: bool = False
    # The event classes the projection folds (its optional `types`; None: all).
    types: frozenset[type[Any]] | None = field(init=False)

    # The names of those classes' events.
    type_names: frozenset[str] = field(init=False)
    # The names of the events whose data it reads (its optional `reads`, else those it
    # folds; None: every event's), note 9, but those its gates decide (note 11).
    read_names: frozenset[str] | None = field(init=False)
    # Its optional `gates`, by the name of the events each decides.
    gates: dict[str, Gate] = field(init=False)
    # The events its handlers read only a few fields of, by name (note 12).
    leans: dict[str, Lean] = field(init=False)
    lean_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.types = getattr(self.projection, "types", None)
        self.type_names = frozenset(_type_name(cls) for cls in self.types or ())
        self.gates = {gate.type_name: gate for gate in getattr(self.projection, "gates", ())}
        self.leans = {lean.type_name: lean for lean in getattr(self.projection, "lean", ())}
        self.lean_names = frozenset(self.leans)
        reads = getattr(self.projection, "reads", None)
        if reads is None:
            reads = self.types
        self.read_names = (
            None
            if reads is None
            else frozenset(_type_name(c) for c in reads) - set(self.gates) - self.lean_names
        )

    @property
    def name(self) -> str:
        return self.projection.name


async def fold(
    store: EventStore,
    slots: list[Slot],
    until: int,
    snapshots: Snapshots,
    *,
    quiet: bool,
    persist: Callable[[], Awaitable[None]] | None = None,
    snapshot: Collection[str] | None = None,
) -> None:
    """Fold the events after each slot's position, up to `until`, into the slot (note 1).

    Snapshots due on the way are kept in `snapshots` (only of the slots named
    in `snapshot`, when given), and `persist` is awaited whenever they hold
    more than `PERSIST_BYTES` unsaved (note 7).
    With `quiet`, problems with events are logged at debug level (they were
    reported before).
    """
    working = [slot for slot in slots if slot.failed is None and slot.position < until]
    if not working:
        return
    before = [slot.position for slot in working]
    position = min(before)
    spacing = {
        slot.name: snapshots.plan(slot.name, slot.position, until)
        for slot in working
        if snapshot is None or slot.name in snapshot
    }
    where = _only_what_they_fold(working)

    def read(after: int) -> asyncio.Future[list[RecordedEvent]]:
        return asyncio.ensure_future(
            store.read_all(after=after, until=until, where=where, limit=PAGE, lenient=True)
        )

    ahead = read(position)
    packing = _Packing(snapshots)
    try:
        with gc_relaxed(), quiet_reports() if quiet else contextlib.nullcontext():
            while True:
                page = await ahead
                if not page:
                    break
                position = page[-1].position
                if position < until and len(page) == PAGE:
                    ahead = read(position)  # the next page is read while this one folds
                with gc_paused():
                    due = fold_page(page, working, snapshots, spacing, quiet)
                await packing.compress(due)
                if persist is not None and snapshots.unsaved_bytes() > PERSIST_BYTES:
                    await packing.settle()
                    await persist()
                if position >= until or len(page) < PAGE:
                    break
        await packing.settle()
    finally:
        packing.drop()
        if not ahead.done():
            ahead.cancel()
        elif not ahead.cancelled():
            ahead.exception()  # a read we no longer need: its error is not news
    for slot, start in zip(working, before, strict=True):
        if slot.failed is None:
            slot.position = until  # every event up to `until` was read (or filtered out)
        slot.dirty = slot.dirty or slot.position != start


def _type_name(cls: type[Any]) -> str:
    name: str = cls.model_fields["type"].default
    return name


def _only_what_they_fold(slots: list[Slot]) -> EventFilter | None:
    """A filter on the types every slot folds (note 5), or None when one folds all; with
    the store tests of the gates of a type every slot that folds it gates (note 11)."""
    names = _union(None if slot.types is None else slot.type_names for slot in slots)
    if names is None:
        return None
    if not names:
        return EventFilter(types=frozenset())
    tests: dict[str, list[DataTest]] = {}
    for slot in slots:
        for name, gate in slot.gates.items():
            if gate.store_test is not None:
                tests.setdefault(name, []).append(gate.store_test)
    skippable = [  # one test a type, passing what any of its gates passes
        DataTest(name, tuple(f for test in found for f in test.fields))
        for name, found in tests.items()
        if len(found) == sum(name in slot.type_names for slot in slots)  # all gate it
    ]
    return EventFilter.of(types=names, skippable=skippable)


def _lean_page(
    page: list[RecordedEvent], types: list[str], slots: list[Slot], whole: frozenset[str] | None
) -> dict[int, Any]:
    """The lean data of the page's undecoded events of the types several slots read lean
    and none whole, by position: each validated once, by the union of the fields those
    slots read (note 12). A type one slot reads lean is left to it. An event that does not
    validate is left out: the handler's own read raises the store's error, naming it."""
    if whole is None:
        return {}  # a slot reads every event's data: the page is decoded whole
    by_type: dict[str, list[Lean]] = {}
    for slot in slots:
        for name, lean in slot.leans.items():
            if name not in whole:
                by_type.setdefault(name, []).append(lean)
    validators = {
        name: union(leans).validate_json for name, leans in by_type.items() if len(leans) > 1
    }
    if not validators:
        return {}
    found: dict[int, Any] = {}
    for event in compress(page, map(validators.__contains__, types)):
        if type(event) is not RecordedEvent:  # not decoded yet
            try:  # noqa: SIM105 (suppress() is a call an event, this loop's whole cost)
                found[event.position] = peek(event, validators[event.type])
            except ValidationError:
                pass  # left to the handler's own read, whose error names the row
    return found


def _union(names: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    """Every name of `names`; None (every event) as soon as one is None."""
    found: set[str] = set()
    for some in names:
        if some is None:
            return None
        found.update(some)
    return frozenset(found)


class _Packing:
    """Snapshots of a fold being compressed on a thread while it goes on (note 8)."""

    def __init__(self, snapshots: Snapshots) -> None:
        self._snapshots = snapshots
        self._running: asyncio.Future[list[tuple[str, int, bytes]]] | None = None

    async def compress(self, due: list[tuple[str, int, bytes]]) -> None:
        """Start compressing `due`, once the batch before it is done and kept."""
        if not due:
            return
        await self.settle()
        self._running = asyncio.ensure_future(asyncio.to_thread(compress_all, due))

    async def settle(self) -> None:
        """Wait for the batch being compressed and keep its snapshots."""
        running, self._running = self._running, None
        if running is not None:
            for name, position, blob in await running:
                self._snapshots.add(name, position, blob)

    def drop(self) -> None:
        """The fold ended early: snapshots still compressing are not kept (a cache)."""
        if self._running is not None:
            self._running.cancel()
            self._running = None


def fold_page(
    page: list[RecordedEvent],
    slots: list[Slot],
    snapshots: Snapshots,
    spacing: dict[str, int],
    quiet: bool,
) -> list[tuple[str, int, bytes]]:
    """Fold one page of events into every slot that has not applied them yet.

    Slot by slot, each over the whole page at once (`apply_all` when the
    projection has one), cut only where a snapshot is due. Returns the
    snapshots due, `(name, position, pickled state)`, to compress and keep
    (note 8).
    """
    due_snapshots: list[tuple[str, int, bytes]] = []
    level = logging.DEBUG if quiet else logging.ERROR
    # Filters by type run in C over the page's type names (note 10).
    types = list(map(_TYPE, page))
    # The data a slot reads, decoded at once; the rest is left undecoded (note 9).
    reads = _union(slot.read_names for slot in slots)
    load_data(page if reads is None else compress(page, map(reads.__contains__, types)))
    lean = _lean_page(page, types, slots, reads)
    known, known_types = page, types
    # The store's page counts its unknown events (`events.Page`); another list is asked.
    if getattr(page, "unknowns", 1) and any(event.unknown for event in page):
        known = []
        for unknown in page:
            if unknown.unknown:
                logger.log(
                    level,
                    "event at position %d has unknown type %r (written by a newer fleet?): "
                    "skipped by every projection",
                    unknown.position,
                    unknown.type,
                )
            else:
                known.append(unknown)
        known_types = list(map(_TYPE, known))
    last = page[-1].position
    with sharing(lean):  # the page's lean data, for the handlers (note 12)
        for slot in slots:
            start = slot.position
            if slot.failed is not None or start >= last:
                continue
            events, names = known, known_types
            if start >= page[0].position:  # a slot part of the page ahead of the others
                events = [e for e in known if e.position > start]
                names = list(map(_TYPE, events))
            if slot.types is not None:  # only what the projection folds (note 3)
                events = list(compress(events, map(slot.type_names.__contains__, names)))
            if slot.gates:  # and of the types its gates decide, what they pass (note 11)
                gates = slot.gates
                events = [e for e in events if (g := gates.get(e.type)) is None or g.passes(e)]
            projection = slot.projection
            apply_all = getattr(projection, "apply_all", None)
            state = slot.state
            chunk: list[RecordedEvent] = events
            try:
                for chunk, due in _chunks(events, start, last, spacing.get(slot.name, 0)):
                    if chunk:
                        if apply_all is not None:
                            state = apply_all(state, chunk)
                        else:
                            state = _apply_each(projection, state, chunk)
                    if due is not None:
                        due_snapshots.append(
                            (slot.name, due, Snapshots.pickled(projection.dump(state)))
                        )
            except StoreError:
                raise  # a row that does not decode fails the fold, as the page's decoding does
            except Exception as e:
                failure = (
                    e
                    if isinstance(e, ProjectionFailed)
                    else ProjectionFailed(slot.name, chunk[0].position if chunk else last, e)
                )
                slot.state, slot.position, slot.failed = state, failure.position - 1, failure
                logger.log(
                    level,
                    "projection %r failed at position %d",
                    slot.name,
                    failure.position,
                    exc_info=True,
                )
                continue
            slot.state, slot.position = state, last
    return due_snapshots


def _chunks(
    events: list[RecordedEvent], start: int, last: int, spacing: int
) -> Iterator[tuple[list[RecordedEvent], int | None]]:
    """`events` cut at each snapshot position in `(start, last]`, with that position.

    The state after the events up to a position is the state at it (the
    events skipped in between change nothing).
    """
    if not spacing or start // spacing == last // spacing:
        yield events, None
        return
    due = (start // spacing + 1) * spacing
    lo = 0
    while due <= last:
        hi = bisect.bisect_right(events, due, lo=lo, key=_position)
        yield events[lo:hi], due
        lo, due = hi, due + spacing
    yield events[lo:], None


def _position(event: RecordedEvent) -> int:
    return event.position


def _apply_each(projection: Projection[Any], state: Any, events: list[RecordedEvent]) -> Any:
    """Fold `events` one `apply` at a time; a failure names its event's position."""
    for event in events:
        try:
            state = projection.apply(state, event)
        except Exception as e:
            raise ProjectionFailed(projection.name, event.position, e) from e
    return state


@dataclass(slots=True)
class _Relaxation:
    depth: int = 0
    saved: tuple[int, int, int] | None = None


_relaxation = _Relaxation()  # process-wide, like the collector it tunes


@contextlib.contextmanager
def gc_relaxed() -> Iterator[None]:
    """Raise the collector's first threshold while bulk folds run, awaits included (note 6).

    Nests (time travel during a rebuild); the last to leave restores the
    thresholds it found.
    """
    state = _relaxation
    if state.depth == 0:
        state.saved = gc.get_threshold()
        first, *rest = state.saved
        if first:  # 0: the caller turned automatic collection off; leave it so
            gc.set_threshold(max(first, RELAXED_THRESHOLD), *rest)
    state.depth += 1
    try:
        yield
    finally:
        state.depth -= 1
        if state.depth == 0 and state.saved is not None:
            gc.set_threshold(*state.saved)
            state.saved = None
