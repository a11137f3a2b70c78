"""The dependency graph: edges, bottlenecks and the critical path of a run."""

from __future__ import annotations

from typing import Any

import pytest
from pj_helpers import Timeline, scout_plan_build
from test_projections_agents import claude_code_session, claude_code_with_a_subagent

from events import (
    AgentCommanded,
    AgentCreated,
    AgentDeleted,
    AgentWaiting,
    AgentWoke,
    ToolCallCompleted,
)
from projections import GraphProjection, critical_path
from projections._critical_path import CriticalPaths, members_of_runs
from projections._graph import MAX_EDGE_FILES, MAX_SEGMENTS

graph = GraphProjection()


def edges(view: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in view["edges"] if e["kind"] == kind]


def test_created_edges_follow_parent_ids() -> None:
    view = scout_plan_build(Timeline()).view(graph)

    assert [n["id"] for n in view["nodes"]] == ["orch", "s1", "s2", "s3", "planner", "builder"]
    assert [(e["from"], e["to"]) for e in edges(view, "created")] == [
        ("orch", "s1"),
        ("orch", "s2"),
        ("orch", "s3"),
        ("orch", "planner"),
        ("orch", "builder"),
    ]


def test_each_wait_lasts_until_the_awaited_agent_finished() -> None:
    view = scout_plan_build(Timeline()).view(graph)

    waits = {e["to"]: e for e in edges(view, "waits_on")}
    assert all(e["from"] == "orch" for e in waits.values())
    assert {to: e["total_ms"] for to, e in waits.items()} == pytest.approx(
        {"s1": 1900, "s2": 4900, "s3": 2900, "planner": 3400, "builder": 9400}
    )
    assert not any(e["open"] for e in waits.values())


def test_bottlenecks_rank_the_agents_waited_on_longest() -> None:
    view = scout_plan_build(Timeline()).view(graph)

    ranking = [(b["agent_id"], b["waited_on_ms"]) for b in view["bottlenecks"]]
    assert ranking == [
        ("builder", pytest.approx(9400)),
        ("s2", pytest.approx(4900)),
        ("planner", pytest.approx(3400)),
        ("s3", pytest.approx(2900)),
        ("s1", pytest.approx(1900)),
    ]


def test_an_open_wait_counts_up_to_the_latest_event() -> None:
    tl = scout_plan_build(Timeline())
    s1_done = next(
        e.position for e in tl.events if e.type == "AgentCompleted" and e.data.agent_id == "s1"
    )

    view = tl.view(graph, s1_done)

    # At 3 s: s1 is done (waited 1.9 s); s2 and s3 are still awaited since 1.1 s.
    now = {b["agent_id"]: b for b in view["bottlenecks"]}
    assert now["s2"]["waiters_now"] == 1
    assert now["s2"]["waiting_now_ms"] == pytest.approx(1900)
    assert now["s1"]["waiters_now"] == 0
    open_waits = [e["to"] for e in edges(view, "waits_on") if e["open"]]
    assert open_waits == ["s2", "s3"]


def test_artifacts_flow_from_scouts_to_planner_to_builder() -> None:
    view = scout_plan_build(Timeline()).view(graph)

    consumes = [(e["from"], e["to"], e["files"]) for e in edges(view, "consumes")]
    assert consumes == [
        ("planner", "s1", ["relevant-files-1.md"]),
        ("planner", "s2", ["relevant-files-2.md"]),
        ("planner", "s3", ["relevant-files-3.md"]),
        ("builder", "planner", ["plan.md"]),
    ]


def test_the_critical_path_runs_through_the_slowest_scout() -> None:
    view = scout_plan_build(Timeline()).view(graph)

    (path,) = view["critical_paths"]
    assert path["run_id"] == "r1"
    # The orchestrator counts until it created the next agent, not while it slept;
    # the wake-up latencies (6.0 -> 6.1 s, ...) are not on the path.
    assert [(step["agent_id"], step["ms"]) for step in path["path"]] == [
        ("orch", pytest.approx(1000)),
        ("s2", pytest.approx(5000)),
        ("orch", pytest.approx(400)),
        ("planner", pytest.approx(3500)),
        ("orch", pytest.approx(400)),
        ("builder", pytest.approx(9500)),
        ("orch", pytest.approx(900)),
    ]
    assert path["total_ms"] == pytest.approx(20_700)


