"""Errors of the hooks package. All descend from `FleetError` through `HookError`.

    FleetError
    └── HookError                   hooks/
        ├── HookConfigError         a settings file (or dict) is not a valid "hooks" section
        ├── UnknownHookPoint        a hook point name fleet does not know
        ├── PayloadInvalid          build_payload() was given a wrong or missing field
        ├── DispatcherClosed        a HookDispatcher used after aclose()
        ├── IngestError             an external hook payload was refused (nothing written)
        │   └── IngestTooLarge      ... because it is over the size limit
        └── TelemetryInvalid        an OTLP request was refused (nothing written)
            ├── TelemetryTooLarge   ... because it (or one record) is over the size limit
            └── TelemetryUnsupported ... because of its content type, encoding or signal

A hook that fails, hangs or prints garbage is never an exception: it is recorded
as a `HookInvoked` event with decision "error" or "timeout" and the agent goes on.
These errors are for the callers' mistakes and for bad input at the edges.
"""

from __future__ import annotations

from collections.abc import Sequence

from events.errors import FleetError

__all__ = [
    "DispatcherClosed",
    "HookConfigError",
    "HookError",
    "IngestError",
    "IngestTooLarge",
    "PayloadInvalid",
    "TelemetryInvalid",
    "TelemetryTooLarge",
    "TelemetryUnsupported",
    "UnknownHookPoint",
]


class HookError(FleetError):
    """Root of the errors raised by the hooks package."""


class HookConfigError(HookError):
    """Hook settings that cannot be used; `field` is a dotted path into the settings.

    `problems` holds every `(field, message)` found, the first one also as
    `field` and `detail`.
    """

    def __init__(self, path: str, problems: Sequence[tuple[str, str]]) -> None:
        if not problems:
            problems = [("hooks", "invalid settings")]
        self.path = path
        self.problems = list(problems)
        self.field, self.detail = self.problems[0]
        lines = [f"{field}: {message}" for field, message in self.problems]
        more = "" if len(lines) == 1 else f" (and {len(lines) - 1} more)"
        super().__init__(f"invalid hook settings in {path}{more}: " + "; ".join(lines))


class UnknownHookPoint(HookError):
    """A hook point name that is not one of fleet's points."""

    def __init__(self, point: object, known: Sequence[str]) -> None:
        self.point = point
        self.known = list(known)
        super().__init__(f"unknown hook point {point!r}; known points: {', '.join(self.known)}")


class PayloadInvalid(HookError):
    """`build_payload()` was called with a missing or wrongly typed field."""

    def __init__(self, point: str, field: str, detail: str) -> None:
        self.point = point
        self.field = field
        self.detail = detail
        super().__init__(f"invalid {point} payload: {field}: {detail}")


class DispatcherClosed(HookError):
    """A `HookDispatcher` was used after `aclose()`."""

    def __init__(self) -> None:
        super().__init__("the hook dispatcher is closed")


class IngestError(HookError):
    """An external hook payload was refused; `field` names the part at fault, if any."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        self.detail = detail
        self.field = field
        where = f"{field}: " if field else ""
        super().__init__(f"invalid hook payload: {where}{detail}")


class IngestTooLarge(IngestError):
    """An external hook payload is over the size limit."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{size} bytes is over the limit of {limit} bytes")


class TelemetryInvalid(HookError):
    """An OTLP request (an external agent's telemetry) was refused; `detail` says why."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"invalid OTLP request: {detail}")


class TelemetryTooLarge(TelemetryInvalid):
    """An OTLP request, or one record in it, is over the size limit."""

    def __init__(self, size: int | None, limit: int, *, what: str = "the body") -> None:
        self.size = size  # None: not known (a gzip body is inflated no further than the limit)
        self.limit = limit
        if size is None:
            super().__init__(f"{what} is over the limit of {limit} bytes")
        else:
            super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")


class TelemetryUnsupported(TelemetryInvalid):
    """An OTLP request in a content type, encoding or signal fleet does not take."""
