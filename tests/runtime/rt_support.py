"""Helpers of the runtime tests (imported by the test modules)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from events import EventStore, RecordedEvent
from runtime import Agent, AgentSpec, ModelClient

T = TypeVar("T")

TASK = "rename `count_words` to `word_count`"


async def git(cwd: Path, *args: str) -> str:
    """The output of `git ARGS` in `cwd`; raises AssertionError when it fails."""
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


def make_agent(
    store: EventStore,
    client: ModelClient,
    workspace: Path,
    *,
    agent_id: str = "a1",
    role: str = "scout",
    model: str = "haiku",
    **kwargs: Any,
) -> Agent:
    options = {
        k: kwargs.pop(k) for k in ("toolbox", "hooks", "tool_extra", "budget_check") if k in kwargs
    }
    spec = AgentSpec(
        agent_id=agent_id,
        name=agent_id,
        role=role,
        model=model,
        workspace=workspace,
        run_id="run-1",
        **kwargs,
    )
    return Agent(store=store, client=client, spec=spec, **options)


async def types_of(store: EventStore, agent_id: str = "a1") -> list[str]:
    return [e.type for e in await store.read_stream(f"agent-{agent_id}")]


async def events_of(
    store: EventStore, agent_id: str = "a1", type: str | None = None
) -> list[RecordedEvent]:
    events = await store.read_stream(f"agent-{agent_id}")
    return [e for e in events if type is None or e.type == type]


async def watching_the_loop(work: Awaitable[T]) -> tuple[T, float, float]:
    """`work`'s result, the event loop's longest stall while it ran and how long it ran
    (seconds): ticks of the loop during the call show whether it ran meanwhile."""
    loop = asyncio.get_running_loop()
    call = asyncio.ensure_future(work)
    started = last = loop.time()
    longest = 0.0
    while not call.done():
        await asyncio.sleep(0.01)
        now = loop.time()
        longest, last = max(longest, now - last), now
    return await call, longest, loop.time() - started
