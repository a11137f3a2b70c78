"""The agents read model on runs a user would recognise (table tests: events in, cards out)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pj_helpers import Timeline, at, scout_plan_build

from events import (
    AgentCommanded,
    AgentCreated,
    AgentFailed,
    ContextCompacted,
    ExternalHookReceived,
    HookInvoked,
    ModelResponded,
    Usage,
)
from projections import AgentsProjection

agents = AgentsProjection()


def cards(tl: Timeline, until: int | None = None) -> dict[str, dict[str, Any]]:
    return {card["id"]: card for card in tl.view(agents, until)["agents"]}


def position_of(tl: Timeline, predicate: Any) -> int:
    return next(e.position for e in tl.events if predicate(e))


def test_scout_plan_build_agents_end_with_their_final_status() -> None:
    by_id = cards(scout_plan_build(Timeline()))

    assert list(by_id) == ["orch", "s1", "s2", "s3", "planner", "builder"]
    assert {a: c["status"] for a, c in by_id.items()} == {
        "orch": "completed",
        "s1": "deleted",
        "s2": "deleted",
        "s3": "deleted",
        "planner": "deleted",
        "builder": "deleted",
    }
    assert [by_id[s]["model"] for s in ("s1", "s2", "s3")] == ["haiku", "sonnet", "gemini-flash"]
    assert by_id["s2"]["parent_id"] == "orch"
    assert by_id["s2"]["run_id"] == "r1"


def test_scout_card_shows_tokens_context_cost_files_and_tool_calls() -> None:
    scout = cards(scout_plan_build(Timeline()))["s1"]

    assert scout["tokens"] == {
        "input": 2000,
        "output": 300,
        "cache_write": 500,
        "cache_read": 1000,
        "total": 3800,
    }
    # input + cache write + cache read of the last response, plus its output
    assert scout["context"] == {"used": 3800, "limit": 100_000, "percent": 3.8}
    assert scout["cost_usd"] == pytest.approx(0.01)
    assert scout["files_consumed"] == ["src/a.py", "src/b.py"]
    assert scout["files_produced"] == ["relevant-files-1.md"]
    assert scout["tool_calls"]["count"] == 2
    assert scout["tool_calls"]["by_tool"] == {"Grep": 1, "write": 1}
    assert scout["tool_calls"]["last"] == {
        "name": "write",
        "tool_use_id": "s1-t2",
        "status": "ok",
        "at": at(2.7),
    }
    assert scout["task"] == "Find SDK usages"
    assert scout["summary"] == "1 files"
    assert scout["artifacts"] == ["relevant-files-1.md"]
    assert (scout["created_at"], scout["started_at"], scout["finished_at"]) == (at(1), at(1), at(3))


def test_builder_card_counts_the_call_a_hook_blocked() -> None:
    builder = cards(scout_plan_build(Timeline()))["builder"]

    assert builder["blocked_calls"] == 1
    assert builder["tool_calls"]["count"] == 3
    assert builder["tool_calls"]["errors"] == 1
    assert builder["tool_calls"]["by_tool"] == {"read": 1, "bash": 1, "write": 1}
    assert builder["context"] == {"used": 46_000, "limit": 200_000, "percent": 23.0}
    assert builder["files_consumed"] == ["plan.md"]
    assert builder["files_produced"] == ["src/app.py"]


def test_statuses_in_the_middle_of_the_run() -> None:
    tl = scout_plan_build(Timeline())
    s1_done = position_of(tl, lambda e: e.type == "AgentCompleted" and e.data.agent_id == "s1")

    by_id = cards(tl, s1_done)

    assert {a: c["status"] for a, c in by_id.items()} == {
        "orch": "waiting",
        "s1": "completed",
        "s2": "working",
        "s3": "working",
    }
    assert by_id["orch"]["waiting_on"] == ["s1", "s2", "s3"]
    assert by_id["s2"]["tool_calls"]["last"]["status"] == "ok"


def test_a_running_tool_call_shows_as_the_last_one() -> None:
    tl = scout_plan_build(Timeline())
    requested = position_of(tl, lambda e: e.type == "ToolCallRequested")

    last = cards(tl, requested)["s1"]["tool_calls"]["last"]

    assert last == {"name": "Grep", "tool_use_id": "s1-t1", "status": "running", "at": at(2.0)}


def test_two_hooks_blocking_one_call_count_one_blocked_call() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="a", name="a", role="builder", model="m"))
    for n, hook in ((1, "guard"), (1, "audit"), (2, "guard")):
        tl.add(
            n,
            HookInvoked(
                point="PreToolUse",
                kind="python",
                hook=hook,
                agent_id="a",
                tool_use_id=f"t{n}",
                decision="deny",
            ),
        )
    tl.add(3, HookInvoked(point="Stop", kind="command", agent_id="a", decision="block"))

    assert cards(tl)["a"]["blocked_calls"] == 3


def test_compaction_sets_the_context_in_use_to_what_is_left() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="a", name="a", role="builder", model="m", context_limit=1000))
    tl.add(
        1, ModelResponded(agent_id="a", model="m", usage=Usage(input_tokens=800, output_tokens=100))
    )
    tl.add(2, ContextCompacted(agent_id="a", tokens_before=900, tokens_after=150, summary="s"))

    card = cards(tl)["a"]

    assert card["context"] == {"used": 150, "limit": 1000, "percent": 15.0}
    assert card["compactions"] == 1


def test_failure_shows_the_error_and_a_new_command_clears_it() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="a", name="a", role="builder", model="m"))
    tl.add(1, AgentCommanded(agent_id="a", prompt="build"))
    tl.add(2, AgentFailed(agent_id="a", error="token budget exceeded", limit="tokens"))
    failed = cards(tl)["a"]
    tl.add(3, AgentCommanded(agent_id="a", prompt="try again"))
    retried = cards(tl)["a"]

    assert (failed["status"], failed["error"], failed["limit"]) == (
        "failed",
        "token budget exceeded",
        "tokens",
    )
    assert failed["finished_at"] == at(2)
    assert (retried["status"], retried["error"], retried["task"]) == ("working", None, "try again")
    assert retried["finished_at"] is None
    assert retried["started_at"] == at(1)


def test_a_deleted_agent_stays_deleted_but_still_counts_its_cost() -> None:
    tl = scout_plan_build(Timeline())
    tl.add(30, AgentCommanded(agent_id="s1", prompt="one more thing"))
    tl.add(30, ModelResponded(agent_id="s1", model="haiku", cost_usd=0.5))

    scout = cards(tl)["s1"]

    assert scout["status"] == "deleted"
    assert scout["cost_usd"] == pytest.approx(0.51)


def test_event_for_an_unknown_agent_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tl = scout_plan_build(Timeline())
    before = tl.view(agents)
    ghost = tl.add(30, ModelResponded(agent_id="ghost", model="m", cost_usd=9.0))

    with caplog.at_level(logging.WARNING):
        after = tl.view(agents)

    assert after == before
    assert f"position {ghost.position}" in caplog.text
    assert "'ghost'" in caplog.text


def test_a_second_creation_of_one_agent_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="a", name="first", role="scout", model="m"))
    tl.add(1, AgentCreated(agent_id="a", name="second", role="builder", model="m"))

    with caplog.at_level(logging.WARNING):
        card = cards(tl)["a"]

    assert (card["name"], card["role"]) == ("first", "scout")
    assert "already exists" in caplog.text


def claude_code_session(tl: Timeline, session: str = "abc12345-session") -> Timeline:
    """A real Claude Code session's hooks, as the ingest endpoint records them."""

    def hook(t: float, name: str, **payload: Any) -> None:
        data = {"session_id": session, "cwd": "/ws", "hook_event_name": name, **payload}
        tl.add(
            t,
            ExternalHookReceived(
                source_app="my-repo", session_id=session, hook_event_name=name, payload=data
            ),
            run=None,
        )

    hook(100, "SessionStart", source="startup", model="claude-sonnet-4-5")
    hook(101, "UserPromptSubmit", prompt="Review plan.md and fix the README")
    read = {"tool_name": "Read", "tool_input": {"file_path": "plan.md"}, "tool_use_id": "tu1"}
    hook(102, "PreToolUse", **read)
    hook(102.5, "PostToolUse", **read, tool_response={"type": "text"})
    edit = {"tool_name": "Edit", "tool_input": {"file_path": "/ws/README.md"}, "tool_use_id": "tu2"}
    hook(103, "PreToolUse", **edit)
    hook(104, "PostToolUse", **edit, tool_response={"filePath": "/ws/README.md"})
    hook(105, "Stop", stop_hook_active=False)
    return tl


