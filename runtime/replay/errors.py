"""Errors of re-execution. Both descend from `events.ReplayError` (and so from `FleetError`).

    FleetError
    └── ReplayError                 events/: replay, export and import
        ├── WorkspaceUnavailable    the recorded workspace cannot be copied for a re-execution
        └── ReplayImpossible        the run cannot be re-executed (not ended, pattern unknown)

Both are raised before anything is appended.
"""

from __future__ import annotations

from events import ReplayError

__all__ = ["ReplayImpossible", "WorkspaceUnavailable"]


class WorkspaceUnavailable(ReplayError):
    """The recorded workspace cannot be copied for a re-execution."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot copy the workspace {path}: {reason}")


class ReplayImpossible(ReplayError):
    """This run cannot be re-executed (it has not ended, or its pattern is unknown here)."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"cannot re-execute run {run_id!r}: {reason}")
