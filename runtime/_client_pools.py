"""The model client's SDK clients: one for a few agents, so no connection pool grows large.

    pools = ClientPools(first_client, make=lambda: AsyncAnthropic(...))
    sdk = pools.client_for(agent_id)      # the same SDK client for an agent, every time
    pools.done(agent_id)                  # that request ended
    pools.let_go(agent_id)                # its turn ended: its place goes to the next agent
    await pools.aclose()

Notes (do not fix without reading this):
1. Why more than one client. The SDK's HTTP pool checks every idle connection
   it holds (a socket probe: `getpeername`, `poll`) each time a request takes
   a connection and each time one is given back. With one client for the
   whole runtime, 100 agents keep about 100 connections and every request
   pays about 200 probes: about 1 ms of CPU a step at 100 agents, 2 ms at 1,000
   (`bench/agents.py`, BENCHMARKS.md "Performance at scale"). A client for
   every `AGENTS_PER_CLIENT` agents keeps each pool small. Each probe costs
   about 40 us of CPU here (anyio builds a socket's extra attributes for it):
   at 100 agents, 16 agents a client cost 19-22 probes and 0.83-0.91 ms of
   CPU a step, 4 agents a client 5-7 probes and 0.28-0.43 ms, one agent a
   client 2 probes and 0.22-0.24 ms; 4 since clients cost little to make
   (note 4). Those probes were httpx's: the SDK now runs over aiohttp
   (`_client.py`, note 6), whose pool does not probe, and 4 agents a client,
   64, or one client for all measured within the noise of each other
   (callgrind at 100 agents: 10.0, 10.3, 9.7 million instructions a step;
   CPU at 1,000: 3.2-3.5, 3.0-3.5, 3.2-3.6 ms a step). The split stays: it
   keeps each client's pool far under the SDK's 1,000 connections.
2. An agent keeps its client (so its connection is reused between its
   steps, which matters for TLS to the real API); a new agent goes to the
   client with the fewest agents, and a new client is made only when all
   have `AGENTS_PER_CLIENT` (at most `MAX_CLIENTS`). One agent, or a few at
   once (up to `AGENTS_PER_CLIENT`), use the first client alone, as before.
3. An agent counts on its client while a request of its is in flight and
   for `HOLD_S` after its last one ended: the pool closes a connection idle
   for 5 s (the SDK's keep-alive), so an agent quiet for longer holds none,
   and it is let go (assigned anew, with no loss, if it asks again). So
   finished agents do not make clients for new ones, a long model call keeps
   its agent counted, and the assignment holds only the agents at work.
   An agent whose turn has ended (`let_go`, from the end of its
   `run_until_idle`) is let go at once: agents run one after another (one
   at a time, or rounds of a few) then all take the first client and its
   warm connection, where holding each for 5 s filled the first client's
   places within a second and made clients and connections for the next ones.
4. A client the SDK makes on its own costs 25 to 37 ms (it loads the CA
   certificates for each); `ModelClient.from_env`'s share one SSL context
   and cost 0.2 ms (`_client.py`, note 5). Clients are kept until `aclose()`.
5. Requests with no agent (the chat view's, a caller's own) use the first client.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from anthropic import AsyncAnthropic

__all__ = ["AGENTS_PER_CLIENT", "MAX_CLIENTS", "ClientPools"]

AGENTS_PER_CLIENT = 4
MAX_CLIENTS = 256  # 1,000 agents at 4 a client
HOLD_S = 5.0  # the SDK's HTTP keep-alive (its Limits' default `keepalive_expiry`, aiohttp's too)


class ClientPools:
    """SDK clients for a runtime's agents (module notes); `make` is None for one client only.

    `client_for(agent)` when a request of `agent` begins, `done(agent)` when it ends.
    """

    def __init__(
        self, first: AsyncAnthropic, make: Callable[[], AsyncAnthropic] | None = None
    ) -> None:
        self.first = first
        self._make = make
        self._clients = [first]
        self._load = [0]  # agents counted on each client (note 3)
        self._where: dict[str, int] = {}  # agent -> its client's index
        self._busy: dict[str, int] = {}  # agent -> its requests in flight
        self._quiet: OrderedDict[str, float] = OrderedDict()  # agent -> when its last one ended

    @property
    def count(self) -> int:
        """How many SDK clients exist."""
        return len(self._clients)

    def client_for(self, agent: str | None) -> AsyncAnthropic:
        """The SDK client a request of `agent` goes through (note 2)."""
        if agent is None or self._make is None:
            return self.first
        self._let_go(time.monotonic() - HOLD_S)
        index = self._where.get(agent)
        if index is None:
            index = min(range(len(self._load)), key=self._load.__getitem__)
            if self._load[index] >= AGENTS_PER_CLIENT and len(self._clients) < MAX_CLIENTS:
                self._clients.append(self._make())
                self._load.append(0)
                index = len(self._clients) - 1
            self._where[agent] = index
            self._load[index] += 1
        self._quiet.pop(agent, None)
        self._busy[agent] = self._busy.get(agent, 0) + 1
        return self._clients[index]

    def done(self, agent: str | None) -> None:
        """A request of `agent` ended (note 3)."""
        if agent is None or agent not in self._busy:
            return
        self._busy[agent] -= 1
        if self._busy[agent] == 0:
            del self._busy[agent]
            self._quiet[agent] = time.monotonic()

    def let_go(self, agent: str) -> None:
        """`agent` asks nothing more for now (its turn ended): its place is freed at once
        (note 3), unless a request of its is in flight."""
        if agent in self._busy or agent not in self._where:
            return
        self._quiet.pop(agent, None)
        self._load[self._where.pop(agent)] -= 1

    def _let_go(self, before: float) -> None:
        """Let go of the agents whose last request ended before `before` (note 3)."""
        while self._quiet:
            agent, ended = next(iter(self._quiet.items()))
            if ended >= before:
                return
            del self._quiet[agent]
            self._load[self._where.pop(agent)] -= 1

    async def aclose(self) -> None:
        """Close every client."""
        for client in self._clients:
            await client.close()
