"""Logs written by hand that tests of several packages share."""

from __future__ import annotations

from events import (
    AgentCommanded,
    AgentCreated,
    AgentWaiting,
    EventStore,
    Meta,
    NewEvent,
    RunStarted,
    ToolCallRequested,
)


async def cut_short(store: EventStore, run_id: str) -> None:
    """Run `run_id` as a process killed mid-run leaves it: started and never ended, its
    builder `<run_id>-b` working (a Bash call running) and its orchestrator `<run_id>-o`
    waiting on the builder. No lease is taken: nobody conducts it."""
    await store.append(
        f"run-{run_id}", [NewEvent(RunStarted(run_id=run_id, task="t"), Meta(run_id=run_id))]
    )
    builder, boss = f"{run_id}-b", f"{run_id}-o"
    meta = Meta(run_id=run_id, agent_id=builder)
    await store.append(f"agent-{builder}", [
        NewEvent(AgentCreated(agent_id=builder, name="b", role="builder", model="m"), meta),
        NewEvent(AgentCommanded(agent_id=builder, prompt="build it"), meta),
        NewEvent(ToolCallRequested(agent_id=builder, tool_use_id="t1", name="Bash"), meta),
    ])  # fmt: skip
    meta = Meta(run_id=run_id, agent_id=boss)
    await store.append(f"agent-{boss}", [
        NewEvent(AgentCreated(agent_id=boss, name="o", role="orchestrator", model="m"), meta),
        NewEvent(AgentWaiting(agent_id=boss, on=[builder]), meta),
    ])  # fmt: skip
