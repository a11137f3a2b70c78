"""What hooks say reaches the model where Claude Code delivers it; Notification fires; transcripts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from rt_support import TASK, events_of, make_agent

from events import AgentCommanded, EventStore, HookInvoked, ToolCallCompleted
from hooks import HookDispatcher, load_settings
from projections import ProjectionRunner
from runtime import (
    ModelClient,
    RuntimeOptions,
    Simulator,
    load_pattern,
    open_runtime,
    run_orchestrator,
    run_pattern,
)
from runtime.simulator import Call, Observation, Situation, Turn

SCOUT = f"Task: {TASK}\n\nWrite your findings to notes/found.md."
REMINDER = "<system-reminder>\n{}\n</system-reminder>"


@pytest.fixture
async def hooks() -> AsyncIterator[HookDispatcher]:
    async with HookDispatcher() as dispatcher:
        yield dispatcher


def context(point: str, text: str, **more: Any) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": point, "additionalContext": text}, **more}


def one_call(name: str, tool_input: dict[str, Any]) -> Any:
    def policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
        seen = yield Turn("Trying.", [Call(name, tool_input)])
        return f"saw: {seen[0].content}"

    return policy


async def run(agent: Any, task: str) -> Any:
    await agent.create(task=task)
    return await agent.run_until_idle()


def texts(message: dict[str, Any]) -> list[str]:
    content = message["content"]
    if isinstance(content, str):
        return [content]
    return [b["text"] for b in content if b.get("type") == "text"]


async def test_session_start_context_opens_the_conversation_before_the_first_prompt(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    hooks.add_python("SessionStart", lambda p: context("SessionStart", "The branch is main."))
    agent = make_agent(store, client, workspace, hooks=hooks)
    await agent.create(task=SCOUT)
    first = agent.state.messages[0]
    assert texts(first) == [REMINDER.format("The branch is main."), SCOUT]
    outcome = await agent.run_until_idle()
    assert outcome.status == "completed"  # the scout still finds its task after the context


async def test_subagent_start_context_reaches_the_subagent(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    hooks.add_python("SubagentStart", lambda p: context("SubagentStart", "Stay read-only."))
    child = make_agent(store, client, workspace, agent_id="c1", parent_id="p1", hooks=hooks)
    await child.create(task=SCOUT)
    assert texts(child.state.messages[0])[0] == REMINDER.format("Stay read-only.")


async def test_pre_tool_use_context_is_next_to_the_tool_result(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    sim.register_policy("tester", one_call("Read", {"file_path": "README.md"}))
    hooks.add_python("PreToolUse", lambda p: context("PreToolUse", "README.md is generated."))
    agent = make_agent(store, client, workspace, role="tester", hooks=hooks)
    outcome = await run(agent, "go")
    assert outcome.status == "completed"
    [done] = [e.data for e in await events_of(store, type="ToolCallCompleted")]
    assert isinstance(done, ToolCallCompleted)
    assert done.result.endswith("\n\n[hook] README.md is generated.")
    assert "[hook] README.md is generated." in outcome.summary  # the model saw it


async def test_stop_context_keeps_the_agent_going_with_it_as_the_next_prompt(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    def stop(payload: dict[str, Any]) -> Any:
        if payload["stop_hook_active"]:
            return None
        return context("Stop", "Also check the docs for count_words.")

    hooks.add_python("Stop", stop)
    agent = make_agent(store, client, workspace, hooks=hooks)
    outcome = await run(agent, SCOUT)
    assert outcome.status == "completed"
    commands = [e.data for e in await events_of(store, type="AgentCommanded")]
    assert isinstance(commands[1], AgentCommanded)
    assert (commands[1].by, commands[1].prompt) == (
        "hook:Stop",
        "Also check the docs for count_words.",
    )


async def test_system_message_is_recorded_and_shown_on_the_card(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    hooks.add_python("UserPromptSubmit", lambda p: {"systemMessage": "Prompts are logged."})
    agent = make_agent(store, client, workspace, hooks=hooks)
    await agent.create(task=SCOUT)
    [invoked] = [e.data for e in await events_of(store, type="HookInvoked")]
    assert isinstance(invoked, HookInvoked)
    assert invoked.system_message == "Prompts are logged."
    async with ProjectionRunner(store) as runner:
        await runner.wait_for(await store.head())
        card = runner.agent("a1")
    assert card is not None
    assert [m["text"] for m in card["system_messages"]] == ["Prompts are logged."]


async def test_an_async_hooks_context_reaches_the_model_on_the_next_turn(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path, tmp_path: Path
) -> None:
    """A detached hook answers later; its record lands in the agent's stream, its context
    goes to the model with the next message (here the next prompt: the agent ended first)."""
    script = tmp_path / "tests.sh"
    answer = context("PostToolUse", "The test suite passed.", systemMessage="tests ran")
    # The hook answers only once the test releases it (after the agent ended), so both
    # contexts are sure to arrive between the run and the next prompt.
    release = tmp_path / "release"
    script.write_text(
        f"#!/bin/sh\ncat > /dev/null\nwhile [ ! -e '{release}' ]; do sleep 0.05; done\n"
        f"echo '{json.dumps(answer)}'\n"
    )
    script.chmod(0o755)
    settings = {
        "hooks": {
            "PostToolUse": [
                {
                    "matcher": "Read",
                    "hooks": [{"type": "command", "command": str(script), "async": True}],
                }
            ]
        }
    }

    def policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
        yield Turn("Reading.", [Call("Read", {"file_path": "README.md"})])
        seen = yield Turn("Reading again.", [Call("Read", {"file_path": "README.md"})])
        return f"done after {len(seen)} reads"

    sim.register_policy("tester", policy)
    async with HookDispatcher(load_settings(settings)) as hooks:
        agent = make_agent(store, client, workspace, role="tester", hooks=hooks)
        await run(agent, "go")
        release.touch()
        await hooks.drain()  # the detached hooks have ended and been recorded
    records = [e.data for e in await events_of(store, type="HookInvoked")]
    assert len(records) == 2
    assert all(isinstance(r, HookInvoked) and r.detached for r in records)
    assert {r.system_message for r in records if isinstance(r, HookInvoked)} == {"tests ran"}
    # Recorded after the agent ended: the context goes with its next prompt.
    await agent.command("go on")
    said = REMINDER.format("The test suite passed.")
    assert texts(agent.state.messages[-1]) == [said, said, "go on"]


async def test_notification_fires_when_a_budget_passes_80_percent(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    seen: list[dict[str, Any]] = []
    hooks.add_python("Notification", seen.append)
    agent = make_agent(store, client, workspace, hooks=hooks, max_total_tokens=4_000)
    outcome = await run(agent, SCOUT)
    assert (outcome.status, outcome.limit) == ("failed", "tokens")
    warnings = [p for p in seen if p["notification_type"] == "budget_warning"]
    assert len(warnings) == 1  # once, when it passed 80%, not at every later response
    assert "of its 4000 tokens" in warnings[0]["message"]
    # The warning's record comes between the response and the calls it asked for, which
    # are then appended apart, caused by that record as before they rode with responses.
    events = await events_of(store)
    [notified] = [e for e in events if e.type == "HookInvoked" and e.data.point == "Notification"]
    after = events[events.index(notified) + 1]
    assert events[events.index(notified) - 1].type == "ModelResponded"
    assert after.type == "ToolCallRequested"
    assert after.meta.causation_id == notified.position
    assert after.recorded_at != notified.recorded_at


async def test_notification_fires_when_a_wait_passes_its_threshold(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    options = RuntimeOptions(
        db=tmp_path / "fleet.db", workspace=workspace, notify_wait_after_s=0.2, env={}
    )
    async with open_runtime(options) as rt:
        seen: list[dict[str, Any]] = []
        rt.hooks.add_python("Notification", seen.append)
        idle = await rt.fleet.create_agent(name="idle", role="scout")  # no task: never ends
        recorded: list[Any] = []

        async def record(data: Any) -> None:
            recorded.append(data)

        wake = await rt.fleet.wait_for_agents(
            [idle["id"]], timeout_s=3, waiter_id="boss", record=record
        )
    assert wake.reason == "timeout"
    [note] = seen
    assert note["notification_type"] == "agent_waiting"
    assert "has waited 0.2 s on idle" in note["message"]
    assert [type(r).__name__ for r in recorded] == ["AgentWaiting", "HookInvoked", "AgentWoke"]


async def test_the_transcript_is_written_as_it_goes_and_hooks_get_its_path(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    paths: list[str] = []

    async def pre(payload: dict[str, Any]) -> None:
        path = Path(payload["transcript_path"])
        lines = await asyncio.to_thread(path.read_text)
        paths.append(payload["transcript_path"])
        assert [json.loads(line)["type"] for line in lines.splitlines()][:2] == [
            "user",
            "assistant",
        ]

    hooks.add_python("PreToolUse", pre)
    agent = make_agent(store, client, workspace, hooks=hooks)
    outcome = await run(agent, SCOUT)
    assert outcome.status == "completed"
    transcript = workspace / ".fleet" / "transcripts" / "a1.jsonl"
    assert paths and set(paths) == {str(transcript)}
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert lines[0]["message"] == {"role": "user", "content": SCOUT}
    assert all(line["sessionId"] == "a1" and line["uuid"] for line in lines)
    assert [line["parentUuid"] for line in lines[1:]] == [line["uuid"] for line in lines[:-1]]
    assistant = [line for line in lines if line["type"] == "assistant"]
    usage = assistant[0]["message"]["usage"]
    assert usage["output_tokens"] > 0
    assert usage["input_tokens"] + usage["cache_creation_input_tokens"] > 0
    assert assistant[0]["message"]["model"].startswith("claude-")
    results = [line for line in lines if "toolUseResult" in line]
    shapes = [r["toolUseResult"] for r in results]
    assert shapes[0]["mode"] == "content"  # the scout's Grep: its output object
    assert shapes[-1]["type"] == "create"  # the findings it wrote: Write's object


async def _transcripts_at_subagent_stop(
    tmp_path: Path, workspace: Path, run: Callable[[Any], Awaitable[Any]]
) -> tuple[list[list[dict[str, Any]]], Any, list[Any]]:
    """`run(fleet)` with a SubagentStop hook that reads the file at `transcript_path`: the
    lines it read at each, the run's result and the log."""
    seen: list[list[dict[str, Any]]] = []

    async def hook(payload: dict[str, Any]) -> None:
        text = await asyncio.to_thread(Path(payload["transcript_path"]).read_text)
        seen.append([json.loads(line) for line in text.splitlines()])

    options = RuntimeOptions(db=tmp_path / "fleet.db", workspace=workspace, env={})
    async with open_runtime(options) as rt:
        rt.hooks.add_python("SubagentStop", hook)
        result = await run(rt.fleet)
        assert result.status == "completed", result.error
        return seen, result, await rt.store.read_all()


