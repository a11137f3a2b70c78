"""`POST /v1/otlp/v1/{logs,metrics,traces}`: Claude Code's own telemetry on its session's agent.

The bodies are those the real Claude Code 2.1.197 posted (tests/hooks/fixtures/
otlp-claude-code-2.1.197/README.md says how they were captured).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from events import AgentCreated, ModelResponded, SQLiteEventStore, TelemetryReceived

FIXTURES = Path(__file__).parents[1] / "hooks" / "fixtures" / "otlp-claude-code-2.1.197"
SESSIONS = {
    "proto": "30006865-2829-403c-aa30-ad40fccfcdc9",
    "json": "ffb7204b-6cfa-4872-bd64-8274cd61f1b5",
}
CONTENT_TYPES = {"proto": "application/x-protobuf", "json": "application/json"}


async def post_all(client: httpx.AsyncClient, encoding: str) -> None:
    """Post every captured request in the order Claude Code sent them."""
    for path in sorted((FIXTURES / encoding).glob("0*")):
        signal = path.stem.split("-")[1]
        response = await client.post(
            f"/v1/otlp/v1/{signal}",
            content=path.read_bytes(),
            headers={"content-type": CONTENT_TYPES[encoding]},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(CONTENT_TYPES[encoding])


def api_requests(encoding: str) -> list[dict[str, object]]:
    """The api_request attributes straight from the JSON fixture (no fleet code involved)."""
    out: list[dict[str, object]] = []
    for path in sorted((FIXTURES / "json").glob("*-logs.json")):
        for rl in json.loads(path.read_text())["resourceLogs"]:
            for sl in rl["scopeLogs"]:
                for record in sl["logRecords"]:
                    if record["body"].get("stringValue") == "claude_code.api_request":
                        out.append(
                            {
                                kv["key"]: next(iter(kv["value"].values()))
                                for kv in record["attributes"]
                            }
                        )
    return out


@pytest.mark.parametrize("encoding", ["proto", "json"])
async def test_claude_codes_tokens_and_cost_end_up_on_the_sessions_agent(
    client: httpx.AsyncClient, encoding: str
) -> None:
    await post_all(client, encoding)
    session = SESSIONS[encoding]
    card = (await client.get(f"/v1/agents/ext-{session}")).json()
    assert card["external"] is True
    assert card["model"] == "claude-sonnet-4-5"
    assert card["name"] == f"claude-code/{session[:8]}"
    if encoding == "json":  # the JSON capture's own numbers, read without fleet's decoder
        expected = api_requests("json")
        assert card["turns"] == len(expected) == 4
        assert card["tokens"]["input"] == sum(int(str(r["input_tokens"])) for r in expected)
        assert card["tokens"]["output"] == sum(int(str(r["output_tokens"])) for r in expected)
        assert card["tokens"]["cache_read"] == sum(
            int(str(r["cache_read_tokens"])) for r in expected
        )
        assert card["tokens"]["cache_write"] == sum(
            int(str(r["cache_creation_tokens"])) for r in expected
        )
        assert card["cost_usd"] == pytest.approx(
            sum(float(str(r["cost_usd"])) for r in expected), abs=1e-6
        )
    else:
        assert card["turns"] == 4 and card["cost_usd"] > 0
    fleet = (await client.get("/v1/fleet")).json()
    assert fleet["cost_usd"] == pytest.approx(card["cost_usd"], abs=1e-6)


async def test_telemetry_joins_the_agent_the_hooks_created(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    session = SESSIONS["proto"]
    hook = {"session_id": session, "hook_event_name": "UserPromptSubmit", "prompt": "look around"}
    assert (await client.post("/v1/hooks/ingest", json=hook)).status_code == 201
    await post_all(client, "proto")
    events = await store.read_stream(f"session-{session}")
    assert not [e for e in events if isinstance(e.data, AgentCreated)]  # the hook made it
    assert {e.meta.agent_id for e in events} == {f"ext-{session}"}
    assert {e.meta.source for e in events} == {"ingest"}
    card = (await client.get(f"/v1/agents/ext-{session}")).json()
    assert card["status"] == "working"
    assert card["task"] == "look around"
    assert card["turns"] == 4
    agents = (await client.get("/v1/agents")).json()
    assert agents["count"] == 1


async def test_telemetry_first_creates_the_agent_once_and_hooks_then_join_it(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    session = SESSIONS["proto"]
    await post_all(client, "proto")
    hook = {"session_id": session, "hook_event_name": "Stop"}
    assert (await client.post("/v1/hooks/ingest", json=hook)).status_code == 201
    events = await store.read_stream(f"session-{session}")
    created = [e for e in events if isinstance(e.data, AgentCreated)]
    assert len(created) == 1 and created[0].version == 1
    assert sum(isinstance(e.data, ModelResponded) for e in events) == 4
    assert sum(isinstance(e.data, TelemetryReceived) for e in events) == 48
    card = (await client.get(f"/v1/agents/ext-{session}")).json()
    assert card["status"] == "completed"
    assert (await client.get("/v1/agents")).json()["count"] == 1


async def test_a_huge_model_name_is_cut_on_the_sessions_card(client: httpx.AsyncClient) -> None:
    """Regression: a poster's 500,000-character `model` became the card's model, carried by
    every view of the agents (the events keep what was sent)."""
    attributes = {"session.id": "s-huge-model", "model": "claude-" + "x" * 500_000,
                  "request_id": "req_1", "input_tokens": "10"}  # fmt: skip
    record = {
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
    }
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    response = await client.post("/v1/otlp/v1/logs", json=body)
    assert response.status_code == 200, response.text
    card = (await client.get("/v1/agents/ext-s-huge-model")).json()
    assert card["model"] == ("claude-" + "x" * 500_000)[:199] + "…"
    assert card["turns"] == 1 and card["tokens"]["input"] == 10


def _nested_log(depth: int) -> bytes:
    """A log record whose one attribute is a list nested `depth` deep."""
    value: dict[str, object] = {"stringValue": "x"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    record = {"attributes": [{"key": "k", "value": value}]}
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("headers", "body", "status", "slug"),
    [
        # A text body is refused by the server's request guard before the route sees it.
        ({"content-type": "text/plain"}, b"hello", 415, "unsupported-media-type"),
        ({"content-type": "application/xml"}, b"<x/>", 415, "unsupported-otlp"),
        ({"content-type": "application/x-protobuf"}, b"\x0a\xff\xff\xff", 400, "invalid-otlp"),
        ({"content-type": "application/x-protobuf"}, b"", 400, "invalid-otlp"),
        (
            {"content-type": "application/json"},
            b'{"resourceLogs": [{"bogus": 1}]}',
            400,
            "invalid-otlp",
        ),
        (
            {"content-type": "application/x-protobuf", "content-encoding": "br"},
            b"x",
            415,
            "unsupported-otlp",
        ),
        # An integer Python will not convert, and an attribute nested 300 deep: were 500s.
        (
            {"content-type": "application/json"},
            b'{"resourceLogs": ' + b"9" * 5000 + b"}",
            400,
            "invalid-otlp",
        ),
        ({"content-type": "application/json"}, _nested_log(300), 400, "invalid-otlp"),
    ],
)
async def test_bad_input_gets_a_clear_4xx_and_writes_nothing(
    client: httpx.AsyncClient,
    store: SQLiteEventStore,
    headers: dict[str, str],
    body: bytes,
    status: int,
    slug: str,
) -> None:
    response = await client.post("/v1/otlp/v1/logs", content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(slug)
    assert await store.head() == 0


async def test_an_oversized_body_is_413_and_writes_nothing(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    body = b"\0" * (5 * 1024 * 1024)
    response = await client.post(
        "/v1/otlp/v1/metrics", content=body, headers={"content-type": "application/x-protobuf"}
    )
    assert response.status_code == 413
    assert await store.head() == 0


async def test_unknown_signal_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/otlp/v1/profiles", content=b"", headers={"content-type": "application/x-protobuf"}
    )
    assert response.status_code == 404


async def test_records_without_a_session_are_a_partial_success(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}]}]}]}
    response = await client.post("/v1/otlp/v1/logs", json=body)
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert await store.head() == 0
    proto = await client.post(
        "/v1/otlp/v1/logs", content=b"", headers={"content-type": "application/x-protobuf"}
    )
    assert proto.status_code == 400
    empty = ExportLogsServiceResponse()
    ok = await client.post(
        "/v1/otlp/v1/logs",
        content=(FIXTURES / "proto" / "002-logs.pb").read_bytes(),
        headers={"content-type": "application/x-protobuf"},
    )
    empty.ParseFromString(ok.content)
    assert not empty.HasField("partial_success")


async def test_the_sender_is_named_by_header_or_query_and_checked(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    body = (FIXTURES / "proto" / "002-logs.pb").read_bytes()
    headers = {"content-type": "application/x-protobuf", "X-Fleet-Source-App": "my-laptop"}
    assert (await client.post("/v1/otlp/v1/logs", content=body, headers=headers)).status_code == 200
    card = (await client.get(f"/v1/agents/ext-{SESSIONS['proto']}")).json()
    assert card["name"] == f"my-laptop/{SESSIONS['proto'][:8]}"
    head = await store.head()
    headers["X-Fleet-Source-App"] = "no spaces allowed"
    response = await client.post("/v1/otlp/v1/logs", content=body, headers=headers)
    assert response.status_code == 400
    assert "source_app" in response.json()["detail"]
    assert await store.head() == head
