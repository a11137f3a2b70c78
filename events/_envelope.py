"""The envelope around every event: where it sits in the log and who caused it.

Notes (do not fix without reading this):
1. A stored event's data is decoded when it is first read, not when the
   event is (`new_stored`): a read of the log builds envelopes (position,
   stream, version, type, meta, time) and keeps each row's data JSON; the
   first `event.data` validates it with the type's model and drops the text.
   Readers that look at the type, the position or the meta (filters, counts,
   the log's checks, folds of other types) never pay for the data: reading a
   page costs about a third of decoding it. A row that no longer decodes
   raises `StoreError` naming its position when its data is read, the error
   an eager read raised; an unknown type, or a schema that needs upcasting,
   is still decided (and refused by strict reads) when the row is read.
   `data` is a plain slot left unset until then, and such an event is an
   `_Undecoded`: a miss calls its `__getattr__`, which decodes and fills the
   slot and makes the event a plain `RecordedEvent`, so every later read,
   and every read of an event built from a model, costs what a dataclass
   field costs (a property would cost a Python call on each of the dozen
   reads a fold makes of each event). `RecordedEvent` itself has no
   `__getattr__`: on a class that has one, every attribute read goes through
   it first and the interpreter cannot specialize the read, 4 times the cost
   of a slot's (20 against 5 ns in a micro-benchmark; a rebuild of the five
   read models executes 1.7% fewer instructions an event without it).
2. The events of one read share their page: the first `data` read of one
   decodes them all (`load_data`, the collector paused), so a reader that
   goes through every event's data pays what an eager read paid, without an
   attribute miss per event, and one that reads a few pays for the page
   once. A page with a row that does not decode leaves each event to decode
   on its own, so each error names its own row. An event holds its page
   weakly (`Page`, the list the read returned): as long as the reader holds
   the page. A strong reference made each page and its events a reference
   cycle, which only the cyclic collector frees: a fold that reads none of
   a page's data left every such page to it, and its collections were a
   fifth of the CPU of the fleet read model folded from 0 (`BENCHMARKS.md`,
   seventh pass). Once the reader drops the page, an event kept apart
   decodes on its own.
3. The store makes a `RecordedEvent` for every event it appends or reads, so
   making one is kept cheap: its slots live in `_Fields`, and `_Filling`, a
   subclass with the same layout that does not forbid assignment, is filled
   with plain attribute stores (the interpreter's fastest) and then made a
   `RecordedEvent` by assigning its `__class__` (allowed between classes of
   one layout). Setting each slot through its descriptor's `__set__`, as
   before, cost three times as much (0.8 against 0.25 us an event): a call
   each, its arguments packed in a tuple.
4. pydantic's JSON parser refuses nesting deeper than about 200 levels, its
   serializer writes up to about 255: data nested in between (a hook
   payload, a tool input) was appended, then did not decode alone, and the
   projection runner stopped on it (a page decodes with `json.loads`, so a
   restart read it). Such data is decoded as a page's is.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import ValidationError

from ._catalogue import EVENT_TYPES, EventData, UnknownEvent
from ._gc import gc_paused
from .errors import StoreError

__all__ = [
    "ANY",
    "NO_STREAM",
    "ExpectedVersion",
    "Meta",
    "NewEvent",
    "Page",
    "RecordedEvent",
    "Source",
    "load_data",
    "new_appended",
    "new_recorded",
    "new_stored",
    "peek",
    "resolved_meta",
]

Source = Literal["runtime", "hook", "ingest", "replay", "api"]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


ANY: Any = _Sentinel("ANY")
"""Expected version that accepts any current version of the stream."""
NO_STREAM: Any = _Sentinel("NO_STREAM")
"""Expected version that requires the stream not to exist yet."""

ExpectedVersion = int | _Sentinel


@dataclass(frozen=True, slots=True)
class Meta:
    """Who and what an event belongs to and what caused it."""

    run_id: str | None = None
    agent_id: str | None = None
    parent_id: str | None = None
    # The position of the event that caused this one, when there is one. In an
    # append, -k names the event k places earlier in the same append: the store
    # records that event's position (`resolved_meta`), so an event and what it
    # caused can commit together.
    causation_id: int | None = None
    correlation_id: str | None = None
    source: Source = "runtime"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event not yet in the log: its data and its meta."""

    data: EventData
    meta: Meta = field(default_factory=Meta)

    @property
    def type(self) -> str:
        return self.data.type


