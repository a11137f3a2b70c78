"""Querying the views as a monitor would: scoping, paging, ETag/304 and long polls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from apitest_support import append_ticks, raw_get, reset, seed, wait_until

from api import ApiConfig, FleetApp, Serving, serving
from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    Meta,
    NewEvent,
    RunStarted,
    SQLiteEventStore,
    TaskMoved,
    ToolCallRequested,
    process_owner,
)

SCOPED_VIEWS = ["agents", "fleet", "graph", "board", "runs"]


async def _two_runs(app: FleetApp, store: SQLiteEventStore) -> int:
    """Runs r1 (2 agents) and r2 (3 agents); returns the last position, applied."""
    recorded = await seed(store, run_id="r1") + await seed(store, run_id="r2", agents=3)
    assert app.services is not None
    await app.services.runner.wait_for(recorded[-1].position)
    return recorded[-1].position


async def test_a_run_no_live_process_conducts_is_interrupted_as_the_cli_says(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """Runs r1 and r2 are both "running" in the log; only r2's conductor is alive (it holds
    its lease). The API said "running" for both, `fleet runs` "interrupted" for r1."""
    for run_id in ("r1", "r2"):  # started, never ended
        await store.append(f"run-{run_id}", [
            NewEvent(RunStarted(run_id=run_id, task="t", pattern="scout-builder"),
                     Meta(run_id=run_id)),
        ])  # fmt: skip
    last = await store.head()
    assert app.services is not None
    await app.services.runner.wait_for(last)
    lease = await store.leases.acquire_lease("run-r2", process_owner(), 60)
    runs = {r["id"]: r["status"] for r in (await client.get("/v1/runs")).json()["runs"]}
    assert runs == {"r1": "interrupted", "r2": "running"}
    assert (await client.get("/v1/runs/r1")).json()["status"] == "interrupted"
    only = (await client.get("/v1/runs", params={"status": "interrupted"})).json()
    assert [r["id"] for r in only["runs"]] == ["r1"]
    # As the log had it at a past position: running (the head is now, as above).
    past = (await client.get("/v1/runs", params={"at": last - 1})).json()
    assert {r["status"] for r in past["runs"]} == {"running"}
    at_head = (await client.get("/v1/runs", params={"at": last})).json()
    assert {r["id"]: r["status"] for r in at_head["runs"]} == runs
    # The lease let go: the same position, a new answer (not the one kept).
    await store.leases.release_leases([lease.key], lease.owner)
    runs = {r["id"]: r["status"] for r in (await client.get("/v1/runs")).json()["runs"]}
    assert runs == {"r1": "interrupted", "r2": "interrupted"}


async def test_the_agents_of_an_interrupted_run_are_interrupted_now_and_working_in_the_past(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """Run r1's process was killed while its builder worked and its reviewer waited to be
    commanded: the log says "working" and "created" for ever. Every view says what the
    runs say: interrupted, until a live process conducts the run again."""
    started = RunStarted(run_id="r1", task="t", pattern="plan-build-review-ship")
    await store.append("run-r1", [NewEvent(started, Meta(run_id="r1"))])
    for agent_id, role in (("r1-b", "builder"), ("r1-v", "reviewer"), ("r1-p", "planner")):
        meta = Meta(run_id="r1", agent_id=agent_id)
        data: list[Any] = [AgentCreated(agent_id=agent_id, name=role, role=role, model="m")]
        if role != "reviewer":
            data.append(AgentCommanded(agent_id=agent_id, prompt="go"))
        if role == "planner":
            data.append(AgentCompleted(agent_id=agent_id, summary="planned"))
        if role == "builder":  # killed mid-call
            data.append(ToolCallRequested(agent_id=agent_id, tool_use_id="t1", name="Bash"))
        await store.append(f"agent-{agent_id}", [NewEvent(d, meta) for d in data])
    last = await store.head()
    assert app.services is not None
    await app.services.runner.wait_for(last)

    def statuses(body: dict[str, Any]) -> dict[str, str]:
        return {a["id"]: a["status"] for a in body["agents"]}

    cut = {"r1-b": "interrupted", "r1-v": "interrupted", "r1-p": "completed"}
    assert statuses((await client.get("/v1/agents")).json()) == cut
    builder = (await client.get("/v1/agents/r1-b")).json()
    assert builder["status"] == "interrupted"
    # The call it was making never ended: interrupted too, not "running" for ever.
    assert builder["tool_calls"]["last"]["status"] == "interrupted"
    only = (await client.get("/v1/agents", params={"status": "interrupted"})).json()
    assert sorted(a["id"] for a in only["agents"]) == ["r1-b", "r1-v"]
    fleet = (await client.get("/v1/fleet")).json()["agents"]
    assert fleet["active"] == 0
    assert fleet["by_status"]["interrupted"] == 2 and fleet["by_status"]["working"] == 0
    nodes = (await client.get("/v1/graph")).json()["nodes"]
    assert {n["id"]: n["status"] for n in nodes} == cut
    # As the log had it at a past position (the head is now).
    past = (await client.get("/v1/agents", params={"at": last - 1})).json()
    assert statuses(past)["r1-b"] == "working"
    assert past["agents"][0]["tool_calls"]["last"]["status"] == "running"
    # Conducted again (`fleet resume` holds the run's lease): what the log says.
    lease = await store.leases.acquire_lease("run-r1", process_owner(), 60)
    try:
        resumed = statuses((await client.get("/v1/agents")).json())
        assert resumed == {"r1-b": "working", "r1-v": "created", "r1-p": "completed"}
        builder = (await client.get("/v1/agents/r1-b")).json()
        assert builder["tool_calls"]["last"]["status"] == "running"
        fleet = (await client.get("/v1/fleet")).json()["agents"]
        assert fleet["active"] == 2 and "interrupted" not in fleet["by_status"]
    finally:
        await store.leases.release_leases([lease.key], lease.owner)


# -- scoping ------------------------------------------------------------------


@pytest.mark.parametrize("name", SCOPED_VIEWS)
async def test_every_view_takes_run_id(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, name: str
) -> None:
    """The board, graph and fleet scope to a run as the CLI does (they refused it before)."""
    await _two_runs(app, store)
    response = await client.get(f"/v1/{name}", params={"run_id": "r2"})
    assert response.status_code == 200, response.text
    body = response.json()
    if name == "agents":
        assert {a["run_id"] for a in body["agents"]} == {"r2"}
        assert body["count"] == 3
    elif name == "fleet":
        assert body["agents"]["total"] == 3
        assert body["agents_created"] == 3
    elif name == "graph":
        assert {n["run_id"] for n in body["nodes"]} == {"r2"}
        assert [p["run_id"] for p in body["critical_paths"]] == ["r2"]
    elif name == "board":
        tasks = [t for column in body["columns"] for t in column["tasks"]]
        assert [t["id"] for t in tasks] == ["r2-t1"]
        assert body["count"] == 1
    else:
        assert [r["id"] for r in body["runs"]] == ["r2"]


async def test_scoped_fleet_totals_add_up_to_the_whole_fleet(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await _two_runs(app, store)
    whole = (await client.get("/v1/fleet")).json()
    parts = [(await client.get(f"/v1/fleet?run_id={r}")).json() for r in ("r1", "r2")]
    assert sum(p["agents"]["total"] for p in parts) == whole["agents"]["total"]
    for key in ("input", "output", "cache_write", "cache_read", "total"):
        assert sum(p["tokens"][key] for p in parts) == whole["tokens"][key]
    assert sum(p["cost_usd"] for p in parts) == pytest.approx(whole["cost_usd"])
    assert sum(p["context_tokens_in_use"] for p in parts) == whole["context_tokens_in_use"]
    for status, count in whole["agents"]["by_status"].items():
        assert sum(p["agents"]["by_status"][status] for p in parts) == count
    # The pace is the log's, whatever the scope.
    assert parts[0]["events"] == whole["events"]


@pytest.mark.parametrize(
    ("query", "nodes"),
    [
        ("role=builder", ["r1-a1", "r2-a1", "r2-a2"]),
        ("agent_id=r2-a0", ["r2-a0"]),
        ("status=completed&run_id=r1", ["r1-a0", "r1-a1"]),
        ("status=working", []),
        ("run_id=nowhere", []),
    ],
)
async def test_graph_scoped_by_agents(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, query: str, nodes: list[str]
) -> None:
    await _two_runs(app, store)
    body = (await client.get(f"/v1/graph?{query}")).json()
    assert [n["id"] for n in body["nodes"]] == nodes
    for edge in body["edges"]:
        assert edge["from"] in nodes and edge["to"] in nodes


@pytest.mark.parametrize(
    ("path", "empty"),
    [
        ("/v1/agents?run_id=nowhere", lambda b: b["agents"] == [] and b["count"] == 0),
        ("/v1/agents?agent_id=nobody", lambda b: b["agents"] == [] and b["count"] == 0),
        ("/v1/runs?run_id=nowhere", lambda b: b["runs"] == [] and b["count"] == 0),
        ("/v1/runs?agent_id=nobody", lambda b: b["runs"] == []),
        ("/v1/board?run_id=nowhere", lambda b: b["count"] == 0 and len(b["columns"]) == 6),
        ("/v1/fleet?agent_id=nobody", lambda b: b["agents"]["total"] == 0 and b["cost_usd"] == 0),
    ],
)
async def test_a_filter_naming_nothing_gives_an_empty_view(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, path: str, empty: object
) -> None:
    await _two_runs(app, store)
    response = await client.get(path)
    assert response.status_code == 200
    assert empty(response.json())  # type: ignore[operator]


@pytest.mark.parametrize("path", ["/v1/agents/nobody", "/v1/runs/nowhere"])
async def test_an_item_that_does_not_exist_is_404(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, path: str
) -> None:
    await _two_runs(app, store)
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert path.rsplit("/", 1)[1] in response.json()["detail"]


async def test_one_run_and_the_runs_of_an_agent(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await _two_runs(app, store)
    run = (await client.get("/v1/runs/r2")).json()
    assert run["id"] == "r2"
    assert run["agents"] == ["r2-a0", "r2-a1", "r2-a2"]
    listed = (await client.get("/v1/runs?agent_id=r2-a1")).json()
    assert listed["runs"] == [run]


async def test_board_by_assignee(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await _two_runs(app, store)
    moved = await store.append(
        "task-r1-t1",
        [
            NewEvent(
                TaskMoved(task_id="r1-t1", column="REVIEW", assignee="r1-a1"), Meta(run_id="r1")
            )
        ],
    )
    assert app.services is not None
    await app.services.runner.wait_for(moved[-1].position)
    body = (await client.get("/v1/board?agent_id=r1-a1")).json()
    assert body["count"] == 1
    [review] = [c for c in body["columns"] if c["tasks"]]
    assert review["name"] == "REVIEW"
    assert [t["id"] for t in review["tasks"]] == ["r1-t1"]
    assert (await client.get("/v1/board?agent_id=r2-a1")).json()["count"] == 0


# -- paging -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "key"), [("agents", "agents"), ("runs", "runs")])
async def test_pages_follow_next_to_every_item_once(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, name: str, key: str
) -> None:
    await _two_runs(app, store)
    await seed(store, run_id="r3", agents=2)
    await wait_until(
        lambda: app.services is not None and app.services.runner.agent("r3-a1") is not None
    )
    everything = (await client.get(f"/v1/{name}")).json()
    assert everything["next"] is None
    seen: list[str] = []
    after = 0
    pages = 0
    while True:
        body = (await client.get(f"/v1/{name}", params={"limit": 2, "after": after})).json()
        pages += 1
        assert body["count"] == everything["count"]
        assert len(body[key]) <= 2
        seen += [item["id"] for item in body[key]]
        if body["next"] is None:
            break
        after = body["next"]
    assert seen == [item["id"] for item in everything[key]]
    assert pages == -(-everything["count"] // 2)


async def test_a_filtered_page_keeps_its_cursor_meaning(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await _two_runs(app, store)
    first = (await client.get("/v1/agents?role=builder&limit=1")).json()
    assert [a["id"] for a in first["agents"]] == ["r1-a1"]
    assert first["count"] == 3
    second = (await client.get(f"/v1/agents?role=builder&limit=5&after={first['next']}")).json()
    assert [a["id"] for a in second["agents"]] == ["r2-a1", "r2-a2"]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("params", "matches"),
    [
        ({"status": "completed"}, lambda a: a["status"] == "completed"),
        (
            {"role": "builder", "run_id": "r2"},
            lambda a: a["role"] == "builder" and a["run_id"] == "r2",
        ),
        ({"model": "sim-small", "run_id": "r1"}, lambda a: a["run_id"] == "r1"),
        ({"external": "false", "agent_id": "r1-a1"}, lambda a: a["id"] == "r1-a1"),
    ],
)
async def test_a_filtered_page_now_and_in_the_past_holds_the_cards_that_match(
    app: FleetApp,
    client: httpx.AsyncClient,
    store: SQLiteEventStore,
    params: dict[str, str],
    matches: Any,
) -> None:
    """Pages are cut from the records before the cards are made: the same agents as
    filtering every card, now and at a past position."""
    head = await _two_runs(app, store)
    for at in ({}, {"at": str(head // 2)}, {"at": str(head)}):
        every = (await client.get("/v1/agents", params=at)).json()["agents"]
        expected = [a for a in every if matches(a)]
        body = (await client.get("/v1/agents", params={**params, **at, "limit": "100"})).json()
        assert body["agents"] == expected
        assert body["count"] == len(expected)
        for card in expected:
            one = (await client.get(f"/v1/agents/{card['id']}", params=at)).json()
            assert one == card
        if set(params) <= {"status", "role", "run_id", "agent_id"}:  # the fleet's scope
            totals = (await client.get("/v1/fleet", params={**params, **at})).json()
            assert totals["agents"]["total"] == len(expected)
            assert totals["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in expected))
    assert expected  # at the head, some agent matches


async def test_timeline_pages_by_position_and_filters_by_agent(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await _two_runs(app, store)
    whole = (await client.get("/v1/runs/r1/timeline")).json()
    assert whole["next"] is None
    positions: list[int] = []
    after = 0
    while True:
        body = (await client.get(f"/v1/runs/r1/timeline?limit=4&after={after}")).json()
        positions += [e["position"] for e in body["entries"]]
        if body["next"] is None:
            break
        after = body["next"]
    assert positions == [e["position"] for e in whole["entries"]]
    mine = (await client.get("/v1/runs/r1/timeline?agent_id=r1-a1")).json()
    assert mine["entries"]
    assert {e["agent_id"] for e in mine["entries"]} == {"r1-a1"}


# -- ETag, 304 and the position ------------------------------------------------


TIMELINE = "runs/r1/timeline"


@pytest.mark.parametrize("name", [*SCOPED_VIEWS, "agents/r1-a0", "runs/r1", TIMELINE])
async def test_etag_gives_304_until_the_view_changes(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, name: str
) -> None:
    last = await _two_runs(app, store)
    first = await client.get(f"/v1/{name}")
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert int(first.headers["fleet-position"]) >= last
    again = await client.get(f"/v1/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    # Another run's events change every unscoped view but these: r1's own.
    more = await seed(store, run_id="r9", agents=1)
    assert app.services is not None
    await app.services.runner.wait_for(more[-1].position)
    after = await client.get(f"/v1/{name}", headers={"If-None-Match": etag})
    if name in ("agents/r1-a0", "runs/r1", TIMELINE):
        assert after.status_code == 304
    else:
        assert after.status_code == 200
        assert after.headers["etag"] != etag
    assert int(after.headers["fleet-position"]) >= more[-1].position


async def test_a_scoped_view_keeps_its_etag_while_other_runs_move(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await _two_runs(app, store)
    first = await client.get("/v1/agents?run_id=r1")
    more = await seed(store, run_id="r9", agents=1)
    assert app.services is not None
    await app.services.runner.wait_for(more[-1].position)
    again = await client.get(
        "/v1/agents?run_id=r1", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert int(again.headers["fleet-position"]) > int(first.headers["fleet-position"])


async def test_the_etag_names_the_body(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """Equal bodies have equal ETags; `*` and a list in If-None-Match match too."""
    await _two_runs(app, store)
    a = await client.get("/v1/board?at=3")
    b = await client.get("/v1/board?at=3")
    assert a.content == b.content
    assert a.headers["etag"] == b.headers["etag"]
    assert a.headers["fleet-position"] == "3"
    listed = f'"nope", W/{a.headers["etag"]}'
    assert (
        await client.get("/v1/board?at=3", headers={"If-None-Match": listed})
    ).status_code == 304
    assert (await client.get("/v1/board?at=3", headers={"If-None-Match": "*"})).status_code == 304
    other = await client.get("/v1/board?at=3", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert json.loads(other.content) == json.loads(a.content)


# -- waiting ------------------------------------------------------------------


async def test_wait_answers_once_the_view_reaches_the_position(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    last = await _two_runs(app, store)
    poll = asyncio.create_task(client.get(f"/v1/fleet?min_position={last + 1}&wait=30"))
    await asyncio.sleep(0)
    assert not poll.done()
    await append_ticks(store, 1)
    response = await asyncio.wait_for(poll, timeout=20)
    assert response.status_code == 200
    assert int(response.headers["fleet-position"]) >= last + 1
    assert response.json()["events"]["total"] >= last + 1


async def test_wait_that_runs_out_answers_the_view_as_it_is(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    last = await _two_runs(app, store)
    response = await client.get(f"/v1/agents?min_position={last + 100}&wait=0.2")
    assert response.status_code == 200
    assert response.headers["fleet-position"] == str(last)
    assert response.json()["count"] == 5


async def test_wait_with_a_matching_etag_is_304_when_nothing_changed(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    last = await _two_runs(app, store)
    etag = (await client.get("/v1/runs?run_id=r1")).headers["etag"]
    poll = asyncio.create_task(
        client.get(f"/v1/runs?run_id=r1&min_position={last + 1}&wait=30",
                   headers={"If-None-Match": etag})
    )  # fmt: skip
    await append_ticks(store, 1)
    response = await asyncio.wait_for(poll, timeout=20)
    assert response.status_code == 304
    assert int(response.headers["fleet-position"]) >= last + 1


def _request_tasks() -> set[asyncio.Task[object]]:
    """The server's request tasks still running (the server runs in this event loop)."""
    return {
        t for t in asyncio.all_tasks()
        if not t.done() and "run_asgi" in getattr(t.get_coro(), "__qualname__", "")
    }  # fmt: skip


