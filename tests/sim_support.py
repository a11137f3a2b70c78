"""A simulator that holds an answer at a chosen step, for tests that stop a process there.

A test that kills (or stops) a process mid-run must not race it: a process answered
at once, or a watcher slowed by a loaded machine, would have it stop a step later or
end first. Instead the process talks to the test's simulator (its URL as
`ANTHROPIC_BASE_URL`, or given to the process), whose responder plays the scripted
roles but, once armed, holds the first request a predicate picks until released:
the process waits there, working, until the test stops it.

    holding = HoldingResponder()
    async with Simulator(responder=holding) as sim:
        held = holding.arm(lambda body: role(body) == "builder" and turn(body) == 2)
        ...  # start the process on sim.base_url, wait for `held`, kill it
        holding.release()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from runtime.simulator import PolicyRegistry, PolicyResponder, Simulator, role_of, system_text

Request = Mapping[str, Any]


def role(body: Request) -> str:
    """The role the request's system prompt names ("" when none)."""
    return role_of(system_text(body.get("system")))


def turn(body: Request) -> int:
    """Which turn of its conversation the request asks for (1 for the first)."""
    return 1 + sum(1 for m in body.get("messages", ()) if m.get("role") == "assistant")


class HoldingResponder:
    """The scripted roles' answers; once armed, the first request `when` picks waits for
    `release()` (then is answered as usual). Each arming holds one request only, so the
    process that resumes the held one's work asks again and is answered."""

    def __init__(self) -> None:
        self._answer = PolicyResponder(PolicyRegistry.default())
        self._when: Callable[[Request], bool] | None = None
        self._held = asyncio.Event()
        self._released = asyncio.Event()

    def arm(self, when: Callable[[Request], bool]) -> asyncio.Event:
        """Hold the next request `when` picks; the event is set once one is held."""
        self._when, self._held = when, asyncio.Event()
        return self._held

    def release(self) -> None:
        """Answer the held requests (their processes are gone: nobody reads them)."""
        self._released.set()

    async def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._when is not None and self._when(body):
            self._when = None
            self._held.set()
            await self._released.wait()
        return await self._answer(body)


@asynccontextmanager
async def holding_simulator() -> AsyncIterator[tuple[Simulator, HoldingResponder]]:
    """A simulator on loopback answering through a `HoldingResponder`, released on exit."""
    holding = HoldingResponder()
    async with Simulator(responder=holding) as sim:
        try:
            yield sim, holding
        finally:
            holding.release()  # before the simulator closes, which waits for its answers
