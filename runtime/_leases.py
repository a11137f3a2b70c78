"""This process's leases on agents and runs: one live driver for each.

    leases = Leaseholder(store, ttl_s=15, on_lost=...)
    await leases.acquire("agent-scout-1")    # LeaseHeld if a live process drives it
    ...                                      # renewed every ttl/3 while held
    await leases.release("agent-scout-1")

A fleet acquires `agent-<id>` before it appends the command that starts an
agent and holds it until the agent is idle again; a pattern run holds
`run-<id>` while its conductor works. A second process on the same log sees
the lease (`events/_leases.py`) and keeps off; once the holder is gone it
takes over.

Notes (do not fix without reading this):
1. The owner's name is `host:pid:token` (`events.process_owner`). A lease whose
   holder is a process of this host that no longer exists is taken over at once
   (`replacing`), so a `fleet resume` after a `kill -9` need not wait out the
   expiry; a holder on another host is trusted until its lease expires.
2. Acquires are counted per key: the drive task, a delete and a command may
   each hold the same key in one process, and the lease is let go when the
   last of them releases it.
3. A lease that renewal finds taken over (this process stalled past its
   expiry and another took over) is reported to `on_lost`, and the fleet
   stops driving that agent: the expected version of its next append would
   refuse it anyway.
4. A renewal that fails (the server restarted, a connection was cut, a lock
   held the table) is tried again at the next turn; only a closed log ends
   renewal. Ending it at the first failure let every lease of the process
   lapse while it still drove its agents, and another worker took them over.
   A lease that lapsed meanwhile is renewed if no one took it (note 3 if one did).
5. A holder that cannot tell whether its lease lapsed (it waited out an
   unavailable log, `_outage.py`) asks `confirm` before it writes again: the
   next turn of renewal may come after its first write.
6. A release that fails (the log is unavailable or closed) is not tried again:
   the lease, no longer renewed, lapses within `ttl_s`. One that hangs (a
   network that drops packets silently: the statement, and asyncpg's cancel of
   it, wait for TCP to give up) is waited for `ttl_s` at most, when the lease
   has lapsed anyway, rather than holding up the end of a run whose outcome is
   written; it goes on in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from events import EventStore, Lease, LeaseHeld, owner_alive, process_owner
from events.errors import StoreClosed, StoreError

__all__ = ["DEFAULT_LEASE_TTL_S", "Leaseholder"]

logger = logging.getLogger(__name__)

DEFAULT_LEASE_TTL_S = 15.0


class Leaseholder:
    """Acquires, renews and releases this process's leases in the log's lease store.

    Args:
        store: the log (its `leases`).
        ttl_s: how long a lease lasts unless renewed; renewed every third of it.
        on_lost: called with a key whose lease another owner took over (note 3).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        ttl_s: float = DEFAULT_LEASE_TTL_S,
        on_lost: Callable[[str], None] | None = None,
        owner: str | None = None,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.store = store
        self.ttl_s = ttl_s
        self.owner = owner or process_owner()
        self._on_lost = on_lost
        self._counts: dict[str, int] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Future[None]] = set()
        self._closed = False

    def holds(self, key: str) -> bool:
        """True while this process holds `key`."""
        return key in self._counts

    async def acquire(self, key: str) -> Lease:
        """Hold `key` (again). Raises `LeaseHeld` naming the live owner that holds it."""
        leases = self.store.leases
        try:
            lease = await self._settled(leases.acquire_lease(key, self.owner, self.ttl_s), key)
        except LeaseHeld as held:
            if owner_alive(held.owner):
                raise
            logger.info("taking over %s from %s, a process that has ended", key, held.owner)
            lease = await self._settled(
                leases.acquire_lease(key, self.owner, self.ttl_s, replacing=held.owner), key
            )
        self._counts[key] = self._counts.get(key, 0) + 1
        self._start_renewing()
        return lease

    async def _settled(self, acquiring: Coroutine[Any, Any, Lease], key: str) -> Lease:
        """The acquire's lease; if the caller is cancelled, the acquire still ends and a
        lease it took is let go, never left behind (the store may take a cancelled one)."""
        pending = asyncio.ensure_future(acquiring)
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            while not pending.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([pending])
            if not pending.cancelled() and pending.exception() is None and key not in self._counts:
                with contextlib.suppress(StoreError):
                    await self.store.leases.release_leases([key], self.owner)
            raise

    async def release(self, key: str) -> None:
        """Let go of one hold on `key`; the lease is released with the last (note 2)."""
        count = self._counts.get(key, 0)
        if count > 1:
            self._counts[key] = count - 1
            return
        if self._counts.pop(key, None) is None:
            return
        # Not cancelled with the caller: one cancelled half-way would leave the lease held
        # until it expires. Waited for at most ttl_s (note 6).
        releasing = asyncio.ensure_future(self._release([key]))
        self._releasing.add(releasing)
        releasing.add_done_callback(self._releasing.discard)
        await self._settle({releasing})

    async def _settle(self, releasing: set[asyncio.Future[None]]) -> None:
        """Wait for `releasing` at most ttl_s (they go on meanwhile): by then a lease they
        could not release has lapsed (note 6)."""
        _, pending = await asyncio.wait(releasing, timeout=self.ttl_s)
        if pending:
            logger.warning(
                "a lease's release is taking over %.0f s; it lapses by itself", self.ttl_s
            )

    async def _release(self, keys: list[str]) -> None:
        with contextlib.suppress(StoreError):  # note 6: the lease simply expires
            await self.store.leases.release_leases(keys, self.owner)

    async def holder(self, key: str) -> Lease | None:
        """The live lease on `key` of a live owner (this process included), if any."""
        now = time.time()
        for lease in await self.store.leases.leases(prefix=key):
            if lease.key == key and lease.live(now) and owner_alive(lease.owner):
                return lease
        return None

    async def aclose(self) -> None:
        """Stop renewing and release every lease held. Idempotent."""
        if self._closed:
            return
        self._closed = True
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        keys, self._counts = list(self._counts), {}
        if keys:
            self._releasing.add(asyncio.ensure_future(self._release(keys)))
        if self._releasing:
            await self._settle(set(self._releasing))

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew(), name="fleet-lease-renewal")

    async def _renew(self) -> None:
        failing = False
        while self._counts:
            await asyncio.sleep(self.ttl_s / 3)
            keys = set(self._counts)
            if not keys:
                break
            try:
                renewed = await self.store.leases.renew_leases(keys, self.owner, self.ttl_s)
            except StoreClosed as e:  # the log closed under us: nothing left to renew
                logger.debug("lease renewal stopped: %s", e)
                return
            except StoreError as e:  # note 4
                if not failing:
                    logger.warning("could not renew leases (%s); trying again", e)
                failing = True
                continue
            if failing:
                logger.warning("leases renewed again")
                failing = False
            for key in keys - renewed:
                self._lost(key)

    async def confirm(self, key: str) -> bool:
        """Renew `key` now: True if this process still holds it, False if another took it
        over (reported to `on_lost` as by renewal, note 5). Raises `StoreError`."""
        if key not in self._counts:
            return False
        if key in await self.store.leases.renew_leases({key}, self.owner, self.ttl_s):
            return True
        self._lost(key)
        return False

    def _lost(self, key: str) -> None:
        if self._counts.pop(key, None) is None:
            return  # released meanwhile
        logger.warning("lost the lease on %s: another process took it over", key)
        if self._on_lost is not None:
            self._on_lost(key)
