"""Leases in the log's schema: the table `leases (key, owner, expires_at)`.

Notes (do not fix without reading this):
1. `acquire_lease` is one statement, `INSERT ... ON CONFLICT (key) DO UPDATE
   ... WHERE` the holder is the caller, the one it replaces, or expired: the
   row lock of the upsert makes the read of the holder and the write of the
   new one one step for every process on every machine, so two racing for a
   key never both win, and the loser learns the holder from a second read.
2. Expiry is `time.time()` of the processes sharing the log, as the protocol
   says (`events/_leases.py`); the runtime's margin (renewal every third of
   the ttl) absorbs ordinary clock differences between machines.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .._leases import Lease
from ..errors import LeaseHeld
from ._errors import translated

if TYPE_CHECKING:
    from ._store import PostgresEventStore

__all__ = ["PostgresLeases"]


class PostgresLeases:
    """A `LeaseStore` on the connections of one open `PostgresEventStore`."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store

    async def acquire_lease(
        self, key: str, owner: str, ttl_s: float, *, replacing: str | None = None
    ) -> Lease:
        """Hold `key` for `ttl_s` seconds from now. Raises `LeaseHeld` if another holds it."""
        _check_ttl(ttl_s)
        pool = self._store.check_writable()
        with translated("acquiring a lease in", self._store.location):
            async with pool.acquire() as conn:
                while True:
                    held = await self._try(conn, key, owner, ttl_s, replacing)
                    if held is not None:  # None: the holder let go meanwhile, try again
                        break
        if isinstance(held, Lease):
            return held
        raise held

    async def _try(
        self, conn: Any, key: str, owner: str, ttl_s: float, replacing: str | None
    ) -> Lease | LeaseHeld | None:
        table = self._store.tables.leases
        now = time.time()
        taken = await conn.fetchval(
                    f"INSERT INTO {table} AS l (key, owner, expires_at) VALUES ($1, $2, $3) "
                    "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, "
                    "expires_at = excluded.expires_at "
                    "WHERE l.owner = $2 OR l.owner = $4 OR l.expires_at <= $5 RETURNING true",
                    key, owner, now + ttl_s, replacing or owner, now,
                )  # fmt: skip
        if taken:
            return Lease(key, owner, now + ttl_s)
        row = await conn.fetchrow(f"SELECT owner, expires_at FROM {table} WHERE key = $1", key)
        return None if row is None else LeaseHeld(key, row[0], row[1])

    async def renew_leases(self, keys: Collection[str], owner: str, ttl_s: float) -> set[str]:
        """Extend `owner`'s leases on `keys` by `ttl_s` from now; the keys it still held."""
        _check_ttl(ttl_s)
        pool = self._store.check_writable()
        chosen = sorted(set(keys))
        if not chosen:
            return set()
        with translated("renewing leases in", self._store.location):
            rows = await pool.fetch(
                f"UPDATE {self._store.tables.leases} SET expires_at = $3 "
                "WHERE key = ANY($1::text[]) AND owner = $2 RETURNING key",
                chosen,
                owner,
                time.time() + ttl_s,
            )
        return {row[0] for row in rows}

    async def release_leases(self, keys: Collection[str], owner: str) -> None:
        """Let go of `owner`'s leases on `keys` (others' leases are left alone)."""
        pool = self._store.check_writable()
        chosen = sorted(set(keys))
        if not chosen:
            return
        with translated("releasing leases in", self._store.location):
            await pool.execute(
                f"DELETE FROM {self._store.tables.leases} WHERE key = ANY($1::text[]) "
                "AND owner = $2",
                chosen,
                owner,
            )

    async def leases(self, *, prefix: str = "") -> list[Lease]:
        """Every lease whose key starts with `prefix`, expired ones included, by key."""
        rows = await self._store.fetch(
            f"SELECT key, owner, expires_at FROM {self._store.tables.leases} "
            "WHERE left(key, $1) = $2 ORDER BY key",
            len(prefix),
            prefix,
        )
        return [Lease(row[0], row[1], row[2]) for row in rows]


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
