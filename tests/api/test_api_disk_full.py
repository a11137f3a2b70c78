"""Issue 12, item 9: a full disk is a 503 with Retry-After, logged once, and /healthz says the
log is degraded until writes work again; nothing acknowledged is lost, and no restart is needed.

The disk is real: a 4 MiB tmpfs holding the log, filled with a file until the
kernel says ENOSPC, then emptied. Mounting needs root (CAP_SYS_ADMIN); elsewhere
the test is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from disk_support import fill

from api import ApiConfig, create_app


@pytest.fixture
async def client(small_disk: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiConfig(db=small_disk / "fleet.db", runtime=False, store_poll_s=0.05))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def _payload(n: int) -> dict[str, object]:
    return {"hook_event_name": "Notification", "session_id": "s1", "n": n, "pad": "x" * 2000}


async def test_a_full_disk_is_a_503_logged_once_and_healthz_recovers_without_restart(
    client: httpx.AsyncClient, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    acked = []
    for n in range(5):
        answer = await client.post("/v1/hooks/ingest", json=_payload(n))
        assert answer.status_code == 201
        acked.append(answer.json()["position"])
    filler = fill(small_disk)

    with caplog.at_level(logging.DEBUG, logger="api"):
        refused = [await client.post("/v1/hooks/ingest", json=_payload(100 + n)) for n in range(3)]
    health = await client.get("/healthz")
    reads = await client.get("/v1/events", params={"limit": 100})

    assert [r.status_code for r in refused] == [503, 503, 503]
    assert refused[0].headers["retry-after"] == "5"
    assert refused[0].json()["type"] == "urn:fleet:problem:log-unavailable"
    assert "full" in refused[0].json()["detail"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None  # one line, no traceback
    assert health.status_code == 503
    assert health.json()["store"] == "degraded"
    assert "full" in health.json()["store_error"]
    assert reads.status_code == 200
    assert [e["position"] for e in reads.json()["events"]] == acked  # nothing half-written

    filler.unlink()
    async with asyncio.timeout(30):
        while (health := await client.get("/healthz")).status_code != 200:
            await asyncio.sleep(0.2)
    assert health.json()["store"] == "ok"
    answer = await client.post("/v1/hooks/ingest", json=_payload(200))
    assert answer.status_code == 201
    positions = [e["position"] for e in (await client.get("/v1/events")).json()["events"]]
    assert positions == [*acked, answer.json()["position"]] == list(range(1, 7))


async def test_healthz_says_the_log_cannot_be_read_when_its_schema_is_dropped() -> None:
    """A PostgreSQL log's schema dropped under a running server: /healthz was a 500 (a store
    error, as a bug would be); it is a 503 saying why, as for a log that cannot be written."""
    import uuid

    import asyncpg
    from postgres_support import drop_postgres_schemas, postgres_log_url, postgres_or_skip

    postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:16]}_h"
    app = create_app(ApiConfig(db=postgres_log_url(schema), runtime=False))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/healthz")).status_code == 200
                # On this loop: the app's own connections must go on while the drop waits.
                conn = await asyncpg.connect(postgres_or_skip(), timeout=10)
                try:
                    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
                finally:
                    await conn.close()
                health = await client.get("/healthz")
                assert health.status_code == 503, health.text
                assert health.headers["retry-after"] == "5"
                problem = health.json()
                assert problem["type"] == "urn:fleet:problem:log-unavailable"
                assert problem["detail"].startswith("the log cannot be read: ")
                assert "does not exist" in problem["detail"]
    finally:
        drop_postgres_schemas([schema])
