"""Leases in the log's schema: table `leases (key, owner, expires_at)`.

Notes (do not fix without reading this):
1. `acquire` locks the free rows with `SELECT ... FOR UPDATE SKIP LOCKED`:
   two workers asking for the same agents at once each get different ones
   instead of queueing behind each other; a row locked by another worker's
   transaction is simply not free now.
2. Times are the server's `clock_timestamp()` in microseconds, so expiry
   does not depend on the workers' clocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .._leases import Lease
from ._errors import translated

if TYPE_CHECKING:
    from ._store import PostgresEventStore

__all__ = ["PostgresLeases"]

_NOW = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"


class PostgresLeases:
    """A `LeaseStore` on the connections of one open `PostgresEventStore`."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store

    async def acquire(
        self, owner: str, keys: Sequence[str], *, ttl: float, limit: int | None = None
    ) -> list[str]:
        """Take the free ones of `keys` for `ttl` seconds, at most `limit` (note 1)."""
        _check(owner, ttl)
        if not keys or limit == 0:
            return []
        pool = self._store.check_writable()
        table = self._store.tables.leases
        wanted = sorted(set(keys))
        with translated("taking leases in", self._store.location):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"INSERT INTO {table} (key, owner, expires_at) "
                    "SELECT k, '', 0 FROM unnest($1::text[]) AS k ON CONFLICT (key) DO NOTHING",
                    wanted,
                )
                rows = await conn.fetch(
                    f"UPDATE {table} AS l SET owner = $2, expires_at = {_NOW} + $3 "
                    f"FROM (SELECT key FROM {table} WHERE key = ANY($1::text[]) "
                    f"AND (expires_at < {_NOW} OR owner = $2) ORDER BY key "
                    "FOR UPDATE SKIP LOCKED LIMIT $4) AS free "
                    "WHERE l.key = free.key RETURNING l.key",
                    wanted,
                    owner,
                    round(ttl * 1_000_000),
                    limit,
                )
        return sorted(row[0] for row in rows)

    async def renew(self, owner: str, keys: Sequence[str], *, ttl: float) -> list[str]:
        """Extend `owner`'s unexpired leases of `keys`; the keys still held."""
        _check(owner, ttl)
        if not keys:
            return []
        pool = self._store.check_writable()
        with translated("renewing leases in", self._store.location):
            rows = await pool.fetch(
                f"UPDATE {self._store.tables.leases} SET expires_at = {_NOW} + $3 "
                f"WHERE key = ANY($1::text[]) AND owner = $2 AND expires_at >= {_NOW} "
                "RETURNING key",
                sorted(set(keys)),
                owner,
                round(ttl * 1_000_000),
            )
        return sorted(row[0] for row in rows)

    async def release(self, owner: str, keys: Sequence[str]) -> None:
        """Give up `owner`'s leases of `keys`."""
        if not keys:
            return
        pool = self._store.check_writable()
        with translated("releasing leases in", self._store.location):
            await pool.execute(
                f"UPDATE {self._store.tables.leases} SET owner = '', expires_at = 0 "
                "WHERE key = ANY($1::text[]) AND owner = $2",
                sorted(set(keys)),
                owner,
            )

    async def held(self) -> list[Lease]:
        """Every unexpired lease, by key."""
        rows = await self._store.fetch(
            f"SELECT key, owner, expires_at FROM {self._store.tables.leases} "
            f"WHERE expires_at >= {_NOW} ORDER BY key"
        )
        return [Lease(r[0], r[1], datetime.fromtimestamp(r[2] / 1_000_000, UTC)) for r in rows]


def _check(owner: str, ttl: float) -> None:
    if not owner:
        raise ValueError("a lease owner must be a non-empty string")
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, got {ttl}")
