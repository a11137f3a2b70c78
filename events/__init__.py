"""The log: event models, the store protocols, their backends, the wire JSON.

Everything in fleet is derived from this one append-only log. Other packages
know it only through the protocols `EventStore` and `CheckpointStore`, opened
by `open_store(path or URL)`; the backends live in `events.sqlite` (the
default, one file), `events.postgres` (many machines; imported only when a
`postgresql://` URL is opened) and `events.memory` (tests, embedding). `encode_event` is
the one JSON encoding of an event that leaves the process. This package knows
nothing of agents beyond the event types, and imports no web framework and no
model SDK.
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
    ApprovalDecided,
    ApprovalRequested,
    BoardColumn,
    ChatMessagePosted,
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
    TelemetryReceived,
    ToolCallCompleted,
    ToolCallInterrupted,
    ToolCallRequested,
    UnknownEvent,
    Usage,
)
from ._checkpoints import Checkpoint, CheckpointStore, Snapshot
from ._encoding import DEFAULT_MAX_EVENT_BYTES
from ._envelope import (
    ANY,
    NO_STREAM,
    ExpectedVersion,
    Meta,
    NewEvent,
    Page,
    RecordedEvent,
    Source,
    load_data,
    peek,
)
from ._export import export_lines, export_run, import_run, read_run
from ._export_format import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    MIN_KEY_BYTES,
    ImportResult,
    RunExport,
    RunExported,
    parse_export,
    read_export,
)
from ._gc import gc_paused
from ._ids import ID_PATTERN, ID_RULE, is_id
from ._import_stream import SpooledExport, import_stream, spool_export
from ._leases import Lease, LeaseStore, live_keys, owner_alive, process_owner
from ._location import without_password
from ._open import open_store
from ._store import EventFilter, EventStore, ImportedEvent
from ._upcasting import UPCASTERS, upcast
from ._wire import encode_event
from .errors import (
    EventTooLarge,
    ExportInvalid,
    FleetError,
    ImportConflict,
    InvalidEvent,
    LeaseHeld,
    LogNotFound,
    NotADatabase,
    ReplayError,
    RunNotFound,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    UnknownEventType,
    UnsupportedLocation,
    VersionConflict,
)
from .memory import MemoryEventStore
from .sqlite import SQLiteEventStore

__all__ = [
    "ANY",
    "DEFAULT_MAX_EVENT_BYTES",
    "EVENT_TYPES",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ID_PATTERN",
    "ID_RULE",
    "MIN_KEY_BYTES",
    "NO_STREAM",
    "UPCASTERS",
    "AgentCommanded",
    "AgentCompleted",
    "AgentCreated",
    "AgentDeleted",
    "AgentFailed",
    "AgentWaiting",
    "AgentWoke",
    "ApprovalDecided",
    "ApprovalRequested",
    "BoardColumn",
    "ChatMessagePosted",
    "Checkpoint",
    "CheckpointStore",
    "ContextCompacted",
    "EventData",
    "EventFilter",
    "EventModel",
    "EventStore",
    "EventTooLarge",
    "ExpectedVersion",
    "ExportInvalid",
    "ExternalHookReceived",
    "FleetError",
    "HookInvoked",
    "ImportConflict",
    "ImportResult",
    "ImportedEvent",
    "InvalidEvent",
    "Lease",
    "LeaseHeld",
    "LeaseStore",
    "LogNotFound",
    "MemoryEventStore",
    "Meta",
    "ModelResponded",
    "NewEvent",
    "NotADatabase",
    "Page",
    "RecordedEvent",
    "ReplayDiverged",
    "ReplayError",
    "RunCompleted",
    "RunExport",
    "RunExported",
    "RunFailed",
    "RunNotFound",
    "RunStarted",
    "SQLiteEventStore",
    "Snapshot",
    "Source",
    "SpooledExport",
    "StoreClosed",
    "StoreError",
    "StoreUnavailable",
    "TaskCreated",
    "TaskMoved",
    "TelemetryReceived",
    "ToolCallCompleted",
    "ToolCallInterrupted",
    "ToolCallRequested",
    "UnknownEvent",
    "UnknownEventType",
    "UnsupportedLocation",
    "Usage",
    "VersionConflict",
    "encode_event",
    "export_lines",
    "export_run",
    "gc_paused",
    "import_run",
    "import_stream",
    "is_id",
    "live_keys",
    "load_data",
    "open_store",
    "owner_alive",
    "parse_export",
    "peek",
    "process_owner",
    "read_export",
    "read_run",
    "spool_export",
    "upcast",
    "without_password",
]