async def test_a_client_leaving_a_long_poll_leaves_no_task_behind(
    server: Serving, http: httpx.AsyncClient
) -> None:
    """The server's request task ends at the disconnect, not when the 30 s wait runs out."""
    head = (await http.get("/healthz")).json()["head"]
    before = _request_tasks()
    _reader, writer = await raw_get(server.url, f"/v1/graph?min_position={head + 1}&wait=30")
    await wait_until(
        lambda: len(_request_tasks() - before) == 1, within=60, what="a waiting request"
    )
    waiting = _request_tasks() - before
    reset(writer)
    await wait_until(lambda: all(t.done() for t in waiting), within=60, what="the task to end")
    assert not _request_tasks() - before
    # The server goes on answering long polls.
    assert (await http.get(f"/v1/graph?min_position={head}&wait=1")).status_code == 200


async def test_a_server_shutting_down_answers_its_waiting_long_polls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not cancelled by uvicorn's graceful-shutdown backstop 5 s later: that gave the
    client a 500 and the server's log a traceback."""
    config = ApiConfig(db=tmp_path / "fleet.db", runtime=False)
    async with httpx.AsyncClient(timeout=60) as http:
        async with serving(config) as server:
            head = (await http.get(f"{server.url}/healthz")).json()["head"]
            before = _request_tasks()
            polls = [
                asyncio.create_task(
                    http.get(f"{server.url}/v1/{view}?min_position={head + 1}&wait=30")
                )
                for view in ("fleet", "agents")
            ]
            await wait_until(
                lambda: len(_request_tasks() - before) == 2, within=60, what="two waiting polls"
            )
        # Leaving `serving` shut the server down.
        answers = await asyncio.gather(*polls)
    assert [a.status_code for a in answers] == [200, 200]
    assert int(answers[0].headers["Fleet-Position"]) == head
    assert answers[1].json()["agents"] == []
    assert "graceful shutdown exceeded" not in caplog.text