def test_an_orchestrator_reading_a_file_of_an_agent_it_created_makes_no_cycle() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="o", name="o", role="orchestrator", model="m"))
    tl.add(1, AgentCreated(agent_id="w", name="w", role="builder", model="m", parent_id="o"))
    tl.add(1, AgentCommanded(agent_id="w", prompt="write", by="o"))
    tl.add(3, ToolCallCompleted(agent_id="w", tool_use_id="1", name="write", files_written=["x"]))
    tl.add(4, ToolCallCompleted(agent_id="o", tool_use_id="2", name="read", files_read=["x"]))

    (path,) = tl.view(graph)["critical_paths"]

    # The segments stay a DAG (o reads w's file, w was created by o): o itself
    # worked the whole 4 s, which is as long as any chain through w.
    assert path["total_ms"] == pytest.approx(4000)
    assert path["path"][0]["agent_id"] == "o"


def test_a_deleted_waiter_stops_waiting() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="o", name="o", role="orchestrator", model="m"))
    tl.add(0, AgentCreated(agent_id="w", name="w", role="builder", model="m", parent_id="o"))
    tl.add(1, AgentWaiting(agent_id="o", on=["w"]))
    tl.add(4, AgentDeleted(agent_id="o"))
    tl.add(9, AgentDeleted(agent_id="w"))

    (wait,) = edges(tl.view(graph), "waits_on")

    assert (wait["open"], wait["total_ms"], wait["count"]) == (False, pytest.approx(3000), 1)


def test_an_external_session_reading_the_plan_consumes_the_planners_artifact() -> None:
    tl = scout_plan_build(Timeline())
    claude_code_session(tl)

    view = tl.view(graph)

    ext = "ext-abc12345-session"
    consumes = {
        "kind": "consumes",
        "from": ext,
        "to": "planner",
        "reads": 1,
        "files": ["/ws/plan.md"],
    }
    assert consumes in view["edges"]
    node = next(n for n in view["nodes"] if n["id"] == ext)
    assert (node["role"], node["external"], node["status"]) == ("external", True, "completed")


def test_run_view_keeps_only_that_runs_agents() -> None:
    tl = scout_plan_build(Timeline())
    tl.add(30, AgentCreated(agent_id="other", name="x", role="r", model="m"), run="r2")

    state = tl.fold(graph)

    assert [n["id"] for n in graph.run_view(state, "r2")["nodes"]] == ["other"]
    assert len(graph.run_view(state, "r1")["nodes"]) == 6


def test_a_long_lived_agent_keeps_a_bounded_number_of_segments() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="o", name="o", role="orchestrator", model="m"))
    tl.add(0, AgentCreated(agent_id="w", name="w", role="builder", model="m", parent_id="o"))
    for i in range(MAX_SEGMENTS + 50):
        tl.add(i + 0.5, AgentWaiting(agent_id="o", on=["w"]))
        tl.add(i + 1, AgentWoke(agent_id="o", on=["w"], changed=["w"], waited_ms=500))

    state = tl.fold(graph)

    assert len(state["segments"]["o"]) == MAX_SEGMENTS
    assert state["dropped"]["o"] == 51
    (path,) = graph.view(state)["critical_paths"]
    assert path["total_ms"] > 0
    (wait,) = edges(graph.view(state), "waits_on")
    assert wait["count"] == MAX_SEGMENTS + 50


def test_a_consumes_edge_keeps_its_reads_and_the_latest_files() -> None:
    tl = Timeline()
    tl.add(0, AgentCreated(agent_id="w", name="w", role="builder", model="m"))
    tl.add(0, AgentCreated(agent_id="r", name="r", role="reviewer", model="m"))
    files = [f"f{i}.py" for i in range(MAX_EDGE_FILES + 5)]
    tl.add(1, ToolCallCompleted(agent_id="w", tool_use_id="1", name="write", files_written=files))
    for i, path in enumerate([*files, "f0.py"]):
        tl.add(
            2 + i,
            ToolCallCompleted(agent_id="r", tool_use_id=f"r{i}", name="read", files_read=[path]),
        )

    (edge,) = edges(tl.view(graph), "consumes")

    assert edge["reads"] == MAX_EDGE_FILES + 6
    assert edge["files"] == [*files[6:], "f0.py"]


def test_a_claude_code_subagent_is_a_node_created_by_its_session() -> None:
    view = claude_code_with_a_subagent(Timeline()).view(graph)

    nodes = {n["id"]: n for n in view["nodes"]}
    assert nodes["ext-s-1-ab335d475f5d1bbe9"]["parent_id"] == "ext-s-1"
    assert nodes["ext-s-1-ab335d475f5d1bbe9"]["status"] == "completed"
    assert {"kind": "created", "from": "ext-s-1", "to": "ext-s-1-ab335d475f5d1bbe9"} in view[
        "edges"
    ]


