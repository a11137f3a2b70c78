"""The SQLite log's table, and the mapping between its rows and events.

Notes (do not fix without reading this):
1. Meta ids go in as `''` (and `causation_id` as `0`) and the INSERT turns them
   into NULL with NULLIF. Python's sqlite3 binds `None` through its adapter
   protocol (two failed attribute look-ups per value, ~0.2 us each), which was
   a quarter of the cost of a batch insert; a `str` or an `int` binds directly.
   So an empty id is refused at append (`meta_params`): it would read back as None.
2. Decoding is the hot path of every read: the data of a current-schema type
   goes straight to its model's JSON validator; Meta objects are shared between
   rows with the same meta (they are immutable), and so is `recorded_at` between
   rows of one commit. Any other row (an old schema, an unknown type) takes the
   slow path through `upcast`.
3. `recorded_at` is stored as integer microseconds since the epoch (UTC):
   cheaper to decode than ISO text, and exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ._catalogue import EVENT_TYPES, EventModel, UnknownEvent
from ._envelope import Meta, RecordedEvent, new_recorded
from ._store import EventFilter
from ._upcasting import upcast
from .errors import InvalidEvent, StoreError, UnknownEventType

__all__ = [
    "INSERT",
    "SCHEMA",
    "SELECT_COLUMNS",
    "Row",
    "RowDecoder",
    "meta_params",
    "select_events",
]

Row = tuple[Any, ...]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL CHECK (stream_id <> ''),
    version        INTEGER NOT NULL CHECK (version > 0),
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    run_id         TEXT,
    agent_id       TEXT,
    parent_id      TEXT,
    causation_id   INTEGER,
    correlation_id TEXT,
    source         TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, position) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_agent ON events (agent_id, position)
    WHERE agent_id IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS events_are_immutable BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;
CREATE TRIGGER IF NOT EXISTS events_are_never_deleted BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are never deleted'); END;
"""

# The parameter order of INSERT: the three the writer assigns, then what
# `append` encodes up front (see `meta_params`), so a row is one tuple concat.
INSERT = (
    "INSERT INTO events (position, stream_id, version, recorded_at, type, schema_version, data, "
    "run_id, agent_id, parent_id, causation_id, correlation_id, source) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, 0), "
    "NULLIF(?, ''), ?)"
)

SELECT_COLUMNS = (
    "position, stream_id, version, type, schema_version, data, run_id, agent_id, "
    "parent_id, causation_id, correlation_id, source, recorded_at"
)


_SOURCES = frozenset(("runtime", "hook", "ingest", "replay", "api"))


def meta_params(meta: Meta) -> tuple[str, str, str, int, str, str]:
    """The meta's INSERT parameters, None as '' / 0 (see note 1).

    Raises `InvalidEvent` if `meta` cannot be stored as given: an id that is
    empty or not a string, a causation id that is not a position, a source
    that is not a `Source`.
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
        and (causation is None or (type(causation) is int and causation > 0))
        and source in _SOURCES
    ):
        return (run or "", agent or "", parent or "", causation or 0, correlation or "", source)
    for name in ("run_id", "agent_id", "parent_id", "correlation_id"):
        value = getattr(meta, name)
        if value is not None and (type(value) is not str or not value):
            raise InvalidEvent(f"meta.{name} must be a non-empty string or None, got {value!r}")
    if source not in _SOURCES:
        raise InvalidEvent(f"meta.source must be one of {sorted(_SOURCES)}, got {source!r}")
    raise InvalidEvent(f"meta.causation_id must be a position >= 1 or None, got {causation!r}")


def select_events(
    after: int, until: int | None, where: EventFilter | None, limit: int | None
) -> tuple[str, list[Any]]:
    """The SELECT of a page of the log, `after < position <= until`, and its parameters."""
    clauses = ["position > ?"]
    params: list[Any] = [after]
    if until is not None:
        clauses.append("position <= ?")
        params.append(until)
    if where is not None:
        if where.stream_ids is not None:
            clauses.append(f"stream_id IN ({','.join('?' * len(where.stream_ids))})")
            params.extend(sorted(where.stream_ids))
        if where.types is not None:
            clauses.append(f"type IN ({','.join('?' * len(where.types))})")
            params.extend(sorted(where.types))
        if where.run_id is not None:
            clauses.append("run_id = ?")
            params.append(where.run_id)
        if where.agent_id is not None:
            clauses.append("agent_id = ?")
            params.append(where.agent_id)
    params.append(-1 if limit is None else limit)
    sql = (
        f"SELECT {SELECT_COLUMNS} FROM events WHERE {' AND '.join(clauses)} "
        "ORDER BY position LIMIT ?"
    )
    return sql, params


_Validate = Callable[[str], Any]


class RowDecoder:
    """Turns rows into `RecordedEvent`s, sharing equal Meta and timestamps (note 2).

    One per store; not thread-safe (it is only used on the event loop).
    """

    _MAX_METAS = 4096

    def __init__(self) -> None:
        # type -> (current schema version, JSON validator of its model)
        self._fast: dict[str, tuple[int, _Validate]] = {
            name: (cls.SCHEMA_VERSION, cls.__pydantic_validator__.validate_json)
            for name, cls in EVENT_TYPES.items()
        }
        self._metas: dict[tuple[Any, ...], Meta] = {}
        self._last_us = -1
        self._last_at = datetime.fromtimestamp(0, UTC)

    def decode_all(self, rows: list[Row], *, lenient: bool) -> list[RecordedEvent]:
        """Decode `rows`; raises `UnknownEventType` (strict) or `StoreError` (corrupt row)."""
        fast = self._fast
        metas = self._metas
        out: list[RecordedEvent] = []
        append = out.append
        for row in rows:
            entry = fast.get(row[3])
            if entry is not None and entry[0] == row[4]:
                try:
                    data = entry[1](row[5])
                except ValidationError as e:
                    raise _undecodable(row, e) from e
            else:
                data = self._slow_data(row, lenient)
            key = row[6:12]
            meta = metas.get(key)
            if meta is None:
                meta = self._meta(key)
            recorded_us = row[12]
            if recorded_us != self._last_us:
                self._last_at = datetime.fromtimestamp(recorded_us / 1_000_000, UTC)
                self._last_us = recorded_us
            append(new_recorded(row[0], row[1], row[2], data, meta, self._last_at))
        return out

    def _meta(self, key: tuple[Any, ...]) -> Meta:
        if len(self._metas) >= self._MAX_METAS:
            self._metas.clear()
        meta = self._metas[key] = Meta(*key)
        return meta

    @staticmethod
    def _slow_data(row: Row, lenient: bool) -> EventModel:
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
            return cls.model_validate(upcast(type_, schema, json.loads(text)))
        except (ValidationError, ValueError) as e:
            raise _undecodable(row, e) from e


def _undecodable(row: Row, error: Exception) -> StoreError:
    return StoreError(
        f"event at position {row[0]} ({row[3]}, schema {row[4]}) does not decode: {error}"
    )
