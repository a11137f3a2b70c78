"""Bad input gets a clear problem+json answer and writes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from apitest_support import JSON
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import ApiConfig, FleetApp, create_app
from events import EventTooLarge, SQLiteEventStore, StoreClosed, VersionConflict
from projections.errors import InvalidPosition, ProjectionTimeout
from runtime.errors import AgentGone, AgentNotFound

PROBLEM = "application/problem+json"
PAYLOAD = b'{"hook_event_name": "SessionStart", "session_id": "s1", "source": "startup"}'


def assert_problem(response: httpx.Response, status: int, *, title: str | None = None) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail"}
    assert body["status"] == status
    assert body["detail"]
    if title is not None:
        assert body["title"] == title
    return body  # type: ignore[no-any-return]


async def test_unknown_route_is_404_naming_the_path(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/nothing-here"), 404, title="Not found")
    assert "/v1/nothing-here" in body["detail"]
    # A control character is named, not dropped (the path shown then exists).
    body = assert_problem(await client.get("/v1/agents/a1%0A"), 404)
    assert body["detail"] == "no route for GET '/v1/agents/a1\\n'"


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/events")
    body = assert_problem(response, 405)
    assert "GET" in response.headers["allow"]
    assert "DELETE" in body["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("PUT", "/v1/agents", "GET, HEAD, POST, DELETE"),
     ("PATCH", "/v1/agents/a1", "GET, HEAD, DELETE"),
     ("PUT", "/v1/approvals/x1", "GET, HEAD, POST"),
     ("DELETE", "/v1/runs", "GET, HEAD, POST"),
     ("PUT", "/v1/runs/import", "GET, HEAD, POST"),  # GET is /v1/runs/{run_id}
     ("GET", "/v1/hooks/ingest", "POST"),
     ("PUT", "/app.js", "GET, HEAD")],
)  # fmt: skip
async def test_a_405_allows_every_method_the_path_takes(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    """Regression: a path served by several routes (a view and its commands) answered with
    the methods of the first one only: `PUT /v1/agents` said POST was not allowed either."""
    response = await client.request(method, path)
    body = assert_problem(response, 405)
    assert response.headers["allow"] == allowed
    assert body["detail"].endswith(f"allowed: {allowed}")


async def test_trailing_slash_is_a_404_not_a_redirect(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/events/"), 404)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"hook_event_name": "Stop", ', "not valid JSON"),
        (b"not json at all", "not valid JSON"),
        (b"", "empty"),
        (b"   ", "empty"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
async def test_malformed_json_is_400_and_writes_nothing(
    client: httpx.AsyncClient, store: SQLiteEventStore, body: bytes, detail: str
) -> None:
    response = await client.post("/v1/hooks/ingest", content=body, headers=JSON)
    problem = assert_problem(response, 400, title="Malformed JSON")
    assert detail in problem["detail"]
    assert await store.head() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"hook_event_name": "Stop", "session_id": 5}', "session_id"),
        (b'{"hook_event_name": "Stop"}', "session_id"),
        (b'{"session_id": "s1"}', "hook_event_name"),
        (b'{"hook_event_name": "PreToolUse", "session_id": "s1", "tool_input": "x"}', "tool_input"),
        (b'{"hook_event_name": "Stop", "session_id": "../../etc/passwd"}', "session_id"),
        (b'{"hook_event_name": "Stop", "session_id": "a b"}', "session_id"),
    ],
)
async def test_wrong_types_are_422_naming_the_field_and_write_nothing(
    client: httpx.AsyncClient, store: SQLiteEventStore, body: bytes, field: str
) -> None:
    problem = assert_problem(await client.post("/v1/hooks/ingest", content=body, headers=JSON), 422)
    assert problem["errors"][0]["loc"] == ["body", field]
    assert await store.head() == 0


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
async def test_json_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, store: SQLiteEventStore, body: bytes
) -> None:
    problem = assert_problem(await client.post("/v1/hooks/ingest", content=body, headers=JSON), 422)
    assert "object" in problem["detail"]
    assert await store.head() == 0


async def test_body_over_the_limit_is_413_before_it_is_read(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    huge = b'{"hook_event_name": "Stop", "session_id": "s1", "x": "' + b"a" * 2_000_000 + b'"}'
    problem = assert_problem(await client.post("/v1/hooks/ingest", content=huge, headers=JSON), 413)
    assert "limit of 1048576 bytes" in problem["detail"]
    assert await store.head() == 0


async def test_chunked_body_over_the_limit_is_413(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """No Content-Length: the body is counted as it arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"hook_event_name": "Stop", "session_id": "s1", "x": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    response = await client.post("/v1/hooks/ingest", content=chunks(), headers=JSON)
    problem = assert_problem(response, 413, title="Request body too large")
    assert problem["detail"] == "the request body is over the limit of 1048576 bytes"
    assert await store.head() == 0