def test_a_claude_code_session_appears_as_an_external_agent() -> None:
    card = cards(claude_code_session(Timeline()))["ext-abc12345-session"]

    assert card["role"] == "external"
    assert card["external"] is True
    assert card["source_app"] == "my-repo"
    assert card["name"] == "my-repo/abc12345"
    assert card["model"] == "claude-sonnet-4-5"
    assert card["status"] == "completed"
    assert card["task"] == "Review plan.md and fix the README"
    assert card["files_consumed"] == ["/ws/plan.md"]
    assert card["files_produced"] == ["/ws/README.md"]
    assert card["tool_calls"]["count"] == 2
    assert card["tool_calls"]["by_tool"] == {"Read": 1, "Edit": 1}
    assert (card["started_at"], card["finished_at"]) == (at(101), at(105))


def test_an_external_session_works_while_it_runs_a_tool() -> None:
    tl = claude_code_session(Timeline())

    mid = cards(tl, 3)["ext-abc12345-session"]

    assert mid["status"] == "working"
    assert mid["tool_calls"]["last"] == {
        "name": "Read",
        "tool_use_id": "tu1",
        "status": "running",
        "at": at(102),
    }


def test_an_external_session_first_seen_mid_way_is_still_an_agent() -> None:
    tl = Timeline()
    tl.add(
        0,
        ExternalHookReceived(
            source_app="app",
            session_id="late",
            hook_event_name="PostToolUse",
            payload={"tool_name": "Write", "tool_input": {"file_path": "/x/y.md"}},
        ),
        run=None,
    )

    card = cards(tl)["ext-late"]

    assert (card["status"], card["model"], card["files_produced"]) == (
        "working",
        "unknown",
        ["/x/y.md"],
    )


