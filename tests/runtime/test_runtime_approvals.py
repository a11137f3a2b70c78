"""`ask` is an approval: the call waits for a person, who allows or denies it; it survives a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest
from rt_support import events_of, make_agent

from events import ApprovalDecided, ApprovalRequested, EventStore, ToolCallCompleted
from hooks import HookDispatcher
from projections import ProjectionRunner
from runtime import Agent, ModelClient, Simulator
from runtime._approvals import approval_stream, decide_approval
from runtime.errors import ApprovalClosed, ApprovalNotFound
from runtime.simulator import Call, Observation, Situation, Turn

ASK = {
    "hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "ask",
        "permissionDecisionReason": "deleting files needs a person",
    }
}
COMMAND = "rm -rf build && echo cleaned"


def cleaner(situation: Situation) -> Generator[Turn, list[Observation], str]:
    seen = yield Turn("Cleaning.", [Call("Bash", {"command": COMMAND})])
    return f"error={seen[0].is_error}: {seen[0].content}"


@pytest.fixture
async def hooks() -> AsyncIterator[HookDispatcher]:
    async with HookDispatcher() as dispatcher:
        dispatcher.add_python("PreToolUse", lambda p: ASK, if_="Bash(rm *)")
        yield dispatcher


@pytest.fixture
async def runner(store: EventStore) -> AsyncIterator[ProjectionRunner]:
    async with ProjectionRunner(store) as projections:
        yield projections


@pytest.fixture(autouse=True)
def policy(sim: Simulator) -> None:
    sim.register_policy("cleaner", cleaner)


def cleaner_agent(store: EventStore, client: ModelClient, workspace: Path, **kw: Any) -> Agent:
    return make_agent(store, client, workspace, role="cleaner", **kw)


async def pending_card(store: EventStore, runner: ProjectionRunner) -> dict[str, Any]:
    """The agent's card once it shows the call on hold (waits on the log, not on time)."""
    async with asyncio.timeout(30):
        while True:
            await runner.wait_for(await store.head())
            card = runner.agent("a1")
            if card is not None and card["approval"] is not None:
                return card
            await asyncio.sleep(0.02)


async def test_ask_puts_the_call_on_hold_until_a_person_allows_it(
    store: EventStore,
    client: ModelClient,
    workspace: Path,
    hooks: HookDispatcher,
    runner: ProjectionRunner,
) -> None:
    notes: list[dict[str, Any]] = []
    hooks.add_python("Notification", notes.append)
    (workspace / "build").mkdir()
    agent = cleaner_agent(store, client, workspace, hooks=hooks)
    await agent.create(task="clean up")
    task = asyncio.create_task(agent.run_until_idle())
    card = await pending_card(store, runner)
    assert (card["status"], card["waiting_for"]) == ("waiting", "approval")
    approval = card["approval"]
    assert (approval["tool_name"], approval["tool_input"]) == ("Bash", {"command": COMMAND})
    assert approval["reason"] == "deleting files needs a person"
    assert (workspace / "build").is_dir()  # nothing ran yet
    responses = len(await events_of(store, type="ModelResponded"))
    [pending] = runner.projection("agents").approvals_view(  # type: ignore[attr-defined]
        runner.state("agents"), "pending"
    )["approvals"]
    assert pending["id"] == approval["id"]
    async with asyncio.timeout(30):  # the agent notifies once the request is in the log
        while not notes:
            await asyncio.sleep(0.01)
    [note] = notes
    assert note["notification_type"] == "permission_prompt"
    assert approval["id"] in note["message"]

    await decide_approval(store, runner, approval["id"], decision="allow", by="alice")
    outcome = await asyncio.wait_for(task, 30)

    assert outcome.status == "completed"
    assert "error=False" in outcome.summary and "cleaned" in outcome.summary
    assert not (workspace / "build").exists()
    decided = (await store.read_stream(approval_stream(approval["id"])))[0]
    assert isinstance(decided.data, ApprovalDecided)
    assert (decided.data.decision, decided.data.by) == ("allow", "alice")
    assert decided.meta.run_id == "run-1"  # an export of the run holds the answer
    assert len(await events_of(store, type="ModelResponded")) == responses + 1  # no tokens asleep
    await runner.wait_for(await store.head())
    card = runner.agent("a1")
    assert card is not None
    assert card["approvals"] == {"requested": 1, "allowed": 1, "denied": 0}
    assert card["approval"] is None