def test_each_run_of_a_many_run_view_has_its_own_critical_path() -> None:
    tl = Timeline()
    for run, work_s in (("r1", 2.0), ("r2", 5.0), ("r3", 1.0)):
        o, w = f"o-{run}", f"w-{run}"
        tl.add(0, AgentCreated(agent_id=o, name=o, role="orchestrator", model="m"), run=run)
        tl.add(1, AgentCreated(agent_id=w, name=w, role="builder", model="m", parent_id=o), run=run)
        tl.add(1, AgentCommanded(agent_id=w, prompt="write", by=o), run=run)
        tl.add(1, AgentWaiting(agent_id=o, on=[w]), run=run)
        tl.add(1 + work_s, AgentWaiting(agent_id=w, on=[]), run=run)
    state = tl.fold(graph)

    paths = graph.view(state)["critical_paths"]

    # One pass groups the agents by run: each path is what the run alone gives.
    assert [p["run_id"] for p in paths] == ["r1", "r2", "r3"]
    assert paths == [critical_path(state, run) for run in ("r1", "r2", "r3")]
    for path in paths:
        assert {step["agent_id"] for step in path["path"]} <= {
            f"o-{path['run_id']}",
            f"w-{path['run_id']}",
        }
    assert [p["total_ms"] for p in paths] == [
        pytest.approx(3000),
        pytest.approx(6000),
        pytest.approx(2000),
    ]


def _three_runs() -> Timeline:
    """scout-plan-build as r1, then two short runs, r2 and r3, whose builders read r1's plan."""
    tl = scout_plan_build(Timeline())
    for run, start, work_s in (("r2", 30.0, 4.0), ("r3", 40.0, 1.5)):
        o, w = f"o-{run}", f"w-{run}"
        tl.add(start, AgentCreated(agent_id=o, name=o, role="orchestrator", model="m"), run=run)
        tl.add(
            start + 0.5,
            AgentCreated(agent_id=w, name=w, role="builder", model="m", parent_id=o),
            run=run,
        )
        tl.add(start + 0.5, AgentCommanded(agent_id=w, prompt="build", by=o), run=run)
        tl.add(start + 0.6, AgentWaiting(agent_id=o, on=[w]), run=run)
        tl.add(
            start + 1,
            ToolCallCompleted(
                agent_id=w, tool_use_id=f"{run}-r", name="read", files_read=["plan.md"]
            ),
            run=run,
        )
        tl.add(start + work_s, AgentWaiting(agent_id=w, on=[]), run=run)
        tl.add(
            start + work_s + 0.1, AgentWoke(agent_id=o, on=[w], changed=[w], waited_ms=1), run=run
        )
    return tl


def test_remembered_critical_paths_are_those_computed_afresh_at_every_position() -> None:
    """A view remembers each run's path while the run's segments stay as they were
    (`_critical_path.py`, note 1): at every position of the log, forwards then back, each
    state a new object as a time-travel query makes one, every path is the one computed
    afresh, open segments (counted up to the log's clock) included."""
    tl = _three_runs()
    remembering = GraphProjection()
    positions = list(range(1, len(tl.events) + 1))
    compared = 0
    for until in [*positions, *reversed(positions)]:
        state = tl.fold(remembering, until)
        view = remembering.view(state)
        assert view["critical_paths"] == [
            critical_path(state, path["run_id"]) for path in view["critical_paths"]
        ], f"at position {until}"
        compared += len(view["critical_paths"])
    assert compared > 2 * len(positions)  # most positions show more than one run


def test_a_remembered_critical_path_is_the_callers_to_change() -> None:
    tl = _three_runs()
    remembering = GraphProjection()
    state = tl.fold(remembering)
    first = remembering.view(state)["critical_paths"]
    for path in first:
        path["total_ms"] = -1.0
        path["path"][0]["ms"] = -1.0
        path["path"].append({"agent_id": "nobody", "ms": 0.0})

    again = remembering.view(state)["critical_paths"]

    assert again == [critical_path(state, run) for run in ("r1", "r2", "r3")]
    assert all(path["total_ms"] > 0 for path in again)


def test_the_remembered_critical_paths_are_bounded() -> None:
    state = _three_runs().fold(GraphProjection())
    members = members_of_runs(state, ("r1", "r2", "r3"))
    paths = CriticalPaths(limit=2)

    for _ in range(2):
        for run in ("r1", "r2", "r3"):
            assert paths.of(state, run, members[run]) == critical_path(state, run)
            assert len(paths) <= 2
