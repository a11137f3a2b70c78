"""Replay over HTTP: timeline, export as a download, import as an upload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from replay_support import Recording

from api import ApiConfig, create_app


@pytest.fixture
async def api(log: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the app serving the copied recording."""
    app = create_app(ApiConfig(db=log, store_poll_s=0.05, runtime=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def other(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app serving a fresh, empty log."""
    app = create_app(ApiConfig(db=tmp_path / "other.db", store_poll_s=0.05, runtime=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_timeline_of_a_run(api: httpx.AsyncClient, recorded_pattern: Recording) -> None:
    response = await api.get(f"/v1/runs/{recorded_pattern.run_id}/timeline")

    assert response.status_code == 200
    body = response.json()
    assert body["run_id"] == recorded_pattern.run_id
    assert len(body["agents"]) == 6
    assert body["entries"][0]["kind"] == "run"


async def test_export_download_imports_into_another_server(
    api: httpx.AsyncClient, other: httpx.AsyncClient, recorded_pattern: Recording
) -> None:
    run_id = recorded_pattern.run_id
    download = await api.get(f"/v1/runs/{run_id}/export")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-ndjson"
    assert download.headers["content-disposition"] == f'attachment; filename="{run_id}.jsonl"'

    uploaded = await other.post("/v1/runs/import", content=download.content)

    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["events"] == recorded_pattern.events
    assert uploaded.headers["location"] == f"/v1/runs/{run_id}/timeline"
    runs = (await other.get("/v1/runs")).json()["runs"]
    assert [r["id"] for r in runs] == [run_id]
    assert (await other.get(uploaded.headers["location"])).status_code == 200

    again = await other.post("/v1/runs/import", content=download.content)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"] == "urn:fleet:problem:run-exists"


async def test_a_damaged_upload_is_refused_with_a_problem_and_nothing_written(
    api: httpx.AsyncClient, other: httpx.AsyncClient, recorded_pattern: Recording
) -> None:
    exported = (await api.get(f"/v1/runs/{recorded_pattern.run_id}/export")).content

    for body in (
        exported[: len(exported) // 2],
        b"not an export",
        exported.replace(b"scout", b"sc0ut"),
    ):
        refused = await other.post("/v1/runs/import", content=body)
        assert refused.status_code == 422
        assert refused.json()["type"] == "urn:fleet:problem:invalid-export"
    assert (await other.get("/v1/runs")).json()["runs"] == []


async def test_an_unknown_or_malformed_run_id_is_a_clear_4xx(api: httpx.AsyncClient) -> None:
    for path in ("/v1/runs/run-nope/timeline", "/v1/runs/run-nope/export"):
        missing = await api.get(path)
        assert missing.status_code == 404
        assert missing.json()["type"] == "urn:fleet:problem:run-not-found"
    bad = await api.get("/v1/runs/..%20x/timeline")
    assert bad.status_code == 400


async def test_an_import_has_its_own_body_limit_larger_than_a_command(
    other: httpx.AsyncClient,
) -> None:
    """A run export of a few MiB is checked as an export, while the same body to a command is a 413."""
    big = b'{"format": "fleet-run"}\n' + b"x" * (3 * 1024 * 1024)
    to_import = await other.post("/v1/runs/import", content=big)
    assert to_import.status_code == 422, "over the 1 MiB default, yet read and checked as an export"
    to_command = await other.post(
        "/v1/agents", content=big, headers={"content-type": "application/json"}
    )
    assert to_command.status_code == 413


async def test_an_import_over_its_own_limit_is_a_413(tmp_path: Path) -> None:
    app = create_app(ApiConfig(db=tmp_path / "small.db", runtime=False, max_import_bytes=64 * 1024))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://testserver"
        ) as client,
    ):
        refused = await client.post("/v1/runs/import", content=b"x" * (128 * 1024))
        assert refused.status_code == 413
        assert (await client.get("/v1/runs")).json()["runs"] == []
