"""Stored rows to events: the decoder every backend shares.

A backend stores an event as a row of thirteen columns, in this order (`Row`):
`position, stream_id, version, type, schema_version, data (JSON text),
run_id, agent_id, parent_id, causation_id, correlation_id, source,
recorded_at (integer microseconds since the epoch, UTC)`; absent meta ids
are None. `RowDecoder` turns such rows into `RecordedEvent`s, so every
backend upcasts old schemas, reports unknown types and refuses corrupt rows
the same way.

Notes (do not fix without reading this):
1. Decoding is the hot path of every read: a row of a current-schema type
   keeps its data JSON, validated by its model when the data is first read
   (`_envelope.py` note 1); Meta objects are shared between rows with the
   same meta (they are immutable), and so is `recorded_at` between rows of
   one commit. Any other row (an old schema, an unknown type) is decoded at
   once through `upcast`, so strict reads still refuse what they cannot read.
2. `recorded_at` is integer microseconds since the epoch (UTC): cheaper to
   decode than ISO text, and exact.
3. The cyclic garbage collector is paused while a page is decoded
   (`gc_paused`). Each event is half a dozen new container objects (the model,
   its dict and field set, lists, the envelope) that the collector would
   otherwise walk and promote ten times per page; none of them forms a cycle.
   Pausing for one page (at most a few milliseconds, no await inside) made
   reads 1.3 to 3 times faster, the more so the larger the process's heap. A
   caller that disabled the collector itself is left as it was.
4. A row of a current-schema type becomes its event in the loop itself, as
   `new_stored` makes one (`_envelope.py`, note 3), not through a call of it:
   a Python call a row, its eight arguments, was a twelfth of the loop's
   instructions (6,470 against 5,950 an event, callgrind, sixteenth pass of
   BENCHMARKS.md). A test checks the two make equal events.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import ValidationError

from ._catalogue import EVENT_TYPES, EventData, UnknownEvent
from ._envelope import (  # _Filling, _Undecoded: note 4
    Meta,
    Page,
    RecordedEvent,
    _Filling,
    _Undecoded,
    new_recorded,
)
from ._gc import gc_paused
from ._upcasting import upcast
from .errors import StoreError, UnknownEventType

__all__ = ["Row", "RowDecoder", "microseconds"]

Row = tuple[Any, ...]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def microseconds(at: datetime) -> int:
    """`at` (timezone-aware) as integer microseconds since the epoch, exactly (note 2)."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class RowDecoder:
    """Turns rows into `RecordedEvent`s, sharing equal Meta and timestamps (note 1).

    One per store; not thread-safe (use it on the event loop only).
    """

    _MAX_METAS = 4096

    def __init__(self) -> None:
        # type -> its current schema version: rows of these are decoded when first read
        self._current: dict[str, int] = {
            name: cls.SCHEMA_VERSION for name, cls in EVENT_TYPES.items()
        }
        self._metas: dict[tuple[Any, ...], Meta] = {}
        self._last_us = -1
        self._last_at = datetime.fromtimestamp(0, UTC)

    def decode_all(self, rows: Sequence[Row], *, lenient: bool) -> list[RecordedEvent]:
        """Decode `rows`; raises `UnknownEventType` (strict) or `StoreError` (corrupt row)."""
        with gc_paused():
            return self._decode_all(rows, lenient)

    def _decode_all(self, rows: Sequence[Row], lenient: bool) -> list[RecordedEvent]:
        current = self._current
        metas = self._metas
        page = Page()  # its lazy events refer to it (`_envelope.py` note 2)
        held = weakref.ref(page)
        append = page.append
        new = object.__new__
        unknowns = 0
        for row in rows:
            key = row[6:12]
            meta = metas.get(key)
            if meta is None:
                meta = self._meta(key)
            recorded_us = row[12]
            if recorded_us != self._last_us:
                self._last_at = datetime.fromtimestamp(recorded_us / 1_000_000, UTC)
                self._last_us = recorded_us
            type_ = row[3]
            if current.get(type_) == row[4]:  # `new_stored`, inlined (note 4)
                event = new(_Filling)
                event.position = row[0]
                event.stream_id = row[1]
                event.version = row[2]
                event.meta = meta
                event.recorded_at = self._last_at
                event.type = type_
                event._text = row[5]  # `data` stays unset until read
                event._page = held
                event.__class__ = _Undecoded  # type: ignore[assignment]
                append(event)  # type: ignore[arg-type]  # a RecordedEvent (undecoded) now
            else:
                data = self._slow_data(row, lenient)
                unknowns += type(data) is UnknownEvent
                append(new_recorded(row[0], row[1], row[2], data, meta, self._last_at))
        page.unknowns = unknowns
        return page

    def _meta(self, key: tuple[Any, ...]) -> Meta:
        if len(self._metas) >= self._MAX_METAS:
            self._metas.clear()
        meta = self._metas[key] = Meta(*key)
        return meta

    @staticmethod
    def _slow_data(row: Row, lenient: bool) -> EventData | UnknownEvent:
        position, type_, schema, text = row[0], row[3], row[4], row[5]
        cls = EVENT_TYPES.get(type_)
        if cls is None or schema > cls.SCHEMA_VERSION:
            # A type, or a schema of a known type, written by a newer fleet.
            newer = None if cls is None else schema
            if not lenient:
                raise UnknownEventType(position, type_, schema_version=newer)
            try:
                raw = json.loads(text)
            except ValueError as e:
                raise _undecodable(row, e) from e
            return UnknownEvent(type=type_, raw=raw if isinstance(raw, dict) else {"value": raw})
        try:
            return cast("EventData", cls.model_validate(upcast(type_, schema, json.loads(text))))
        except (ValidationError, ValueError) as e:
            raise _undecodable(row, e) from e


def _undecodable(row: Row, error: Exception) -> StoreError:
    return StoreError(
        f"event at position {row[0]} ({row[3]}, schema {row[4]}) does not decode: {error}"
    )
