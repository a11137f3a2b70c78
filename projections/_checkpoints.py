"""Where projection states live between runs: checkpoints on disk, snapshots in memory.

Checkpoints are rows `(name, version, position, state)` in the table
`projection_checkpoints` of the log's own SQLite file. The state and the
position of the last event folded into it are one row written in one
transaction, so after any crash a projection resumes exactly after the last
event its stored state contains: no event is applied twice or skipped.

Snapshots make time travel fast: a compressed copy of a projection's state
at every `spacing`-th position, kept in memory and thinned (every other one
dropped, spacing doubled) when there are more than the limit. A long fold
takes them further apart (`plan`), so a rebuild of a long log does not spend
its time copying states.

Notes (do not fix without reading this):
1. `synchronous = NORMAL` on the checkpoint connection: in WAL mode a commit
   is still atomic, it may only be lost by a power cut, and a lost checkpoint
   merely means re-folding from the previous one. The events themselves are
   written with FULL by the store.
2. The upsert never moves a checkpoint backwards within one version: two
   processes folding the same file can race, and the later position wins.
3. Snapshots are pickled, not JSON-encoded: they never leave the process,
   and pickle (protocol 5) dumps a state five times faster than `json`.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import pickle
import sqlite3
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from events import StoreError

__all__ = ["Checkpoint", "CheckpointStore", "Snapshots", "decode_state", "encode_state"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name       TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
)
"""
_UPSERT = """
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


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A projection's state as of `position`, as stored."""

    name: str
    version: int
    position: int
    state: str


def encode_state(data: Any) -> str:
    """A dumped state as compact JSON text."""
    return json.dumps(data, separators=(",", ":"), check_circular=False)  # states are trees


def decode_state(text: str | bytes) -> Any:
    """The dumped state back from `encode_state`'s text."""
    return json.loads(text)


class CheckpointStore:
    """The checkpoint table, through its own aiosqlite connection to the log's file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None
        self._save_lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect and create the table if needed. Raises `events.StoreError`."""
        try:
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            await self._conn.execute("PRAGMA busy_timeout = 10000")
            await self._conn.execute("PRAGMA journal_mode = WAL")
            await self._conn.execute("PRAGMA synchronous = NORMAL")
            await self._conn.execute(_SCHEMA)
        except sqlite3.Error as e:
            await self.aclose()
            raise StoreError(f"cannot open projection checkpoints in {self.path}: {e}") from e

    async def load_all(self) -> dict[str, Checkpoint]:
        """Every stored checkpoint by projection name."""
        assert self._conn is not None
        async with self._conn.execute(
            "SELECT name, version, position, state FROM projection_checkpoints"
        ) as cursor:
            rows = await cursor.fetchall()
        return {row[0]: Checkpoint(row[0], row[1], row[2], row[3]) for row in rows}

    async def save(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Write `checkpoints` in one transaction. Raises `events.StoreError`.

        The transaction runs shielded and one at a time: a cancellation of the
        caller (the runner's flusher is cancelled at close) must not leave it
        open halfway, or the next save fails with "transaction within a
        transaction".
        """
        await asyncio.shield(self._save_serialized(list(checkpoints)))

    async def _save_serialized(self, checkpoints: list[Checkpoint]) -> None:
        async with self._save_lock:
            await self._save(checkpoints)

    async def _save(self, checkpoints: list[Checkpoint]) -> None:
        assert self._conn is not None
        now = time.time_ns() // 1000
        conn = self._conn
        try:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await conn.executemany(
                    _UPSERT,
                    [(c.name, c.version, c.position, c.state, now) for c in checkpoints],
                )
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"cannot write projection checkpoints: {e}") from e

    async def aclose(self) -> None:
        """Close the connection; safe to call twice."""
        if self._conn is not None:
            async with self._save_lock:  # a shielded save still running finishes first
                conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()


class Snapshots:
    """Compressed in-memory states of each projection at evenly spaced positions."""

    def __init__(self, every: int, limit: int) -> None:
        self.every = every
        self.limit = limit
        self._spacing: dict[str, int] = {}
        self._positions: dict[str, list[int]] = {}
        self._blobs: dict[str, dict[int, bytes]] = {}

    def spacing(self, name: str) -> int:
        """Positions that are multiples of this get a snapshot of `name` (0: never)."""
        return self._spacing.get(name, self.every)

    def plan(self, name: str, start: int, until: int) -> int:
        """The spacing for a fold of `name` from `start` to `until`: at most limit/2 snapshots."""
        spacing = self.spacing(name)
        if spacing > 0:
            while (until - start) // spacing > max(1, self.limit // 2):
                spacing *= 2
        return spacing

    def add(self, name: str, position: int, blob: bytes) -> None:
        """Keep `blob` (from `pack`) as the state of `name` at `position`."""
        spacing = self.spacing(name)
        if spacing <= 0 or position % spacing:
            return  # taken before a thinning, no longer wanted
        blobs = self._blobs.setdefault(name, {})
        positions = self._positions.setdefault(name, [])
        if position not in blobs:
            bisect.insort(positions, position)
        blobs[position] = blob
        while len(positions) > self.limit:
            spacing *= 2
            self._spacing[name] = spacing
            for p in [p for p in positions if p % spacing]:
                del blobs[p]
            positions[:] = [p for p in positions if p % spacing == 0]

    def best(self, name: str, position: int) -> tuple[int, bytes] | None:
        """The latest snapshot of `name` at or before `position`, if any."""
        positions = self._positions.get(name)
        if not positions:
            return None
        i = bisect.bisect_right(positions, position)
        if i == 0:
            return None
        found = positions[i - 1]
        return found, self._blobs[name][found]

    def clear(self, name: str) -> None:
        """Forget every snapshot of `name` (its fold changed)."""
        self._positions.pop(name, None)
        self._blobs.pop(name, None)
        self._spacing.pop(name, None)

    def size(self) -> int:
        """Bytes held by all snapshots."""
        return sum(len(b) for blobs in self._blobs.values() for b in blobs.values())

    @staticmethod
    def pack(data: Any) -> bytes:
        """A dumped state compressed for keeping (note 3)."""
        return zlib.compress(pickle.dumps(data, protocol=5), 1)

    @staticmethod
    def unpack(blob: bytes) -> Any:
        """The dumped state back from `pack`: a new object."""
        return pickle.loads(zlib.decompress(blob))
