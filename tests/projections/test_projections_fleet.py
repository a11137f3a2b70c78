"""The fleet read model: totals over a whole run and the log's pace."""

from __future__ import annotations

import pytest
from pj_helpers import Timeline, at, scout_plan_build

from events import AgentCreated, AgentDeleted, ModelResponded, Usage
from projections import FleetProjection

fleet = FleetProjection()


def test_totals_after_a_scout_plan_build_run() -> None:
    tl = scout_plan_build(Timeline())

    view = tl.view(fleet)

    assert view["agents"] == {
        "total": 6,
        "active": 0,
        "by_status": {
            "created": 0,
            "working": 0,
            "waiting": 0,
            "completed": 1,
            "failed": 0,
            "deleted": 5,
        },
    }
    assert (view["agents_created"], view["agents_deleted"]) == (6, 5)
    assert view["tokens"] == {
        "input": 37_000,
        "output": 5_100,
        "cache_write": 3_500,
        "cache_read": 13_000,
        "total": 58_600,
    }
    assert view["cost_usd"] == pytest.approx(0.55)
    # Only the orchestrator still holds its context: deleted agents freed theirs.
    assert view["context_tokens_in_use"] == 1_200


def test_active_agents_by_status_in_the_middle_of_the_run() -> None:
    tl = scout_plan_build(Timeline())
    s1_done = next(
        e.position for e in tl.events if e.type == "AgentCompleted" and e.data.agent_id == "s1"
    )

    agents = tl.view(fleet, s1_done)["agents"]

    assert agents["active"] == 3
    assert agents["by_status"] == {
        "created": 0,
        "working": 2,
        "waiting": 1,
        "completed": 1,
        "failed": 0,
        "deleted": 0,
    }


def test_events_per_second_over_the_last_minute_of_the_log() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="a", name="a", role="r", model="m"))
    for i in range(30):
        tl.add(100 + i / 10, ModelResponded(agent_id="a", model="m"))  # 10 per second for 3 s
    tl.add(158.5, ModelResponded(agent_id="a", model="m"))

    events = tl.view(fleet)["events"]

    # The minute ends at the last event (158 s): the creation at 0 s is outside it.
    assert events["total"] == 32
    assert events["last_minute"] == 31
    assert events["per_second"] == pytest.approx(31 / 60, abs=1e-3)
    assert events["series"][-1] == 1
    assert events["series"][-59:-56] == [10, 10, 10]
    assert len(events["series"]) == 60
    assert events["series_start"] == at(99)
    assert events["last_at"] == at(158.5)


def test_an_event_recorded_slightly_out_of_order_still_counts_in_the_minute() -> None:
    tl = Timeline()
    tl.add(10, AgentCreated(agent_id="a", name="a", role="r", model="m"))
    tl.add(12, ModelResponded(agent_id="a", model="m"))
    tl.add(11, ModelResponded(agent_id="a", model="m"))  # another writer's clock, a bit behind

    events = tl.view(fleet)["events"]

    assert events["last_minute"] == 3
    assert events["series"][-3:] == [1, 1, 1]
    assert events["last_at"] == at(12)


def test_deleting_an_agent_frees_its_context_once() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="a", name="a", role="r", model="m"))
    tl.add(
        1, ModelResponded(agent_id="a", model="m", usage=Usage(input_tokens=500, output_tokens=50))
    )
    tl.add(2, AgentDeleted(agent_id="a"))
    tl.add(3, AgentDeleted(agent_id="a"))
    tl.add(4, ModelResponded(agent_id="a", model="m", usage=Usage(input_tokens=900)))

    view = tl.view(fleet)

    assert view["context_tokens_in_use"] == 0
    assert view["agents_deleted"] == 1
    assert view["tokens"]["input"] == 1400