async def test_a_subagents_hooks_find_the_calls_that_started_it_in_the_parents_transcript(
    tmp_path: Path, workspace: Path
) -> None:
    # The orchestrator's lines are written before its calls run, since they start agents
    # (`_tool_calls.py`, note 6): its own hook points have no hooks here to write them.
    seen, _, events = await _transcripts_at_subagent_stop(
        tmp_path, workspace, lambda fleet: run_orchestrator(fleet, TASK)
    )
    children = [e for e in events if e.type == "AgentCreated" and e.data.parent_id]
    starts = {
        e.data.tool_use_id
        for e in events
        if e.type == "ToolCallRequested" and e.data.name in ("create_agent", "command_agent")
    }
    assert len(children) >= 3 and len(seen) == len(children)
    for lines in seen:
        assert lines[0]["message"]["content"] == TASK  # the orchestrator's own transcript
        calls = {
            block["id"]
            for line in lines
            if line["type"] == "assistant"
            for block in line["message"]["content"]
            if block["type"] == "tool_use"
        }
        assert calls & starts  # the calls that started the agent ending now, among others
    assert starts <= calls  # by the last child's end, every one of them


async def test_a_patterns_agents_hooks_get_the_runs_transcript_with_its_task(
    tmp_path: Path, workspace: Path
) -> None:
    # A pattern's orchestrator has no model, but a transcript: its steps' agents are its
    # children, and a hook script reading `transcript_path` finds a file, as in Claude Code.
    seen, result, _ = await _transcripts_at_subagent_stop(
        tmp_path,
        workspace,
        lambda fleet: run_pattern(fleet, load_pattern("scout-plan-build"), TASK),
    )
    assert len(seen) == 5  # three scouts, a planner, a builder
    for lines in seen:
        [prompt] = lines
        assert prompt["type"] == "user" and prompt["message"]["content"] == TASK
        assert prompt["agentId"] == result.orchestrator_id
