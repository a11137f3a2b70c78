"""In-process Python hooks, and how the answers of several hooks combine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from events import HookInvoked
from hooks import (
    DispatcherClosed,
    HookDispatcher,
    HookOutput,
    HookSpecificOutput,
    UnknownHookPoint,
    build_payload,
)


def pre_tool(command: str = "ls", tool: str = "Bash") -> dict[str, Any]:
    return build_payload(
        "PreToolUse",
        session_id="s1",
        cwd="/ws",
        agent_id="builder-1",
        parent_id="orch",
        run_id="r1",
        tool_name=tool,
        tool_input={"command": command},
        tool_use_id="toolu_1",
    )


def deny(reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


async def test_no_hooks_is_a_cheap_empty_outcome() -> None:
    async with HookDispatcher() as hooks:
        first = await hooks.dispatch("PreToolUse", pre_tool())
        second = await hooks.dispatch("Stop", {"session_id": "s"})
    assert first is second  # one shared empty outcome: nothing was built
    assert not first.blocked
    assert first.invocations == ()
    assert first.permission is None


async def test_a_sync_hook_sees_the_payload_and_is_recorded() -> None:
    seen: list[dict[str, Any]] = []

    def audit(payload: dict[str, Any]) -> None:
        seen.append(payload)

    payload = pre_tool()
    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", audit)
        outcome = await hooks.dispatch("PreToolUse", payload)
    assert seen == [payload]
    [inv] = outcome.invocations
    assert isinstance(inv, HookInvoked)
    assert (inv.point, inv.kind, inv.decision) == ("PreToolUse", "python", "none")
    assert inv.hook.endswith("audit")
    assert (inv.agent_id, inv.tool_use_id) == ("builder-1", "toolu_1")
    assert inv.duration_ms >= 0
    assert not outcome.blocked


async def test_an_async_hook_can_deny_a_tool_call() -> None:
    async def no_rm(payload: dict[str, Any]) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        if "rm -rf" in payload["tool_input"]["command"]:
            return deny("rm -rf is not allowed here")
        return None

    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", no_rm, name="no-rm")
        fine = await hooks.dispatch("PreToolUse", pre_tool("ls"))
        bad = await hooks.dispatch("PreToolUse", pre_tool("rm -rf /"))
    assert not fine.blocked
    assert bad.blocked
    assert bad.permission == "deny"
    assert bad.reason == "rm -rf is not allowed here"
    assert bad.invocations[0].decision == "deny"
    assert bad.invocations[0].hook == "no-rm"


async def test_a_hook_may_return_a_typed_hook_output() -> None:
    answer = HookOutput(
        hookSpecificOutput=HookSpecificOutput(permissionDecision="ask"), reason="check with a human"
    )
    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", lambda p: answer)
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert outcome.permission == "ask"
    assert not outcome.blocked
    assert outcome.reason == "check with a human"


async def test_matchers_select_hooks_by_tool_name() -> None:
    calls: list[str] = []
    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", lambda p: calls.append("cmd"), matcher="Bash")
        hooks.add_python("PreToolUse", lambda p: calls.append("files"), matcher="Write|Read")
        hooks.add_python("PreToolUse", lambda p: calls.append("all"), matcher="*")
        await hooks.dispatch("PreToolUse", pre_tool(tool="Bash"))
        await hooks.dispatch("PreToolUse", pre_tool(tool="Write"))
        outcome = await hooks.dispatch("PreToolUse", pre_tool(tool="Glob"))
    assert calls == ["cmd", "all", "files", "all", "all"]
    assert len(outcome.invocations) == 1


async def test_matchers_are_ignored_where_claude_code_has_none() -> None:
    async with HookDispatcher() as hooks:
        hooks.add_python("Stop", lambda p: {"decision": "block", "reason": "tests"}, matcher="xyz")
        outcome = await hooks.dispatch("Stop", build_payload("Stop", session_id="s"))
    assert outcome.blocked


async def test_deny_wins_with_every_reason_then_ask_then_allow() -> None:
    allow = {"hookSpecificOutput": {"permissionDecision": "allow"}}
    ask = {"hookSpecificOutput": {"permissionDecision": "ask"}}
    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", lambda p: allow)
        assert (await hooks.dispatch("PreToolUse", pre_tool())).permission == "allow"
        hooks.add_python("PreToolUse", lambda p: ask)
        assert (await hooks.dispatch("PreToolUse", pre_tool())).permission == "ask"
        hooks.add_python("PreToolUse", lambda p: deny("first"))
        hooks.add_python("PreToolUse", lambda p: {"decision": "block", "reason": "second"})
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert outcome.blocked
    assert outcome.permission == "deny"
    assert outcome.reason == "first\nsecond"
    assert [i.decision for i in outcome.invocations] == ["allow", "ask", "deny", "deny"]


async def test_updated_input_comes_from_the_last_hook_that_gives_one() -> None:
    def rewrite(command: str) -> Any:
        return lambda p: {
            "hookSpecificOutput": {
                "permissionDecision": "allow",
                "updatedInput": {"command": command},
            }
        }

    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", rewrite("ls -la"))
        hooks.add_python("PreToolUse", lambda p: None)
        hooks.add_python("PreToolUse", rewrite("ls -l"))
        hooks.add_python("PreToolUse", lambda p: None)
        payload = pre_tool("ls")
        outcome = await hooks.dispatch("PreToolUse", payload)
    assert outcome.updated_input == {"command": "ls -l"}
    assert payload["tool_input"] == {"command": "ls"}  # the payload is never mutated
    assert outcome.invocations[0].updated_input == {"command": "ls -la"}


async def test_a_blocked_call_has_no_updated_input() -> None:
    async with HookDispatcher() as hooks:
        hooks.add_python(
            "PreToolUse", lambda p: {"hookSpecificOutput": {"updatedInput": {"command": "x"}}}
        )
        hooks.add_python("PreToolUse", lambda p: deny("no"))
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert outcome.blocked
    assert outcome.updated_input is None


async def test_additional_context_is_joined_in_order() -> None:
    def context(text: str) -> Any:
        return lambda p: {"hookSpecificOutput": {"additionalContext": text}}

    async with HookDispatcher() as hooks:
        hooks.add_python("PostToolUse", context("lint: 2 warnings"))
        hooks.add_python("PostToolUse", context("coverage: 91%"))
        outcome = await hooks.dispatch(
            "PostToolUse",
            build_payload(
                "PostToolUse",
                session_id="s",
                tool_name="Write",
                tool_input={},
                tool_use_id="t",
                tool_response="ok",
            ),
        )
    assert outcome.additional_context == "lint: 2 warnings\ncoverage: 91%"
    assert not outcome.blocked


async def test_continue_false_stops_the_agent_and_blocks_the_call() -> None:
    async with HookDispatcher() as hooks:
        hooks.add_python(
            "PreToolUse",
            lambda p: {"continue": False, "stopReason": "budget spent", "systemMessage": "bye"},
        )
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert outcome.stop
    assert outcome.stop_reason == "budget spent"
    assert outcome.blocked
    assert outcome.system_messages == ("bye",)


async def test_a_block_at_a_point_that_cannot_block_is_ignored() -> None:
    async with HookDispatcher() as hooks:
        hooks.add_python("SessionStart", lambda p: {"decision": "block", "reason": "no"})
        outcome = await hooks.dispatch(
            "SessionStart", build_payload("SessionStart", session_id="s")
        )
    assert not outcome.blocked
    assert outcome.invocations[0].decision == "none"
    assert "cannot block" in (outcome.invocations[0].reason or "")


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (42, "hook returned int"),
        ({"continue": "no"}, "continue"),
        ({"hookSpecificOutput": {"permissionDecision": "maybe"}}, "unknown permissionDecision"),
        ({"hookSpecificOutput": {"updatedInput": "rm"}}, "updatedInput"),
    ],
)
async def test_a_garbage_answer_is_an_error_and_the_call_goes_on(
    answer: object, words: str
) -> None:
    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", lambda p: answer)
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert not outcome.blocked
    [inv] = outcome.invocations
    assert inv.decision == "error"
    assert words in (inv.reason or "")


async def test_a_hook_that_raises_is_an_error_and_the_call_goes_on() -> None:
    def broken(payload: dict[str, Any]) -> None:
        raise KeyError("tool_input")

    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", broken)
        hooks.add_python("PreToolUse", lambda p: None)
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert not outcome.blocked
    assert [i.decision for i in outcome.invocations] == ["error", "none"]
    assert "KeyError" in (outcome.invocations[0].reason or "")


async def test_an_async_hook_past_its_timeout_is_recorded_without_waiting_for_it() -> None:
    finished: list[str] = []

    async def slow(payload: dict[str, Any]) -> None:
        await asyncio.sleep(600)
        finished.append("slow")

    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", slow, timeout=0.05)
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert finished == []  # the dispatch answered before the hook would have
    assert outcome.invocations[0].decision == "timeout"
    assert not outcome.blocked


async def test_a_blocking_sync_hook_runs_in_a_thread_under_its_timeout() -> None:
    """The slow hook blocks until the dispatch has answered, not for a time: on 3.11 a
    thread that ended while the loop stood still (a loaded machine) beat the timeout."""
    answered = threading.Event()

    def slow(payload: dict[str, Any]) -> dict[str, Any]:
        answered.wait(60)
        return deny("too late")

    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", slow, timeout=0.05, thread=True)
        hooks.add_python("PreToolUse", lambda p: deny("threaded"), thread=True)
        try:
            outcome = await hooks.dispatch("PreToolUse", pre_tool())
        finally:
            answered.set()  # the abandoned thread ends
    assert [i.decision for i in outcome.invocations] == ["timeout", "deny"]
    assert outcome.reason == "threaded"


async def test_a_slow_sync_hook_on_the_loop_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", lambda p: time.sleep(0.03), name="sleepy")
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert outcome.invocations[0].decision == "none"
    assert "sleepy held the event loop" in caplog.text
    assert "thread=True" in caplog.text


async def test_hooks_at_one_point_run_concurrently() -> None:
    """Each slow hook says it started, waits until both did, then says it ended: run one
    after the other, the first would time out waiting for the second."""
    said: list[str] = []
    both_started = asyncio.Event()

    def slow(name: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def hook(payload: dict[str, Any]) -> None:
            said.append(f"start {name}")
            if sum(s.startswith("start") for s in said) == 2:
                both_started.set()
            await both_started.wait()
            said.append(f"end {name}")

        return hook

    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", slow("a"), name="a", timeout=60)
        hooks.add_python("PreToolUse", lambda p: None, name="sync")
        hooks.add_python("PreToolUse", slow("b"), name="b", timeout=60)
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert [i.decision for i in outcome.invocations] == ["none", "none", "none"]
    assert sorted(said[:2]) == ["start a", "start b"]  # both started before either ended
    assert sorted(said[2:]) == ["end a", "end b"]
    assert [i.hook for i in outcome.invocations] == ["a", "sync", "b"]  # config order


async def test_cancelling_a_dispatch_cancels_its_hooks() -> None:
    started: list[str] = []
    finished: list[str] = []

    async def slow(payload: dict[str, Any]) -> None:
        started.append("slow")
        await asyncio.sleep(5)
        finished.append("slow")

    async with HookDispatcher() as hooks:
        hooks.add_python("PreToolUse", slow)
        hooks.add_python("PreToolUse", slow)
        task = asyncio.create_task(hooks.dispatch("PreToolUse", pre_tool()))
        async with asyncio.timeout(30):  # both hooks run: cancelled mid-way, not before
            while len(started) < 2:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}  # no hook left running
    assert finished == []


async def test_an_unknown_point_or_a_closed_dispatcher_is_refused() -> None:
    hooks = HookDispatcher()
    with pytest.raises(UnknownHookPoint):
        await hooks.dispatch("PreToolUze", pre_tool())
    with pytest.raises(UnknownHookPoint):
        hooks.add_python("PreToolUze", lambda p: None)
    await hooks.aclose()
    await hooks.aclose()  # idempotent
    with pytest.raises(DispatcherClosed):
        await hooks.dispatch("PreToolUse", pre_tool())
    with pytest.raises(DispatcherClosed):
        async with hooks:
            pass  # reopening a closed dispatcher is what must fail
