"""`GET /v1/graph?latest_runs=N`: the graph of the N runs whose agents were created last,
what the dashboard draws of a log of many runs, without the rest of the graph."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from apitest_support import JSON, hook_payload, seed

from api import FleetApp
from events import (
    AgentCompleted,
    AgentCreated,
    AgentWaiting,
    AgentWoke,
    Meta,
    NewEvent,
    SQLiteEventStore,
)

SESSION = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"


async def _graph(client: httpx.AsyncClient, query: str) -> dict[str, Any]:
    response = await client.get(f"/v1/graph{query}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _latest(whole: dict[str, Any], n: int, role: str | None = None) -> dict[str, Any]:
    """`whole` cut to the agents of its last `n` runs (by the nodes' order, the order agents
    were created; agents outside any run count as one), as a client would cut it."""
    nodes = [x for x in whole["nodes"] if role is None or x["role"] == role]
    runs: list[str | None] = []
    for node in reversed(nodes):
        if node["run_id"] not in runs and len(runs) < n:
            runs.append(node["run_id"])
    ids = {x["id"] for x in nodes if x["run_id"] in runs}
    return {
        "nodes": [x for x in nodes if x["id"] in ids],
        "edges": [e for e in whole["edges"] if e["from"] in ids and e["to"] in ids],
        "bottlenecks": [b for b in whole["bottlenecks"] if b["agent_id"] in ids],
        "critical_paths": [p for p in whole["critical_paths"] if p["run_id"] in runs],
    }


async def _helped(store: SQLiteEventStore, run_id: str, agents: int) -> None:
    """A seeded run whose first agent then creates a helper and waits on it until it is done:
    "created" and "waits_on" edges, a bottleneck and a critical path through both."""
    await seed(store, run_id=run_id, agents=agents)
    lead, helper = f"{run_id}-a0", f"{run_id}-helper"
    meta = Meta(run_id=run_id, agent_id=lead)
    await store.append(f"agent-{helper}", [NewEvent(AgentCreated(
        agent_id=helper, name="helper", role="builder", model="sim-small", parent_id=lead
    ), Meta(run_id=run_id, agent_id=helper))])  # fmt: skip
    await store.append(f"agent-{lead}", [
        NewEvent(AgentWaiting(agent_id=lead, on=[helper]), meta),
    ])  # fmt: skip
    await store.append(f"agent-{helper}", [
        NewEvent(AgentCompleted(agent_id=helper, summary="helped"),
                 Meta(run_id=run_id, agent_id=helper)),
    ])  # fmt: skip
    await store.append(f"agent-{lead}", [
        NewEvent(AgentWoke(agent_id=lead, on=[helper], changed=[helper], waited_ms=1500), meta),
    ])  # fmt: skip


async def _runs(store: SQLiteEventStore, client: httpx.AsyncClient) -> int:
    """Four runs of three agents and a helper, then an external session (no run) and a
    fifth run after it."""
    for r in range(4):
        await _helped(store, f"r{r}", agents=3)
    body = hook_payload(SESSION, "UserPromptSubmit", prompt="look")
    response = await client.post("/v1/hooks/ingest", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    await _helped(store, "r4", agents=2)
    return await store.head()


@pytest.mark.parametrize("n", [1, 2, 3, 6, 1000])
async def test_the_latest_runs_are_the_whole_graph_cut_to_them(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, n: int
) -> None:
    head = await _runs(store, client)
    whole = await _graph(client, f"?min_position={head}")
    assert {e["kind"] for e in whole["edges"]} == {"created", "waits_on"}
    assert len(whole["bottlenecks"]) == 5
    latest = await _graph(client, f"?latest_runs={n}")
    assert latest == _latest(whole, n)
    assert len({x["run_id"] for x in latest["nodes"]}) == min(n, 6)
    # As of past positions (before the session and the last run), and with a filter.
    for at in (head // 3, 2 * head // 3):
        past = await _graph(client, f"?at={at}")
        assert await _graph(client, f"?at={at}&latest_runs={n}") == _latest(past, n)
    scouts = await _graph(client, f"?latest_runs={n}&role=scout")
    assert scouts == _latest(whole, n, role="scout")


async def test_the_session_outside_any_run_counts_as_one(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    head = await _runs(store, client)
    latest = await _graph(client, f"?latest_runs=2&min_position={head}")
    assert sorted({str(x["run_id"]) for x in latest["nodes"]}) == ["None", "r4"]
    assert [p["run_id"] for p in latest["critical_paths"]] == ["r4"]


@pytest.mark.parametrize("value", ["0", "-1", "1001", "two", "1.5"])
async def test_bad_latest_runs_is_400_naming_it(
    client: httpx.AsyncClient, store: SQLiteEventStore, value: str
) -> None:
    await seed(store)
    response = await client.get(f"/v1/graph?latest_runs={value}")
    assert response.status_code == 400, response.text
    assert "latest_runs" in json.dumps(response.json())
    assert (await client.get(f"/v1/fleet?latest_runs={value}")).status_code == 400
