"""`GET /v1/agents?changed_after=P`, `/v1/runs?changed_after=P` and `/v1/board?changed_after=P`:
the cards that changed after P, so a client holding the list as of P brings it up to date
without every card again."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from apitest_support import JSON, hook_payload, seed

from api import FleetApp
from events import (
    AgentCommanded,
    AgentDeleted,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    RecordedEvent,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    Usage,
)

SESSION = "5e6f7a8b-1c2d-4e3f-8a9b-0c1d2e3f4a5b"


def _hook(point: str, **fields: object) -> bytes:
    return hook_payload(SESSION, point, **fields)


async def _log(store: SQLiteEventStore, client: httpx.AsyncClient) -> list[int]:
    """Two runs, a later command and a deletion, a response outside the run's meta, a hook
    that only logs (changes no card),
    and an external session with a subagent (a subagent's first hook makes its session's
    card too): every position of the log."""
    recorded: list[RecordedEvent] = await seed(store, run_id="r1", agents=3)
    recorded += await seed(store, run_id="r2", agents=2)
    meta = Meta(run_id="r1", agent_id="r1-a1")
    recorded += await store.append(
        "agent-r1-a1",
        [
            NewEvent(AgentCommanded(agent_id="r1-a1", prompt="once more"), meta),
            NewEvent(
                HookInvoked(point="PreToolUse", kind="python", hook="audit", agent_id="r1-a1"), meta
            ),
        ],
    )
    recorded += await store.append(
        "agent-r2-a0", [NewEvent(AgentDeleted(agent_id="r2-a0"), Meta(run_id="r2"))]
    )
    # A response whose meta names no run still counts in its agent's run (r1's cost moves).
    usage = Usage(input_tokens=50, output_tokens=5)
    recorded += await store.append(
        "agent-r1-a0",
        [NewEvent(ModelResponded(agent_id="r1-a0", model="sim-small", usage=usage, cost_usd=0.5),
                  Meta(agent_id="r1-a0"))],
    )  # fmt: skip
    for body in (
        _hook("UserPromptSubmit", prompt="fix the bug"),
        _hook("PreToolUse", agent_id="sub1", agent_type="Explore", tool_name="Read",
              tool_input={"file_path": "a.py"}, tool_use_id="t1"),
        _hook("PreToolUse", tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="t2"),
    ):  # fmt: skip
        response = await client.post("/v1/hooks/ingest", content=body, headers=JSON)
        assert response.status_code == 201, response.text
    return list(range(0, await store.head() + 1))


def _merged(held: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a client does with the answer: replace the changed cards, add the new ones at
    the end (agents are listed in the order they were created, runs as they started)."""
    by_id = {card["id"]: card for card in held}
    by_id.update((card["id"], card) for card in changed)
    return list(by_id.values())


