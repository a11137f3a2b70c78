"""An external session nobody runs any more stops looking alive: judged now, over HTTP.

A real process stands for the Claude Code session (`fleet hook-forward` names
Claude Code's process in `X-Fleet-Process`); killing it is what a SIGKILLed
session, a hard-closed terminal or a lost machine leaves behind: no Stop, no
SessionEnd. The end-to-end test with the real Claude Code is in
tests/claude_code/test_claude_code_real.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apitest_support import JSON, hook_payload

from api import ApiConfig, FleetApp
from projections import PROCESS_HEADER, process_start, this_host

SESSION = "9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
AGENT = f"ext-{SESSION}"


@pytest.fixture
def config(tmp_path: Path) -> ApiConfig:
    """A log of its own; a working session with no process to look at is stale after 3 s."""
    return ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, runtime=False, stale_after_s=3)


@pytest.fixture
def session_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing for Claude Code (killed at the end if the test did not)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child
    child.kill()
    child.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def header(pid: int, start: int | None = None) -> dict[str, str]:
    """`X-Fleet-Process` as `fleet hook-forward` writes it, for process `pid` of this host."""
    host = this_host()
    if host is None:
        pytest.skip("no /proc here: only the time-based judgement applies")
    start = process_start(pid) if start is None else start
    value = (f"pid={pid};start={start};boot_id={host.boot_id};machine_id={host.machine_id};"
             f"pid_ns={host.pid_ns}")  # fmt: skip
    return {**JSON, PROCESS_HEADER: value}


async def post(http: httpx.AsyncClient, point: str, headers: dict[str, str] | None = None) -> int:
    fields: dict[str, Any] = {"prompt": "fix it"} if point == "UserPromptSubmit" else {}
    body = hook_payload(SESSION, point, **fields)
    response = await http.post("/v1/hooks/ingest", content=body, headers=headers or JSON)
    assert response.status_code == 201, response.text
    position: int = response.json()["position"]
    return position


async def later_event(http: httpx.AsyncClient) -> None:
    """Another session's hook: a position before it is a past one (the head is now)."""
    body = hook_payload("5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "SessionStart")
    assert (await http.post("/v1/hooks/ingest", content=body, headers=JSON)).status_code == 201


async def until(http: httpx.AsyncClient, path: str, ready: Callable[[Any], bool]) -> Any:
    async with asyncio.timeout(30):
        while not ready(body := (await http.get(path)).json()):
            await asyncio.sleep(0.1)
    return body


async def test_a_session_whose_process_died_is_interrupted_now_and_working_in_the_past(
    http: httpx.AsyncClient, session_process: subprocess.Popen[bytes]
) -> None:
    await post(http, "SessionStart", header(session_process.pid))
    at = await post(http, "UserPromptSubmit")  # an http hook: no header, the process is kept
    card = (await http.get(f"/v1/agents/{AGENT}")).json()
    assert card["status"] == "working"
    assert card["process"]["pid"] == session_process.pid

    session_process.kill()  # no Stop, no SessionEnd
    session_process.wait()
    await later_event(http)

    card = (await http.get(f"/v1/agents/{AGENT}")).json()
    assert card["status"] == "interrupted"
    listed = (await http.get("/v1/agents", params={"status": "interrupted"})).json()
    assert [a["id"] for a in listed["agents"]] == [AGENT]
    assert (await http.get("/v1/agents", params={"status": "working"})).json()["count"] == 0
    fleet = (await http.get("/v1/fleet")).json()["agents"]
    assert fleet["active"] == 1  # the later session, created
    assert fleet["by_status"]["interrupted"] == 1 and fleet["by_status"]["working"] == 0
    nodes = (await http.get("/v1/graph")).json()["nodes"]
    assert [n["status"] for n in nodes if n["id"] == AGENT] == ["interrupted"]
    scoped = (await http.get("/v1/fleet", params={"role": "external"})).json()["agents"]
    assert scoped["by_status"]["interrupted"] == 1 and scoped["active"] == 1
    # The log is not rewritten: as of its last hook, the session was working.
    past = (await http.get(f"/v1/agents/{AGENT}", params={"at": at})).json()
    assert past["status"] == "working"
    past_fleet = (await http.get("/v1/fleet", params={"at": at})).json()["agents"]
    assert past_fleet["active"] == 1 and "interrupted" not in past_fleet["by_status"]
    assert past_fleet["by_status"]["working"] == 1


async def test_the_graphs_status_filter_sees_the_status_its_nodes_show(
    http: httpx.AsyncClient, dead_pid: int
) -> None:
    """As the agents' filter does: a node shown interrupted is found by `status=interrupted`."""
    await post(http, "SessionStart", header(dead_pid, start=0))
    at = await post(http, "UserPromptSubmit")
    await later_event(http)

    interrupted = (await http.get("/v1/graph", params={"status": "interrupted"})).json()
    assert [(n["id"], n["status"]) for n in interrupted["nodes"]] == [(AGENT, "interrupted")]
    working = (await http.get("/v1/graph", params={"status": "working"})).json()
    assert working["nodes"] == []
    # As of its last hook, it was working.
    past = (await http.get("/v1/graph", params={"status": "working", "at": at})).json()
    assert [(n["id"], n["status"]) for n in past["nodes"]] == [(AGENT, "working")]


async def test_a_long_poll_sees_the_judgement_when_its_wait_ends(
    http: httpx.AsyncClient, session_process: subprocess.Popen[bytes]
) -> None:
    """No event marks the moment a session is judged gone: a client waiting for the next
    position is not woken by it, but the answer it gets when its wait ends says it (a new
    ETag, at the same position)."""
    await post(http, "SessionStart", header(session_process.pid))
    head = await post(http, "UserPromptSubmit")
    before = await http.get(f"/v1/agents/{AGENT}")
    assert before.json()["status"] == "working"
    params = {"min_position": head + 1, "wait": 2}
    waiting = asyncio.create_task(
        http.get(f"/v1/agents/{AGENT}", params=params,
                 headers={"If-None-Match": before.headers["etag"]})
    )  # fmt: skip

    session_process.kill()
    session_process.wait()

    answer = await waiting
    assert answer.status_code == 200
    assert answer.json()["status"] == "interrupted"
    assert answer.headers["fleet-position"] == before.headers["fleet-position"] == str(head)


async def test_a_resumed_session_works_again(
    http: httpx.AsyncClient, session_process: subprocess.Popen[bytes], dead_pid: int
) -> None:
    """`claude --resume` is a new process: its SessionStart names it, and the session works."""
    await post(http, "SessionStart", header(dead_pid, start=0))
    await post(http, "UserPromptSubmit")
    assert (await http.get(f"/v1/agents/{AGENT}")).json()["status"] == "interrupted"

    await post(http, "SessionStart", header(session_process.pid))
    await post(http, "UserPromptSubmit")

    card = (await http.get(f"/v1/agents/{AGENT}")).json()
    assert card["status"] == "working"
    assert (await http.get("/v1/fleet")).json()["agents"]["active"] == 1


async def test_a_reused_pid_is_not_the_session(http: httpx.AsyncClient) -> None:
    """The pid runs (this test's own), but started at another time: another process."""
    start = process_start(os.getpid())
    assert start is not None
    await post(http, "SessionStart", header(os.getpid(), start=start + 1))
    await post(http, "UserPromptSubmit")

    assert (await http.get(f"/v1/agents/{AGENT}")).json()["status"] == "interrupted"


async def test_a_session_with_no_process_to_look_at_is_stale_after_a_while_until_a_hook_comes(
    http: httpx.AsyncClient,
) -> None:
    """http hooks only: nothing names the process, so only time speaks (3 s here)."""
    at = await post(http, "UserPromptSubmit")
    assert (await http.get(f"/v1/agents/{AGENT}")).json()["status"] == "working"

    card = await until(http, f"/v1/agents/{AGENT}", lambda c: c["status"] != "working")
    assert card["status"] == "stale"
    fleet = (await http.get("/v1/fleet")).json()["agents"]
    assert fleet["by_status"]["stale"] == 1 and fleet["active"] == 0
    await later_event(http)
    assert (await http.get(f"/v1/agents/{AGENT}", params={"at": at})).json()["status"] == (
        "working"
    )

    await post(http, "PreToolUse")  # it was only busy: its next hook brings it back
    assert (await http.get(f"/v1/agents/{AGENT}")).json()["status"] == "working"


async def test_a_waiting_session_is_not_stale(http: httpx.AsyncClient) -> None:
    """A session at its prompt (a Notification) may wait for hours: time does not judge it."""
    await post(http, "UserPromptSubmit")
    await post(http, "Notification")
    other = "0a1b2c3d-4e5f-4a6b-8c7d-9e8f7a6b5c4d"  # heard from at the same time, working
    body = hook_payload(other, "UserPromptSubmit", prompt="go")
    assert (await http.post("/v1/hooks/ingest", content=body, headers=JSON)).status_code == 201

    await until(http, f"/v1/agents/ext-{other}", lambda c: c["status"] == "stale")

    assert (await http.get(f"/v1/agents/{AGENT}")).json()["status"] == "waiting"


async def test_a_session_killed_before_its_first_prompt(
    http: httpx.AsyncClient, dead_pid: int
) -> None:
    """Opened, never prompted (`created`): its process judges it; without one, time does not
    (a session idle at its first prompt is silent too)."""
    await post(http, "SessionStart", header(dead_pid, start=0))
    assert (await http.get(f"/v1/agents/{AGENT}")).json()["status"] == "interrupted"

    unnamed = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"  # an http SessionStart: no process
    body = hook_payload(unnamed, "SessionStart")
    assert (await http.post("/v1/hooks/ingest", content=body, headers=JSON)).status_code == 201
    other = "0a1b2c3d-4e5f-4a6b-8c7d-9e8f7a6b5c4d"  # heard from at the same time, working
    body = hook_payload(other, "UserPromptSubmit", prompt="go")
    assert (await http.post("/v1/hooks/ingest", content=body, headers=JSON)).status_code == 201

    await until(http, f"/v1/agents/ext-{other}", lambda c: c["status"] == "stale")

    assert (await http.get(f"/v1/agents/ext-{unnamed}")).json()["status"] == "created"


@pytest.fixture
async def remote(app: FleetApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from another machine's address."""
    transport = httpx.ASGITransport(app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def test_a_process_named_by_a_poster_on_another_machine_is_not_kept(
    remote: httpx.AsyncClient, dead_pid: int
) -> None:
    """A remote poster cannot name a (dead) pid of this host and make a session look gone."""
    await post(remote, "SessionStart", header(dead_pid, start=0))
    await post(remote, "UserPromptSubmit")

    card = (await remote.get(f"/v1/agents/{AGENT}")).json()
    assert card["process"] is None
    assert card["status"] == "working"