async def test_a_long_poll_on_stopped_projections_is_503_like_any_query(
    server: Serving, http: httpx.AsyncClient
) -> None:
    """Waiting or not, a view asked of projections that stopped says so (it was a 500 when
    the wait's error came out of its task group as an ExceptionGroup)."""
    head = (await http.get("/healthz")).json()["head"]
    await server.app.services.runner.aclose()  # the projections stop, as on a failure
    for query in ("min_position=0", f"min_position={head + 5}&wait=2"):
        response = await http.get(f"/v1/fleet?{query}")
        assert response.status_code == 503, (query, response.text)
        assert response.headers["retry-after"] == "1"
        assert response.json()["detail"] == "the projection runner is closed", response.text


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/v1/fleet?run=r1", ["run"]),
        ("/v1/board?status=completed&role=x", ["role", "status"]),
        ("/v1/agents?agent=a&bogus=1", ["agent", "bogus"]),
        ("/v1/runs/r1/timeline?at=3", ["at"]),
        ("/v1/agents/r1-a0?run_id=r1", ["run_id"]),
        ("/v1/runs/r1/export?x=1", ["x"]),
    ],
)
async def test_unknown_parameters_are_400_naming_them(
    client: httpx.AsyncClient, path: str, named: list[str]
) -> None:
    response = await client.get(path)
    assert response.status_code == 400
    body = response.json()
    for name in named:
        assert repr(name) in body["detail"]
    assert [e["loc"] for e in body["errors"]] == [["query", name] for name in named]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("min_position=1&wait=31", "less than or equal to 30"),
        ("min_position=1&wait=-1", "greater than or equal to 0"),
        ("min_position=1&wait=nan", "finite number"),
        ("wait=5", "needs `min_position`"),
        ("at=1&min_position=1", "cannot be combined"),
        ("status=sleeping", "status"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=-1", "after"),
    ],
)
async def test_bad_values_are_400_saying_why(
    client: httpx.AsyncClient, query: str, says: str
) -> None:
    response = await client.get(f"/v1/agents?{query}")
    assert response.status_code == 400
    assert says in response.json()["detail"]


