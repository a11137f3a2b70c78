"""The checkpoint store protocol: where read models keep their state between runs.

A backend's checkpoint store lives in the same log as its events (the
`checkpoints` of an `EventStore`), so a log and the read models folded from
it travel together and close together. It holds two things:

- checkpoints: one per projection name, `(name, version, position, state)`,
  the state of a projection after folding every event up to `position`. The
  state and its position are one row written in one transaction, so after a
  crash a projection resumes exactly after the last event its state
  contains. A save never moves a checkpoint backwards within one version
  (two processes folding the same log may race; the later position wins);
  a different version replaces it whatever its position (the fold changed).
- snapshots: any number per projection, `(name, version, position, blob)`,
  for time travel: `best_snapshot` finds the latest one of a version at or
  before a position. The blob is opaque to the store (the projections
  compress and encode it); when to take and thin snapshots is the
  projections' policy, not the store's.

Every backend passes the same contract tests (tests/events/test_checkpoint_contract.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Checkpoint", "CheckpointStore", "Snapshot"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A projection's state as of `position`: its dumped state as JSON text."""

    name: str
    version: int
    position: int
    state: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A projection's state as of `position`, as bytes only the projections read."""

    name: str
    version: int
    position: int
    blob: bytes


@runtime_checkable
class CheckpointStore(Protocol):
    """Checkpoints and snapshots of projections, kept in the log they were folded from.

    Every method raises `StoreClosed` once its event store is closed, and the
    writing ones `StoreUnavailable` when the log cannot be written (opened
    read-only, disk full). Arguments are never mutated.
    """

    async def load_checkpoints(self) -> dict[str, Checkpoint]:
        """Every stored checkpoint, by projection name."""
        ...

    async def save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Write `checkpoints` in one transaction: all of them or none.

        A checkpoint whose version is the stored one's and whose position is
        lower leaves the stored one as it is; any other replaces it.
        """
        ...

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        """Write `snapshots` in one transaction (one at the same name, version and
        position is replaced)."""
        ...

    async def best_snapshot(self, name: str, version: int, position: int) -> Snapshot | None:
        """The snapshot of `name` at `version` with the greatest position `<= position`."""
        ...

    async def snapshot_positions(self, name: str, version: int) -> list[int]:
        """The positions of the stored snapshots of `name` at `version`, ascending."""
        ...

    async def delete_snapshots(
        self, name: str, *, positions: Collection[int] | None = None
    ) -> None:
        """Delete the snapshots of `name` at `positions` (of any version), or all of them."""
        ...
