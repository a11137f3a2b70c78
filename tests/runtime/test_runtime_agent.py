"""The agent loop against the simulator over real HTTP: events, limits, errors, conversation."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel
from rt_support import TASK, events_of, git, make_agent, types_of

from events import (
    ANY,
    AgentCompleted,
    AgentFailed,
    EventStore,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    ToolCallCompleted,
)
from runtime import (
    AgentBusy,
    AgentDrivenElsewhere,
    AgentGone,
    InvalidAgentSpec,
    ModelClient,
    Simulator,
    Toolbox,
    ToolContext,
    ToolResult,
    UnknownModel,
    WorkspaceMissing,
    worker_toolbox,
)
from runtime.simulator import Call, Observation, Situation, Turn

SCOUT_PROMPT = (
    f"Task: {TASK}\n\nFind the exact lines. Write your findings to notes/relevant-files-1.md."
)


async def test_a_response_and_the_tool_calls_it_asks_for_are_committed_together(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    """One durable commit for ModelResponded and its ToolCallRequested, each caused by it;
    and for the last response and AgentCompleted when no Stop hook is to run."""
    agent = make_agent(store, client, workspace)
    await agent.create(task=SCOUT_PROMPT)
    assert (await agent.run_until_idle()).status == "completed"

    events = await events_of(store)
    requested = [e for e in events if e.type == "ToolCallRequested"]
    assert len(requested) == 6
    by_position = {e.position: e for e in events}
    for event in requested:
        response = by_position[event.meta.causation_id]
        assert response.type == "ModelResponded"
        assert event.recorded_at == response.recorded_at  # the same commit
    completed = [e for e in events if e.type == "ToolCallCompleted"]
    assert all(by_position[e.meta.causation_id].recorded_at != e.recorded_at for e in completed)
    last, done = events[-2:]
    assert (last.type, done.type) == ("ModelResponded", "AgentCompleted")
    assert done.meta.causation_id == last.position
    assert done.recorded_at == last.recorded_at


async def test_a_scout_reads_files_writes_findings_and_records_each_step_in_order(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    agent = make_agent(store, client, workspace)
    await agent.create(task=SCOUT_PROMPT)
    outcome = await agent.run_until_idle()

    assert outcome.status == "completed"
    assert outcome.artifacts == ("notes/relevant-files-1.md",)
    assert "Findings written to notes/relevant-files-1.md" in outcome.summary
    findings = (workspace / "notes" / "relevant-files-1.md").read_text()
    assert "- textstats/counting.py:6: def count_words(text):" in findings
    types = await types_of(store)
    assert types == [
        "AgentCreated",
        "AgentCommanded",
        "ModelResponded",  # grep
        "ToolCallRequested",
        "ToolCallCompleted",
        "ModelResponded",  # read the 4 matching files at once
        *["ToolCallRequested"] * 4,
        *["ToolCallCompleted"] * 4,
        "ModelResponded",  # write the findings
        "ToolCallRequested",
        "ToolCallCompleted",
        "ModelResponded",  # end_turn
        "AgentCompleted",
    ]
    events = await events_of(store)
    by_position = {e.position: e for e in events}
    for event in events[2:]:
        assert event.meta.causation_id in by_position, event.type
        assert (event.meta.run_id, event.meta.agent_id, event.meta.source) == (
            "run-1",
            "a1",
            "runtime",
        )
    for event in events:
        if isinstance(event.data, ToolCallCompleted):
            cause = by_position[event.meta.causation_id].data
            assert cause.type == "ToolCallRequested"
            assert cause.tool_use_id == event.data.tool_use_id
    reads = [
        e.data for e in events if isinstance(e.data, ToolCallCompleted) and e.data.name == "Read"
    ]
    assert sorted(f for r in reads for f in r.files_read) == [
        "tests/test_counting.py",
        "textstats/__init__.py",
        "textstats/counting.py",
        "textstats/report.py",
    ]
    responses = [e.data for e in events if isinstance(e.data, ModelResponded)]
    assert [r.turn for r in responses] == [1, 2, 3, 4]
    assert all(
        r.model == "claude-haiku-5-5" and r.cost_usd > 0 and r.usage.output_tokens > 0
        for r in responses
    )
    assert responses[-1].stop_reason == "end_turn"


async def test_a_429_is_retried_by_the_sdk_and_recorded_once(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    sim.inject_faults(status=429, count=1, retry_after=0)
    agent = make_agent(store, client, workspace)
    await agent.create(task=SCOUT_PROMPT)
    outcome = await agent.run_until_idle()
    assert outcome.status == "completed"
    assert sim.stats.faults == 1
    assert sim.stats.requests == sim.stats.responses + 1
    assert len(await events_of(store, type="ModelResponded")) == sim.stats.responses == 4


async def test_529_until_the_retries_run_out_fails_the_agent_with_a_clear_error(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    sim.inject_faults(status=529, count=3, retry_after=0)
    agent = make_agent(store, client, workspace)
    await agent.create(task=SCOUT_PROMPT)
    outcome = await agent.run_until_idle()
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "HTTP 529 overloaded_error" in outcome.error
    assert "claude-haiku-5-5" in outcome.error
    assert sim.stats.requests == 3  # the first try and the SDK's two retries
    assert await types_of(store) == ["AgentCreated", "AgentCommanded", "AgentFailed"]


async def test_an_unknown_model_is_refused_before_any_call_and_nothing_is_written(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    with pytest.raises(UnknownModel, match="unknown model 'gpt-5'"):
        make_agent(store, client, workspace, model="gpt-5")
    assert sim.stats.requests == 0
    assert await store.head() == 0


async def test_a_missing_workspace_is_refused_before_anything_is_written(
    store: EventStore, client: ModelClient, tmp_path: Path
) -> None:
    with pytest.raises(WorkspaceMissing):
        make_agent(store, client, tmp_path / "nowhere")
    assert await store.head() == 0


async def test_a_bad_agent_id_is_refused(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    with pytest.raises(InvalidAgentSpec, match="agent_id"):
        make_agent(store, client, workspace, agent_id="../evil")


async def test_creating_an_agent_twice_is_refused(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    await make_agent(store, client, workspace).create()
    with pytest.raises(InvalidAgentSpec, match="exists already"):
        await make_agent(store, client, workspace).create()
    assert await types_of(store) == ["AgentCreated"]


async def test_the_turn_limit_stops_the_agent(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    agent = make_agent(store, client, workspace, max_turns=2)
    await agent.create(task=SCOUT_PROMPT)
    outcome = await agent.run_until_idle()
    assert (outcome.status, outcome.limit) == ("failed", "turns")
    assert outcome.error == "turn limit reached: 2 model calls of 2"
    assert len(await events_of(store, type="ModelResponded")) == 2


async def test_the_token_budget_stops_the_agent(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    agent = make_agent(store, client, workspace, max_total_tokens=500)
    await agent.create(task=SCOUT_PROMPT)
    outcome = await agent.run_until_idle()
    assert (outcome.status, outcome.limit) == ("failed", "tokens")
    assert len(await events_of(store, type="ModelResponded")) == 1


def _bad_input(situation: Situation) -> Generator[Turn, list[Observation], str]:
    got = yield Turn("Reading.", [Call("Read", {"file": "README.md"})])
    escaped = yield Turn("Escaping.", [Call("Read", {"file_path": "../../../../etc/passwd"})])
    return f"first: {got[0].content} | second: {escaped[0].content}"


async def test_bad_tool_input_and_escapes_are_tool_errors_the_model_sees(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    sim.register_policy("tester", _bad_input)
    agent = make_agent(store, client, workspace, role="tester")
    await agent.create(task="go")
    outcome = await agent.run_until_idle()
    assert outcome.status == "completed"
    completed = [e.data for e in await events_of(store, type="ToolCallCompleted")]
    assert [c.is_error for c in completed] == [True, True]
    assert completed[0].result.startswith("invalid input for Read: file_path: Field required")
    assert "is outside the workspace" in completed[1].result
    assert "invalid input for Read" in outcome.summary
    assert "outside the workspace" in outcome.summary


def _chat(situation: Situation) -> Generator[Turn, list[Observation], str]:
    return f"task={situation.task!r} prompt={situation.prompt!r}"
    yield  # a generator that answers at once


async def test_a_command_to_a_finished_agent_continues_its_conversation(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    sim.register_policy("chat", _chat)
    agent = make_agent(store, client, workspace, role="chat")
    await agent.create(task="first")
    assert (await agent.run_until_idle()).summary == "task='first' prompt='first'"
    await agent.command("second", by="orchestrator")
    outcome = await agent.run_until_idle()
    assert outcome.summary == "task='first' prompt='second'"
    assert [m["role"] for m in agent.state.messages] == ["user", "assistant", "user", "assistant"]
    commanded = await events_of(store, type="AgentCommanded")
    assert [c.data.by for c in commanded] == ["user", "orchestrator"]


async def test_a_working_agent_takes_no_command_and_a_deleted_one_takes_none(
    store: EventStore, client: ModelClient, workspace: Path, tmp_path: Path
) -> None:
    async with (
        Simulator(latency_s=0.2) as slow,
        ModelClient.from_env(simulator_base_url=slow.base_url, env={}) as c,
    ):
        agent = make_agent(store, c, workspace)
        await agent.create(task=SCOUT_PROMPT)
        task = agent.start()
        await asyncio.sleep(0.05)
        with pytest.raises(AgentBusy):
            await agent.command("more")
        await agent.delete(by="orchestrator")
        assert task.cancelled()
        with pytest.raises(AgentGone):
            await agent.command("more")
        deleted = (await events_of(store, type="AgentDeleted"))[0].data
        assert (deleted.by, deleted.was_working) == ("orchestrator", True)
        await agent.delete()  # idempotent
        assert len(await events_of(store, type="AgentDeleted")) == 1


class _Meddle(BaseModel):
    """No input: the tool only meddles with its agent's stream."""


