"""The model client's SDK clients: one for a few agents, so no connection pool grows large.

    pools = ClientPools(first_client, make=lambda: AsyncAnthropic(...))
    sdk = pools.client_for(agent_id)      # the same SDK client for an agent, every time
    await pools.aclose()

Notes (do not fix without reading this):
1. Why more than one client. The SDK's HTTP pool checks every idle connection
   it holds (a socket probe: `getpeername`, `poll`) each time a request takes
   a connection and each time one is given back. With one client for the
   whole runtime, 100 agents keep about 100 connections and every request
   pays about 200 probes: 1 ms of CPU a step at 100 agents, 2.5 ms at 1,000
   (`bench/agents.py`, BENCHMARKS.md "Performance at scale"). A client for
   every `AGENTS_PER_CLIENT` agents keeps each pool small.
2. An agent keeps its client (so its connection is reused between its
   steps, which matters for TLS to the real API); a new agent goes to the
   client with the fewest agents, and a new client is made only when all
   have `AGENTS_PER_CLIENT` (at most `MAX_CLIENTS`). One agent, or a handful,
   use the first client alone, as before.
3. A client costs about 25 ms to make (the SDK loads the CA certificates for
   each), once; the assignment remembers the last `REMEMBERED` agents, and an
   agent forgotten and seen again is assigned anew.
4. Requests with no agent (the chat view's, a caller's own) use the first client.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from anthropic import AsyncAnthropic

__all__ = ["AGENTS_PER_CLIENT", "MAX_CLIENTS", "ClientPools"]

AGENTS_PER_CLIENT = 16
MAX_CLIENTS = 64
REMEMBERED = 8192


class ClientPools:
    """SDK clients for a runtime's agents (module notes); `make` is None for one client only."""

    def __init__(
        self, first: AsyncAnthropic, make: Callable[[], AsyncAnthropic] | None = None
    ) -> None:
        self.first = first
        self._make = make
        self._clients = [first]
        self._load = [0]  # agents assigned to each client
        self._agents: OrderedDict[str, int] = OrderedDict()  # agent -> client index

    @property
    def count(self) -> int:
        """How many SDK clients exist."""
        return len(self._clients)

    def client_for(self, agent: str | None) -> AsyncAnthropic:
        """The SDK client `agent`'s requests go through (note 2)."""
        if agent is None or self._make is None:
            return self.first
        index = self._agents.get(agent)
        if index is not None:
            self._agents.move_to_end(agent)
            return self._clients[index]
        index = min(range(len(self._load)), key=self._load.__getitem__)
        if self._load[index] >= AGENTS_PER_CLIENT and len(self._clients) < MAX_CLIENTS:
            self._clients.append(self._make())
            self._load.append(0)
            index = len(self._clients) - 1
        self._agents[agent] = index
        self._load[index] += 1
        if len(self._agents) > REMEMBERED:  # note 3
            _, forgotten = self._agents.popitem(last=False)
            self._load[forgotten] -= 1
        return self._clients[index]

    async def aclose(self) -> None:
        """Close every client."""
        for client in self._clients:
            await client.close()
