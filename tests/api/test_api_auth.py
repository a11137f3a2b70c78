"""Bearer-token auth: every route needs the token when one is set; browsers may use ?token=."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from apitest_support import TOKEN, raw_get, read_ids, wait_until
from pydantic import SecretStr

from api import ApiConfig, FleetApp, Serving, create_app, serving
from events import SQLiteEventStore

AUTH = {"Authorization": f"Bearer {TOKEN}"}
INGEST = b'{"hook_event_name": "Stop", "session_id": "s1"}'


@pytest.fixture
def config(tmp_path: Path) -> ApiConfig:
    return ApiConfig(
        db=tmp_path / "fleet.db", runtime=False, token=SecretStr(TOKEN), store_poll_s=0.05
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/v1/events"),
        ("GET", "/v1/events/stream"),
        ("GET", "/v1/agents"),
        ("GET", "/v1/agents/a1"),
        ("GET", "/v1/fleet"),
        ("GET", "/v1/openapi.json"),
        ("POST", "/v1/hooks/ingest"),
        ("GET", "/v1/no-such-route"),
    ],
)
async def test_every_route_without_a_token_is_401(
    client: httpx.AsyncClient, store: SQLiteEventStore, method: str, path: str
) -> None:
    response = await client.request(method, path, content=INGEST if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer realm="fleet"'
    assert "Authorization: Bearer" in response.json()["detail"]
    assert await store.head() == 0


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", "Bearer wrong", f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer {TOKEN[:-1]}"],
)
async def test_a_wrong_token_is_401_invalid_token(
    client: httpx.AsyncClient, store: SQLiteEventStore, authorization: str
) -> None:
    response = await client.post(
        "/v1/hooks/ingest", content=INGEST, headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="fleet", error="invalid_token"'
    assert response.json()["detail"] == "the token is wrong"
    assert await store.head() == 0


async def test_the_right_token_passes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/events", headers=AUTH)).status_code == 200
    lower = {"Authorization": f"bearer {TOKEN}"}
    assert (await client.post("/v1/hooks/ingest", content=INGEST, headers=lower)).status_code == 201
    health = (await client.get("/healthz", headers=AUTH)).json()
    assert health["auth"] is True


async def test_query_token_works_on_get_and_is_removed_from_the_query(
    client: httpx.AsyncClient,
) -> None:
    """`token` is not an unknown parameter to the route: auth took it out."""
    response = await client.get(f"/v1/events?token={TOKEN}&limit=5")
    assert response.status_code == 200


async def test_query_token_is_not_accepted_on_post(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    response = await client.post(f"/v1/hooks/ingest?token={TOKEN}", content=INGEST)
    assert response.status_code == 401
    assert await store.head() == 0


async def test_without_a_configured_token_a_stray_query_token_is_ignored(tmp_path: Path) -> None:
    app = create_app(ApiConfig(db=tmp_path / "f.db", runtime=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/v1/events?token=whatever")
    assert response.status_code == 200


async def test_event_source_passes_the_token_in_the_query_over_a_real_socket(
    config: ApiConfig,
) -> None:
    """A browser's EventSource cannot set headers: the stream accepts ?token=."""
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/v1/events/stream")).status_code == 401
        async with http.stream("GET", f"/v1/events/stream?from=0&token={TOKEN}") as response:
            assert response.status_code == 200
            await _append_one(server)
            assert await read_ids(response, 1) == [1]


async def _append_one(server: Serving) -> None:
    assert server.app.services is not None
    from apitest_support import append_ticks

    await append_ticks(server.app.services.store, 1)


async def test_token_in_the_query_is_not_in_the_access_log(
    config: ApiConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="uvicorn.access")
    async with serving(config, access_log=True) as server:
        reader, writer = await raw_get(server.url, f"/v1/events?token={TOKEN}&limit=1")
        status = await reader.readline()
        writer.close()
        await wait_until(lambda: "GET /v1/events" in caplog.text, what="the access log line")
    assert b"200" in status
    assert TOKEN not in caplog.text


@pytest.fixture
async def client(config: ApiConfig) -> AsyncIterator[httpx.AsyncClient]:
    app: FleetApp = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
def store(client: httpx.AsyncClient) -> SQLiteEventStore:
    return client.app.services.store  # type: ignore[attr-defined,no-any-return]
