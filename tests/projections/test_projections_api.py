"""The projections' public seam: the protocol, the catalogue coverage, JSON states and errors."""

from __future__ import annotations

import json

import pytest
from pj_helpers import Timeline, dumped, review_fails_once, scout_plan_build
from test_projections_agents import claude_code_session

from events import EVENT_TYPES, FleetError
from projections import (
    DEFAULT_PROJECTIONS,
    FoldProjection,
    InvalidPosition,
    Projection,
    ProjectionError,
    ProjectionFailed,
    ProjectionTimeout,
    RunnerClosed,
    UnknownProjection,
    default_projections,
)

VIEW_KEYS = {
    "agents": {"count", "agents"},
    "fleet": {
        "agents",
        "agents_created",
        "agents_deleted",
        "tokens",
        "cost_usd",
        "context_tokens_in_use",
        "events",
    },
    "graph": {"nodes", "edges", "bottlenecks", "critical_paths"},
    "board": {"count", "columns"},
    "runs": {"count", "runs"},
}


def story() -> Timeline:
    tl = scout_plan_build(Timeline())
    review_fails_once(tl)
    return claude_code_session(tl)


def test_the_default_read_models_are_the_five_the_dashboard_shows() -> None:
    assert [p.name for p in DEFAULT_PROJECTIONS] == ["agents", "fleet", "graph", "board", "runs"]
    assert [p.name for p in default_projections()] == ["agents", "fleet", "graph", "board", "runs"]


@pytest.mark.parametrize("projection", DEFAULT_PROJECTIONS, ids=lambda p: p.name)
def test_each_read_model_is_a_projection(projection: Projection[object]) -> None:
    assert isinstance(projection, Projection)
    assert projection.version >= 1


@pytest.mark.parametrize("projection", DEFAULT_PROJECTIONS, ids=lambda p: p.name)
def test_each_read_model_decides_about_every_event_type(projection: FoldProjection[object]) -> None:
    """A new event type fails here until every read model folds or ignores it on purpose."""
    assert projection.handled_types | projection.ignores == set(EVENT_TYPES)
    assert not projection.handled_types & projection.ignores


@pytest.mark.parametrize("projection", DEFAULT_PROJECTIONS, ids=lambda p: p.name)
def test_views_are_json_with_the_documented_keys(projection: Projection[object]) -> None:
    for state in (projection.initial(), story().fold(projection)):
        view = projection.view(state)
        assert set(view) == VIEW_KEYS[projection.name]
        assert json.loads(json.dumps(view)) == view


@pytest.mark.parametrize("projection", DEFAULT_PROJECTIONS, ids=lambda p: p.name)
def test_a_state_survives_a_json_round_trip(projection: Projection[object]) -> None:
    state = story().fold(projection)

    loaded = projection.load(json.loads(json.dumps(projection.dump(state))))

    assert dumped(projection, loaded) == dumped(projection, state)
    assert projection.view(loaded) == projection.view(state)


@pytest.mark.parametrize("projection", DEFAULT_PROJECTIONS, ids=lambda p: p.name)
def test_a_view_shares_nothing_mutable_with_the_state(projection: Projection[object]) -> None:
    state = story().fold(projection)
    before = dumped(projection, state)

    _scramble(projection.view(state))

    assert dumped(projection, state) == before


def _scramble(value: object) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _scramble(item)
        value.clear()
    elif isinstance(value, list):
        for item in value:
            _scramble(item)
        value.clear()


def test_errors_are_fleet_errors_that_carry_their_facts() -> None:
    errors = [
        UnknownProjection("agent", ["agents", "board"]),
        InvalidPosition(12, 10),
        ProjectionTimeout(12, 10, 5.0),
        ProjectionFailed("graph", 7, KeyError("x")),
        RunnerClosed(),
    ]
    assert all(isinstance(e, ProjectionError) and isinstance(e, FleetError) for e in errors)
    assert str(errors[0]) == "no projection named 'agent'; known: agents, board"
    assert (errors[1].position, errors[1].head) == (12, 10)
    assert isinstance(errors[2], TimeoutError)
    assert "projection 'graph' failed applying the event at position 7: KeyError" in str(errors[3])
