"""The lease store protocol: which worker drives which agent, for how long.

A lease is `(key, owner, expires_at)`: the key names what is leased (an
agent, `agent-<id>`), the owner the worker that holds it. A worker takes
free leases (never taken, expired, or its own already), renews the ones it
holds well before they expire, and releases them when it is done. A worker
that dies stops renewing, its leases expire, and another worker takes them
over. Expiry is measured on the store's clock (the database server's), so
workers whose clocks disagree still agree on who holds what.

A backend that supports several workers exposes one as `store.leases`
(`events.postgres`); `leases_of(store)` finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["Lease", "LeaseStore", "leases_of"]


@dataclass(frozen=True, slots=True)
class Lease:
    """`owner` holds `key` until `expires_at` (on the store's clock) unless it renews."""

    key: str
    owner: str
    expires_at: datetime


@runtime_checkable
class LeaseStore(Protocol):
    """Leases shared by every process on one log. Arguments are never mutated."""

    async def acquire(
        self, owner: str, keys: Sequence[str], *, ttl: float, limit: int | None = None
    ) -> list[str]:
        """Take the free ones of `keys` for `ttl` seconds, at most `limit` of them.

        Free means never leased, expired, or held by `owner` already (which
        renews it). Returns the keys taken, sorted; a key another live owner
        holds, or that another process is taking at this moment, is skipped.
        """
        ...

    async def renew(self, owner: str, keys: Sequence[str], *, ttl: float) -> list[str]:
        """Extend `owner`'s leases of `keys` by `ttl` seconds from now; the keys still held.

        A key missing from the answer was lost (it expired and was taken):
        its owner must stop driving it.
        """
        ...

    async def release(self, owner: str, keys: Sequence[str]) -> None:
        """Give up `owner`'s leases of `keys` (others' are left as they are)."""
        ...

    async def held(self) -> list[Lease]:
        """Every lease that has not expired, by key."""
        ...


def leases_of(store: object) -> LeaseStore | None:
    """The lease store of `store`, or None when its backend has none."""
    leases = getattr(store, "leases", None)
    return leases if isinstance(leases, LeaseStore) else None
