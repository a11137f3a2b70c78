"""`serve()` and `serving()` under uvicorn on a loopback port, and the config they take."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from apitest_support import JSON, seed
from pydantic import SecretStr, ValidationError

from api import ApiConfig, InsecureServe, is_loopback, serve, serving

CLAUDE_PAYLOAD = {
    "session_id": "abc-123",
    "transcript_path": "/tmp/t.jsonl",
    "cwd": "/tmp",
    "hook_event_name": "PostToolUse",
    "tool_name": "Write",
    "tool_input": {"file_path": "/tmp/out.md", "content": "hi"},
    "tool_response": {"success": True},
    "tool_use_id": "toolu_1",
}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "myhost"])
async def test_serve_refuses_to_listen_beyond_loopback_without_a_token(
    tmp_path: Path, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_TOKEN", raising=False)
    with pytest.raises(InsecureServe, match="without a token") as caught:
        await serve(host, 0, tmp_path / "fleet.db")
    assert caught.value.host == host
    assert not (tmp_path / "fleet.db").exists()  # nothing was opened


async def test_serving_refuses_too(tmp_path: Path) -> None:
    with pytest.raises(InsecureServe):
        async with serving(ApiConfig(db=tmp_path / "f.db", runtime=False), host="0.0.0.0"):
            pass  # pragma: no cover - serving must refuse before its body runs


async def test_serve_answers_healthz_once_ready_and_stops_when_cancelled(tmp_path: Path) -> None:
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        serve("127.0.0.1", 0, tmp_path / "fleet.db", "tok", ready=ready.put_nowait, log_config=None)
    )
    url = await asyncio.wait_for(ready.get(), 10)
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/healthz", headers={"Authorization": "Bearer tok"})
        assert response.status_code == 200
        assert response.json()["auth"] is True
        assert (await http.get("/healthz")).status_code == 401
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_serve_takes_the_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TOKEN", "from-env")
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        serve("127.0.0.1", 0, tmp_path / "f.db", ready=ready.put_nowait, log_config=None)
    )
    try:
        url = await asyncio.wait_for(ready.get(), 10)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/healthz")).status_code == 401
            ok = await http.get("/healthz", headers={"Authorization": "Bearer from-env"})
            assert ok.status_code == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_everything_over_a_real_socket(tmp_path: Path) -> None:
    """One pass over every route against uvicorn on 127.0.0.1, as a user runs it."""
    config = ApiConfig(db=tmp_path / "fleet.db", runtime=False, token=SecretStr("t0k"))
    auth = {"Authorization": "Bearer t0k"}
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url, headers=auth) as h:
        assert server.app.services is not None
        await seed(server.app.services.store)
        health = (await h.get("/healthz")).json()
        assert health["status"] == "ok"
        assert health["head"] == 16

        ingested = await h.post(
            "/v1/hooks/ingest?source_app=cc", content=json.dumps(CLAUDE_PAYLOAD), headers=JSON
        )
        assert ingested.status_code == 201
        position = ingested.json()["position"]
        assert position == 17

        page = (await h.get("/v1/events?limit=10")).json()
        assert [e["position"] for e in page["events"]] == list(range(1, 11))
        assert page["next"] == 10
        assert (await h.get("/v1/events?after=10&limit=10")).json()["next"] is None

        agents = (await h.get(f"/v1/agents?min_position={position}")).json()
        assert {a["id"] for a in agents["agents"]} == {"r1-a0", "r1-a1", "ext-abc-123"}
        external = (await h.get("/v1/agents/ext-abc-123")).json()
        assert external["files_produced"] == ["/tmp/out.md"]
        for name in ("fleet", "graph", "board", "runs"):
            response = await h.get(f"/v1/{name}?at=5")
            assert response.status_code == 200
            assert response.headers["fleet-position"] == "5"

        async with h.stream("GET", "/v1/events/stream?from=15") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = []
            async for line in stream.aiter_lines():
                if line.startswith("id:"):
                    lines.append(int(line[3:]))
                    if len(lines) == 2:
                        break
        assert lines == [16, 17]

        assert (await h.get("/v1/openapi.json")).json()["openapi"] == "3.1.0"
        missing = await h.get("/v1/agents/nobody")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        bad = await h.post("/v1/hooks/ingest", content=b"{nope", headers=JSON)
        assert bad.status_code == 400
        assert (
            await h.get("/v1/fleet", headers={"Authorization": "Bearer nope"})
        ).status_code == 401


async def test_a_huge_body_over_a_real_socket_is_413(tmp_path: Path) -> None:
    async with serving(ApiConfig(db=tmp_path / "f.db", runtime=False)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post("/v1/hooks/ingest", content=b"x" * 1_100_000, headers=JSON)
        assert response.status_code == 413
        assert server.app.services is not None
        assert await server.app.services.store.head() == 0


def test_config_from_env_reads_fleet_db_and_fleet_token() -> None:
    config = ApiConfig.from_env({"FLEET_DB": "/x/y.db", "FLEET_TOKEN": "abc"})
    assert config.db == Path("/x/y.db")
    assert config.token_value == "abc"
    assert "abc" not in repr(config)
    overridden = ApiConfig.from_env({"FLEET_TOKEN": "abc"}, token="def", db=None)
    assert overridden.token_value == "def"
    assert ApiConfig.from_env({}).token is None
    assert ApiConfig.from_env({"FLEET_TOKEN": "  "}).token is None


@pytest.mark.parametrize(
    "values",
    [
        {"token": "has space"},
        {"max_body_bytes": 10},
        {"sse_queue": 0},
        {"page_limit": 5000},
        {"unknown_option": 1},
        {"otlp_endpoint": "http://[::1"},
        {"otlp_endpoint": "ftp://collector:4318"},
        {"otlp_endpoint": "http://collector:99999"},
    ],
)
def test_config_refuses_bad_values(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ApiConfig.model_validate(values)