async def test_a_person_who_denies_blocks_the_call_and_the_model_is_told_why(
    store: EventStore,
    client: ModelClient,
    workspace: Path,
    hooks: HookDispatcher,
    runner: ProjectionRunner,
) -> None:
    agent = cleaner_agent(store, client, workspace, hooks=hooks)
    await agent.create(task="clean up")
    task = asyncio.create_task(agent.run_until_idle())
    card = await pending_card(store, runner)
    await decide_approval(
        store, runner, card["approval"]["id"], decision="deny", by="bob", reason="not today"
    )
    outcome = await asyncio.wait_for(task, 30)
    [done] = [e.data for e in await events_of(store, type="ToolCallCompleted")]
    assert isinstance(done, ToolCallCompleted)
    assert (done.blocked, done.result) == (True, "denied by bob: not today")
    assert "denied by bob: not today" in outcome.summary
    with pytest.raises(ApprovalClosed, match="denied by bob"):
        await decide_approval(store, runner, card["approval"]["id"], decision="allow", by="eve")
    with pytest.raises(ApprovalNotFound):
        await decide_approval(store, runner, "apr_nope", decision="allow", by="eve")


async def test_no_answer_by_the_timeout_is_a_denial(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    agent = cleaner_agent(store, client, workspace, hooks=hooks, approval_timeout_s=0.3)
    await agent.create(task="clean up")
    outcome = await agent.run_until_idle()
    [request] = [e.data for e in await events_of(store, type="ApprovalRequested")]
    assert isinstance(request, ApprovalRequested)
    decided = (await store.read_stream(approval_stream(request.approval_id)))[0].data
    assert isinstance(decided, ApprovalDecided)
    assert (decided.decision, decided.by) == ("deny", "timeout")
    assert "denied by timeout: no answer within 0.3 s" in outcome.summary


async def test_a_permission_request_hook_may_answer_instead_of_a_person(
    store: EventStore, client: ModelClient, workspace: Path, hooks: HookDispatcher
) -> None:
    allow = {
        "hookSpecificOutput": {
            "hookEventName": "PermissionRequest",
            "decision": {"behavior": "allow", "updatedInput": {"command": "echo spared"}},
        }
    }
    hooks.add_python("PermissionRequest", lambda p: allow)
    agent = cleaner_agent(store, client, workspace, hooks=hooks)
    await agent.create(task="clean up")
    outcome = await agent.run_until_idle()
    assert "spared" in outcome.summary
    assert await events_of(store, type="ApprovalRequested") == []
    points = [e.data.point for e in await events_of(store, type="HookInvoked")]  # type: ignore[union-attr]
    assert points == ["PreToolUse", "PermissionRequest"]


async def test_a_pending_approval_survives_a_restart(
    store: EventStore,
    client: ModelClient,
    workspace: Path,
    hooks: HookDispatcher,
    runner: ProjectionRunner,
) -> None:
    """The process stops while the call is on hold; the answer comes while nothing runs."""
    (workspace / "build").mkdir()
    first = cleaner_agent(store, client, workspace, hooks=hooks)
    await first.create(task="clean up")
    task = first.start()
    card = await pending_card(store, runner)
    task.cancel()  # the process stops: nothing is answered, nothing is written
    with pytest.raises(asyncio.CancelledError):
        await task
    await decide_approval(store, runner, card["approval"]["id"], decision="allow", by="carol")

    resumed = await Agent.load(store, "a1", client=client, hooks=hooks)
    outcome = await asyncio.wait_for(resumed.run_until_idle(), 30)

    assert outcome.status == "completed"
    assert not (workspace / "build").exists()
    assert len(await events_of(store, type="ApprovalRequested")) == 1  # the same approval
