"""A run's timeline: agents, steps, tool calls, hook decisions, waits, board moves, divergences."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from replay_support import Recording

from events import RunNotFound, SQLiteEventStore
from hooks import HookDispatcher
from projections import ProjectionRunner, load_timeline
from runtime.replay import RerunOptions, rerun


async def test_the_timeline_tells_what_each_agent_did_step_by_step(
    store: SQLiteEventStore, recorded_pattern: Recording
) -> None:
    timeline = await load_timeline(store, recorded_pattern.run_id)

    assert timeline.status == "completed"
    assert timeline.pattern == "scout-plan-build"
    assert [e.position for e in timeline.entries] == sorted(e.position for e in timeline.entries)
    assert {a["name"]: a["steps"] for a in timeline.agents} == {
        "orchestrator": 0, "scout-1": 4, "scout-2": 4, "scout-3": 4, "plan": 4, "build": 4,
    }  # fmt: skip
    assert {e.kind for e in timeline.entries} == {"run", "agent", "step", "tool", "wait", "task"}
    scout = [e for e in timeline.entries if e.agent == "scout-1"]
    assert [e.text.split(" (")[0] for e in scout if e.kind == "step"] == [
        "step 1", "step 2", "step 3", "step 4",
    ]  # fmt: skip
    tools = [e for e in scout if e.kind == "tool"]
    assert tools[0].text.startswith("Grep ")
    assert tools[0].step == 1
    assert any(e.text.startswith("Read textstats/counting.py → ok") for e in tools)
    waits = [e.text for e in timeline.entries if e.kind == "wait"]
    # The wait names the scouts still working when it began: a fast scout-1 may be done.
    assert re.fullmatch(r"sleeps until one of scout-[123](, scout-[123])* changes", waits[0])
    assert timeline.entries[-1].text.startswith("run completed in ")
    body = timeline.to_json()
    assert body["last_position"] == recorded_pattern.events
    assert body["entries"][0]["offset_ms"] == 0.0


async def test_a_re_execution_timeline_shows_hook_decisions_and_divergences(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    async with HookDispatcher() as hooks, ProjectionRunner(store) as runner:
        hooks.add_python("PreToolUse", lambda p: {"decision": "block", "reason": "not now"},
                         matcher="Bash", name="guard")  # fmt: skip
        result = await rerun(
            store, runner, recorded_pattern.run_id,
            RerunOptions(workspace=tmp_path / "copy", hooks=hooks),
        )  # fmt: skip

    timeline = await load_timeline(store, result.run_id)

    assert timeline.replay_of == recorded_pattern.run_id
    assert timeline.divergences == 2
    hooks_told = [e.text for e in timeline.entries if e.kind == "hook"]
    assert hooks_told == ["PreToolUse hook guard → deny: not now"]
    told = [e for e in timeline.entries if e.kind == "divergence"]
    assert [e.agent for e in told] == ["build", "build"]
    assert told[0].text.startswith("diverged at step 3 (hook_decision)")


async def test_the_timeline_of_an_unknown_run_is_refused(store: SQLiteEventStore) -> None:
    with pytest.raises(RunNotFound, match="no run 'run-nope'"):
        await load_timeline(store, "run-nope")
