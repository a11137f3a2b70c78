"""Errors raised by fleet. Every package's errors descend from `FleetError`.

The tree (other packages add their own leaves under these roots)::

    FleetError
    ├── StoreError                  the event log
    │   ├── VersionConflict         optimistic concurrency: nothing was written
    │   ├── EventTooLarge           one event's data is over the size limit
    │   ├── InvalidEvent            data that cannot be encoded (not JSON-serializable)
    │   ├── UnknownEventType        a stored type this code does not know
    │   ├── StoreClosed             use after aclose()
    │   ├── StoreUnavailable        the log cannot be used now (disk full, read-only, unreachable)
    │   ├── LeaseHeld               another owner holds the lease on that key
    │   ├── LogNotFound             opening a log that does not exist, where none is created
    │   ├── UnsupportedLocation     no backend for this path or URL
    │   └── NotADatabase            the file is not a SQLite database
    ├── ProjectionError             projections/
    ├── HookError                   hooks/ (see hooks/errors.py)
    ├── ModelError                  runtime/: the model could not be reached or refused
    ├── ToolError                   runtime/: a tool call failed
    │   └── WorkspaceEscape         a path outside the agent's workspace
    ├── AgentNotFound / AgentDeleted / BudgetExceeded  runtime/
    └── ReplayError                 replay and import/export: nothing was written
        ├── RunNotFound             no such run in the log
        ├── ExportInvalid           a run export that cannot be trusted
        └── ImportConflict          the imported run's streams exist in the log already

Each exception carries its facts as attributes and builds its message itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._location import without_password


class FleetError(Exception):
    """Root of every error fleet raises on purpose."""


class StoreError(FleetError):
    """The event store could not do what was asked; nothing was written."""


class VersionConflict(StoreError):
    """An append's expected version did not match the stream's actual version."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"version conflict on stream {stream_id!r}: expected {expected}, actual {actual}"
        )


class EventTooLarge(StoreError):
    """One event's encoded data is over the store's size limit."""

    def __init__(self, stream_id: str, event_type: str, size: int, limit: int) -> None:
        self.stream_id = stream_id
        self.event_type = event_type
        self.size = size
        self.limit = limit
        super().__init__(
            f"{event_type} event for stream {stream_id!r} is {size} bytes, "
            f"over the limit of {limit} bytes"
        )


class InvalidEvent(StoreError):
    """An event could not be encoded or does not belong in the log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid event: {reason}")


class UnknownEventType(StoreError):
    """A stored event has a type (or a schema of a type) this version of fleet does not know.

    `schema_version` is set when the type is known but the row was written by a
    newer schema of it; it is None when the type itself is unknown.
    """

    def __init__(
        self, position: int, event_type: str, *, schema_version: int | None = None
    ) -> None:
        self.position = position
        self.event_type = event_type
        self.schema_version = schema_version
        if schema_version is None:
            message = f"unknown event type {event_type!r} at position {position}"
        else:
            message = (
                f"event {event_type!r} at position {position} has schema {schema_version}, "
                "newer than this version of fleet knows"
            )
        super().__init__(message + " (read with lenient=True to skip it as UnknownEvent)")


class StoreClosed(StoreError):
    """The store was used after `aclose()`."""

    def __init__(self) -> None:
        super().__init__("the event store is closed")


class NotADatabase(StoreError):
    """The file given as the log is not a SQLite database."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is not a fleet SQLite database")


class StoreUnavailable(StoreError):
    """The log cannot be used now: the disk is full, the file or its folder is
    read-only or unreadable, the store was opened read-only, or its server cannot
    be reached. Nothing was written.

    `reason` says which, in words a user can act on.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the event log is unavailable: {reason}")


class LeaseHeld(StoreError):
    """Another owner holds the lease on `key` until `expires_at` (seconds since the epoch)."""

    def __init__(self, key: str, owner: str, expires_at: float) -> None:
        self.key = key
        self.owner = owner
        self.expires_at = expires_at
        super().__init__(f"{key!r} is leased by {owner!r}; nothing was changed")


class LogNotFound(StoreError):
    """There is no log at `location`, and this opening does not create one: it is read-only,
    or the PostgreSQL database the URL names does not exist (`reason` says which)."""

    def __init__(self, location: str, reason: str | None = None) -> None:
        self.location = location = without_password(location)
        self.reason = reason
        why = reason or "opened read-only, so none is created"
        super().__init__(f"no fleet log at {location} ({why})")


class UnsupportedLocation(StoreError):
    """No backend can open a log at `location` (an unknown URL scheme, a backend not built)."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location = without_password(location)
        self.reason = reason
        super().__init__(f"cannot open a fleet log at {location!r}: {reason}")


# -- replay, export and import -------------------------------------------------------


class ReplayError(FleetError):
    """Replaying, exporting or importing a run went wrong; nothing was written."""


class RunNotFound(ReplayError):
    """No run of this id is in the log (no RunStarted on its run stream)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r} in this log (see `fleet runs`)")


class ExportInvalid(ReplayError):
    """A run export that cannot be trusted: not JSON Lines, truncated, reordered or edited."""

    def __init__(self, source: str, reason: str, *, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"refusing {where}: {reason}; nothing was imported")


class ImportConflict(ReplayError):
    """Streams of the imported run exist in the target log already."""

    def __init__(self, run_id: str, streams: Iterable[str]) -> None:
        self.run_id = run_id
        self.streams = tuple(sorted(streams))
        shown = ", ".join(self.streams[:5]) + (" ..." if len(self.streams) > 5 else "")
        super().__init__(
            f"cannot import run {run_id!r}: {len(self.streams)} of its streams exist in this "
            f"log already ({shown}); it was recorded or imported here before. Nothing was written"
        )
