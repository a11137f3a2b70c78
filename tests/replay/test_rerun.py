"""Re-executing a recorded run: answers from the log, tools and hooks anew, divergences reported."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from replay_support import Recording, git, lines_of, record, reseal

from events import (
    EventFilter,
    Meta,
    NewEvent,
    ReplayDiverged,
    RunNotFound,
    RunStarted,
    SQLiteEventStore,
    export_run,
    import_run,
    parse_export,
)
from hooks import HookDispatcher
from projections import ProjectionRunner
from runtime import prepare_workspace
from runtime.replay import ReplayImpossible, RerunOptions, RerunResult, WorkspaceUnavailable, rerun


async def _rerun(store: SQLiteEventStore, run_id: str, **options: Any) -> RerunResult:
    async with ProjectionRunner(store) as runner:
        return await rerun(store, runner, run_id, RerunOptions(**options))


async def _diverged_events(store: SQLiteEventStore, run_id: str) -> list[ReplayDiverged]:
    found = await store.read_all(where=EventFilter.of(run_id=run_id, types=["ReplayDiverged"]))
    return [e.data for e in found]  # type: ignore[misc]


async def test_an_unchanged_rerun_diverges_nowhere_and_changes_the_same_files(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    result = await _rerun(store, recorded_pattern.run_id, workspace=tmp_path / "copy")

    assert result.status == "completed", result.error
    assert result.divergences == ()
    responses = await store.read_all(
        where=EventFilter.of(run_id=recorded_pattern.run_id, types=["ModelResponded"])
    )
    assert result.responses_served == len(responses)
    assert await _diverged_events(store, result.run_id) == []
    assert await git(result.workspace, "diff", recorded_pattern.git_head) == recorded_pattern.diff
    assert not await git(result.workspace, "remote"), "the copy must not point at the original"
    async with ProjectionRunner(store) as runner:
        await runner.wait_for(await store.head())
        runs = {r["id"]: r for r in runner.view("runs")["runs"]}
        agents = runner.view("agents")["agents"]
    assert runs[result.run_id]["replay_of"] == recorded_pattern.run_id
    assert runs[result.run_id]["tokens"] == runs[recorded_pattern.run_id]["tokens"]

    def produced(run_id: str) -> list[tuple[str, list[str]]]:
        return [(a["name"], a["files_produced"]) for a in agents if a["run_id"] == run_id]

    assert produced(result.run_id) == produced(recorded_pattern.run_id)


async def test_a_file_changed_in_the_copy_diverges_at_the_step_that_read_it(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    async def change_a_file(workspace: Path) -> None:
        path = workspace / "textstats" / "counting.py"
        path.write_text(path.read_text() + "\n# changed since the recording\n")

    result = await _rerun(
        store, recorded_pattern.run_id, workspace=tmp_path / "copy", prepare=change_a_file
    )

    assert result.status == "completed"
    assert {d.kind for d in result.divergences} == {"tool_result"}
    first = {}
    for d in result.divergences:
        first.setdefault(d.agent, d)
    for scout in ("scout-1", "scout-2", "scout-3"):
        d = first[scout]
        assert (d.step, d.tool) == (2, "Read")  # step 1 was the Grep, which still matches
        assert "textstats/counting.py" in d.detail
        assert "# changed since the recording" in d.actual
        assert "# changed since the recording" not in d.expected
    events = await _diverged_events(store, result.run_id)
    assert [(e.agent_id, e.step, e.kind) for e in events] == [
        (d.agent_id, d.step, d.kind) for d in result.divergences
    ]
    assert {(e.run_id, e.replay_of) for e in events} == {(result.run_id, recorded_pattern.run_id)}


async def test_a_hook_that_now_blocks_a_tool_is_a_hook_decision_and_a_tool_result(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    async with HookDispatcher() as hooks:
        hooks.add_python(
            "PreToolUse",
            lambda payload: {"decision": "block", "reason": "no commands today"},
            matcher="Bash",
            name="no-commands",
        )
        result = await _rerun(
            store, recorded_pattern.run_id, workspace=tmp_path / "copy", hooks=hooks
        )

    diverged = [(d.agent, d.step, d.kind, d.tool) for d in result.divergences]
    assert diverged == [
        ("build", 3, "hook_decision", "Bash"),
        ("build", 3, "tool_result", "Bash"),
    ]
    decision, outcome = result.divergences
    assert decision.detail.startswith("PreToolUse of Bash")
    assert "no-commands: deny (no commands today)" in decision.actual
    assert outcome.actual.startswith("[blocked] ")
    assert "Ran 9 tests" in outcome.expected


async def test_a_stop_hook_asking_for_one_more_turn_is_a_missing_response(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    """The recording has no answer for the extra turn: the builder stops, the run fails."""
    async with HookDispatcher() as hooks:
        hooks.add_python(
            "SubagentStop",
            lambda payload: {"decision": "block", "reason": "also update the README"},
            matcher="builder",
        )
        result = await _rerun(
            store, recorded_pattern.run_id, workspace=tmp_path / "copy", hooks=hooks
        )

    assert result.status == "failed"
    assert [(d.agent, d.step, d.kind) for d in result.divergences] == [
        ("build", 4, "hook_decision"),
        ("build", 5, "missing_response"),
    ]
    missing = result.divergences[1]
    assert "the recording has 4 model responses for agent 'build'" in missing.detail


async def test_an_orchestrator_run_is_re_executed_through_the_orchestrator(
    recorded_orchestrator: Recording, tmp_path: Path
) -> None:
    """Its recorded tool calls name the recorded agents: the replay gives them the new ids."""
    db = tmp_path / "fleet.db"
    db.write_bytes(recorded_orchestrator.db.read_bytes())
    async with SQLiteEventStore(db) as store:
        result = await _rerun(store, recorded_orchestrator.run_id, workspace=tmp_path / "copy")

    assert result.status == "completed", result.error
    assert result.divergences == ()
    assert await git(result.workspace, "diff", recorded_orchestrator.git_head) == (
        recorded_orchestrator.diff
    )


async def _scouts_in_finishing_order(store: SQLiteEventStore, run_id: str) -> list[str]:
    events = await store.read_all(
        where=EventFilter.of(run_id=run_id, types=["AgentCreated", "AgentCompleted"])
    )
    names = {e.data.agent_id: e.data.name for e in events if e.type == "AgentCreated"}  # type: ignore[union-attr]
    return [
        names[e.data.agent_id]  # type: ignore[union-attr]
        for e in events
        if e.type == "AgentCompleted" and names[e.data.agent_id].startswith("scout-")  # type: ignore[union-attr]
    ]


async def test_scouts_finishing_in_another_order_change_nothing_the_orchestrator_sees(
    recorded_orchestrator: Recording, tmp_path: Path
) -> None:
    """History drives the waits: each wake is the recording's, whoever finishes first now."""
    db = tmp_path / "fleet.db"
    db.write_bytes(recorded_orchestrator.db.read_bytes())
    async with SQLiteEventStore(db, poll_interval=0.05) as store:
        recorded_order = await _scouts_in_finishing_order(store, recorded_orchestrator.run_id)
        first = recorded_order[0]

        async def hold_the_first_scout_until_the_others_are_done(payload: dict[str, Any]) -> None:
            created = await store.read_stream(f"agent-{payload['fleet_agent_id']}")
            if created[0].data.name != first:  # type: ignore[union-attr]
                return
            async with asyncio.timeout(120):  # the others finish on their own
                while len(await _scouts_in_finishing_order(store, payload["fleet_run_id"])) < 3:
                    await asyncio.sleep(0.05)

        async with HookDispatcher() as hooks:
            hooks.add_python(
                "SubagentStop",
                hold_the_first_scout_until_the_others_are_done,
                matcher="scout",
                timeout=180,
            )
            result = await _rerun(
                store, recorded_orchestrator.run_id, workspace=tmp_path / "copy", hooks=hooks
            )
        new_order = await _scouts_in_finishing_order(store, result.run_id)

    assert new_order[-1] == first != recorded_order[-1]  # the order really changed
    assert result.status == "completed", result.error
    assert result.divergences == ()
    assert await git(result.workspace, "diff", recorded_orchestrator.git_head) == (
        recorded_orchestrator.diff
    )


