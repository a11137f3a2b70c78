"""The log: event models, the store protocol and its SQLite backend.

Everything in fleet is derived from this one append-only log. This package
knows nothing of agents beyond the event types, and imports no web framework
and no model SDK.
"""

from __future__ import annotations

from ._catalogue import (
    EVENT_TYPES,
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    AgentWaiting,
    AgentWoke,
    BoardColumn,
    ContextCompacted,
    EventData,
    EventModel,
    ExternalHookReceived,
    HookInvoked,
    ModelResponded,
    ReplayDiverged,
    RunCompleted,
    RunFailed,
    RunStarted,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
    UnknownEvent,
    Usage,
)
from ._envelope import ANY, NO_STREAM, ExpectedVersion, Meta, NewEvent, RecordedEvent, Source
from ._sqlite import DEFAULT_MAX_EVENT_BYTES, SQLiteEventStore
from ._store import EventFilter, EventStore
from ._upcasting import UPCASTERS, upcast
from .errors import (
    EventTooLarge,
    FleetError,
    InvalidEvent,
    NotADatabase,
    StoreClosed,
    StoreError,
    UnknownEventType,
    VersionConflict,
)

__all__ = [
    "ANY",
    "DEFAULT_MAX_EVENT_BYTES",
    "EVENT_TYPES",
    "NO_STREAM",
    "UPCASTERS",
    "AgentCommanded",
    "AgentCompleted",
    "AgentCreated",
    "AgentDeleted",
    "AgentFailed",
    "AgentWaiting",
    "AgentWoke",
    "BoardColumn",
    "ContextCompacted",
    "EventData",
    "EventFilter",
    "EventModel",
    "EventStore",
    "EventTooLarge",
    "ExpectedVersion",
    "ExternalHookReceived",
    "FleetError",
    "HookInvoked",
    "InvalidEvent",
    "Meta",
    "ModelResponded",
    "NewEvent",
    "NotADatabase",
    "RecordedEvent",
    "ReplayDiverged",
    "RunCompleted",
    "RunFailed",
    "RunStarted",
    "SQLiteEventStore",
    "Source",
    "StoreClosed",
    "StoreError",
    "TaskCreated",
    "TaskMoved",
    "ToolCallCompleted",
    "ToolCallRequested",
    "UnknownEvent",
    "UnknownEventType",
    "Usage",
    "VersionConflict",
    "upcast",
]