async def test_payload_over_the_ingest_limit_but_under_the_body_limit_is_413(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    body = b'{"hook_event_name": "Stop", "session_id": "s1", "x": "' + b"a" * 700_000 + b'"}'
    assert_problem(await client.post("/v1/hooks/ingest", content=body, headers=JSON), 413)
    assert await store.head() == 0


async def test_a_smaller_body_limit_is_enforced(tmp_path: Path) -> None:
    app = create_app(ApiConfig(db=tmp_path / "f.db", runtime=False, max_body_bytes=2048))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ok = await client.post("/v1/hooks/ingest", content=PAYLOAD, headers=JSON)
            too_big = await client.post(
                "/v1/hooks/ingest", content=b" " * 3000 + PAYLOAD, headers=JSON
            )
    assert ok.status_code == 201
    assert_problem(too_big, 413)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("/v1/events?agent=a1", "agent"),
        ("/v1/events?limit=ten", "limit"),
        ("/v1/events?after=-3", "after"),
        ("/v1/events?limit=0", "limit"),
        ("/v1/events?type=NoSuchEvent", "type"),
        ("/v1/agents?status=sleeping", "status"),
        ("/v1/runs?status=finished", "status"),
        ("/v1/runs?status=running&status=done", "status"),
        ("/v1/fleet?at=yesterday", "at"),
        ("/v1/fleet?bogus=1", "bogus"),
    ],
)
async def test_bad_query_parameters_are_400_listing_each(
    client: httpx.AsyncClient, url: str, where: str
) -> None:
    problem = assert_problem(await client.get(url), 400, title="Invalid query")
    assert [e["loc"][1] for e in problem["errors"]] == [where]


async def test_a_parameter_given_twice_is_400(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/v1/events?after=1&after=2"), 400)
    assert "more than once" in problem["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/agents/..%2F..%2Fetc%2Fpasswd",
        "/v1/agents/%2e%2e",
        "/v1/agents/%2E%2E%2F%2E%2E",
        "/v1/agents/..%5C..%5Cwindows",
        "/v1/agents/a%00b",
        "/v1/agents/" + "a" * 200,
    ],
)
async def test_path_traversal_in_ids_is_refused(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code in (400, 404)
    assert response.headers["content-type"] == PROBLEM


async def test_dot_segments_never_reach_outside_the_api(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/agents/../../../etc/passwd")
    assert_problem(response, 404)


async def test_an_invalid_id_is_400_without_a_lookup(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/v1/agents/%2e%2e"), 400, title="Invalid agent id")
    assert "'..'" in problem["detail"]


@pytest.mark.parametrize(
    ("error", "status", "title"),
    [
        (VersionConflict("agent-a1", 3, 5), 409, "Version conflict"),
        (AgentGone("a1"), 409, "Agent deleted"),
        (AgentNotFound("a1"), 404, "Agent not found"),
        (EventTooLarge("s", "ToolCallCompleted", 2_000_000, 1_048_576), 413, "Event too large"),
        (InvalidPosition(99, 10), 400, "Invalid position"),
        (ProjectionTimeout(10, 5, 5.0), 503, "Projections behind"),
        (StoreClosed(), 503, "Service unavailable"),
    ],
)
async def test_fleet_errors_map_to_problems_naming_their_facts(
    app: FleetApp, client: httpx.AsyncClient, error: Exception, status: int, title: str
) -> None:
    async def fail(request: Request) -> Response:
        raise error

    app.router.routes.insert(0, Route("/boom", fail))
    body = assert_problem(await client.get("/boom"), status, title=title)
    assert body["detail"] == str(error)
    assert body["type"].startswith("urn:fleet:problem:")


async def test_an_unexpected_error_is_a_500_problem_without_its_message(app: FleetApp) -> None:
    async def fail(request: Request) -> Response:
        raise RuntimeError("/secret/path/in/the/message")

    app.router.routes.insert(0, Route("/boom", fail))
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = assert_problem(await client.get("/boom"), 500)
    assert "secret" not in json.dumps(body)


async def test_every_json_body_route_documents_and_answers_415(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """A body not typed application/json is 415 (schemathesis found it undocumented)."""
    document = (await client.get("/v1/openapi.json")).json()
    json_bodies = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(json_bodies) >= 5
    for method, path, operation in json_bodies:
        assert "415" in operation["responses"], (method, path)
    refused = await client.post(
        "/v1/agents", content=b"name=x", headers={"content-type": "text/plain"}
    )
    assert_problem(refused, 415)
    assert await store.head() == 0