async def _list(client: httpx.AsyncClient, name: str, query: str) -> dict[str, Any]:
    response = await client.get(f"/v1/{name}{query}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _agents(client: httpx.AsyncClient, query: str) -> dict[str, Any]:
    return await _list(client, "agents", query)


# Five fleet agents, the session and its subagent; two runs.
LISTS = [("agents", 7), ("runs", 2)]


@pytest.mark.parametrize(("name", "count"), LISTS)
async def test_the_view_at_p_with_the_cards_changed_after_p_is_the_view_now(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, name: str, count: int
) -> None:
    positions = await _log(store, client)
    now = await _list(client, name, f"?min_position={positions[-1]}")
    assert now["count"] == count
    for p in positions:
        held = (await _list(client, name, f"?at={p}"))[name]
        changed = await _list(client, name, f"?changed_after={p}")
        assert _merged(held, changed[name]) == now[name], f"after {p}"
        assert changed["count"] == len(changed[name])
        for card in changed[name]:
            assert card["position"] > p
        assert [c for c in now[name] if c["position"] <= p] == [
            c for c in held if c["id"] not in {d["id"] for d in changed[name]}
        ]


@pytest.mark.parametrize(("name", "count"), LISTS)
async def test_between_two_past_positions_too(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, name: str, count: int
) -> None:
    """A time slider moved forward from P to Q asks only for what changed in between."""
    positions = await _log(store, client)
    for q in positions[::4]:
        then = (await _list(client, name, f"?at={q}"))[name]
        for p in positions[: q + 1 : 3]:
            held = (await _list(client, name, f"?at={p}"))[name]
            changed = (await _list(client, name, f"?at={q}&changed_after={p}"))[name]
            assert _merged(held, changed) == then, f"from {p} to {q}"
            assert all(p < card["position"] <= q for card in changed)


@pytest.mark.parametrize(("name", "count"), LISTS)
async def test_back_from_q_to_p_the_cards_changed_after_p_asked_by_id(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore, name: str, count: int
) -> None:
    """A time slider moved back from Q to P: the cards held that changed after P, asked for
    by id as of P, replace theirs; those P lacks were made after it (what the dashboard does)."""
    positions = await _log(store, client)
    key = "agent_id" if name == "agents" else "run_id"
    for q in positions[::3]:
        held = (await _list(client, name, f"?at={q}"))[name]
        for p in positions[: q + 1 : 2]:
            stale = [c["id"] for c in held if c["position"] > p]
            ids = "".join(f"&{key}={i}" for i in stale)
            earlier = (await _list(client, name, f"?at={p}{ids}"))[name] if stale else []
            assert {c["id"] for c in earlier} <= set(stale)
            then = {c["id"]: c for c in earlier}
            back = [then.get(c["id"], c) for c in held if c["id"] not in stale or c["id"] in then]
            assert back == (await _list(client, name, f"?at={p}"))[name], f"from {q} to {p}"


async def test_a_hook_that_changes_no_card_moves_no_card(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await seed(store, run_id="r1", agents=2)
    head = await store.head()
    meta = Meta(run_id="r1", agent_id="r1-a0")
    (logged,) = await store.append(
        "agent-r1-a0",
        [NewEvent(HookInvoked(point="Stop", kind="python", hook="audit", agent_id="r1-a0"), meta)],
    )
    body = await _agents(client, f"?changed_after={head}&min_position={logged.position}")
    assert body == {"count": 0, "agents": [], "next": None}
    (blocked,) = await store.append(
        "agent-r1-a0",
        [NewEvent(HookInvoked(point="PreToolUse", kind="python", hook="guard", agent_id="r1-a0",
                              decision="block", tool_use_id="t9"), meta)],
    )  # fmt: skip
    body = await _agents(client, f"?changed_after={head}&min_position={blocked.position}")
    assert [(a["id"], a["blocked_calls"], a["position"]) for a in body["agents"]] == [
        ("r1-a0", 1, blocked.position)
    ]


async def test_with_filters_and_pages(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await seed(store, run_id="r1", agents=3)
    middle = await store.head()
    await seed(store, run_id="r2", agents=3)
    await store.append("agent-r1-a2", [NewEvent(AgentDeleted(agent_id="r1-a2"), Meta(run_id="r1"))])
    head = await store.head()
    changed = await _agents(client, f"?changed_after={middle}&min_position={head}")
    assert [a["id"] for a in changed["agents"]] == ["r1-a2", "r2-a0", "r2-a1", "r2-a2"]
    scoped = await _agents(client, f"?changed_after={middle}&run_id=r1")
    assert [a["id"] for a in scoped["agents"]] == ["r1-a2"]
    first = await _agents(client, f"?changed_after={middle}&limit=2")
    assert ([a["id"] for a in first["agents"]], first["count"]) == (["r1-a2", "r2-a0"], 4)
    rest = await _agents(client, f"?changed_after={middle}&after={first['next']}")
    assert [a["id"] for a in rest["agents"]] == ["r2-a1", "r2-a2"]


async def test_runs_by_id_and_too_many_ids(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    for run in ("r1", "r2", "r3"):
        await seed(store, run_id=run)
    runs = await _list(client, "runs", f"?run_id=r3&run_id=r1&min_position={await store.head()}")
    assert [r["id"] for r in runs["runs"]] == ["r1", "r3"]
    many = "".join(f"&agent_id=a{i}" for i in range(1001))
    response = await client.get(f"/v1/agents?limit=1{many}")
    assert response.status_code == 400
    assert "agent_id" in response.json()["detail"]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("?changed_after=-1", "changed_after"),
        ("?changed_after=two", "changed_after"),
        ("?changed_after=1.5", "changed_after"),
        ("?changed_after=3&at=2", "is after at (2)"),
        ("?changed_after=999", "beyond the view's position"),
        ("?changed_after=1&changed_after=2", "changed_after"),
    ],
)
async def test_bad_changed_after_is_400_and_says_why(
    client: httpx.AsyncClient, store: SQLiteEventStore, query: str, says: str
) -> None:
    await seed(store)
    for name in ("agents", "runs", "board"):
        response = await client.get(f"/v1/{name}{query}")
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert says in json.dumps(response.json())


async def _board_log(store: SQLiteEventStore) -> list[int]:
    """Two runs' tasks created, moved forward, sent back and finished, between other events
    (the runs' agents): every position of the log."""
    await seed(store, run_id="r1", agents=2)  # its task r1-t1: PLAN, then BUILD
    await seed(store, run_id="r2", agents=1)
    moves = [
        ("r3-t1", TaskCreated(task_id="r3-t1", title="third", column="PLAN")),
        ("r1-t1", TaskMoved(task_id="r1-t1", column="REVIEW", assignee="r1-a0")),
        ("r1-t1", TaskMoved(task_id="r1-t1", column="BUILD", reason="changes requested")),
        ("r2-t1", TaskMoved(task_id="r2-t1", column="FAILED", reason="gave up")),
        ("r3-t1", TaskMoved(task_id="r3-t1", column="BUILD", artifacts=["a.py"])),
        ("r1-t1", TaskMoved(task_id="r1-t1", column="DONE")),
    ]
    for task, moved in moves:
        await store.append(f"task-{task}", [NewEvent(moved, Meta(run_id=task[:2]))])
        await seed(store, run_id=f"x{await store.head()}", agents=1)  # and other events between
    return list(range(0, await store.head() + 1))


def _board_merged(held: dict[str, Any], changed: dict[str, Any]) -> dict[str, Any]:
    """What a client does with the answer: each changed task out of the column it was in and
    into its own, in the order the tasks were created (their history's first position)."""
    moved = {t["id"] for c in changed["columns"] for t in c["tasks"]}
    columns = []
    for old, new in zip(held["columns"], changed["columns"], strict=True):
        tasks = [t for t in old["tasks"] if t["id"] not in moved] + new["tasks"]
        tasks.sort(key=lambda t: t["history"][0]["position"])
        columns.append({"name": old["name"], "tasks": tasks})
    return {"count": sum(len(c["tasks"]) for c in columns), "columns": columns}


async def test_the_board_at_p_with_the_tasks_moved_after_p_is_the_board_now(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    positions = await _board_log(store)
    now = await _list(client, "board", f"?min_position={positions[-1]}")
    # r3-t1 and the six other runs' tasks in BUILD, r1-t1 DONE, r2-t1 FAILED.
    assert [len(c["tasks"]) for c in now["columns"]] == [0, 7, 0, 0, 1, 1]
    for p in positions:
        held = await _list(client, "board", f"?at={p}")
        changed = await _list(client, "board", f"?changed_after={p}")
        assert _board_merged(held, changed) == now, f"after {p}"
        tasks = [t for c in changed["columns"] for t in c["tasks"]]
        assert changed["count"] == len(tasks)
        assert all(t["history"][-1]["position"] > p for t in tasks)
    for q in positions[::5]:  # a time slider moved forward from P to Q
        then = await _list(client, "board", f"?at={q}")
        for p in positions[: q + 1 : 4]:
            held = await _list(client, "board", f"?at={p}")
            changed = await _list(client, "board", f"?at={q}&changed_after={p}")
            assert _board_merged(held, changed) == then, f"from {p} to {q}"


async def test_the_tasks_moved_after_p_of_one_run(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    positions = await _board_log(store)
    middle = positions[len(positions) // 2]
    changed = await _list(client, "board", f"?changed_after={middle}&run_id=r1")
    assert [
        (c["name"], [t["id"] for t in c["tasks"]]) for c in changed["columns"] if c["tasks"]
    ] == [("DONE", ["r1-t1"])]