class _Fields:
    """The slots of a `RecordedEvent`, shared with `_Filling` (note 3)."""

    __slots__ = (
        "_page",
        "_text",
        "data",
        "meta",
        "position",
        "recorded_at",
        "stream_id",
        "type",
        "version",
    )

    position: int
    stream_id: str
    version: int
    # The data's type name, known without decoding the data.
    type: str
    # Unset until first read when the event came from a store (`__getattr__`, note 1).
    data: EventData | UnknownEvent
    meta: Meta
    recorded_at: datetime
    # The stored data JSON while `data` is not decoded yet, else None.
    _text: str | None
    # The events read with this one, decoded together on the first read of one (note 2).
    _page: weakref.ReferenceType[Page] | None


class RecordedEvent(_Fields):
    """An event as stored: `position` is global and gap-free, `version` is within its stream.

    Immutable, compared and hashed by its fields, like a frozen dataclass. An event
    read from a store decodes its data on first use (`new_stored`; note 1).
    """

    __slots__ = ()

    def __new__(
        cls,
        position: int,
        stream_id: str,
        version: int,
        data: EventData | UnknownEvent,
        meta: Meta,
        recorded_at: datetime,
    ) -> RecordedEvent:
        return new_recorded(position, stream_id, version, data, meta, recorded_at)

    @property
    def unknown(self) -> bool:
        """Whether the data is an `UnknownEvent` (a type, or a schema, this code does not
        know), told without decoding it: the data of an unknown event is made when it is
        read, so an event whose data is not decoded yet is of a known type."""
        return _get_text(self) is None and type(_get_data(self)) is UnknownEvent

    def _decode_alone(self) -> EventData | UnknownEvent:
        text = self._text
        if text is None:  # decoded with its page, or by another thread meanwhile
            return cast("EventData", _get_data(self))
        cls = EVENT_TYPES[self.type]
        try:
            data = cast("EventData", cls.__pydantic_validator__.validate_json(text))
        except ValidationError as e:
            if not _too_deep(e):
                raise self._undecodable(cls, e) from e
            try:  # note 4
                data = cast("EventData", cls.model_validate(json.loads(text)))
            except (ValidationError, ValueError, RecursionError):
                raise self._undecodable(cls, e) from e
        _set_data(self, data)
        _set_text(self, None)  # after the data: a reader sees one or the other
        _set_page(self, None)
        _set_class(self, RecordedEvent)  # last: a RecordedEvent always has its data (note 1)
        return data

    def _undecodable(self, cls: type[Any], error: ValidationError) -> StoreError:
        return StoreError(
            f"event at position {self.position} ({self.type}, schema "
            f"{cls.SCHEMA_VERSION}) does not decode: {error}"
        )

    def _fields(self) -> tuple[Any, ...]:
        return (self.position, self.stream_id, self.version, self.data, self.meta, self.recorded_at)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordedEvent):
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined,unused-ignore]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"RecordedEvent(position={self.position!r}, stream_id={self.stream_id!r}, "
            f"version={self.version!r}, data={self.data!r}, meta={self.meta!r}, "
            f"recorded_at={self.recorded_at!r})"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a RecordedEvent is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a RecordedEvent is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (RecordedEvent, self._fields())

    def to_json_dict(self) -> dict[str, Any]:
        """The event's wire JSON (`events.encode_event`) as plain data: the shape of the
        API, the SSE stream and exports."""
        from ._wire import encode_event  # the encoder imports this module

        value: dict[str, Any] = json.loads(encode_event(self))
        return value


class _Undecoded(RecordedEvent):
    """A stored event whose data is not decoded yet (note 1): the first read of `data`
    decodes it, with its page, and makes it a plain `RecordedEvent`."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Called only for a slot that is not set: `data`, not read yet.
        if name != "data":
            raise AttributeError(f"'RecordedEvent' object has no attribute {name!r}")
        held = self._page
        page = None if held is None else held()
        if page is not None:
            try:
                with gc_paused():
                    load_data(page)
            except StoreError:
                pass  # another event of the page does not decode: this one on its own
        return self._decode_alone()


class Page(list["RecordedEvent"]):
    """The events of one read, as the store returns them: a list its undecoded events
    refer to weakly, to decode together (note 2).

    `unknowns`: how many of them are `UnknownEvent`s, set by the store's decoder
    (unset on a page made elsewhere): a fold of a page with none skips asking
    each event (`RecordedEvent.unknown`, a Python call an event).
    """

    __slots__ = ("__weakref__", "unknowns")
    unknowns: int


class _Filling(_Fields):
    """A `RecordedEvent` being built: the same slots, assignable; it becomes a
    `RecordedEvent` by assigning its `__class__` once filled (note 3)."""

    __slots__ = ()


_new = object.__new__
_set_data = _Fields.__dict__["data"].__set__
_get_data = _Fields.__dict__["data"].__get__
_set_text = _Fields.__dict__["_text"].__set__
_set_page = _Fields.__dict__["_page"].__set__
_get_text = _Fields.__dict__["_text"].__get__
# Assigns `__class__` past `RecordedEvent.__setattr__`, which refuses every assignment.
_set_class = object.__dict__["__class__"].__set__


def resolved_meta(meta: Meta, position: int) -> Meta:
    """The meta recorded for an event at `position`: a cause given as -k (an event k places
    earlier in the same append) becomes that event's position. `meta` is never mutated."""
    cause = meta.causation_id
    if cause is None or cause > 0:
        return meta
    return Meta(
        run_id=meta.run_id,
        agent_id=meta.agent_id,
        parent_id=meta.parent_id,
        causation_id=position + cause,
        correlation_id=meta.correlation_id,
        source=meta.source,
    )


