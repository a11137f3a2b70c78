"""`POST /v1/hooks/ingest`: a Claude Code hook payload becomes an event and an external agent."""

from __future__ import annotations

import json

import httpx
import pytest
from apitest_support import JSON, hook_payload

from api import FleetApp
from events import ExternalHookReceived, SQLiteEventStore

SESSION = "4f7c1d2e-9a0b-4c3d-8e5f-0a1b2c3d4e5f"


def payload(point: str = "PreToolUse", **fields: object) -> bytes:
    return hook_payload(SESSION, point, **fields)


async def test_ingest_appends_to_the_session_stream_with_ingest_meta(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    body = payload(tool_name="Read", tool_input={"file_path": "a.py"}, tool_use_id="t1")
    response = await client.post(
        "/v1/hooks/ingest?source_app=my-laptop", content=body, headers=JSON
    )
    assert response.status_code == 201
    assert response.json() == {"position": 1, "stream_id": f"session-{SESSION}", "version": 1}
    (event,) = await store.read_stream(f"session-{SESSION}")
    assert isinstance(event.data, ExternalHookReceived)
    assert event.data.source_app == "my-laptop"
    assert event.data.hook_event_name == "PreToolUse"
    assert event.data.payload == json.loads(body)
    assert event.meta.source == "ingest"
    assert event.meta.agent_id == f"ext-{SESSION}"


async def test_a_stored_payload_is_201_even_when_the_read_models_have_stopped(
    app: FleetApp, client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """The payload was appended, then offering it to a stopped projection runner answered
    503: a client told its write failed sends it again, and the log holds it twice."""
    assert app.services is not None
    await app.services.runner.aclose()  # the read models stopped (a failed fold does that)

    response = await client.post("/v1/hooks/ingest", content=payload(), headers=JSON)

    assert response.status_code == 201, response.text
    assert len(await store.read_stream(f"session-{SESSION}")) == 1
    assert (await client.get("/v1/agents")).status_code == 503  # the views say so, not it
    health = await client.get("/healthz")  # and so does the health check (it said "ok")
    assert health.status_code == 503
    assert health.json()["detail"] == (
        "the read models stopped following the log: the projection runner is closed"
    )


async def test_ingested_session_is_an_agent_at_once(client: httpx.AsyncClient) -> None:
    """Read your write: the agents view shows the session when the POST has answered."""
    await client.post(
        "/v1/hooks/ingest", content=payload("SessionStart", source="startup"), headers=JSON
    )
    await client.post(
        "/v1/hooks/ingest",
        content=payload("UserPromptSubmit", prompt="fix the bug"),
        headers=JSON,
    )
    response = await client.get(f"/v1/agents/ext-{SESSION}")
    assert response.status_code == 200
    agent = response.json()
    assert agent["external"] is True
    assert agent["source_app"] == "claude-code"
    assert agent["task"] == "fix the bug"


async def test_a_huge_model_name_is_cut_on_the_card_and_kept_in_the_log(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """Regression: a SessionStart's 400,000-character `model` became the card's model (on
    every agents view, and interned for good); the stored payload keeps what was sent."""
    huge = "claude-" + "x" * 400_000  # under the ingest limit (512 KiB)
    response = await client.post(
        "/v1/hooks/ingest", content=payload("SessionStart", source="startup", model=huge),
        headers=JSON,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    card = (await client.get(f"/v1/agents/ext-{SESSION}")).json()
    assert card["model"] == huge[:199] + "…"
    [stored] = await store.read_stream(f"session-{SESSION}")
    assert isinstance(stored.data, ExternalHookReceived)
    assert stored.data.payload["model"] == huge


@pytest.mark.parametrize(
    ("url", "headers", "expected"),
    [
        ("/v1/hooks/ingest", {}, "claude-code"),
        ("/v1/hooks/ingest", {"X-Fleet-Source-App": "ci-runner"}, "ci-runner"),
        ("/v1/hooks/ingest?source_app=q", {"X-Fleet-Source-App": "h"}, "q"),
    ],
)
async def test_source_app_from_query_else_header_else_default(
    client: httpx.AsyncClient,
    store: SQLiteEventStore,
    url: str,
    headers: dict[str, str],
    expected: str,
) -> None:
    assert (
        await client.post(url, content=payload(), headers={**headers, **JSON})
    ).status_code == 201
    (event,) = await store.read_all()
    assert event.data.source_app == expected  # type: ignore[union-attr]


async def test_unknown_fields_and_points_are_kept(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    body = payload("SomeFuturePoint", brand_new_field={"nested": [1, 2]})
    assert (await client.post("/v1/hooks/ingest", content=body, headers=JSON)).status_code == 201
    (event,) = await store.read_all()
    assert event.data.payload["brand_new_field"] == {"nested": [1, 2]}  # type: ignore[union-attr]


async def test_half_a_surrogate_pair_is_kept_as_a_replacement_character(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    # JavaScript cuts a string between an emoji's two halves (a tool output cut to a
    # length), and JSON.stringify writes the half left as "\ud83d", as json.dumps does here.
    # No event can hold it: the whole hook event was refused (422) and lost.
    output = "done 😀" * 3 + "\ud83d"
    body = payload("PostToolUse", tool_name="Bash", tool_input={"command": "echo"},
                   tool_use_id="t1", tool_response={"stdout": output})  # fmt: skip
    assert b'\\ud83d"' in body, "the half pair is in the JSON text as an escape"
    response = await client.post("/v1/hooks/ingest", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    (event,) = await store.read_all()
    stdout = event.data.payload["tool_response"]["stdout"]  # type: ignore[union-attr]
    assert stdout == "done 😀" * 3 + "\ufffd"


@pytest.mark.parametrize("source_app", ["", "has space", "x" * 65, "../etc"])
async def test_bad_source_app_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, store: SQLiteEventStore, source_app: str
) -> None:
    response = await client.post(
        "/v1/hooks/ingest", content=payload(), headers={"X-Fleet-Source-App": source_app, **JSON}
    )
    if source_app == "":
        assert response.status_code == 201  # an empty header is no header
        return
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"
    assert await store.head() == 0


@pytest.mark.parametrize("depth", [199, 210, 250])
async def test_a_deeply_nested_payload_is_kept_and_the_views_go_on(
    client: httpx.AsyncClient, store: SQLiteEventStore, depth: int
) -> None:
    """Regression: nesting pydantic writes but does not parse (about 200 to 255 levels) was
    appended, then stopped the projection runner: every view answered 503 until a restart."""
    nested: object = "bottom"
    for _ in range(depth):
        nested = [nested]
    response = await client.post("/v1/hooks/ingest", content=payload(x=nested), headers=JSON)
    assert response.status_code == 201, response.text
    after = await client.post("/v1/hooks/ingest", content=payload("Stop"), headers=JSON)
    assert after.status_code == 201, after.text
    agent = await client.get(f"/v1/agents/ext-{SESSION}")
    assert agent.status_code == 200, agent.text
    health = (await client.get("/healthz")).json()
    assert health["projections"] == health["head"] == after.json()["position"]
    (event, _) = await store.read_stream(f"session-{SESSION}")
    assert isinstance(event.data, ExternalHookReceived)
    assert event.data.payload["x"] == nested
