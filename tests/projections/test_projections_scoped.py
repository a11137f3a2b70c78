"""Views restricted to some agents: the graph's `scoped_view` and `fleet_totals` over cards."""

from __future__ import annotations

import pytest
from pj_helpers import Timeline, review_fails_once, scout_plan_build

from projections import AgentsProjection, FleetProjection, GraphProjection, fleet_totals

agents, fleet, graph = AgentsProjection(), FleetProjection(), GraphProjection()


@pytest.mark.parametrize("build", [scout_plan_build, review_fails_once])
def test_fleet_totals_of_every_card_are_the_fleet_view(build: object) -> None:
    tl = build(Timeline())  # type: ignore[operator]
    whole = tl.view(fleet)
    totals = fleet_totals(tl.view(agents)["agents"], whole["events"])
    assert totals["cost_usd"] == pytest.approx(whole["cost_usd"])
    assert {**totals, "cost_usd": 0} == {**whole, "cost_usd": 0}


def test_fleet_totals_of_some_cards_count_only_those() -> None:
    tl = scout_plan_build(Timeline())
    cards = tl.view(agents)["agents"]
    scouts = [c for c in cards if c["role"] == "scout"]
    totals = fleet_totals(scouts, tl.view(fleet)["events"])
    assert totals["agents"]["total"] == len(scouts) == 3
    assert totals["tokens"]["total"] == sum(c["tokens"]["total"] for c in scouts)
    assert totals["agents"]["by_status"]["deleted"] == totals["agents_deleted"]
    assert fleet_totals([], tl.view(fleet)["events"])["agents"]["total"] == 0


def test_graph_scoped_view_keeps_the_matching_agents_and_the_edges_between_them() -> None:
    tl = scout_plan_build(Timeline())
    state = tl.fold(graph)
    assert graph.scoped_view(state) == graph.view(state)
    assert graph.scoped_view(state, run_id="r1") == graph.run_view(state, "r1")
    scouts = graph.scoped_view(state, role="scout")
    ids = {n["id"] for n in scouts["nodes"]}
    assert ids == {"s1", "s2", "s3"}
    assert all(e["from"] in ids and e["to"] in ids for e in scouts["edges"])
    assert [p["run_id"] for p in scouts["critical_paths"]] == ["r1"]
    waiting = graph.scoped_view(state, agent_id="orch", statuses=["completed"])
    assert [n["id"] for n in waiting["nodes"]] == ["orch"]
    assert graph.scoped_view(state, run_id="nowhere")["nodes"] == []
