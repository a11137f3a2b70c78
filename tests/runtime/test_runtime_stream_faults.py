"""What the API does mid-stream, injected by the simulator: the agent retries or fails clearly."""

from __future__ import annotations

from pathlib import Path

from rt_support import events_of, make_agent, types_of

from events import SQLiteEventStore
from runtime import ModelClient, Simulator

SCOUT = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."


async def test_mid_stream_faults_are_retried_or_end_the_agent_with_a_clear_reason(
    tmp_path: Path, client: ModelClient, sim: Simulator, workspace: Path
) -> None:
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        # An overloaded_error event after the stream began: the turn is asked again.
        sim.inject_faults(mid_stream="overloaded", count=1)
        agent = make_agent(store, client, workspace, agent_id="over")
        await agent.create(task=SCOUT)
        outcome = await agent.run_until_idle()
        assert outcome.status == "completed", outcome.error
        assert sim.stats.faults == 1

        # The turn paused (pause_turn): the agent asks the model to go on, then finishes.
        sim.inject_faults(mid_stream="pause_turn", count=1)
        agent = make_agent(store, client, workspace, agent_id="paused")
        await agent.create(task=SCOUT)
        outcome = await agent.run_until_idle()
        assert outcome.status == "completed", outcome.error
        stops = [e.data.stop_reason for e in await events_of(store, "paused", "ModelResponded")]  # type: ignore[union-attr]
        assert stops[0] == "pause_turn" and stops[-1] == "end_turn"

        # Cut inside a tool_use block, and a refusal: the agent fails saying why, runs nothing.
        for fault, reason in (("max_tokens", "max_tokens"), ("refusal", "refused")):
            sim.inject_faults(mid_stream=fault, count=1)  # type: ignore[arg-type]
            agent = make_agent(store, client, workspace, agent_id=fault)
            await agent.create(task=SCOUT)
            outcome = await agent.run_until_idle()
            assert outcome.status == "failed"
            assert reason in (outcome.error or "")
            types = await types_of(store, fault)
            assert "ToolCallRequested" not in types and types[-1] == "AgentFailed"
