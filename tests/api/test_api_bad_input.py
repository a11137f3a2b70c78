"""Bad input gets a clear 4xx and changes nothing: numbers JSON cannot carry, orphans, a live run.

Each case was a 500 or a wrong answer once (issue 12): integers of more than
4,300 digits (Python refuses to convert them), NaN and Infinity (not JSON;
stored as null), `parent_id` naming no agent (an orphan was created), and the
timeline of a run still being written (422 about one time in 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from apitest_support import JSON, wait_until

from api import ApiConfig, FleetApp, Serving, create_app
from events import AgentCommanded, AgentCreated, Meta, NewEvent, RunStarted, SQLiteEventStore
from runtime import prepare_workspace

BIG = "9" * (sys.get_int_max_str_digits() + 1)

JSON_ROUTES = [
    ("/v1/hooks/ingest", '{"hook_event_name": "Stop", "session_id": "s1", "n": %s}'),
    ("/v1/agents", '{"name": "a", "role": "scout", "n": %s}'),
    ("/v1/agents/a1/commands", '{"prompt": "go", "n": %s}'),
    ("/v1/runs", '{"task": "t", "n": %s}'),
]


@pytest.fixture
async def config(tmp_path: Path) -> ApiConfig:
    """With the runtime: the agent and run routes are among the JSON routes."""
    workspace = await prepare_workspace(tmp_path / "repo")
    return ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, workspace=workspace)


@pytest.mark.parametrize(("path", "template"), JSON_ROUTES)
@pytest.mark.parametrize(
    ("number", "detail"),
    [(BIG, "more than 4300 digits"), ("-" + BIG, "more than 4300 digits"),
     ("NaN", "NaN is not a JSON number"), ("Infinity", "Infinity is not a JSON number"),
     ("-Infinity", "-Infinity is not a JSON number"), ("1e999", "out of range"),
     ("-1e400", "out of range")],
)  # fmt: skip
async def test_numbers_json_cannot_carry_are_400_on_every_json_route_and_write_nothing(
    client: httpx.AsyncClient,
    store: SQLiteEventStore,
    path: str,
    template: str,
    number: str,
    detail: str,
) -> None:
    response = await client.post(path, content=template % number, headers=JSON)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == "urn:fleet:problem:malformed-json"
    assert detail in problem["detail"]
    assert await store.head() == 0


async def test_big_but_convertible_numbers_are_kept_exactly(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    big = "9" * sys.get_int_max_str_digits()
    body = f'{{"hook_event_name": "Stop", "session_id": "s1", "n": {big}, "f": 1e308}}'
    assert (await client.post("/v1/hooks/ingest", content=body, headers=JSON)).status_code == 201
    (event,) = await store.read_all()
    assert event.data.payload["n"] == int(big)  # type: ignore[union-attr]
    assert event.data.payload["f"] == 1e308  # type: ignore[union-attr]


async def test_a_parent_that_is_no_agent_is_422_and_creates_nothing(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    response = await client.post(
        "/v1/agents", json={"name": "orphan", "role": "scout", "parent_id": "nobody-1"}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["loc"] == ["body", "parent_id"]
    assert "nobody-1" in problem["detail"]
    assert await store.head() == 0


async def test_a_parent_that_is_an_agent_is_kept(client: httpx.AsyncClient) -> None:
    parent = await client.post("/v1/agents", json={"name": "lead", "role": "scout"})
    assert parent.status_code == 201
    parent_id = parent.json()["id"]
    child = await client.post(
        "/v1/agents", json={"name": "helper", "role": "scout", "parent_id": parent_id}
    )
    assert child.status_code == 201, child.text
    card = (await client.get(f"/v1/agents/{child.json()['id']}")).json()
    assert card["parent_id"] == parent_id


@pytest.fixture
async def plain_app(tmp_path: Path) -> AsyncIterator[FleetApp]:
    app = create_app(ApiConfig(db=tmp_path / "plain.db", store_poll_s=0.05, runtime=False))
    async with app.router.lifespan_context(app):
        yield app


async def test_the_timeline_of_a_run_being_written_is_always_200(plain_app: FleetApp) -> None:
    """Regression: the run's streams went on while they were read, and the read refused it."""
    assert plain_app.services is not None
    store = plain_app.services.store
    run_meta = Meta(run_id="live1")
    await store.append("run-live1", [NewEvent(RunStarted(run_id="live1", task="t"), run_meta)])
    meta = Meta(run_id="live1", agent_id="w1")
    created = AgentCreated(agent_id="w1", name="w", role="builder", model="claude-haiku-4-5")
    await store.append("agent-w1", [NewEvent(created, meta)])
    statuses: list[int] = []
    transport = httpx.ASGITransport(plain_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def read() -> None:
            while True:
                statuses.append((await client.get("/v1/runs/live1/timeline")).status_code)

        reader = asyncio.create_task(read())
        try:
            for count in range(150):  # the run goes on while its timeline is read, again and again
                command = AgentCommanded(agent_id="w1", prompt=f"step {count}")
                await store.append("agent-w1", [NewEvent(command, meta)])
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    assert len(statuses) >= 20
    assert set(statuses) == {200}, f"{statuses.count(422)} of {len(statuses)} were 422"


async def test_a_run_with_an_unknown_model_is_422_before_anything_starts(
    client: httpx.AsyncClient,
    store: SQLiteEventStore,
    config: ApiConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: the run was started and failed in the background (a traceback in the log)."""
    body = {"task": "t", "model": "gpt-9", "workspace": str(config.workspace)}
    response = await client.post("/v1/runs", json=body)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:fleet:problem:unknown-model"
    assert await store.head() == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize(
    ("path", "head"),
    [("/v1/agents", "Content-Type: application/json\r\nContent-Length: 5000"),
     ("/v1/hooks/ingest", "Content-Type: application/json\r\nContent-Length: 5000"),
     ("/v1/runs/import", "Content-Length: 5000"),
     ("/v1/runs/import", "Transfer-Encoding: chunked")],
)  # fmt: skip
async def test_a_client_hanging_up_mid_body_is_no_server_error(
    server: Serving, path: str, head: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a body cut short by its client was a 500 and a traceback at ERROR."""
    caplog.set_level(logging.DEBUG, logger="api")
    async with httpx.AsyncClient(base_url=server.url) as http:
        head_before = (await http.get("/healthz")).json()["head"]
        host = server.url.removeprefix("http://")
        _, writer = await asyncio.open_connection(*host.split(":"))
        part = b'{"format": "fleet-run", "version": 1' if "import" in path else b'{"name": "a"'
        if "chunked" in head:
            part = b"%x\r\n%s\r\n" % (len(part), part)
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n\r\n".encode() + part)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        def settled() -> bool:
            return "hung up" in caplog.text or any(
                r.levelno >= logging.ERROR for r in caplog.records
            )

        await wait_until(settled, what="the server to see the client go")
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        assert (await http.get("/healthz")).json()["head"] == head_before


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [("/v1/hooks/ingest", b'{"hook_event_name": "Stop", "session_id": "s1"}', "application/json"),
     ("/v1/agents", b'{"name": "a", "role": "scout"}', "application/json"),
     ("/v1/orchestrator/messages", b'{"text": "hello"}', "application/json"),
     ("/v1/runs/import", b'{"format": "fleet-run"}\n', "application/x-ndjson")],
)  # fmt: skip
@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_a_compressed_body_is_415_and_writes_nothing(
    client: httpx.AsyncClient,
    store: SQLiteEventStore,
    path: str,
    body: bytes,
    content_type: str,
    encoding: str,
) -> None:
    """Regression: a gzipped JSON body was a 400 saying it was "not UTF-8", and a body marked
    `br` that was not compressed at all was taken as it was."""
    sent = gzip.compress(body) if encoding == "gzip" else body
    headers = {"content-type": content_type, "content-encoding": encoding}
    response = await client.post(path, content=sent, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["type"] == "urn:fleet:problem:unsupported-content-encoding"
    assert encoding in response.json()["detail"]
    assert await store.head() == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/v1/agents/a1/commands", '{"prompt": "go", "by": "%s"}', "by"),
     ("/v1/orchestrator/messages", '{"text": "hello", "author": "%s"}', "author"),
     ("/v1/approvals/apr-1", '{"decision": "allow", "who": "%s"}', "who")],
)  # fmt: skip
@pytest.mark.parametrize("blank", ["", " ", "\\n\\t"])
async def test_a_blank_actor_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    store: SQLiteEventStore,
    path: str,
    body: str,
    field: str,
    blank: str,
) -> None:
    """Who did it is recorded and shown: a command `by` "" or a message from "\\n" said
    nobody did it (an empty `by` was taken; `author` and `who` took whitespace)."""
    response = await client.post(path, content=body % blank, headers=JSON)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", field]
    assert await store.head() == 0
