"""Read models over HTTP equal the projection runner's, now and at past positions."""

from __future__ import annotations

import json

import httpx
import pytest
from apitest_support import seed

from api import FleetApp
from events import SQLiteEventStore
from projections import ProjectionRunner

VIEWS = ["agents", "fleet", "graph", "board", "runs"]
PAGED = {"agents", "runs"}


def _runner(app: FleetApp) -> ProjectionRunner:
    assert app.services is not None
    return app.services.runner


def _plain(value: object) -> object:
    return json.loads(json.dumps(value))


def _unpaged(name: str, view: dict[str, object]) -> object:
    """The runner's view as a route answers it without `limit`: one page, no `next`."""
    return _plain({**view, "next": None} if name in PAGED else view)


@pytest.mark.parametrize("name", VIEWS)
async def test_view_equals_the_runners_view(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, name: str
) -> None:
    recorded = await seed(store, run_id="r1") + await seed(store, run_id="r2", agents=3)
    runner = _runner(app)
    await runner.wait_for(recorded[-1].position)
    response = await client.get(f"/v1/{name}")
    assert response.status_code == 200
    assert response.json() == _unpaged(name, runner.view(name))
    assert response.headers["fleet-position"] == str(recorded[-1].position)


@pytest.mark.parametrize("name", VIEWS)
async def test_view_at_a_past_position_equals_time_travel(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, name: str
) -> None:
    recorded = await seed(store, run_id="r1") + await seed(store, run_id="r2")
    at = recorded[len(recorded) // 2].position
    response = await client.get(f"/v1/{name}?at={at}")
    assert response.status_code == 200
    assert response.json() == _unpaged(name, await _runner(app).view_at(name, at))
    assert response.headers["fleet-position"] == str(at)


async def test_view_at_zero_is_the_empty_view(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await seed(store)
    response = await client.get("/v1/agents?at=0")
    assert response.json() == {"count": 0, "agents": [], "next": None}


async def test_view_beyond_the_head_is_400(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await seed(store)
    response = await client.get("/v1/fleet?at=9999")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "9999" in response.json()["detail"]


async def test_min_position_reads_your_write(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    recorded = await seed(store)
    response = await client.get(f"/v1/agents?min_position={recorded[-1].position}")
    assert response.status_code == 200
    assert int(response.headers["fleet-position"]) >= recorded[-1].position
    assert response.json()["count"] == 2


async def test_min_position_beyond_the_head_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/runs?min_position=5")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["r1-a0", "r1-a1", "r2-a0", "r2-a1", "r2-a2"]),
        ("?role=scout", ["r1-a0", "r2-a0"]),
        ("?run_id=r2&role=builder", ["r2-a1", "r2-a2"]),
        ("?status=completed", ["r1-a0", "r1-a1", "r2-a0", "r2-a1", "r2-a2"]),
        ("?status=working&status=failed", []),
        ("?model=sim-small&external=false", ["r1-a0", "r1-a1", "r2-a0", "r2-a1", "r2-a2"]),
        ("?external=true", []),
        ("?parent_id=nobody", []),
        ("?agent_id=r2-a1&agent_id=r1-a0&agent_id=nobody", ["r1-a0", "r2-a1"]),
    ],
)
async def test_agents_filters(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, query: str, ids: list[str]
) -> None:
    recorded = await seed(store, run_id="r1") + await seed(store, run_id="r2", agents=3)
    await _runner(app).wait_for(recorded[-1].position)
    body = (await client.get(f"/v1/agents{query}")).json()
    assert [a["id"] for a in body["agents"]] == ids
    assert body["count"] == len(ids)


async def test_one_agent_equals_the_runners_card(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    recorded = await seed(store)
    runner = _runner(app)
    await runner.wait_for(recorded[-1].position)
    response = await client.get("/v1/agents/r1-a1")
    assert response.status_code == 200
    assert response.json() == _plain(runner.agent("r1-a1"))


async def test_one_agent_at_a_past_position(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    recorded = await seed(store)
    created = next(e for e in recorded if e.type == "AgentCreated" and e.meta.agent_id == "r1-a0")
    response = await client.get(f"/v1/agents/r1-a0?at={created.position}")
    assert response.status_code == 200
    assert response.json()["status"] == "created"
    assert (await client.get(f"/v1/agents/r1-a1?at={created.position}")).status_code == 404


async def test_unknown_agent_is_404_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/agents/nobody")
    assert response.status_code == 404
    body = response.json()
    assert body["title"] == "Agent not found"
    assert "nobody" in body["detail"]
    assert body["type"] == "urn:fleet:problem:agent-not-found"


async def test_an_agent_of_a_run_with_a_long_id_is_served(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """An imported run may have a 128-character id; its agents' ids are longer (`<run>-a0`,
    `orchestrator-<run>`: up to 200 characters) and are served like any other."""
    run_id = "r" * 128
    recorded = await seed(store, run_id=run_id, agents=1)
    await _runner(app).wait_for(recorded[-1].position)
    agent_id = f"{run_id}-a0"

    card = await client.get(f"/v1/agents/{agent_id}")
    status = await client.get(f"/v1/agents/{agent_id}/status")
    output = await client.get(f"/v1/agents/{agent_id}/output")

    assert card.status_code == 200, card.text
    assert card.json()["id"] == agent_id
    # This app drives no agents (503): what matters is the id was taken, not refused (400).
    assert [status.status_code, output.status_code] == [503, 503]
    too_long = await client.get("/v1/agents/" + "a" * 201)
    assert too_long.status_code == 400
    assert "1-200 letters" in too_long.json()["detail"]
