"""The projections' checkpoints and snapshots in the log's own PostgreSQL schema.

Tables `projection_checkpoints` and `projection_snapshots` (`_schema.py`).
Writes are transactions of their own on the store's pool (they need no
position, so they do not take the log's head lock). The upsert never moves
a checkpoint backwards within one version: processes on several machines
may fold the same log, and the later position wins.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from .._checkpoints import Checkpoint, Snapshot
from ._errors import translated

if TYPE_CHECKING:
    from ._store import PostgresEventStore

__all__ = ["PostgresCheckpointStore"]


class PostgresCheckpointStore:
    """A `CheckpointStore` on the connections of one open `PostgresEventStore`."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store

    async def load_checkpoints(self) -> dict[str, Checkpoint]:
        """Every stored checkpoint by projection name."""
        rows = await self._store.fetch(
            f"SELECT name, version, position, state FROM {self._store.tables.checkpoints}"
        )
        return {row[0]: Checkpoint(row[0], row[1], row[2], row[3]) for row in rows}

    async def best_snapshot(self, name: str, version: int, position: int) -> Snapshot | None:
        """The snapshot of `name` at `version` with the greatest position `<= position`."""
        rows = await self._store.fetch(
            f"SELECT position, blob FROM {self._store.tables.snapshots} "
            "WHERE name = $1 AND version = $2 AND position <= $3 ORDER BY position DESC LIMIT 1",
            name,
            version,
            position,
        )
        if not rows:
            return None
        return Snapshot(name, version, rows[0][0], bytes(rows[0][1]))

    async def snapshot_positions(self, name: str, version: int) -> list[int]:
        """The positions of the stored snapshots of `name` at `version`, ascending."""
        rows = await self._store.fetch(
            f"SELECT position FROM {self._store.tables.snapshots} "
            "WHERE name = $1 AND version = $2 ORDER BY position",
            name,
            version,
        )
        return [row[0] for row in rows]

    async def save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Write `checkpoints` in one transaction; never back within a version."""
        pool = self._store.check_writable()
        if not checkpoints:
            return
        now = time.time_ns() // 1000
        table = self._store.tables.checkpoints
        with translated("writing projection checkpoints to", self._store.location):
            async with pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    f"INSERT INTO {table} AS c (name, version, position, state, updated_at) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET "
                    "version = excluded.version, position = excluded.position, "
                    "state = excluded.state, updated_at = excluded.updated_at "
                    "WHERE excluded.version <> c.version OR excluded.position >= c.position",
                    [(c.name, c.version, c.position, c.state, now) for c in checkpoints],
                )

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        """Write `snapshots` in one transaction (replacing one at the same position)."""
        pool = self._store.check_writable()
        if not snapshots:
            return
        table = self._store.tables.snapshots
        with translated("writing projection snapshots to", self._store.location):
            async with pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    f"INSERT INTO {table} (name, version, position, blob) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (name, version, position) DO UPDATE SET blob = excluded.blob",
                    [(s.name, s.version, s.position, s.blob) for s in snapshots],
                )

    async def delete_snapshots(
        self, name: str, *, positions: Collection[int] | None = None
    ) -> None:
        """Delete the snapshots of `name` at `positions` (of any version), or all of them."""
        pool = self._store.check_writable()
        table = self._store.tables.snapshots
        with translated("deleting projection snapshots from", self._store.location):
            if positions is None:
                await pool.execute(f"DELETE FROM {table} WHERE name = $1", name)
            else:
                await pool.execute(
                    f"DELETE FROM {table} WHERE name = $1 AND position = ANY($2::bigint[])",
                    name,
                    sorted(set(positions)),
                )