async def test_min_position_beyond_the_head_without_wait_says_to_wait(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/board?min_position=5")
    assert response.status_code == 400
    assert "wait=" in response.json()["detail"]


async def test_a_view_already_rendered_at_a_position_is_not_rendered_again(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """Polls at one position share one rendering; a new position renders anew (never stale)."""
    await _two_runs(app, store)
    assert app.services is not None
    renders = app.services.renders
    first = await client.get("/v1/graph?run_id=r1")
    hits = renders.hits
    again = await client.get(
        "/v1/graph?run_id=r1", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert (await client.get("/v1/graph?run_id=r1")).content == first.content
    assert renders.hits == hits + 2
    more = await seed(store, run_id="r1b", agents=1)
    await app.services.runner.wait_for(more[-1].position)
    whole = await client.get("/v1/graph")
    assert renders.hits == hits + 2
    assert "r1b-a0" in whole.text


@pytest.mark.parametrize(
    ("path", "unknown", "takes"),
    [
        # The stream resumes with `from` (or Last-Event-ID); `after` is the page's cursor.
        ("/v1/events/stream?after=3", "'after'", "from"),
        ("/v1/events?from=3", "'from'", "after"),
        ("/v1/events?types=AgentCreated", "'types'", "type"),
        ("/v1/approvals?state=pending", "'state'", "status"),
    ],
)
async def test_an_unknown_parameter_is_named_with_the_ones_the_path_takes(
    client: httpx.AsyncClient, path: str, unknown: str, takes: str
) -> None:
    # These routes said only "after: Extra inputs are not permitted"; the views named both.
    response = await client.get(path)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert f"unknown query parameter {unknown}" in detail
    assert takes in detail.partition(" takes ")[2].split(", ")
    assert response.json()["errors"][0]["loc"] == ["query", unknown.strip("'")]