def claude_code_with_a_subagent(tl: Timeline, session: str = "s-1") -> Timeline:
    """A session that starts an Explore subagent, as Claude Code 2.1.332 posts its hooks."""

    def hook(t: float, name: str, **payload: Any) -> None:
        data = {"session_id": session, "cwd": "/ws", "hook_event_name": name, **payload}
        tl.add(
            t,
            ExternalHookReceived(
                source_app="claude-code", session_id=session, hook_event_name=name, payload=data
            ),
            run=None,
        )

    sub = {"agent_id": "ab335d475f5d1bbe9", "agent_type": "Explore"}
    task = {"tool_name": "Agent", "tool_input": {"prompt": "find it"}, "tool_use_id": "t1"}
    grep = {"tool_name": "Bash", "tool_input": {"command": "grep -rn x ."}, "tool_use_id": "t2"}
    read = {"tool_name": "Read", "tool_input": {"file_path": "a.py"}, "tool_use_id": "t3"}
    hook(0, "UserPromptSubmit", prompt="rename `x` to `y`")
    hook(1, "PreToolUse", **task)
    hook(2, "SubagentStart", **sub)
    hook(3, "PreToolUse", **grep, **sub)
    hook(4, "PostToolUse", **grep, **sub, tool_response={"stdout": "a.py:1:x"})
    hook(5, "PostToolUse", **read, **sub, tool_response={})
    hook(6, "SubagentStop", **sub, agent_transcript_path="/t/agent-ab335d475f5d1bbe9.jsonl")
    hook(7, "PostToolUse", **task, tool_response={"status": "completed"})
    hook(8, "Stop")
    return tl


