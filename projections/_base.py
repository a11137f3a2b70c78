"""The projection seam and what every read model shares.

A projection is a named, versioned fold of the log: `initial()` is its state
before any event, `apply(state, event)` folds one event in, `view(state)` is
the JSON the API serves, and `dump`/`load` turn a state into JSON for
checkpoints and back.

Notes (do not fix without reading this):
1. The built-in projections' `apply` MUTATES `state` and returns it: a pure
   fold copying a dict of thousands of agents per event would cap a rebuild
   at a few thousand events per second. The runner upholds the consequence:
   a live state is never shared with a rebuild or a time-travel fold (those
   start from `initial()` or from a freshly loaded snapshot), and `view()`
   always builds new JSON, never handing out the live containers.
2. States are plain JSON data (dicts, lists, str, int, float, bool, None):
   `dump` is the identity and `load(json.loads(json.dumps(dump(s))))` equals
   `s`. Sets are dicts whose values are `None` (insertion-ordered, JSON-able).
   Times are float seconds since the epoch (UTC); views render ISO 8601.
3. Dispatch is a dict from event class to handler instead of a `match`: a
   `match` over ~20 class patterns costs a chain of isinstance checks on every
   event. Each projection lists the event types it deliberately ignores, and
   a test checks handled + ignored covers the whole catalogue, so a new event
   type still forces a decision in every projection.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from events import EventModel, RecordedEvent, StoreError, UnknownEvent

from ._lean import Lean, lean_data, leaned
from .errors import ProjectionFailed

__all__ = [
    "FoldProjection",
    "Projection",
    "iso",
    "quiet_reports",
    "report",
]

logger = logging.getLogger(__name__)

S = TypeVar("S")

_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("projections_quiet", default=False)


@runtime_checkable
class Projection(Protocol[S]):
    """A named, versioned fold of the log into a read model.

    Bump `version` whenever `apply` changes meaning: the runner then rebuilds
    the projection from position 0 instead of trusting its checkpoint.

    Two optional members make bulk folds faster (`FoldProjection` has both):
    `types`, the event classes `apply` folds (None: all), lets the runner skip
    the rest; `apply_all(state, events) -> state` folds a page of events in
    one call and raises `ProjectionFailed` naming the event that failed.
    Neither is given an event whose data is an `UnknownEvent`: the runner and
    its folds log those and skip them for every projection. A third, `gates`
    (`_gates.py`), lets bulk folds skip events of a type without decoding
    them when a few of their fields say `apply` would change nothing.
    """

    name: str
    version: int

    def initial(self) -> S:
        """A fresh state before any event (a new object on every call)."""
        ...

    def apply(self, state: S, event: RecordedEvent) -> S:
        """Fold one event into `state` and return the new state (may mutate `state`)."""
        ...

    def view(self, state: S) -> dict[str, Any]:
        """The JSON the API serves; never shares mutable parts with `state`."""
        ...

    def dump(self, state: S) -> Any:
        """`state` as JSON-able data (serialize it before the next `apply`)."""
        ...

    def load(self, data: Any) -> S:
        """The state back from `dump`'s data after a JSON round trip."""
        ...


Handler = Callable[[Any, RecordedEvent, Any], None]
# A handler by event type name: its event class, and the validator of its lean fields or None.
_Entry = tuple[type[EventModel], Handler, Callable[[str], Any] | None]


