"""A worker: drives the agents whose leases it holds, on a log many processes share.

`fleet worker --db postgresql://...` runs one without serving HTTP; `fleet
serve` and `fleet run` on such a log run one in-process unless told not to.
Any number of workers on any number of machines share a log: each agent is
driven by exactly one live worker, through a lease (`events.LeaseStore`).

Notes (do not fix without reading this):
1. The log says which agents need driving (status `working` or `waiting`,
   not external); the leases say who drives them. A worker looks when an
   agent is commanded anywhere (a subscription on `AgentCommanded`) and
   every `scan_interval` seconds (for leases that expired), takes free
   leases up to its capacity, checks the agent still needs driving once it
   holds the lease (another worker may have finished it meanwhile), and
   drives it from where its log ends, as `fleet resume` does.
2. Leases last `ttl` seconds and are renewed every `ttl / 3`. A renewal
   that comes back without a key means the lease was lost (this worker was
   stalled past its expiry and another took it): the worker stops driving
   that agent at once. A killed worker renews nothing; after `ttl` its
   agents are taken over and resumed from the log.
3. When an agent goes idle (finished, failed, waiting for a command), its
   lease is released, so the next command is taken by whichever worker
   sees it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from types import TracebackType
from typing import Self

from events import EventFilter, LeaseStore

from ._fleet import Fleet

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

_NEEDS_DRIVING = frozenset({"working", "waiting"})


def _key(agent_id: str) -> str:
    return f"agent-{agent_id}"


class Worker:
    """Takes agents' leases and drives them with `fleet`. Use as `async with Worker(...)`.

    Args:
        fleet: the fleet that drives agents (its `drive_locally` should be
            False, so that nothing runs without a lease).
        leases: the log's lease store.
        owner: this worker's name in the leases (default: host, pid and a random suffix).
        ttl: seconds a lease lasts unless renewed.
        capacity: agents driven at once, at most.
        scan_interval: seconds between looks for expired leases.
    """

    def __init__(
        self,
        fleet: Fleet,
        leases: LeaseStore,
        *,
        owner: str | None = None,
        ttl: float = 15.0,
        capacity: int = 32,
        scan_interval: float | None = None,
    ) -> None:
        if ttl <= 0 or capacity < 1:
            raise ValueError("ttl must be positive and capacity at least 1")
        self.fleet = fleet
        self.leases = leases
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.ttl = ttl
        self.capacity = capacity
        self.scan_interval = scan_interval if scan_interval is not None else ttl / 3
        self._held: dict[str, asyncio.Task[None]] = {}  # agent id -> its driving task
        self._look = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start looking for agents, driving them and renewing their leases (background tasks)."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._watch(), name=f"worker-{self.owner}-watch"),
            loop.create_task(self._scan_loop(), name=f"worker-{self.owner}-scan"),
            loop.create_task(self._renew_loop(), name=f"worker-{self.owner}-renew"),
        ]

    async def aclose(self) -> None:
        """Stop driving (agents stay resumable) and release every lease. Safe to call twice."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        held = list(self._held)
        for task in self._held.values():
            task.cancel()
        await asyncio.gather(*self._held.values(), return_exceptions=True)
        self._held.clear()
        if held:
            with contextlib.suppress(Exception):  # the store may be gone: the leases expire
                await self.leases.release(self.owner, [_key(a) for a in held])

    @property
    def held(self) -> list[str]:
        """The agents this worker drives now."""
        return sorted(self._held)

    async def _watch(self) -> None:
        """Look again whenever an agent is commanded anywhere (note 1)."""
        store = self.fleet.store
        where = EventFilter.of(types=["AgentCommanded", "ApprovalDecided"])
        async for _ in store.subscribe(after=await store.head(), where=where):
            self._look.set()

    async def _scan_loop(self) -> None:
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("worker %s could not look for agents", self.owner, exc_info=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.scan_interval):
                    await self._look.wait()
            self._look.clear()

    async def scan(self) -> list[str]:
        """Take the leases of agents that need driving, and drive them; their ids."""
        room = self.capacity - len(self._held)
        if room <= 0:
            return []
        agents = await self.fleet.list_agents()
        wanted = [
            a["id"]
            for a in agents
            if a["status"] in _NEEDS_DRIVING and not a["external"] and a["id"] not in self._held
        ]
        if not wanted:
            return []
        taken = await self.leases.acquire(
            self.owner, [_key(a) for a in wanted], ttl=self.ttl, limit=room
        )
        if not taken:
            return []
        # Holding the leases, read the log again: another worker may have finished one.
        statuses = {a["id"]: a["status"] for a in await self.fleet.list_agents()}
        started = []
        for key in taken:
            agent_id = key.removeprefix("agent-")
            if statuses.get(agent_id) not in _NEEDS_DRIVING:
                await self.leases.release(self.owner, [key])
                continue
            task = await self.fleet.drive(agent_id)
            self._held[agent_id] = task
            task.add_done_callback(functools.partial(self._finished, agent_id))
            started.append(agent_id)
        if started:
            logger.info("worker %s drives %s", self.owner, started)
        return started

    def _finished(self, agent_id: str, task: asyncio.Task[None]) -> None:
        if self._held.get(agent_id) is not task:
            return
        del self._held[agent_id]
        if not self._tasks:  # closing: aclose releases
            return
        release = asyncio.get_running_loop().create_task(
            self.leases.release(self.owner, [_key(agent_id)])
        )
        self._tasks.append(release)
        release.add_done_callback(self._forget)
        self._look.set()  # room for another agent

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("releasing a lease failed (it will expire)", exc_info=task.exception())

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            held = list(self._held)
            if not held:
                continue
            try:
                kept = set(
                    await self.leases.renew(self.owner, [_key(a) for a in held], ttl=self.ttl)
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("worker %s could not renew its leases", self.owner, exc_info=True)
                continue
            for agent_id in held:
                if _key(agent_id) not in kept:
                    logger.warning("worker %s lost the lease of %s: stops", self.owner, agent_id)
                    task = self._held.pop(agent_id, None)
                    if task is not None:
                        task.cancel()