def new_recorded(
    position: int,
    stream_id: str,
    version: int,
    data: EventData | UnknownEvent,
    meta: Meta,
    recorded_at: datetime,
) -> RecordedEvent:
    """`RecordedEvent(...)` for the store's hot paths, without a Python `__init__` call.

    Filled as a `_Filling` (note 3), as an append's events are. The result is
    equal to `RecordedEvent(...)` (a test checks it). (Its data may be an
    `UnknownEvent`, which no append holds: the decoder's rows of other schemas.)
    """
    return new_appended(
        position, stream_id, version, (NewEvent(cast("EventData", data), meta),), recorded_at
    )[0]


def new_appended(
    position: int,
    stream_id: str,
    version: int,
    events: Sequence[NewEvent],
    recorded_at: datetime,
    *,
    relative: bool = False,
) -> list[RecordedEvent]:
    """What `new_recorded` makes, for an append's `events` from `position` and
    `version` on, in one loop (no call per event; note 3). The events share
    their data and meta objects with `events`; with `relative` (some cause is
    given as -k, `Encoded.relative`), those metas are recorded as positions
    (`resolved_meta`)."""
    if relative:
        events = [
            NewEvent(e.data, resolved_meta(e.meta, position + i)) for i, e in enumerate(events)
        ]
    recorded: list[RecordedEvent] = []
    append = recorded.append
    for new in events:
        event = _new(_Filling)
        event.position = position
        event.stream_id = stream_id
        event.version = version
        event.meta = new.meta
        event.recorded_at = recorded_at
        data = event.data = new.data
        event.type = data.type
        event._text = None
        event._page = None
        event.__class__ = RecordedEvent  # type: ignore[assignment]  # note 3
        append(event)  # type: ignore[arg-type]  # a RecordedEvent now (no cast call)
        position += 1
        version += 1
    return recorded


def new_stored(
    position: int,
    stream_id: str,
    version: int,
    type_: str,
    text: str,
    meta: Meta,
    recorded_at: datetime,
    page: weakref.ReferenceType[Page],
) -> RecordedEvent:
    """A stored event of a known type at its current schema, its data JSON `text`
    validated by its model on first use, with the rest of the page `page` refers to
    (notes 1, 2)."""
    event = _new(_Filling)
    event.position = position
    event.stream_id = stream_id
    event.version = version
    event.meta = meta
    event.recorded_at = recorded_at
    event.type = type_
    event._text = text  # `data` stays unset until read (`_Undecoded.__getattr__`)
    event._page = page
    event.__class__ = _Undecoded  # type: ignore[assignment]  # note 3
    return event  # type: ignore[return-value]  # a RecordedEvent (undecoded) now


_VALIDATORS = {name: cls.__pydantic_validator__.validate_json for name, cls in EVENT_TYPES.items()}


def peek(event: RecordedEvent, validate_json: Callable[[str], Any]) -> Any:
    """The event's data if it is decoded, else `validate_json` of its stored JSON: a model
    of a few of its fields, to tell whether to decode it at all. The event is left as it
    was (undecoded stays undecoded). Raises what `validate_json` raises."""
    text = _get_text(event)
    return _get_data(event) if text is None else validate_json(text)


def _too_deep(error: ValidationError) -> bool:
    """Whether pydantic refused a JSON text for its nesting alone (note 4)."""
    return any(
        e["type"] == "json_invalid" and "recursion limit" in e["msg"] for e in error.errors()
    )


def load_data(events: Iterable[RecordedEvent]) -> None:
    """Decode the data of every event not decoded yet, in one loop (note 1).

    What `event.data` does one by one, for a page a fold is about to read
    whole, without an attribute miss per event. Raises `StoreError` for the
    first that does not decode, as `event.data` would; the events before it
    keep their data.
    """
    validators = _VALIDATORS
    for event in events:
        text = _get_text(event)
        if text is not None:
            try:
                data = validators[event.type](text)
            except ValidationError:
                event._decode_alone()  # raises the error that names the position
                continue
            _set_data(event, data)
            _set_text(event, None)
            _set_page(event, None)
            _set_class(event, RecordedEvent)
