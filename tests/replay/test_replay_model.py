"""Recorded answers: the simulator serves a recording, through the real SDK over loopback."""

from __future__ import annotations

from typing import Any

import pytest
from replay_support import Recording

from events import AgentCreated, ModelResponded, RecordedEvent, SQLiteEventStore, read_run
from runtime import ModelCallFailed, ModelClient, Simulator, worker_toolbox
from runtime._conversation import AgentState
from runtime._orchestrator_tools import orchestrator_toolbox
from runtime.replay import ReplayResponder, ReplayScript


@pytest.fixture
async def recorded(recorded_pattern: Recording) -> list[RecordedEvent]:
    async with SQLiteEventStore(recorded_pattern.db) as store:
        return await read_run(store, recorded_pattern.run_id)


def _serving(script: ReplayScript) -> Simulator:
    """The simulator's server answering from the recording."""
    return Simulator(responder=ReplayResponder(script))


def _client(model: Simulator) -> ModelClient:
    return ModelClient.from_env(simulator_base_url=model.base_url, env={})


def _requests(events: list[RecordedEvent], name: str) -> list[tuple[dict[str, Any], Any]]:
    """Each (request, recorded answer) of agent `name`, rebuilt as the agent loop builds them."""
    created = next(e for e in events if isinstance(e.data, AgentCreated) and e.data.name == name)
    data = created.data
    assert isinstance(data, AgentCreated)
    tools = orchestrator_toolbox() if data.role == "orchestrator" else worker_toolbox(data.tools)
    state = AgentState(data.agent_id)
    pairs = []
    for event in events:
        if event.stream_id != created.stream_id:
            continue
        if isinstance(event.data, ModelResponded):
            request = {
                "model": data.model, "system": data.system_prompt,
                "messages": [dict(m) for m in state.messages], "tools": tools.definitions(),
            }  # fmt: skip
            pairs.append((request, event.data))
        state.apply(event)
    return pairs


async def test_every_recorded_answer_is_served_for_the_conversation_before_it(
    recorded: list[RecordedEvent],
) -> None:
    script = ReplayScript.from_events(recorded)
    async with _serving(script) as model, _client(model) as client:
        for name in ("scout-1", "scout-2", "plan", "build"):
            for request, answer in _requests(recorded, name):
                reply = await client.respond(**request)
                assert reply.content == answer.content
                assert reply.usage == answer.usage
                assert reply.stop_reason == answer.stop_reason
    assert script.misses == []
    assert model.stats.responses == script.served


async def test_a_request_beyond_the_recording_is_a_clear_400_and_a_miss(
    recorded: list[RecordedEvent],
) -> None:
    script = ReplayScript.from_events(recorded)
    request, answer = _requests(recorded, "build")[-1]
    request["messages"] += [
        {"role": "assistant", "content": answer.content},
        {"role": "user", "content": [{"type": "text", "text": "one more thing"}]},
    ]
    async with _serving(script) as model, _client(model) as client:
        with pytest.raises(ModelCallFailed) as failed:
            await client.respond(**request)
    assert failed.value.status == 400
    assert "replay: the recording has 4 model responses for agent 'build'" in str(failed.value)
    (miss,) = script.misses
    assert (miss.name, miss.role, miss.turn) == ("build", "builder", 5)


async def test_an_agent_the_recording_does_not_have_is_a_miss(
    recorded: list[RecordedEvent],
) -> None:
    script = ReplayScript.from_events(recorded)
    request, _ = _requests(recorded, "scout-1")[0]
    request["system"] = request["system"].replace("You are scout-1,", "You are scout-9,")
    async with _serving(script) as model, _client(model) as client:
        with pytest.raises(ModelCallFailed, match="the recording has no agent 'scout-9'"):
            await client.respond(**request)
    assert [m.agent_id for m in script.misses] == [None]


async def test_recorded_ids_in_an_answer_are_served_as_the_new_ids(
    recorded_orchestrator: Recording,
) -> None:
    async with SQLiteEventStore(recorded_orchestrator.db) as store:
        events = await read_run(store, recorded_orchestrator.run_id)
    pairs = _requests(events, "orchestrator")
    waits = [(r, a) for r, a in pairs if any(b.get("name") == "wait_for_agents" for b in a.content)]
    request, answer = waits[0]
    (call,) = [b for b in answer.content if b.get("type") == "tool_use"]
    old = call["input"]["agent_ids"]
    script = ReplayScript.from_events(events)
    script.ids.update({agent_id: f"new-{i}" for i, agent_id in enumerate(old)})

    async with _serving(script) as model, _client(model) as client:
        reply = await client.respond(**request)

    (served,) = [b for b in reply.content if b.get("type") == "tool_use"]
    assert served["input"]["agent_ids"] == [f"new-{i}" for i in range(len(old))]
