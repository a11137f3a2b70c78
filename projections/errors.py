"""Errors of the projections layer. All descend from `events.FleetError`.

    FleetError
    └── ProjectionError             projections/
        ├── UnknownProjection       no projection of that name in this runner
        ├── InvalidPosition         a time-travel position outside 0..head
        ├── ProjectionTimeout       wait_for() gave up (also a TimeoutError)
        ├── ProjectionFailed        a projection's apply() raised: it stopped there
        └── RunnerClosed            use of a runner after aclose(), or after it stopped

Each exception carries its facts as attributes and builds its message itself.
"""

from __future__ import annotations

from events import FleetError

__all__ = [
    "InvalidPosition",
    "ProjectionError",
    "ProjectionFailed",
    "ProjectionTimeout",
    "RunnerClosed",
    "UnknownProjection",
]


class ProjectionError(FleetError):
    """Root of the errors raised by projections and their runner."""


class UnknownProjection(ProjectionError, KeyError):
    """No projection with that name is registered in the runner."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"no projection named {name!r}; known: {', '.join(sorted(known))}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidPosition(ProjectionError, ValueError):
    """A time-travel position that is negative or past the log's head."""

    def __init__(self, position: int, head: int) -> None:
        self.position = position
        self.head = head
        super().__init__(f"position {position} is outside the log (0 to {head})")


class ProjectionTimeout(ProjectionError, TimeoutError):
    """`wait_for(position)` timed out before every projection reached `position`."""

    def __init__(self, position: int, reached: int, timeout: float) -> None:
        self.position = position
        self.reached = reached
        self.timeout = timeout
        super().__init__(
            f"projections reached position {reached}, not {position}, within {timeout:g}s"
        )


class ProjectionFailed(ProjectionError):
    """A projection's `apply` raised; it stays at the last position it applied."""

    def __init__(self, name: str, position: int, cause: BaseException) -> None:
        self.name = name
        self.position = position
        self.cause = cause
        super().__init__(
            f"projection {name!r} failed applying the event at position {position}: "
            f"{type(cause).__name__}: {cause}"
        )


class RunnerClosed(ProjectionError):
    """The runner is closed, or stopped following the log (e.g. the store closed)."""

    def __init__(self, reason: str = "the projection runner is closed") -> None:
        self.reason = reason
        super().__init__(reason)