async def test_an_unknown_run_is_refused(store: SQLiteEventStore, tmp_path: Path) -> None:
    head = await store.head()
    with pytest.raises(RunNotFound):
        await _rerun(store, "run-nope", workspace=tmp_path / "copy")
    assert await store.head() == head
    assert not (tmp_path / "copy").exists()


async def test_a_run_that_has_not_ended_is_refused(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    await store.append(
        "run-run-open",
        [NewEvent(RunStarted(run_id="run-open", task="t", pattern="scout-plan-build",
                             workspace=str(recorded_pattern.workspace)), Meta(run_id="run-open"))],
    )  # fmt: skip
    head = await store.head()
    with pytest.raises(ReplayImpossible, match="has not ended"):
        await _rerun(store, "run-open", workspace=tmp_path / "copy")
    assert await store.head() == head


async def test_a_missing_workspace_or_a_busy_destination_is_refused_and_nothing_appended(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    head = await store.head()
    with pytest.raises(WorkspaceUnavailable, match="does not exist"):
        await _rerun(store, recorded_pattern.run_id, source=tmp_path / "gone")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("mine")
    with pytest.raises(WorkspaceUnavailable, match="not empty"):
        await _rerun(store, recorded_pattern.run_id, workspace=busy)
    not_git = tmp_path / "plain"
    not_git.mkdir()
    with pytest.raises(WorkspaceUnavailable, match="not a git repository"):
        await _rerun(store, recorded_pattern.run_id, source=not_git, workspace=tmp_path / "c")
    assert await store.head() == head
    assert (busy / "file").read_text() == "mine"


async def test_a_run_recorded_outside_git_is_re_executed_on_a_plain_copy(tmp_path: Path) -> None:
    """Without git the copy is of the folder as it is now: after the run, or a given source."""
    recording = await record(tmp_path / "rec", "scout-builder", git=False)
    pristine = await prepare_workspace(tmp_path / "pristine", git=False)
    async with SQLiteEventStore(recording.db) as store:
        clean = await _rerun(store, recording.run_id, workspace=tmp_path / "a", source=pristine)
        after = await _rerun(store, recording.run_id, workspace=tmp_path / "b")

    assert clean.status == "completed", clean.error
    assert clean.divergences == ()
    assert clean.git_head is None
    assert clean.source == pristine
    first = after.divergences[0]
    assert (first.agent, first.step, first.tool) == ("scout", 1, "Grep")
    assert first.actual == "no matches"  # the recorded run renamed what the scout looks for


_OLD_NAMES = {
    "Read": "read_file", "Write": "write_file", "Edit": "edit_file",
    "Glob": "list_files", "Grep": "grep", "Bash": "run_command",
}  # fmt: skip


def _old_input(name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    """A call's input as fleet's tools took it before they had Claude Code's names."""
    out = {("path" if k == "file_path" else k): v for k, v in tool_input.items()}
    if name == "Grep":
        assert out.pop("output_mode") == "content" and out.pop("-n") is True
        if "-i" in out:
            out["ignore_case"] = out.pop("-i")
    if name == "Bash":
        out.pop("description", None)
    return out


def _to_old_vocabulary(line: bytes) -> bytes:
    """One export line as a recording made before the rename would hold it."""
    event = json.loads(line)
    data = event.get("data")
    if not isinstance(data, dict):
        return line
    if event["type"] == "AgentCreated":
        data["tools"] = [_OLD_NAMES.get(t, t) for t in data["tools"]]
    elif event["type"] == "ModelResponded":
        for block in data["content"]:
            if block.get("type") == "tool_use" and block["name"] in _OLD_NAMES:
                block["input"] = _old_input(block["name"], block["input"])
                block["name"] = _OLD_NAMES[block["name"]]
    elif event["type"] == "ToolCallRequested" and data["name"] in _OLD_NAMES:
        data["input"] = _old_input(data["name"], data["input"])
        data["name"] = _OLD_NAMES[data["name"]]
    elif event["type"] == "ToolCallCompleted":
        data["name"] = _OLD_NAMES.get(data["name"], data["name"])
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


async def test_a_run_recorded_with_the_former_tool_names_replays_without_divergence(
    recorded_pattern: Recording, tmp_path: Path
) -> None:
    """Recordings made before the tools took Claude Code's names re-execute through aliases."""
    async with SQLiteEventStore(recorded_pattern.db) as original:
        await export_run(original, recorded_pattern.run_id, tmp_path / "new.jsonl")
    lines = lines_of(tmp_path / "new.jsonl")
    old = reseal([lines[0], *(_to_old_vocabulary(line) for line in lines[1:-1])])
    assert b'"name":"read_file"' in old and b'"name":"Read"' not in old
    async with SQLiteEventStore(tmp_path / "old.db") as store:
        await import_run(store, parse_export(old))
        result = await _rerun(store, recorded_pattern.run_id, workspace=tmp_path / "copy")

    assert result.status == "completed", result.error
    assert result.divergences == ()
    assert await git(result.workspace, "diff", recorded_pattern.git_head) == recorded_pattern.diff


async def test_a_review_loop_re_executes_without_divergence(tmp_path: Path) -> None:
    """Regression: plan-build-review-ship re-executed with three false divergences and failed
    "review rejected 3 times": its second reviewer (same name, role and first prompt as the
    first) was served the first reviewer's answers."""
    recording = await record(tmp_path / "rec", "plan-build-review-ship")
    async with SQLiteEventStore(recording.db) as store:
        result = await _rerun(store, recording.run_id, workspace=tmp_path / "copy")
    assert result.status == "completed", result.error
    assert result.divergences == ()
    assert await git(result.workspace, "log", "--format=%s") == await git(
        recording.workspace, "log", "--format=%s"
    )


async def test_a_run_a_budget_stopped_stops_there_again(tmp_path: Path) -> None:
    """The re-execution ran without the recorded budget: its agent went on past the point
    the budget stopped it, to a response the log does not have (a missing_response)."""
    from replay_support import TASK

    from runtime import Budgets, RuntimeOptions, load_pattern, open_runtime, run_pattern

    workspace = await prepare_workspace(tmp_path / "repo")
    options = RuntimeOptions(
        db=tmp_path / "fleet.db", workspace=workspace, env={}, budgets=Budgets(run_tokens=5000)
    )
    async with open_runtime(options) as rt:
        recorded = await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), TASK)
    assert recorded.status == "failed" and "budget exceeded" in (recorded.error or "")
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        result = await _rerun(store, recorded.run_id, workspace=tmp_path / "copy")
    assert result.status == "failed" and "budget exceeded" in (result.error or ""), result.error
    assert [d.kind for d in result.divergences] == [], result.divergences


async def test_a_run_in_a_subfolder_of_a_repository_is_in_git_and_re_executes_there(
    tmp_path: Path,
) -> None:
    """A workspace that is a package of a monorepo: the git steps refused it as "not a git
    repository" (only the folder itself was looked at), no head was recorded, and a rerun
    could only copy the folder as it is now. The repository is cloned whole at its head and
    the run re-executed in the same subfolder of the clone."""
    from replay_support import TASK

    from runtime import RuntimeOptions, load_pattern, open_runtime, run_pattern

    mono = tmp_path / "mono"
    package = await prepare_workspace(mono / "packages" / "text", git=False)
    (mono / "README").write_text("the monorepo\n")
    for command in (["init", "-q", "-b", "main"], ["add", "-A"]):
        await git(mono, *command)
    await git(mono, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = (await git(mono, "rev-parse", "HEAD")).strip()
    options = RuntimeOptions(db=tmp_path / "fleet.db", workspace=package, env={})
    async with open_runtime(options) as rt:
        recorded = await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), TASK)
        [started] = await rt.store.read_stream(f"run-{recorded.run_id}", limit=1)
    assert recorded.status == "completed", recorded.error
    assert started.data.config["git_head"] == head  # type: ignore[union-attr]

    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        result = await _rerun(store, recorded.run_id, workspace=tmp_path / "copy")

    assert result.status == "completed", result.error
    assert result.divergences == ()
    assert result.workspace == (tmp_path / "copy" / "packages" / "text").resolve()
    assert (tmp_path / "copy" / "README").read_text() == "the monorepo\n"
