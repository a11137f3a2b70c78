"""Commanding the fleet over HTTP: agent CRUD and runs, against the app and against uvicorn."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from apitest_support import wait_until

from api import ApiConfig, serving
from runtime import prepare_workspace

SCOUT_TASK = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."


@pytest.fixture
async def config(tmp_path: Path) -> ApiConfig:
    workspace = await prepare_workspace(tmp_path / "repo")
    return ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, workspace=workspace)


async def _status(client: httpx.AsyncClient, agent_id: str) -> str:
    response = await client.get(f"/v1/agents/{agent_id}/status")
    return str(response.json()["status"])


async def test_agent_crud_round_trip_over_http(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/agents", json={"name": "scout-api", "role": "scout", "task": SCOUT_TASK}
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["id"]
    assert created.headers["location"] == f"/v1/agents/{agent_id}"

    async def complete() -> bool:
        return await _status(client, agent_id) == "completed"

    await wait_until(complete, within=120, what="the scout to finish")
    output = (await client.get(f"/v1/agents/{agent_id}/output")).json()
    assert output["files_produced"] == ["notes/found.md"]
    card = (await client.get(f"/v1/agents/{agent_id}")).json()
    assert card["files_produced"] == output["files_produced"], "the card is the projection's"

    commanded = await client.post(
        f"/v1/agents/{agent_id}/commands",
        json={
            "prompt": "Task: rename `count_lines` to `line_count`\n\nWrite your findings to notes/more.md."
        },
    )
    assert commanded.status_code == 202
    await wait_until(complete, within=120, what="the second command to finish")

    deleted = await client.delete(f"/v1/agents/{agent_id}")
    assert deleted.status_code == 204
    again = await client.post(f"/v1/agents/{agent_id}/commands", json={"prompt": "more"})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["title"] == "Agent deleted"
    listed = (await client.get("/v1/agents", params={"status": "deleted"})).json()
    assert [a["id"] for a in listed["agents"]] == [agent_id]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/agents/no-such-agent/commands", {"prompt": "hi"}, 404),
        ("GET", "/v1/agents/no-such-agent/output", None, 404),
        ("DELETE", "/v1/agents/no-such-agent", None, 404),
        ("POST", "/v1/agents/..%2F..%2Fetc/commands", {"prompt": "hi"}, 404),  # no such route
        ("POST", "/v1/agents/..%5Cetc/commands", {"prompt": "hi"}, 400),
        ("GET", "/v1/agents/bad%20id!/status", None, 400),
        ("POST", "/v1/agents", {"name": "x", "role": "scout", "model": "gpt-4"}, 422),
        ("POST", "/v1/agents", {"name": "x", "role": "scout", "tools": ["rm"]}, 422),
        ("POST", "/v1/agents", {"name": "x", "role": "scout", "colour": "red"}, 422),
        ("POST", "/v1/agents", {"name": "x", "role": "scout", "engine": "codex"}, 422),
        ("POST", "/v1/agents", {"name": "../x", "role": "scout"}, 422),
        ("POST", "/v1/runs", {"task": "t", "pattern": "no-such-pattern", "workspace": "."}, 422),
        ("POST", "/v1/runs", {"task": "", "workspace": "."}, 422),
        # Blank text: the create wrote AgentCreated before refusing, the run ran whole.
        ("POST", "/v1/agents", {"name": "blank", "role": "scout", "task": " \n\t"}, 422),
        ("POST", "/v1/runs", {"task": "   ", "workspace": "."}, 422),
    ],
)
async def test_bad_agent_requests_get_a_clear_problem_and_write_nothing(
    client: httpx.AsyncClient, method: str, path: str, body: object, status: int
) -> None:
    head = (await client.get("/healthz")).json()["head"]
    response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    assert (await client.get("/healthz")).json()["head"] == head


async def test_a_run_takes_a_built_in_pattern_only_not_a_file_named_like_one(
    client: httpx.AsyncClient, config: ApiConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`load_pattern` reads a file when the name is not built in: a client's pattern name
    was a file of the server's current folder, loaded and run."""
    assert config.workspace is not None
    (config.workspace / "planted").write_text(
        'name = "planted"\n[[steps]]\nid = "a"\nrole = "scout"\nprompt = "{task}"\n'
    )
    monkeypatch.chdir(config.workspace)
    head = (await client.get("/healthz")).json()["head"]
    body = {"task": "t", "pattern": "planted", "workspace": str(config.workspace)}
    response = await client.post("/v1/runs", json=body)
    assert response.status_code == 422, response.text
    assert "no pattern named 'planted' (built in: " in response.json()["detail"]
    assert (await client.get("/healthz")).json()["head"] == head


@pytest.mark.parametrize(
    ("workspace", "slug", "says"),
    [
        (None, "invalid-body", "workspace: Field required"),
        ("{tmp}/no-such-folder", "workspace-missing", "does not exist or is not a folder"),
        ("{tmp}/fleet.db", "workspace-missing", "does not exist or is not a folder"),
        # Paths that cannot be resolved at all (they were 500s).
        ("~no-such-user-here/x", "workspace-missing", "does not exist or is not a folder"),
        ("{tmp}/a\u0000b", "workspace-missing", "does not exist or is not a folder"),
        ("{tmp}", "workspace-not-served", "is not this server's workspace"),
    ],
)
async def test_a_run_needs_the_servers_workspace_named_or_nothing_is_written(
    client: httpx.AsyncClient, config: ApiConfig, tmp_path: Path,
    workspace: str | None, slug: str, says: str,
) -> None:  # fmt: skip
    """Issue 14: a run never defaults to whatever folder the server was started in."""
    before = {p: p.read_bytes() for p in config.workspace.rglob("*") if p.is_file()}
    head = (await client.get("/healthz")).json()["head"]
    body: dict[str, str] = {"task": "rename `count_words` to `word_count`"}
    if workspace is not None:
        body["workspace"] = workspace.format(tmp=tmp_path)
    response = await client.post("/v1/runs", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == f"urn:fleet:problem:{slug}"
    assert says in response.json()["detail"]
    assert (await client.get("/healthz")).json()["head"] == head
    after = {p: p.read_bytes() for p in config.workspace.rglob("*") if p.is_file()}
    assert after == before


async def test_malformed_json_to_create_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/agents", content=b'{"name": "x", "role":', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed JSON"


async def test_a_run_started_over_http_on_uvicorn_completes_and_shows_in_the_views(
    config: ApiConfig,
) -> None:
    async with (
        serving(config) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        started = await http.post(
            "/v1/runs",
            json={
                "task": "rename `count_words` to `word_count`",
                "pattern": "scout-builder",
                "workspace": str(config.workspace),
            },
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        runs = (await http.get("/v1/runs")).json()["runs"]
        assert run_id in [r["id"] for r in runs], "the run is visible as soon as it is accepted"

        async def finished() -> bool:
            runs = (await http.get("/v1/runs")).json()["runs"]
            return any(r["id"] == run_id and r["status"] == "completed" for r in runs)

        await wait_until(finished, within=120, what="the run to complete")
        board = (await http.get("/v1/agents", params={"run_id": run_id})).json()
        assert sorted(a["role"] for a in board["agents"]) == ["builder", "orchestrator", "scout"]
    assert "word_count" in (config.workspace / "textstats" / "counting.py").read_text()
