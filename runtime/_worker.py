"""A worker: takes over the agents no live process drives, on a log many processes share.

`fleet worker --db postgresql://...` runs one without serving HTTP. Any number
of workers on any number of machines share a log; each agent is driven by
one live process at a time, the holder of its lease (`_leases.py`, the
`Fleet` takes and renews it).

Notes (do not fix without reading this):
1. The log says which agents need driving (status `working` or `waiting`,
   not external); the leases say whether a live process drives them. A
   worker looks whenever an agent is commanded anywhere (a subscription on
   `AgentCommanded`), whenever one of its own agents goes idle, and every
   `scan_interval` seconds (for leases that expired), and `Fleet.take_over`s
   those it has room for: lease, read the log again, drive from where its
   log ends (as `fleet resume` does).
2. A worker killed with SIGKILL renews nothing: once its leases expire (at
   once when it ran on this host, since its pid is gone; after the lease's
   ttl from another host) the other workers take its agents over.
3. An agent's lease is released when it goes idle, so its next command goes
   to whichever worker sees it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from types import TracebackType
from typing import Self

from events import EventFilter

from ._fleet import Fleet

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

_NEEDS_DRIVING = frozenset({"working", "waiting"})


class Worker:
    """Takes over agents that need driving, up to `capacity`. Use as `async with Worker(fleet)`.

    Args:
        fleet: the fleet that drives them (its leases, its model client, its tools).
        capacity: agents driven at once, at most.
        scan_interval: seconds between looks for expired leases (default: a
            third of the fleet's lease ttl).
    """

    def __init__(
        self, fleet: Fleet, *, capacity: int = 32, scan_interval: float | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.fleet = fleet
        self.capacity = capacity
        self.scan_interval = scan_interval or fleet.config.lease_ttl_s / 3
        self._held: dict[str, asyncio.Task[None]] = {}
        self._look = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def owner(self) -> str:
        """This worker's name in the leases (`host:pid:token`)."""
        return self.fleet.leases.owner

    @property
    def held(self) -> list[str]:
        """The agents this worker drives now."""
        return sorted(self._held)

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
        """Start watching the log and taking agents over (background tasks)."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._watch(), name="fleet-worker-watch"),
            loop.create_task(self._scan_loop(), name="fleet-worker-scan"),
        ]

    async def aclose(self) -> None:
        """Stop looking. The agents' tasks belong to the fleet, which stops them. Idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self) -> None:
        """Look again whenever an agent is commanded anywhere (note 1)."""
        store = self.fleet.store
        where = EventFilter.of(types=["AgentCommanded"])
        async for _ in store.subscribe(after=await store.head(), where=where):
            self._look.set()

    async def _scan_loop(self) -> None:
        while True:
            self._look.clear()
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("the worker could not look for agents", exc_info=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.scan_interval):
                    await self._look.wait()

    async def scan(self) -> list[str]:
        """Take over the agents that need driving, as many as there is room for; their ids."""
        room = self.capacity - len(self._held)
        if room <= 0:
            return []
        started: list[str] = []
        for agent in await self.fleet.list_agents():
            if len(started) == room:
                break
            agent_id = agent["id"]
            if agent["status"] not in _NEEDS_DRIVING or agent["external"]:
                continue
            if agent_id in self._held or agent["model"].startswith("pattern:"):
                continue  # a pattern's conductor is code, resumed with its run
            task = await self.fleet.take_over(agent_id)
            if task is None:
                continue
            self._held[agent_id] = task
            task.add_done_callback(functools.partial(self._finished, agent_id))
            started.append(agent_id)
        if started:
            logger.info("worker %s took over %s", self.owner, started)
        return started

    def _finished(self, agent_id: str, task: asyncio.Task[None]) -> None:
        if self._held.get(agent_id) is task:
            del self._held[agent_id]
            self._look.set()  # room for another agent
