"""Large views go gzip-compressed to a client that accepts it, with their own ETag."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from apitest_support import append_ticks, seed

from api import FleetApp
from api._polling import GZIP_MIN_BYTES
from events import SQLiteEventStore


async def _raw(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    """The response as sent: its body read without decoding (httpx would decompress it)."""
    async with client.stream("GET", url, headers=headers) as response:
        response._content = b"".join([chunk async for chunk in response.aiter_raw()])
    return response


async def _plain_and_gzipped(
    client: httpx.AsyncClient, url: str, accept: str
) -> tuple[httpx.Response, httpx.Response]:
    """`url` as sent without gzip (a large body) and with `accept`: gzip, a fifth the size
    or less, the same JSON."""
    plain = await _raw(client, url, **{"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(plain.content) >= GZIP_MIN_BYTES
    zipped = await _raw(client, url, **{"Accept-Encoding": accept})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert len(zipped.content) < len(plain.content) / 5
    assert json.loads(gzip.decompress(zipped.content)) == json.loads(plain.content)
    return plain, zipped


@pytest.fixture
async def head(app: FleetApp, store: SQLiteEventStore) -> int:
    """A log whose agents view is large enough to compress (80 agents, about 80 KB)."""
    recorded = await seed(store, run_id="r1", agents=80)
    assert app.services is not None
    await app.services.runner.wait_for(recorded[-1].position)
    return recorded[-1].position


async def test_a_large_view_is_gzipped_for_a_client_that_accepts_it(
    client: httpx.AsyncClient, head: int
) -> None:
    plain, zipped = await _plain_and_gzipped(client, "/v1/agents", "br, gzip;q=0.8")
    # Another representation, another ETag; either gives 304, with the one it would send.
    assert zipped.headers["etag"] != plain.headers["etag"]
    for etag in (zipped.headers["etag"], plain.headers["etag"]):
        again = await _raw(
            client, "/v1/agents", **{"Accept-Encoding": "gzip", "If-None-Match": etag}
        )
        assert (again.status_code, again.content) == (304, b"")
        assert again.headers["etag"] == zipped.headers["etag"]
    # As of a past position too, and decoded as any HTTP client does.
    past = await client.get(f"/v1/agents?at={head - 3}")
    assert past.headers["content-encoding"] == "gzip"
    as_is = await _raw(client, f"/v1/agents?at={head - 3}", **{"Accept-Encoding": "identity"})
    assert past.json() == json.loads(as_is.content)


@pytest.mark.parametrize(
    "accept", ["", "identity", "gzip;q=0", "deflate", "*;q=0", "gzip; q=0.0, identity"]
)
async def test_no_gzip_unless_accepted(client: httpx.AsyncClient, head: int, accept: str) -> None:
    response = await _raw(client, "/v1/agents", **{"Accept-Encoding": accept})
    assert "content-encoding" not in response.headers
    assert json.loads(response.content)["count"] == 80


async def test_a_small_view_goes_as_it_is(client: httpx.AsyncClient, head: int) -> None:
    response = await _raw(client, "/v1/fleet", **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert json.loads(response.content)["agents"]["total"] == 80


async def test_a_large_page_of_the_log_is_gzipped_for_a_client_that_accepts_it(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """A monitor paging the log (`GET /v1/events`, pages up to 4 MiB) gets it compressed."""
    await append_ticks(store, 100, size=1000)
    plain, _ = await _plain_and_gzipped(client, "/v1/events?limit=100", "gzip")
    assert plain.headers["vary"] == "Accept-Encoding"
    decoded = await client.get("/v1/events?limit=100")  # as any HTTP client reads it
    assert [e["position"] for e in decoded.json()["events"]] == list(range(1, 101))
    small = await _raw(client, "/v1/events?limit=2", **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
