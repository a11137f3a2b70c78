"""Leases in the log's own SQLite file: the table `leases (key, owner, expires_at)`.

Notes (do not fix without reading this):
1. Every lease operation is a `Job` of the store's writer (`_writer.py`,
   note 6), run inside `BEGIN IMMEDIATE`: SQLite's write lock makes the read
   of the current holder and the write of the new one one step across every
   process on the file, so two processes racing for a key never both win.
   Each is one fsync; the runtime renews every few seconds, not per event.
2. A log opened read-only by a fleet that predates the table has none: it
   reads as holding no lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any

import aiosqlite

from .._leases import Lease
from ..errors import LeaseHeld, StoreUnavailable
from ._rows import PageReader
from ._writer import GroupWriter, Job

__all__ = ["SQLiteLeaseStore"]


class SQLiteLeaseStore:
    """A `LeaseStore` on the connections of one open `SQLiteEventStore`."""

    def __init__(
        self,
        connections: Callable[[], tuple[GroupWriter | None, PageReader]],
        *,
        readonly: bool,
    ) -> None:
        self._connections = connections
        self._readonly = readonly

    async def acquire_lease(
        self, key: str, owner: str, ttl_s: float, *, replacing: str | None = None
    ) -> Lease:
        """Hold `key` for `ttl_s` seconds from now. Raises `LeaseHeld` if another holds it."""
        _check_ttl(ttl_s)

        async def run(conn: aiosqlite.Connection) -> Lease | LeaseHeld:
            now = time.time()
            rows = list(
                await conn.execute_fetchall(
                    "SELECT owner, expires_at FROM leases WHERE key = ?", (key,)
                )
            )
            if rows:
                holder, expires_at = rows[0]
                if holder not in (owner, replacing) and expires_at > now:
                    return LeaseHeld(key, holder, expires_at)
            lease = Lease(key, owner, now + ttl_s)
            await conn.execute(
                "INSERT INTO leases (key, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at",
                (key, owner, lease.expires_at),
            )
            return lease

        # A returned LeaseHeld is raised by the writer, after a commit that wrote nothing.
        return await self._write(run, "acquiring a lease in")  # type: ignore[no-any-return]

    async def renew_leases(self, keys: Collection[str], owner: str, ttl_s: float) -> set[str]:
        """Extend `owner`'s leases on `keys` by `ttl_s` from now; the keys it still held."""
        _check_ttl(ttl_s)
        chosen = sorted(set(keys))
        if not chosen:
            self._writer()
            return set()

        async def run(conn: aiosqlite.Connection) -> set[str]:
            expires_at = time.time() + ttl_s
            held = set()
            for key in chosen:
                cursor = await conn.execute(
                    "UPDATE leases SET expires_at = ? WHERE key = ? AND owner = ?",
                    (expires_at, key, owner),
                )
                if cursor.rowcount:
                    held.add(key)
            return held

        return await self._write(run, "renewing leases in")  # type: ignore[no-any-return]

    async def release_leases(self, keys: Collection[str], owner: str) -> None:
        """Let go of `owner`'s leases on `keys` (others' leases are left alone)."""
        rows = [(key, owner) for key in sorted(set(keys))]
        if not rows:
            self._writer()
            return

        async def run(conn: aiosqlite.Connection) -> None:
            await conn.executemany("DELETE FROM leases WHERE key = ? AND owner = ?", rows)

        await self._write(run, "releasing leases in")

    async def leases(self, *, prefix: str = "") -> list[Lease]:
        """Every lease whose key starts with `prefix`, expired ones included, by key."""
        _, reader = self._connections()
        if self._readonly and "leases" not in reader.tables:  # note 2
            return []
        rows = await reader.fetch(
            "SELECT key, owner, expires_at FROM leases WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return [Lease(row[0], row[1], row[2]) for row in rows]

    def _writer(self) -> GroupWriter:
        writer, _ = self._connections()
        if writer is None:
            raise StoreUnavailable("the log was opened read-only")
        return writer

    async def _write(self, run: Callable[[aiosqlite.Connection], Any], doing: str) -> Any:
        writer = self._writer()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        writer.submit(Job(run, doing, False, future))
        return await future


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
