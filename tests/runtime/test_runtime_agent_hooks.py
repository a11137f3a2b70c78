"""Hook points around the agent loop, with the real dispatcher and in-process Python hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rt_support import TASK, events_of, make_agent, types_of

from events import EventStore, HookInvoked
from hooks import HookDispatcher, load_settings
from runtime import ModelClient, PromptBlocked

BUILD = f"Task: {TASK}\n\nRun the project's tests and report."
SCOUT = f"Task: {TASK}\n\nWrite your findings to notes/found.md."


@pytest.fixture
async def hooks() -> AsyncIterator[HookDispatcher]:
    async with HookDispatcher() as dispatcher:
        yield dispatcher


class Seen:
    """A hook that records each payload and answers `answer` (or `answer(payload)`)."""

    def __init__(self, answer: Any = None) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.answer = answer

    def __call__(self, payload: dict[str, Any]) -> Any:
        self.payloads.append(payload)
        return self.answer(payload) if callable(self.answer) else self.answer


async def test_session_start_and_user_prompt_submit_fire_and_are_recorded(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    start, prompt = Seen(), Seen()
    hooks.add_python("SessionStart", start)
    hooks.add_python("UserPromptSubmit", prompt)
    agent = make_agent(store, client, workspace, hooks=hooks)
    await agent.create(task=SCOUT)
    assert start.payloads[0]["source"] == "startup"
    assert start.payloads[0]["fleet_agent_id"] == "a1"
    assert start.payloads[0]["cwd"] == str(workspace)
    assert prompt.payloads[0]["prompt"] == SCOUT
    assert await types_of(store) == ["AgentCreated", "HookInvoked", "HookInvoked", "AgentCommanded"]
    invoked = await events_of(store, type="HookInvoked")
    assert [e.data.point for e in invoked] == ["SessionStart", "UserPromptSubmit"]
    assert {e.meta.source for e in invoked} == {"hook"}


async def test_a_blocked_prompt_is_refused_and_only_the_hook_is_recorded(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    hooks.add_python(
        "UserPromptSubmit", Seen({"decision": "block", "reason": "no renames on Fridays"})
    )
    agent = make_agent(store, client, workspace, hooks=hooks)
    await agent.create()
    with pytest.raises(PromptBlocked, match="no renames on Fridays"):
        await agent.command(SCOUT)
    assert await types_of(store) == ["AgentCreated", "HookInvoked"]
    assert agent.status == "created"


async def test_a_pre_tool_use_deny_becomes_an_error_result_and_the_tool_does_not_run(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    deny = {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "no shell",
        }
    }
    pre, post = Seen(deny), Seen()
    hooks.add_python("PreToolUse", pre, matcher="Bash")
    hooks.add_python("PostToolUse", post)
    hooks.add_python("PostToolUseFailure", post)
    agent = make_agent(store, client, workspace, agent_id="b1", role="builder", hooks=hooks)
    await agent.create(task=BUILD)
    outcome = await agent.run_until_idle()
    assert outcome.status == "completed"
    assert pre.payloads[0]["tool_name"] == "Bash"
    assert pre.payloads[0]["tool_input"] == {
        "command": "python -m unittest",
        "description": "Run the tests",
    }
    assert pre.payloads[0]["fleet_usage"]["output_tokens"] > 0
    assert post.payloads == []  # a blocked call has no Post hooks
    events = await events_of(store, "b1")
    done = next(e for e in events if e.type == "ToolCallCompleted")
    assert (done.data.blocked, done.data.is_error) == (True, True)
    assert done.data.result == "blocked by a PreToolUse hook: no shell"
    hook = next(e for e in events if e.type == "HookInvoked")
    assert (hook.data.decision, hook.data.tool_use_id) == ("deny", done.data.tool_use_id)
    assert hook.meta.causation_id == done.meta.causation_id  # both caused by the ToolCallRequested
    assert "Tests FAIL (blocked by a PreToolUse hook: no shell)" in outcome.summary


async def test_a_pre_tool_use_updated_input_replaces_the_input_before_it_runs(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    def to_echo(payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "allow",
                "updatedInput": {"command": "echo replaced"},
            }
        }

    hooks.add_python("PreToolUse", to_echo, matcher="Bash")
    agent = make_agent(store, client, workspace, agent_id="b1", role="builder", hooks=hooks)
    await agent.create(task=BUILD)
    await agent.run_until_idle()
    done = (await events_of(store, "b1", type="ToolCallCompleted"))[0].data
    assert done.result.splitlines()[1] == "replaced"
    requested = (await events_of(store, "b1", type="ToolCallRequested"))[0].data
    # the log keeps what the model asked
    assert requested.input == {"command": "python -m unittest", "description": "Run the tests"}


async def test_post_tool_use_context_is_shown_to_the_model_with_the_result(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    note = {
        "hookSpecificOutput": {
            "hookEventName": "PostToolUse",
            "additionalContext": "remember the docs",
        }
    }
    hooks.add_python("PostToolUse", Seen(note), matcher="Grep")
    agent = make_agent(store, client, workspace, hooks=hooks)
    await agent.create(task=SCOUT)
    await agent.run_until_idle()
    grep = next(
        e.data for e in await events_of(store, type="ToolCallCompleted") if e.data.name == "Grep"
    )
    assert grep.result.endswith("\n\n[hook] remember the docs")


async def test_a_failing_tool_fires_post_tool_use_failure(
    store: EventStore, client: ModelClient, tmp_path: Path, hooks: HookDispatcher
) -> None:
    failure = Seen()
    hooks.add_python("PostToolUseFailure", failure)
    plain = tmp_path / "plain"
    plain.mkdir()
    agent = make_agent(store, client, plain, agent_id="s1", role="shipper", hooks=hooks)
    await agent.create(task="Task: ship it")
    await agent.run_until_idle()
    assert failure.payloads[0]["tool_name"] == "Bash"
    assert "not a git repository" in failure.payloads[0]["error"]


async def test_a_blocking_stop_hook_makes_the_agent_go_on_once(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    def once(payload: dict[str, Any]) -> dict[str, Any] | None:
        return (
            None
            if payload["stop_hook_active"]
            else {"decision": "block", "reason": "double-check the README"}
        )

    stop = Seen(once)
    hooks.add_python("Stop", stop)
    agent = make_agent(store, client, workspace, hooks=hooks)
    await agent.create(task=SCOUT)
    outcome = await agent.run_until_idle()
    assert outcome.status == "completed"
    assert [p["stop_hook_active"] for p in stop.payloads] == [False, True]
    assert stop.payloads[0]["last_assistant_message"].startswith("Found 8 matching lines")
    commanded = [e.data for e in await events_of(store, type="AgentCommanded")]
    assert [(c.by, c.prompt) for c in commanded][1] == ("hook:Stop", "double-check the README")


async def test_a_child_agent_fires_subagent_start_and_subagent_stop_instead_of_stop(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    start, stop, sub_stop = Seen(), Seen(), Seen()
    hooks.add_python("SubagentStart", start)
    hooks.add_python("Stop", stop)
    hooks.add_python("SubagentStop", sub_stop)
    agent = make_agent(store, client, workspace, agent_id="child", parent_id="orch", hooks=hooks)
    await agent.create(task=SCOUT)
    await agent.run_until_idle()
    assert start.payloads[0]["agent_id"] == "child"
    assert start.payloads[0]["agent_type"] == "scout"
    assert start.payloads[0]["fleet_parent_id"] == "orch"
    assert stop.payloads == []
    assert len(sub_stop.payloads) == 1


async def test_a_continue_false_hook_stops_the_agent(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    hooks.add_python(
        "PostToolUse", Seen({"continue": False, "stopReason": "enough"}), matcher="Grep"
    )
    agent = make_agent(store, client, workspace, hooks=hooks)
    await agent.create(task=SCOUT)
    outcome = await agent.run_until_idle()
    assert (outcome.status, outcome.limit, outcome.error) == (
        "failed",
        "hook",
        "stopped by a hook: enough",
    )


async def test_pre_compact_fires_before_compaction_and_can_prevent_it(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    pre = Seen({"decision": "block", "reason": "keep everything"})
    hooks.add_python("PreCompact", pre)
    agent = make_agent(store, client, workspace, hooks=hooks, context_window=2400, compact_at=0.8)
    await agent.create(task=SCOUT)
    outcome = await agent.run_until_idle()
    assert outcome.status == "completed"
    assert pre.payloads
    assert pre.payloads[0]["trigger"] == "auto"
    assert "ContextCompacted" not in await types_of(store)


async def test_session_end_fires_on_delete(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    end = Seen()
    hooks.add_python("SessionEnd", end)
    agent = make_agent(store, client, workspace, hooks=hooks)
    await agent.create()
    await agent.delete()
    assert end.payloads[0]["reason"] == "other"  # one of Claude Code's reasons
    assert end.payloads[0]["fleet_reason"] == "delete"
    assert await types_of(store) == ["AgentCreated", "HookInvoked", "AgentDeleted"]
    invoked = (await events_of(store, type="HookInvoked"))[0].data
    assert isinstance(invoked, HookInvoked)
    assert invoked.point == "SessionEnd"


async def test_a_command_hook_answering_lone_surrogate_escapes_does_not_stop_the_agent(
    store: EventStore, client: ModelClient, workspace: Path, tmp_path: Path
) -> None:
    """JSON may escape half a surrogate pair; Python decodes it to a string UTF-8 cannot
    hold, which made the HookInvoked unstorable and failed the agent's loop."""
    hook = tmp_path / "odd.sh"
    hook.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        """printf '{"systemMessage": "odd \\\\ud800", "hookSpecificOutput": {"""
        """"permissionDecision": "allow", "permissionDecisionReason": "ok \\\\udcff", """
        """"additionalContext": "note \\\\udfff", "updatedInput": {"command": "echo x\\\\ud800y"}}}'\n"""
    )
    hook.chmod(0o755)
    settings = {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": str(hook)}]}]
    }
    async with HookDispatcher(load_settings(settings)) as hooks:
        agent = make_agent(store, client, workspace, agent_id="b1", role="builder", hooks=hooks)
        await agent.create(task=BUILD)
        outcome = await agent.run_until_idle()
    assert outcome.status == "completed"
    invoked = (await events_of(store, "b1", type="HookInvoked"))[0].data
    assert invoked.decision == "allow"
    assert invoked.system_message == "odd \ufffd"
    assert invoked.additional_context == "note \ufffd"
    assert invoked.updated_input == {"command": "echo x\ufffdy"}
    done = (await events_of(store, "b1", type="ToolCallCompleted"))[0].data
    assert "x\ufffdy" in done.result