class MeddlingTool:
    """A tool that writes to its own agent's stream behind the agent's back (a bug to catch)."""

    name: ClassVar[str] = "meddle"
    description: ClassVar[str] = "Appends to the agent's stream directly."
    input_model: ClassVar[type[BaseModel]] = _Meddle

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def __call__(self, input: Any, ctx: ToolContext) -> ToolResult:
        foreign = HookInvoked(point="Notification", kind="python", agent_id=ctx.agent_id)
        await self.store.append(
            f"agent-{ctx.agent_id}", [NewEvent(foreign, Meta())], expected_version=ANY
        )
        return ToolResult("done")


def _meddler(situation: Situation) -> Generator[Turn, list[Observation], str]:
    yield Turn("Meddling.", [Call("meddle", {})])
    return "done"


async def test_another_writer_on_the_agent_stream_stops_it_clearly(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    sim.register_policy("meddler", _meddler)
    agent = make_agent(
        store, client, workspace, role="meddler", toolbox=Toolbox([MeddlingTool(store)])
    )
    await agent.create(task="go")
    with pytest.raises(AgentDrivenElsewhere, match="driven by another process"):
        await agent.run_until_idle()
    assert "ToolCallCompleted" not in await types_of(store)


# The scout's conversation grows about 1,330 tokens past its first request (the grep
# results, the files it reads, the findings it writes), and the compaction summary is
# about 960 tokens: a threshold 1,100 tokens above the first request is crossed once,
# with some 130 tokens of margin on each side, whatever the system prompt and tools weigh.
COMPACT_ABOVE_FIRST_REQUEST = 1_100


async def test_compaction_summarises_the_conversation_and_the_agent_finishes(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    probe = make_agent(store, client, workspace)  # nothing is written until create()
    first_request = await client.count_tokens(
        model=probe.model_info.id,
        system=probe.system_prompt,
        messages=[{"role": "user", "content": [{"type": "text", "text": SCOUT_PROMPT}]}],
        tools=probe.toolbox.definitions(),
    )
    counted = sim.stats.count_tokens
    window = int((first_request + COMPACT_ABOVE_FIRST_REQUEST) / 0.8)
    agent = make_agent(store, client, workspace, context_window=window, compact_at=0.8)
    await agent.create(task=SCOUT_PROMPT)
    outcome = await agent.run_until_idle()
    assert outcome.status == "completed", outcome.error
    assert (workspace / "notes" / "relevant-files-1.md").is_file()
    compacted = [e.data for e in await events_of(store, type="ContextCompacted")]
    assert len(compacted) == 1
    assert compacted[0].tokens_after < compacted[0].tokens_before
    assert "offline simulator" in compacted[0].summary
    assert agent.state.messages[0]["content"].startswith("This conversation was compacted")
    assert sim.stats.count_tokens == counted + 1  # the agent counted once, after compacting


async def test_a_context_still_full_after_compaction_fails_instead_of_looping(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    agent = make_agent(store, client, workspace, context_window=1000, compact_at=0.5)
    await agent.create(task=SCOUT_PROMPT)
    outcome = await agent.run_until_idle()
    assert (outcome.status, outcome.limit) == ("failed", "context")
    assert len(await events_of(store, type="ContextCompacted")) == 1


PLAN = f"Task: {TASK}\n\nFind the files involved and write an implementation plan to notes/plan.md."
BUILD = f"Task: {TASK}\n\nCarry out the plan in notes/plan.md, then run the project's tests.\n"
REVIEW = (
    f"Task: {TASK}\n\nReview the change against the plan in notes/plan.md. "
    "End with APPROVED or CHANGES REQUESTED."
)
SHIP = f"Task: {TASK}\n\nThe change is reviewed and approved. Commit it."


async def _run(
    store: EventStore, client: ModelClient, workspace: Path, agent_id: str, role: str, prompt: str
) -> Any:
    agent = make_agent(store, client, workspace, agent_id=agent_id, role=role)
    await agent.create(task=prompt)
    return await agent.run_until_idle()


async def test_plan_build_review_ship_fails_review_once_on_the_docs_then_ships(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    plan = await _run(store, client, workspace, "planner", "planner", PLAN)
    assert plan.artifacts == ("notes/plan.md",)
    assert "edits in 4 files" in plan.summary
    build = await _run(store, client, workspace, "builder", "builder", BUILD)
    assert "Tests pass" in build.summary
    review = await _run(store, client, workspace, "reviewer", "reviewer", REVIEW)
    assert review.summary.startswith("CHANGES REQUESTED")
    assert "- README.md:12: print(count_words(text))" in review.summary
    fix = await _run(
        store,
        client,
        workspace,
        "builder-2",
        "builder",
        BUILD + "Review feedback:\n" + review.summary,
    )
    assert fix.artifacts == ("README.md",)
    approve = await _run(store, client, workspace, "reviewer-2", "reviewer", REVIEW)
    assert approve.summary.startswith("APPROVED")
    ship = await _run(store, client, workspace, "shipper", "shipper", SHIP)
    assert ship.summary.startswith("Committed ")
    assert ship.summary.endswith("Rename count_words to word_count")
    log = await git(workspace, "log", "--format=%s")
    assert log.splitlines() == [
        "Rename count_words to word_count",
        "Initial commit of the sample repository",
    ]
    assert "count_words" not in (workspace / "README.md").read_text()


async def test_the_shipper_says_plainly_when_the_workspace_is_not_a_git_repository(
    store: EventStore, client: ModelClient, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    outcome = await _run(store, client, plain, "shipper", "shipper", SHIP)
    assert outcome.status == "completed"
    assert outcome.summary.startswith("Cannot ship: the workspace is not a git repository")


async def test_fifty_agents_run_at_once(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    agents = [make_agent(store, client, workspace, agent_id=f"scout-{i}") for i in range(50)]
    for i, agent in enumerate(agents):
        await agent.create(task=f"Task: {TASK}\n\nWrite your findings to notes/scout-{i}.md.")
    outcomes = await asyncio.gather(*(a.run_until_idle() for a in agents))
    assert {o.status for o in outcomes} == {"completed"}
    assert sorted(p.name for p in (workspace / "notes").iterdir()) == sorted(
        f"scout-{i}.md" for i in range(50)
    )
    for i in (0, 49):
        types = await types_of(store, f"scout-{i}")
        assert types[-1] == "AgentCompleted"
        assert types.count("ModelResponded") == 4
    completed = await store.read_all(where=None)
    assert sum(isinstance(e.data, AgentCompleted) for e in completed) == 50
    assert not any(isinstance(e.data, AgentFailed) for e in completed)


async def test_a_toolbox_without_worker_tools_makes_a_scout_say_it_cannot_work(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    agent = make_agent(store, client, workspace, toolbox=worker_toolbox(["Read"]))
    await agent.create(task=SCOUT_PROMPT)
    outcome = await agent.run_until_idle()
    assert outcome.summary == "I cannot work as a scout: the tools Grep, Write are not available."
