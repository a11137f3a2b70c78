"""The projections' checkpoints and snapshots in the log's own SQLite file.

Checkpoints are rows `(name, version, position, state)` of the table
`projection_checkpoints`, snapshots rows `(name, version, position, blob)`
of `projection_snapshots` (both created with the log's schema, `_rows.py`).

Notes (do not fix without reading this):
1. Writes are `Job`s of the store's writer (`_writer.py`, note 6): one
   connection writes the file, with `synchronous = FULL` like the events
   (a checkpoint is written every thousand events or every second, so the
   fsync is not felt). Reads go through the store's reader connection.
2. The upsert never moves a checkpoint backwards within one version: two
   processes folding the same file can race, and the later position wins.
3. A log opened read-only by a fleet that predates these tables has none:
   it reads as having no checkpoint and no snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import aiosqlite

from .._checkpoints import Checkpoint, Snapshot
from ..errors import StoreUnavailable
from ._rows import PageReader
from ._writer import GroupWriter, Job

__all__ = ["SQLiteCheckpointStore"]

T = TypeVar("T")

_UPSERT_CHECKPOINT = """
INSERT INTO projection_checkpoints (name, version, position, state, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    version = excluded.version,
    position = excluded.position,
    state = excluded.state,
    updated_at = excluded.updated_at
WHERE excluded.version != projection_checkpoints.version
   OR excluded.position >= projection_checkpoints.position
"""
_UPSERT_SNAPSHOT = (
    "INSERT INTO projection_snapshots (name, version, position, blob) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name, version, position) DO UPDATE SET blob = excluded.blob"
)


class SQLiteCheckpointStore:
    """A `CheckpointStore` on the connections of one open `SQLiteEventStore`.

    Built by the store; `writer` and `reader` are looked up at each call, so
    a use after the store closed raises `StoreClosed`.
    """

    def __init__(
        self,
        connections: Callable[[], tuple[GroupWriter | None, PageReader]],
        *,
        readonly: bool,
    ) -> None:
        self._connections = connections
        self._readonly = readonly

    # -- reading ------------------------------------------------------------

    async def load_checkpoints(self) -> dict[str, Checkpoint]:
        """Every stored checkpoint by projection name."""
        reader = self._reader("projection_checkpoints")
        if reader is None:
            return {}
        rows = await reader.fetch(
            "SELECT name, version, position, state FROM projection_checkpoints"
        )
        return {row[0]: Checkpoint(row[0], row[1], row[2], row[3]) for row in rows}

    async def best_snapshot(self, name: str, version: int, position: int) -> Snapshot | None:
        """The snapshot of `name` at `version` with the greatest position `<= position`."""
        reader = self._reader("projection_snapshots")
        if reader is None:
            return None
        rows = await reader.fetch(
            "SELECT position, blob FROM projection_snapshots "
            "WHERE name = ? AND version = ? AND position <= ? ORDER BY position DESC LIMIT 1",
            (name, version, position),
        )
        if not rows:
            return None
        return Snapshot(name, version, rows[0][0], bytes(rows[0][1]))

    async def snapshot_positions(self, name: str, version: int) -> list[int]:
        """The positions of the stored snapshots of `name` at `version`, ascending."""
        reader = self._reader("projection_snapshots")
        if reader is None:
            return []
        rows = await reader.fetch(
            "SELECT position FROM projection_snapshots WHERE name = ? AND version = ? "
            "ORDER BY position",
            (name, version),
        )
        return [row[0] for row in rows]

    # -- writing ------------------------------------------------------------

    async def save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Write `checkpoints` in one transaction (note 2)."""
        now = time.time_ns() // 1000
        rows = [(c.name, c.version, c.position, c.state, now) for c in checkpoints]
        if not rows:
            self._writer()  # still refuses a closed or read-only store
            return

        async def run(conn: aiosqlite.Connection) -> None:
            await conn.executemany(_UPSERT_CHECKPOINT, rows)

        await self._write(run, "writing projection checkpoints to")

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        """Write `snapshots` in one transaction."""
        rows = [(s.name, s.version, s.position, s.blob) for s in snapshots]
        if not rows:
            self._writer()
            return

        async def run(conn: aiosqlite.Connection) -> None:
            await conn.executemany(_UPSERT_SNAPSHOT, rows)

        await self._write(run, "writing projection snapshots to")

    async def delete_snapshots(
        self, name: str, *, positions: Collection[int] | None = None
    ) -> None:
        """Delete the snapshots of `name` at `positions` (of any version), or all of them."""
        chosen = None if positions is None else sorted(set(positions))

        async def run(conn: aiosqlite.Connection) -> None:
            if chosen is None:
                await conn.execute("DELETE FROM projection_snapshots WHERE name = ?", (name,))
            else:
                await conn.executemany(
                    "DELETE FROM projection_snapshots WHERE name = ? AND position = ?",
                    [(name, p) for p in chosen],
                )

        await self._write(run, "deleting projection snapshots from")

    # -- internals ----------------------------------------------------------

    def _reader(self, table: str) -> PageReader | None:
        """The reader, or None when a read-only log predates `table` (note 3)."""
        _, reader = self._connections()
        if self._readonly and table not in reader.tables:
            return None
        return reader

    def _writer(self) -> GroupWriter:
        writer, _ = self._connections()
        if writer is None:
            raise StoreUnavailable("the log was opened read-only")
        return writer

    async def _write(
        self, run: Callable[[aiosqlite.Connection], Awaitable[Any]], doing: str
    ) -> None:
        writer = self._writer()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        writer.submit(Job(run, doing, False, future))
        await future
