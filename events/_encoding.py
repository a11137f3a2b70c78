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
3. `encode_batch(..., flat=True)` gives every event's parameters one after the
   other in one list (`STORED_PARAMS` each) instead of a tuple per event: the
   SQLite writer binds a large append's rows straight from it (its
   `_rows.py`, note 6) without building a row per event.
4. A `causation_id` of -k (the event k places earlier in the same append,
   `Meta`) is encoded as given; each backend turns it into that event's
   position when it numbers the rows (`resolved_cause`, `resolved_meta`). It
   lets an agent append a model response and the tool calls it caused in one
   durable commit instead of two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic_core import PydanticSerializationError

from ._catalogue import EVENT_TYPES, EventModel
from ._envelope import ANY, NO_STREAM, ExpectedVersion, Meta, NewEvent
from ._gc import gc_paused
from .errors import EventTooLarge, InvalidEvent

__all__ = [
    "CAUSE_PARAM",
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_STREAM_ID_LENGTH",
    "STORED_PARAMS",
    "WRITABLE",
    "Encoded",
    "check_append",
    "check_limit",
    "encode_batch",
    "meta_params",
    "resolved_cause",
]

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
MAX_STREAM_ID_LENGTH = 200

# (per event: (type, schema_version, data JSON, *meta_params), or all of them in
# one flat list, note 3) and (index of the first event, run id, agent id)
# wherever those change ('' for none).
Encoded = tuple[list[Any], list[tuple[int, str, str]]]
STORED_PARAMS = 9
"""The parameters `encode_batch` gives an event: type, schema_version, data, and `meta_params`."""
CAUSE_PARAM = 6
"""Where an event's causation id is among its `STORED_PARAMS`."""

WRITABLE: dict[type[EventModel], tuple[str, int, Callable[[Any], bytes]]] = {
    cls: (name, cls.SCHEMA_VERSION, cls.__pydantic_serializer__.to_json)
    for name, cls in EVENT_TYPES.items()
}
"""Each event class that may be appended: its stored type, schema and JSON serializer."""

_SOURCES = frozenset(("runtime", "hook", "ingest", "replay", "api"))


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
    if isinstance(events, NewEvent) or not isinstance(events, Sequence):
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


def encode_batch(
    stream_id: str, batch: tuple[NewEvent, ...], max_event_bytes: int, *, flat: bool = False
) -> Encoded:
    """Each event's stored parameters, and where its run and agent ids change.

    With `flat`, the parameters of every event are in one list (note 3).

    Raises `InvalidEvent` (not a `NewEvent`, data not an event type or not
    JSON-serializable, meta that would not read back the same) or
    `EventTooLarge` for the first bad event. `batch` is never mutated.
    """
    if len(batch) < 64:
        return _encode_all(stream_id, batch, max_event_bytes, flat)
    with gc_paused():  # many new objects, no await (_decoding.py, note 3)
        return _encode_all(stream_id, batch, max_event_bytes, flat)


def _encode_all(stream_id: str, batch: tuple[NewEvent, ...], limit: int, flat: bool) -> Encoded:
    # A str of n characters is at most 4n UTF-8 bytes: most events skip the encode.
    safe_chars = limit // 4
    params: list[Any] = []
    add = params.extend if flat else params.append
    segments: list[tuple[int, str, str]] = []
    last_meta: Meta | None = None
    stored_meta: tuple[Any, ...] = ()
    segment_run = segment_agent = ""
    for index, event in enumerate(batch):
        if type(event) is not NewEvent:
            raise InvalidEvent(f"events must be NewEvent instances, got {type(event).__name__}")
        data = event.data
        kind = WRITABLE.get(type(data))
        if kind is None:
            raise InvalidEvent(
                f"data must be an instance of one of the event types, got {type(data).__name__}"
            )
        name, schema, to_json = kind
        meta = event.meta
        if meta is not last_meta:
            # A meta valid at an index is valid at every later one (note 4).
            stored_meta = meta_params(meta, earlier=index)
            last_meta = meta
            run, agent = stored_meta[0], stored_meta[1]
            if run != segment_run or agent != segment_agent or not segments:
                segments.append((index, run, agent))
                segment_run, segment_agent = run, agent
        try:
            text = to_json(data).decode()
        except PydanticSerializationError as e:
            raise InvalidEvent(f"{name} data is not JSON-serializable: {e}") from e
        if len(text) > safe_chars:
            size = len(text.encode())
            if size > limit:
                raise EventTooLarge(stream_id, name, size, limit)
        add((name, schema, text, *stored_meta))
    return params, segments


def meta_params(meta: Meta, *, earlier: int = 0) -> tuple[str, str, str, int, str, str]:
    """The meta's stored parameters, None as '' / 0 (note 1).

    `earlier`: how many events come before this one in its append; a causation
    id of -1 to -`earlier` names one of them (note 4) and is kept as given.

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
            or (type(causation) is int and (causation > 0 or 0 < -causation <= earlier))
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
        "meta.causation_id must be a position >= 1, -k for the event k places earlier "
        f"in the same append, or None, got {causation!r}"
    )


def resolved_cause(cause: int, position: int) -> int:
    """The stored causation parameter of the event at `position` (0 for none; note 4)."""
    return cause if cause >= 0 else position + cause
