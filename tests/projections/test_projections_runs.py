"""The runs read model: pattern, status, duration, cost and agents of each run."""

from __future__ import annotations

import logging

import pytest
from pj_helpers import Timeline, at, review_fails_once, scout_plan_build

from events import AgentCreated, ModelResponded, RunFailed, RunStarted
from projections import RunsProjection

runs = RunsProjection()


def test_a_completed_run_sums_its_agents_costs() -> None:
    view = scout_plan_build(Timeline()).view(runs)

    assert view["count"] == 1
    run = view["runs"][0]
    assert run["id"] == "r1"
    assert run["pattern"] == "scout-plan-build"
    assert run["status"] == "completed"
    assert run["duration_ms"] == 22_000
    assert run["cost_usd"] == pytest.approx(0.55)
    assert run["tokens"]["total"] == 58_600
    assert run["agents"] == ["orch", "s1", "s2", "s3", "planner", "builder"]
    assert run["agent_count"] == 6
    assert (run["started_at"], run["finished_at"]) == (at(0), at(22))
    assert run["summary"] == "migrated"


def test_a_running_run_lasts_until_its_latest_model_response() -> None:
    tl = scout_plan_build(Timeline())
    last_response = max(e.position for e in tl.events[:20] if e.type == "ModelResponded")

    run = tl.view(runs, until=20)["runs"][0]

    assert run["status"] == "running"
    assert run["finished_at"] is None
    started, responded = tl.events[0].recorded_at, tl.events[last_response - 1].recorded_at
    assert run["duration_ms"] == pytest.approx((responded - started).total_seconds() * 1000)


def test_two_runs_keep_their_costs_apart_and_a_failure_says_why() -> None:
    tl = scout_plan_build(Timeline())
    review_fails_once(tl)
    tl.add(30, AgentCreated(agent_id="rev", name="reviewer", role="reviewer", model="m"), run="r2")
    tl.add(31, ModelResponded(agent_id="rev", model="m", cost_usd=0.25), run="r2")
    tl.add(32, RunFailed(run_id="r2", error="review rejected twice"), run="r2")

    by_id = {r["id"]: r for r in tl.view(runs)["runs"]}

    assert by_id["r1"]["cost_usd"] == pytest.approx(0.55)
    assert by_id["r2"]["cost_usd"] == pytest.approx(0.25)
    assert by_id["r2"]["status"] == "failed"
    assert by_id["r2"]["error"] == "review rejected twice"
    assert by_id["r2"]["duration_ms"] == pytest.approx(32_000)
    assert by_id["r2"]["agents"] == ["rev"]


def test_an_agent_of_a_run_that_never_started_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="a", name="a", role="r", model="m"), run="ghost")
    tl.add(1, RunStarted(run_id="r9", task="t"), run="r9")

    with caplog.at_level(logging.WARNING):
        view = tl.view(runs)

    assert [r["id"] for r in view["runs"]] == ["r9"]
    assert "run 'ghost' never started" in caplog.text
