"""The model client's SDK clients: one for a few agents, so no connection pool grows large.

    pools = ClientPools(first_client, make=lambda: AsyncAnthropic(...))
    sdk = pools.client_for(agent_id)      # the same SDK client for an agent, every time
    await pools.aclose()

Notes (do not fix without reading this):
1. Why more than one client. The SDK's HTTP pool checks every idle connection
   it holds (a socket probe: `getpeername`, `poll`) each time a request takes
   a connection and each time one is given back. With one client for the
   whole runtime, 100 agents keep about 100 connections and every request
   pays about 200 probes: about 1 ms of CPU a step at 100 agents, 2 ms at 1,000
   (`bench/agents.py`, BENCHMARKS.md "Performance at scale"). A client for
   every `AGENTS_PER_CLIENT` agents keeps each pool small.
2. An agent keeps its client (so its connection is reused between its
   steps, which matters for TLS to the real API); a new agent goes to the
   client with the fewest agents, and a new client is made only when all
   have `AGENTS_PER_CLIENT` (at most `MAX_CLIENTS`). One agent, or a handful,
   use the first client alone, as before.
3. What a pool holds is the connections of the agents that used it recently
   (an idle connection is closed after 5 s): an agent whose last request
   began or ended `IDLE_S` ago is let go (its client counts it no more; it is
   assigned anew if it asks again), so finished agents do not make clients
   for new ones for long, and the assignment holds only the agents that work.
   `IDLE_S` is longer than most model calls, so that a working agent keeps
   its warm connection.
4. A client costs about 25 ms to make (the SDK loads the CA certificates for
   each), once; clients are kept until `aclose()`.
5. Requests with no agent (the chat view's, a caller's own) use the first client.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from anthropic import AsyncAnthropic

__all__ = ["AGENTS_PER_CLIENT", "MAX_CLIENTS", "ClientPools"]

AGENTS_PER_CLIENT = 16
MAX_CLIENTS = 64
IDLE_S = 30.0


class ClientPools:
    """SDK clients for a runtime's agents (module notes); `make` is None for one client only."""

    def __init__(
        self, first: AsyncAnthropic, make: Callable[[], AsyncAnthropic] | None = None
    ) -> None:
        self.first = first
        self._make = make
        self._clients = [first]
        self._load = [0]  # agents assigned to each client
        # agent -> (client index, when it last asked), the least recent first
        self._agents: OrderedDict[str, tuple[int, float]] = OrderedDict()

    @property
    def count(self) -> int:
        """How many SDK clients exist."""
        return len(self._clients)

    def client_for(self, agent: str | None) -> AsyncAnthropic:
        """The SDK client `agent`'s requests go through (note 2)."""
        if agent is None or self._make is None:
            return self.first
        now = time.monotonic()
        known = self._agents.get(agent)
        if known is not None:
            index = known[0]
            self._agents[agent] = (index, now)
            self._agents.move_to_end(agent)
            return self._clients[index]
        self._let_go(now - IDLE_S)
        index = min(range(len(self._load)), key=self._load.__getitem__)
        if self._load[index] >= AGENTS_PER_CLIENT and len(self._clients) < MAX_CLIENTS:
            self._clients.append(self._make())
            self._load.append(0)
            index = len(self._clients) - 1
        self._agents[agent] = (index, now)
        self._load[index] += 1
        return self._clients[index]

    def _let_go(self, before: float) -> None:
        """Forget the agents that last asked before `before` (note 3)."""
        while self._agents:
            agent, (index, last) = next(iter(self._agents.items()))
            if last >= before:
                return
            del self._agents[agent]
            self._load[index] -= 1

    def done(self, agent: str | None) -> None:
        """`agent`'s request ended: it counts as working from now (note 3)."""
        if agent is not None and (known := self._agents.get(agent)) is not None:
            self._agents[agent] = (known[0], time.monotonic())
            self._agents.move_to_end(agent)

    async def aclose(self) -> None:
        """Close every client."""
        for client in self._clients:
            await client.close()
