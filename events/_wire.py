"""An event's wire JSON: the one encoding of an event that leaves the process.

The HTTP API (`GET /v1/events`), the SSE stream (each frame's `data`), the
CLI's `--json` and run exports all write an event with `encode_event`::

    {"position":12,"stream_id":"agent-a1","version":3,"type":"AgentCommanded",
     "data":{...},"meta":{"run_id":...,"agent_id":...,"parent_id":...,
     "causation_id":...,"correlation_id":...,"source":"runtime"},
     "recorded_at":"2026-03-02T09:00:00.123456+00:00"}

compact, UTF-8 (not ASCII-escaped), on one line. An export's event lines add
`"schema"` (the data's schema version) after `"type"`.
`RecordedEvent.to_json_dict()` is this JSON, decoded.

Notes (do not fix without reading this):
1. The data goes through its model's own JSON serializer, and the meta,
   stream id and time of an event are encoded once for all the events that
   share them (the store shares those objects between the events of a page
   and of a commit): three times faster than `json.dumps` of a dict, the
   same JSON. The caches are bounded, and only ever hold encodings.
2. An event read from a store whose data was never decoded (`_envelope.py`
   note 1) goes out with its stored data JSON as it is: fleet wrote that text
   with the same serializer from a validated model (appends and imports
   alike; old schemas and unknown types are decoded when read, never
   spliced), so the bytes are those a decode and re-encode would give, at
   about a third of the cost. A row edited outside fleet goes out as edited;
   whoever needs the typed data (folds, an import of the export) still
   validates it and names its position.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ._catalogue import EVENT_TYPES, EventModel, UnknownEvent
from ._envelope import Meta, RecordedEvent
from .errors import InvalidEvent

__all__ = ["encode_event"]

_dumps_str = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_META_FIELDS = tuple(Meta.__dataclass_fields__)
_MAX_CACHED = 4096


def _dumps(value: Any) -> bytes:
    return _dumps_str(value).encode()


class _Encoder:
    """Encodes events, reusing the encoding of shared parts (note 1)."""

    def __init__(self) -> None:
        self._metas: dict[Meta, bytes] = {}
        self._streams: dict[str, bytes] = {}
        self._types: dict[type[EventModel], tuple[bytes, bytes]] = {}
        self._last_meta: tuple[Meta | None, bytes] = (None, b"")
        self._at: tuple[datetime | None, bytes] = (None, b"")

    def __call__(self, event: RecordedEvent, schema: bool) -> bytes:
        text = event._text
        if text is not None:  # read from a store and not decoded: its stored JSON (note 2)
            kind = self._kind(EVENT_TYPES[event.type])
            type_json = kind[0] + kind[1] if schema else kind[0]
            data_json = text.encode()
            return self._join(event, type_json, data_json)
        data = event.data
        if type(data) is UnknownEvent:
            if schema:
                raise InvalidEvent(
                    f"event at position {event.position} has a type this fleet does not know "
                    f"({event.type}); export it with the fleet that wrote it"
                )
            type_json, data_json = _dumps(data.type), _dumps(data.raw)
        else:
            cls = type(data)
            kind = self._kind(cls)
            type_json = kind[0] + kind[1] if schema else kind[0]
            data_json = cls.__pydantic_serializer__.to_json(data)
        return self._join(event, type_json, data_json)

    def _kind(self, cls: type[EventModel]) -> tuple[bytes, bytes]:
        """The JSON of the type's name, and of its schema field."""
        kind = self._types.get(cls)
        if kind is None:
            name: str = cls.model_fields["type"].default
            kind = self._types[cls] = (_dumps(name), b',"schema":%d' % cls.SCHEMA_VERSION)
        return kind

    def _join(self, event: RecordedEvent, type_json: bytes, data_json: bytes) -> bytes:
        return b"".join(
            (
                b'{"position":%d,"stream_id":%s,"version":%d,"type":%s,"data":'
                % (event.position, self._stream(event.stream_id), event.version, type_json),
                data_json, b',"meta":', self._meta(event.meta),
                b',"recorded_at":', self._time(event.recorded_at), b"}",
            )
        )  # fmt: skip

    def _meta(self, meta: Meta) -> bytes:
        last = self._last_meta
        if last[0] is meta:
            return last[1]
        encoded = self._metas.get(meta)
        if encoded is None:
            if len(self._metas) >= _MAX_CACHED:
                self._metas.clear()
            encoded = self._metas[meta] = _dumps(
                {name: getattr(meta, name) for name in _META_FIELDS}
            )
        self._last_meta = (meta, encoded)
        return encoded

    def _stream(self, stream_id: str) -> bytes:
        encoded = self._streams.get(stream_id)
        if encoded is None:
            if len(self._streams) >= _MAX_CACHED:
                self._streams.clear()
            encoded = self._streams[stream_id] = _dumps(stream_id)
        return encoded

    def _time(self, at: datetime) -> bytes:
        if self._at[0] is not at:
            self._at = (at, _dumps(at.isoformat()))
        return self._at[1]


_encode = _Encoder()


def encode_event(event: RecordedEvent, *, schema: bool = False) -> bytes:
    """The event's wire JSON, as UTF-8 bytes on one line (no newline).

    With `schema`, the data's schema version follows `type` (the shape of an
    export's event lines); an event of a type this fleet does not know
    (`UnknownEvent`) then raises `InvalidEvent`, since it could not be
    checked on import. The event is never mutated.
    """
    return _encode(event, schema)
