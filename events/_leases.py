"""The lease store protocol: which process drives what, for how long.

A lease is a row `(key, owner, expires_at)` kept in the log's own storage (the
`leases` of an `EventStore`), beside the events it guards, so every process
that opens the log sees the same leases. The runtime leases `agent-<id>` while
it drives that agent and `run-<id>` while it conducts that run: a second
process on the same log sees the lease and keeps its hands off until the
owner lets go, or stops renewing it (it died) and the lease expires.

- `acquire_lease` is one compare-and-set: it succeeds when the key is free,
  expired, already the caller's, or held by the owner named in `replacing`
  (the caller has found that owner dead); else it raises `LeaseHeld` naming
  the holder. Two processes racing for one key never both win.
- `renew_leases` pushes the expiry of the caller's own leases forward and
  answers which keys it still held; a lease taken over meanwhile is lost.
- `release_leases` lets go (only of the caller's own).
- `leases` lists what is held, expired rows included: the caller judges
  liveness with `Lease.live(now)`.

Expiry uses the wall clock (`time.time()`) of the processes sharing the log.
A lease is advisory about who *should* drive; the expected version of every
append stays the guard against two writers, so a paused owner whose lease was
taken over writes nothing when it wakes. Every backend passes the same
contract tests (tests/events/test_lease_contract.py).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["Lease", "LeaseStore", "live_keys", "owner_alive", "process_owner"]


@dataclass(frozen=True, slots=True)
class Lease:
    """`owner` holds `key` until `expires_at` (seconds since the epoch)."""

    key: str
    owner: str
    expires_at: float

    def live(self, now: float) -> bool:
        """True while the lease has not expired at `now`."""
        return self.expires_at > now


@runtime_checkable
class LeaseStore(Protocol):
    """Leases on keys of a log, kept in that log's storage.

    Every method raises `StoreClosed` once its event store is closed, and the
    writing ones `StoreUnavailable` when the log cannot be written (opened
    read-only). `ttl_s` must be positive. Arguments are never mutated.
    """

    async def acquire_lease(
        self, key: str, owner: str, ttl_s: float, *, replacing: str | None = None
    ) -> Lease:
        """Hold `key` for `ttl_s` seconds from now. Raises `LeaseHeld` if another holds it."""
        ...

    async def renew_leases(self, keys: Collection[str], owner: str, ttl_s: float) -> set[str]:
        """Extend `owner`'s leases on `keys` by `ttl_s` from now; the keys it still held."""
        ...

    async def release_leases(self, keys: Collection[str], owner: str) -> None:
        """Let go of `owner`'s leases on `keys` (others' leases are left alone)."""
        ...

    async def leases(self, *, prefix: str = "") -> list[Lease]:
        """Every lease whose key starts with `prefix`, expired ones included, by key."""
        ...


# Owners are named `host:pid:token`. A holder that is a process of this host that no
# longer exists is dead at once (a `fleet resume` after a `kill -9` need not wait out
# the expiry); a holder on another host is trusted until its lease expires.


def process_owner() -> str:
    """A fresh owner name for this process: `host:pid:token`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool:
    """False only when `owner` names a process of this host that has ended."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has ended; only its exit status is left
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] != "Z"


async def live_keys(leases: LeaseStore, prefix: str = "") -> set[str]:
    """The keys starting with `prefix` that a live owner holds now (`leases`: a store's)."""
    now = time.time()
    return {
        lease.key
        for lease in await leases.leases(prefix=prefix)
        if lease.live(now) and owner_alive(lease.owner)
    }