class FoldProjection(ABC, Generic[S]):
    """Base of the built-in projections: dispatch by event class, JSON states.

    Subclasses set `name`, `version`, `ignores` (names of the event types
    they deliberately skip) and fill `self.handlers` in `__init__` with one
    `handler(state, event, data)` per event class they fold. Unknown events
    (`events.UnknownEvent`) find no handler and leave the state unchanged.
    """

    name: str = ""
    version: int = 1
    ignores: frozenset[str] = frozenset()

    # The fields some handlers read (`_lean.py`): a bulk fold gives them just those.
    lean: tuple[Lean, ...] = ()

    def __init__(self) -> None:
        self.handlers: dict[type[EventModel], Handler] = {}
        self._last_time: tuple[datetime | None, float] = (None, 0.0)
        self._dispatch: dict[str, _Entry] = {}

    def _dispatch_by_name(self) -> dict[str, _Entry]:
        """The handlers by event type name, each with its class and lean validator (or
        None), made once `handlers` is filled."""
        leans = {lean.cls: lean.validate_json for lean in self.lean}
        self._dispatch = {
            cls.model_fields["type"].default: (cls, handler, leans.get(cls))
            for cls, handler in self.handlers.items()
        }
        return self._dispatch

    def ts(self, event: RecordedEvent) -> float:
        """When `event` was recorded, as float seconds since the epoch.

        The events of one group commit share one `recorded_at` object, so the
        last conversion is kept (in one tuple: safe if folds share this object).
        """
        at = event.recorded_at
        last = self._last_time
        if last[0] is at:
            return last[1]
        seconds = at.timestamp()
        self._last_time = (at, seconds)
        return seconds

    @property
    def types(self) -> frozenset[type[EventModel]] | None:
        """The event classes `apply` folds; the runner skips the others (None: all).

        The handlers' classes; None (every event) for a subclass that overrides
        `apply`, unless it overrides `types` too.
        """
        if type(self).apply is not FoldProjection.apply:
            return None
        return frozenset(self.handlers)

    @property
    def handled_types(self) -> frozenset[str]:
        """Names of the event types this projection folds."""
        return frozenset(cls.model_fields["type"].default for cls in self.handlers)

    @abstractmethod
    def initial(self) -> S:
        """The state before any event."""

    def apply(self, state: S, event: RecordedEvent) -> S:
        """Fold `event` into `state`, mutating it (see note 1), and return it."""
        handler = self.handlers.get(type(event.data))
        if handler is not None:
            handler(state, event, event.data)
        return state

    def handled(self, event: RecordedEvent) -> tuple[Handler, Any] | None:
        """The handler of `event` and the data to give it, or None if none folds it: for
        an `apply` of its own (one that does more than dispatch). Its data is decoded
        whole, or lean (`_lean.py`) when it is not decoded yet and the handler is lean."""
        found = (self._dispatch or self._dispatch_by_name()).get(event.type)
        if found is None:
            return None
        cls, handler, lean = found
        if lean is not None and type(event) is not RecordedEvent:  # not decoded yet
            return handler, lean_data(event, lean, leaned())
        data = event.data
        return None if type(data) is not cls else (handler, data)  # else a newer schema

    def apply_all(self, state: S, events: Iterable[RecordedEvent]) -> S:
        """`apply` each of `events` in turn (mutates `state`); the runner's bulk path.

        Raises `ProjectionFailed` naming the position of the event whose
        handler raised (a `StoreError` for one whose data does not decode). A
        subclass that overrides `apply` gets a loop over it.
        """
        event: RecordedEvent | None = None
        try:
            if type(self).apply is not FoldProjection.apply:
                for event in events:
                    state = self.apply(state, event)
                return state
            dispatch = self._dispatch or self._dispatch_by_name()
            shared = leaned()  # validated for the page, by position (`_lean.py`)
            for event in events:  # by type name: an undecoded event stays so until read
                entry = dispatch.get(event.type)
                if entry is None:
                    continue
                cls, handler, lean = entry
                data: Any
                if lean is None or type(event) is RecordedEvent:  # decoded: whole data
                    data = event.data
                    if type(data) is not cls:  # a newer schema of its type: unknown
                        continue
                else:  # not decoded yet: just the fields its handler reads (`_lean.py`)
                    data = lean_data(event, lean, shared)
                    if type(data) is UnknownEvent:
                        continue
                handler(state, event, data)
        except StoreError:
            raise  # a row that does not decode: the store's error, as a page's would be
        except Exception as e:
            position = 0 if event is None else event.position
            raise ProjectionFailed(self.name, position, e) from e
        return state

    @abstractmethod
    def view(self, state: S) -> dict[str, Any]:
        """The JSON the API serves for `state`."""

    def dump(self, state: S) -> Any:
        """The state itself: it is JSON data already (note 2). Not a copy."""
        return state

    def load(self, data: Any) -> S:
        """The state from `dump`'s data after a JSON round trip (taken as is)."""
        return data  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} v{self.version}>"


def iso(ts: float | None) -> str | None:
    """An ISO 8601 UTC string for float seconds since the epoch (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def report(projection: str, event: RecordedEvent, message: str, *args: object) -> None:
    """Log an event a projection cannot use (e.g. for an unknown agent) and skip it.

    A warning on the live path; at debug level inside `quiet_reports()`, so a
    time-travel fold does not repeat warnings already given once.
    """
    level = logging.DEBUG if _quiet.get() else logging.WARNING
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "%s: %s event at position %d ignored: " + message,
            projection,
            event.type,
            event.position,
            *args,
        )


@contextlib.contextmanager
def quiet_reports() -> Iterator[None]:
    """Within this block `report` logs at debug level (for re-folds of old events)."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)
