"""Checking and encoding an append: what every backend does before it writes.

`check_append` refuses bad arguments and `encode_batch` turns each event
into its stored parameters, raising `InvalidEvent` or `EventTooLarge` for the
first bad one, so a bad append writes nothing on any backend and raises the
same error on each. Both run on the caller's task, before anything is queued.

Notes (do not fix without reading this):
1. Meta ids go out as `''` (and `causation_id` as `0`) in `meta_params`, and
   the SQLite INSERT turns them back into NULL with NULLIF. Python's sqlite3
   binds `None` through its adapter protocol (two failed attribute look-ups
   per value, ~0.2 us each), which was a quarter of the cost of a batch
   insert; a `str` or an `int` binds directly. So an empty id is refused
   here: it would read back as None.
2. The JSON serializer of each event class is taken once (`WRITABLE`):
   `model_dump_json` adds ~0.4 us of argument handling per call, a third of
   the cost of encoding an event.
3. `encode_batch` gives each column of the events' stored values as one list
   (`Encoded`), and `uniform` when their type and meta are the same: the
   SQLite writer then binds those once per statement and only the data per
   row (its `_rows.py`, note 6), and PostgreSQL takes the columns as arrays.
   The size check is on the serializer's bytes, exact, before they are
   decoded. (Binding the bytes and storing them as text with a CAST would
   save the decode, 0.08 us an event, but costs SQLite 0.4 us a row more.)
4. An append of `_VECTOR` events or more is encoded column by column with
   `map`: the serializer, `attrgetter`, `type` and `set` run from C, with no
   Python bytecode per event, which was half the cost of encoding one (the
   serializer itself is the other half); `meta_params` runs once per Meta
   object when a few are shared by the events, else once per event. Anything
   unusual in the batch (another class, a bad event or meta) sends it to the
   loop instead, which decides it event by event, in order, and raises for
   the first bad one: both ways give the same result (a test checks it).
5. A `causation_id` of -k (the event k places earlier in the same append,
   `Meta`) is encoded as given, and the append is marked `relative` (only
   the event-by-event loop takes one: `meta_params` refuses it elsewhere);
   each backend turns it into that event's position once the rows have
   positions (`resolved`, `new_appended(relative=True)`). It lets an agent append a
   model response and what it caused in one durable commit instead of two.
6. An append of one event (most of them: a tool call, a status) takes
   `_encode_one`, the loop's checks without its lists and segments'
   bookkeeping, and `check_append` tells a list or a tuple by its type
   before asking the `Sequence` ABC (an `isinstance` on an ABC is a Python
   call). With the writer's one-event path (`sqlite/_writer.py`, `_number`)
   that took the event loop's work for an append, 64 appenders at once,
   from 90,100 to 73,700 instructions (callgrind, tenth pass of
   BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter, call, itemgetter
from typing import Any, NamedTuple

from pydantic_core import PydanticSerializationError

from ._catalogue import EVENT_TYPES, EventModel
from ._envelope import ANY, NO_STREAM, ExpectedVersion, Meta, NewEvent
from ._gc import gc_paused
from .errors import EventTooLarge, InvalidEvent

_decode = bytes.decode

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_STREAM_ID_LENGTH",
    "WRITABLE",
    "Encoded",
    "StoredMeta",
    "check_append",
    "check_limit",
    "encode_batch",
    "meta_params",
    "resolved",
]

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
MAX_STREAM_ID_LENGTH = 200

StoredMeta = tuple[str, str, str, int, str, str]
"""A meta as stored (`meta_params`): run, agent, parent, causation, correlation, source."""


class Encoded(NamedTuple):
    """An append's events as stored, column by column (note 3): event `i` is at index `i`.

    (A named tuple: made once an append, and cheaper to make than a frozen dataclass.)
    """

    types: list[str]
    schemas: list[int]
    # The data JSON.
    data: list[str]
    metas: list[StoredMeta]
    # (index of the first event, run id, agent id) wherever those change ('' for none).
    segments: list[tuple[int, str, str]]
    # (type, schema, *meta) when every event has the same (note 3), else None.
    uniform: tuple[Any, ...] | None
    # Some event's cause is -k, an earlier event of the append (note 5).
    relative: bool = False


WRITABLE: dict[type[EventModel], tuple[str, int, Callable[[Any], bytes]]] = {
    cls: (name, cls.SCHEMA_VERSION, cls.__pydantic_serializer__.to_json)
    for name, cls in EVENT_TYPES.items()
}
"""Each event class that may be appended: its stored type, schema and JSON serializer."""

_VECTOR = 16  # note 4
_DATA = attrgetter("data")
_META = attrgetter("meta")
_SOURCES = frozenset(("runtime", "hook", "ingest", "replay", "api"))
_INT64 = 2**63  # positions are signed 64-bit integers in every store
_SEQUENCES = (list, tuple)


def check_append(
    stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
) -> tuple[NewEvent, ...]:
    """The events of an append as a tuple, once its arguments are checked.

    Raises `InvalidEvent` for a stream id that is not a string of 1 to 200
    characters, events that are not a sequence, an expected version that is
    not `ANY`, `NO_STREAM` or an int >= 0.
    """
    if type(stream_id) is not str or not 0 < len(stream_id) <= MAX_STREAM_ID_LENGTH:
        raise InvalidEvent(
            f"stream_id must be a string of 1 to {MAX_STREAM_ID_LENGTH} characters, "
            f"got {stream_id!r}"
        )
    # A list or a tuple (nearly every call) is told without the ABC's isinstance.
    if type(events) not in _SEQUENCES and (
        isinstance(events, NewEvent) or not isinstance(events, Sequence)
    ):
        raise InvalidEvent(f"events must be a sequence of NewEvent, got {type(events).__name__}")
    if not (
        expected_version is ANY
        or expected_version is NO_STREAM
        or (type(expected_version) is int and expected_version >= 0)
    ):
        raise InvalidEvent(
            f"expected_version must be ANY, NO_STREAM or an int >= 0, got {expected_version!r}"
        )
    return tuple(events)


def check_limit(name: str, value: int | None) -> None:
    """Raise `ValueError` unless `value` is None or an int >= 0."""
    if value is not None and (type(value) is not int or value < 0):
        raise ValueError(f"{name} must be an int >= 0 or None, got {value!r}")


def encode_batch(stream_id: str, batch: tuple[NewEvent, ...], max_event_bytes: int) -> Encoded:
    """Each event's stored values, column by column (note 3).

    Raises `InvalidEvent` (not a
    `NewEvent`, data not an event type or not JSON-serializable, meta that
    would not read back the same) or `EventTooLarge` for the first bad
    event. `batch` is never mutated.
    """
    if len(batch) == 1:  # most appends (note 6)
        return _encode_one(stream_id, batch[0], max_event_bytes)
    if len(batch) < _VECTOR:
        return _encode_each(stream_id, batch, max_event_bytes)
    with gc_paused():  # many new objects, no await (_decoding.py, note 3)
        encoded = _encode_columns(batch, max_event_bytes)
        if encoded is None:  # something unusual: decided event by event (note 4)
            encoded = _encode_each(stream_id, batch, max_event_bytes)
    return encoded


def _encode_columns(batch: tuple[NewEvent, ...], limit: int) -> Encoded | None:
    """`batch` encoded by `map`s over C functions (note 4), or None if anything in it is
    unusual or bad (`_encode_each` decides it then)."""
    n = len(batch)
    if set(map(type, batch)) != {NewEvent}:
        return None
    datas = list(map(_DATA, batch))
    classes = set(map(type, datas))
    kind = WRITABLE.get(classes.pop()) if len(classes) == 1 else None
    types: list[str]
    schemas: list[int]
    data: list[Any]
    try:
        if kind is not None:
            name, schema, to_json = kind
            types, schemas = [name] * n, [schema] * n
            data = list(map(to_json, datas))
        else:
            kinds: list[Any] = list(map(WRITABLE.get, map(type, datas)))
            if None in kinds:
                return None
            types = list(map(itemgetter(0), kinds))
            schemas = list(map(itemgetter(1), kinds))
            data = list(map(call, map(itemgetter(2), kinds), datas))
    except Exception:  # the loop raises it, in the batch's order
        return None
    if max(map(len, data)) > limit:
        return None
    data = list(map(_decode, data))
    metas = list(map(_META, batch))
    try:
        if len(set(map(id, metas))) * 4 <= n:  # a few Meta objects, each shared by many events
            objects = dict(zip(map(id, metas), metas, strict=True))
            by_id = {key: meta_params(meta) for key, meta in objects.items()}
            params = list(map(by_id.__getitem__, map(id, metas)))
        else:
            params = list(map(meta_params, metas))
    except InvalidEvent:
        return None
    first = params[0]
    if params.count(first) == n:
        segments = [(0, first[0], first[1])]
        uniform = (types[0], schemas[0], *first) if kind is not None else None
    else:
        segments = _segments(params)
        uniform = None
    return Encoded(types, schemas, data, params, segments, uniform)


def _encode_one(stream_id: str, event: NewEvent, limit: int) -> Encoded:
    """An append of one event: what `_encode_each` gives, without its loop (note 6), and
    `uniform` (one event has one type and one meta)."""
    name, schema, text = _data_json(stream_id, event, limit)
    stored = meta_params(event.meta)  # no earlier event for a cause of -k to name
    return Encoded(
        [name], [schema], [text], [stored], [(0, stored[0], stored[1])], (name, schema, *stored)
    )


def _encode_each(stream_id: str, batch: tuple[NewEvent, ...], limit: int) -> Encoded:
    types: list[str] = []
    schemas: list[int] = []
    data: list[str] = []
    metas: list[StoredMeta] = []
    segments: list[tuple[int, str, str]] = []
    last_meta: Meta | None = None
    stored_meta: StoredMeta = ("", "", "", 0, "", "")
    segment_run = segment_agent = ""
    relative = False
    for index, event in enumerate(batch):
        name, schema, text = _data_json(stream_id, event, limit)
        meta = event.meta
        if meta is not last_meta:
            # A meta valid at an index is valid at every later one (note 5).
            stored_meta = meta_params(meta, earlier=index)
            relative = relative or stored_meta[3] < 0
            last_meta = meta
            run, agent = stored_meta[0], stored_meta[1]
            if run != segment_run or agent != segment_agent or not segments:
                segments.append((index, run, agent))
                segment_run, segment_agent = run, agent
        types.append(name)
        schemas.append(schema)
        data.append(text)
        metas.append(stored_meta)
    return Encoded(types, schemas, data, metas, segments, None, relative)


def _data_json(stream_id: str, event: NewEvent, limit: int) -> tuple[str, int, str]:
    """The event's stored type, schema and data JSON. Raises `InvalidEvent` (not a
    `NewEvent`, data not an event type or not serializable) or `EventTooLarge`."""
    if type(event) is not NewEvent:
        raise InvalidEvent(f"events must be NewEvent instances, got {type(event).__name__}")
    value = event.data
    kind = WRITABLE.get(type(value))
    if kind is None:
        raise InvalidEvent(
            f"data must be an instance of one of the event types, got {type(value).__name__}"
        )
    name, schema, to_json = kind
    try:
        text = to_json(value)
    except PydanticSerializationError as e:
        raise InvalidEvent(f"{name} data is not JSON-serializable: {e}") from e
    if len(text) > limit:
        raise EventTooLarge(stream_id, name, len(text), limit)
    return name, schema, text.decode()


def _segments(metas: list[StoredMeta]) -> list[tuple[int, str, str]]:
    """(index, run id, agent id) of the first event and of each where those change."""
    segments: list[tuple[int, str, str]] = []
    run = agent = None
    for index, stored in enumerate(metas):
        if stored[0] != run or stored[1] != agent:
            run, agent = stored[0], stored[1]
            segments.append((index, run, agent))
    return segments


def meta_params(meta: Meta, *, earlier: int = 0) -> StoredMeta:
    """The meta's stored parameters, None as '' / 0 (note 1).

    `earlier`: how many events come before this one in its append; a causation
    id of -1 to -`earlier` names one of them (note 5) and is kept as given.

    Raises `InvalidEvent` if `meta` cannot be stored as given: an id that is
    empty or not a string, a causation id that is neither a position nor an
    earlier event of the append, a source that is not a `Source`.
    """
    if type(meta) is not Meta:
        raise InvalidEvent(f"meta must be a Meta, got {type(meta).__name__}")
    run, agent, parent = meta.run_id, meta.agent_id, meta.parent_id
    causation, correlation, source = meta.causation_id, meta.correlation_id, meta.source
    if (
        (run is None or (type(run) is str and run))
        and (agent is None or (type(agent) is str and agent))
        and (parent is None or (type(parent) is str and parent))
        and (correlation is None or (type(correlation) is str and correlation))
        and (
            causation is None
            or (type(causation) is int and (0 < causation < _INT64 or 0 < -causation <= earlier))
        )
        and source in _SOURCES
    ):
        return (run or "", agent or "", parent or "", causation or 0, correlation or "", source)
    for name in ("run_id", "agent_id", "parent_id", "correlation_id"):
        value = getattr(meta, name)
        if value is not None and (type(value) is not str or not value):
            raise InvalidEvent(f"meta.{name} must be a non-empty string or None, got {value!r}")
    if source not in _SOURCES:
        raise InvalidEvent(f"meta.source must be one of {sorted(_SOURCES)}, got {source!r}")
    raise InvalidEvent(
        "meta.causation_id must be a position (1 to 2**63 - 1), -k for the event k places "
        f"earlier in the same append, or None, got {causation!r}"
    )


def resolved(encoded: Encoded, position: int) -> Encoded:
    """`encoded` with each cause given as -k made a position, its first event at `position`
    (note 5); `encoded` itself when it has none. `encoded` is never mutated."""
    if not encoded.relative:
        return encoded
    metas = [
        stored if stored[3] >= 0 else (*stored[:3], position + i + stored[3], *stored[4:])
        for i, stored in enumerate(encoded.metas)
    ]
    return encoded._replace(metas=metas, relative=False)