def test_a_subagent_is_an_agent_of_its_own_whose_parent_is_the_session() -> None:
    found = cards(claude_code_with_a_subagent(Timeline()))
    session, child = found["ext-s-1"], found["ext-s-1-ab335d475f5d1bbe9"]

    assert child["parent_id"] == "ext-s-1"
    assert (child["name"], child["role"], child["external"]) == (
        "Explore/ab335d47",
        "external",
        True,
    )
    assert child["status"] == "completed"
    assert (child["started_at"], child["finished_at"]) == (at(2), at(6))
    assert child["tool_calls"]["by_tool"] == {"Bash": 1, "Read": 1}
    assert child["files_consumed"] == ["/ws/a.py"]
    assert session["tool_calls"]["by_tool"] == {"Agent": 1}
    assert session["files_consumed"] == []
    assert session["status"] == "completed"


def test_a_subagent_works_while_its_session_waits_on_the_agent_tool() -> None:
    mid = cards(claude_code_with_a_subagent(Timeline()), 4)

    assert mid["ext-s-1-ab335d475f5d1bbe9"]["status"] == "working"
    assert mid["ext-s-1-ab335d475f5d1bbe9"]["tool_calls"]["last"]["name"] == "Bash"
    assert mid["ext-s-1"]["tool_calls"]["last"]["name"] == "Agent"


def test_a_subagent_seen_first_makes_its_session_too() -> None:
    tl = Timeline()
    payload = {"hook_event_name": "SubagentStart", "agent_id": "a1", "agent_type": "Plan"}
    tl.add(0, ExternalHookReceived(source_app="cc", session_id="s", hook_event_name="SubagentStart",
                                   payload={**payload, "session_id": "s"}), run=None)  # fmt: skip

    found = cards(tl)

    assert found["ext-s"]["name"] == "cc/s"
    assert found["ext-s-a1"]["parent_id"] == "ext-s"
    assert found["ext-s-a1"]["status"] == "working"


def test_an_ingested_session_learns_model_and_context_window_from_its_responses() -> None:
    tl = claude_code_with_a_subagent(Timeline())
    usage = Usage(input_tokens=3, output_tokens=50, cache_creation_input_tokens=1000,
                  cache_read_input_tokens=12000)  # fmt: skip
    tl.add(9, ModelResponded(agent_id="ext-s-1", message_id="req_1", model="claude-opus-5-5",
                             usage=usage, cost_usd=0.012, context_limit=1_000_000), run=None)  # fmt: skip

    card = cards(tl)["ext-s-1"]

    assert card["model"] == "claude-opus-5-5"
    assert card["tokens"] == {"input": 3, "output": 50, "cache_write": 1000, "cache_read": 12000,
                              "total": 13053}  # fmt: skip
    assert card["cost_usd"] == 0.012
    assert card["context"] == {"used": 13053, "limit": 1_000_000, "percent": 1.3}


def test_an_external_turn_that_ends_in_an_api_error_fails_until_the_next_prompt() -> None:
    """StopFailure fails the session, its SessionEnd keeps that; a new prompt works again."""
    tl = Timeline()

    def hook(t: float, name: str, **payload: Any) -> None:
        data = {"session_id": "s", "hook_event_name": name, **payload}
        tl.add(t, ExternalHookReceived(source_app="cc", session_id="s", hook_event_name=name,
                                       payload=data), run=None)  # fmt: skip

    hook(0, "UserPromptSubmit", prompt="hello")
    hook(1, "StopFailure", error="rate_limit", last_assistant_message="API Error: 429")
    hook(2, "SessionEnd", reason="other")
    hook(3, "UserPromptSubmit", prompt="again")

    failed, ended, again = (cards(tl, n)["ext-s"] for n in (2, 3, 4))
    assert (failed["status"], failed["error"]) == ("failed", "rate_limit: API Error: 429")
    assert (ended["status"], ended["error"]) == ("failed", failed["error"])
    assert (again["status"], again["error"], again["finished_at"]) == ("working", None, None)
