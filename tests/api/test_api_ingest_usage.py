"""Tokens and cost of an ingested Claude Code session, from the transcript its hooks name.

Payloads and transcript lines are shaped as Claude Code 2.1.332 sends and
writes them (tests/runtime/fixtures/claude-code-2.1.332/ holds the recording).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import ApiConfig, FleetApp, create_app
from runtime import PriceTable
from runtime._transcripts import TranscriptReader

SESSION = "2f91f733-3ef9-41b7-a533-ed97b47f8659"
SUB = "ab335d475f5d1bbe9"


def usage(write: int, read: int, out: int) -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": out,
        "cache_creation": {"ephemeral_1h_input_tokens": write, "ephemeral_5m_input_tokens": 0},
    }


def line(request: str, u: dict[str, Any], agent: str | None = None) -> str:
    entry: dict[str, Any] = {
        "type": "assistant",
        "requestId": request,
        "timestamp": "2026-11-30T02:18:01.000Z",
        "message": {"id": f"msg_{request}", "model": "claude-opus-5-5", "usage": u},
    }
    if agent:
        entry["agentId"] = agent
    return json.dumps(entry) + "\n" + json.dumps({"type": "user"}) + "\n"


@pytest.fixture
def transcript(tmp_path: Path) -> Path:
    folder = tmp_path / "home" / ".claude" / "projects" / "-ws"
    folder.mkdir(parents=True)
    path = folder / f"{SESSION}.jsonl"
    path.write_text(line("req_1", usage(12300, 0, 89)) + line("req_2", usage(468, 12284, 72)))
    return path


def hook(transcript: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "transcript_path": str(transcript),
        "cwd": "/ws",
        "hook_event_name": name,
        **extra,
    }


async def card_when(
    client: httpx.AsyncClient, agent: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The agent's card once `ready(card)` holds (the transcript is read in the background)."""
    async with asyncio.timeout(20):
        while True:
            response = await client.get(f"/v1/agents/{agent}")
            if response.status_code == 200 and ready(card := response.json()):
                return card
            await asyncio.sleep(0.05)


async def test_a_sessions_card_shows_model_tokens_cost_and_context(
    client: httpx.AsyncClient, transcript: Path
) -> None:
    await client.post("/v1/hooks/ingest", json=hook(transcript, "UserPromptSubmit", prompt="hi"))
    await client.post("/v1/hooks/ingest", json=hook(transcript, "Stop"))

    card = await card_when(client, f"ext-{SESSION}", lambda c: c["turns"] == 2)

    assert card["model"] == "claude-opus-5-5"
    assert card["tokens"] == {
        "input": 0, "output": 161, "cache_write": 12768, "cache_read": 12284, "total": 25213
    }  # fmt: skip
    assert card["context"]["limit"] == 1_000_000
    assert card["context"]["used"] == 468 + 12284 + 72
    responses = await TranscriptReader().read(str(transcript), final=True)
    expected = sum(PriceTable.default().cost(r.model, r.usage, r.at.date()) for r in responses)  # type: ignore[union-attr]
    assert card["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert card["cost_usd"] > 0


async def test_a_subagents_tokens_come_from_its_own_transcript(
    client: httpx.AsyncClient, transcript: Path
) -> None:
    own = transcript.parent / SESSION / "subagents" / f"agent-{SUB}.jsonl"
    own.parent.mkdir(parents=True)
    own.write_text(line("req_9", usage(6548, 0, 38), agent=SUB))
    sub = {"agent_id": SUB, "agent_type": "Explore"}

    await client.post("/v1/hooks/ingest", json=hook(transcript, "SubagentStart", **sub))
    await client.post("/v1/hooks/ingest", json=hook(transcript, "SubagentStop", **sub,
                                                     agent_transcript_path=str(own)))  # fmt: skip

    card = await card_when(client, f"ext-{SESSION}-{SUB}", lambda c: c["turns"] == 1)
    assert card["tokens"]["cache_write"] == 6548
    assert card["parent_id"] == f"ext-{SESSION}"
    session = await card_when(client, f"ext-{SESSION}", lambda c: c["turns"] == 2)
    assert session["tokens"]["cache_write"] == 12768  # its own, without the subagent's


async def test_a_response_is_counted_once_across_hooks_and_restarts(
    config: ApiConfig, transcript: Path
) -> None:
    for _ in range(2):  # two server lifetimes on the same log
        app = create_app(config)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app), base_url="http://testserver"
            ) as client,
        ):
            for name in ("UserPromptSubmit", "PreToolUse", "Stop", "Stop"):
                await client.post("/v1/hooks/ingest", json=hook(transcript, name))
            await drained(app)
            card = (await client.get(f"/v1/agents/ext-{SESSION}")).json()
        assert (card["turns"], card["tokens"]["output"]) == (2, 161)


async def drained(app: FleetApp) -> None:
    assert app.services is not None and app.services.session_usage is not None
    async with asyncio.timeout(20):
        await app.services.session_usage.drained()


@pytest.mark.parametrize("path", ["relative.jsonl", "/nonexistent/s.jsonl", "/etc/passwd"])
async def test_a_transcript_that_cannot_be_read_leaves_the_session_without_tokens(
    app: FleetApp, client: httpx.AsyncClient, path: str
) -> None:
    payload = {"session_id": SESSION, "hook_event_name": "Stop", "transcript_path": path}

    response = await client.post("/v1/hooks/ingest", json=payload)
    await drained(app)

    assert response.status_code == 201
    card = (await client.get(f"/v1/agents/ext-{SESSION}")).json()
    assert (card["turns"], card["cost_usd"], card["model"]) == (0, 0.0, "unknown")


async def test_a_transcript_named_by_a_poster_on_another_host_is_not_read(
    app: FleetApp, client: httpx.AsyncClient, transcript: Path
) -> None:
    """Its paths are its machine's, not this one's; and a poster elsewhere (a server
    reachable with a token) named any `.jsonl` of this host, whose responses' models and
    tokens then showed on a card. The session is recorded all the same."""
    elsewhere = httpx.ASGITransport(app, client=("192.0.2.7", 50123))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://testserver") as remote:
        response = await remote.post("/v1/hooks/ingest", json=hook(transcript, "Stop"))
    await drained(app)
    assert response.status_code == 201
    card = (await client.get(f"/v1/agents/ext-{SESSION}")).json()
    assert (card["turns"], card["cost_usd"], card["model"]) == (0, 0.0, "unknown")
    # The same post from this host (loopback): read.
    await client.post("/v1/hooks/ingest", json=hook(transcript, "Stop"))
    card = await card_when(client, f"ext-{SESSION}", lambda c: c["turns"] == 2)
    assert card["model"] == "claude-opus-5-5"


def otlp_api_request(request_id: str) -> dict[str, Any]:
    """Claude Code's `api_request` log record for `request_id`, as OTLP/JSON."""

    def attr(key: str, value: Any) -> dict[str, Any]:
        kind = "intValue" if isinstance(value, int) else "stringValue"
        return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}

    attributes = [
        attr("session.id", SESSION), attr("event.name", "api_request"),
        attr("request_id", request_id), attr("model", "claude-opus-5-5"),
        attr("input_tokens", 0), attr("output_tokens", 89),
    ]  # fmt: skip
    record = {"body": {"stringValue": "claude_code.api_request"}, "attributes": attributes}
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}


@pytest.mark.parametrize("telemetry_first", [True, False])
async def test_telemetry_and_transcript_count_a_request_once(
    app: FleetApp, client: httpx.AsyncClient, transcript: Path, telemetry_first: bool
) -> None:
    async def telemetry() -> None:
        response = await client.post("/v1/otlp/v1/logs", json=otlp_api_request("req_1"))
        assert response.status_code == 200, response.text

    if telemetry_first:
        await telemetry()
    await client.post("/v1/hooks/ingest", json=hook(transcript, "Stop"))
    await drained(app)
    if not telemetry_first:
        await telemetry()

    card = (await client.get(f"/v1/agents/ext-{SESSION}")).json()
    assert card["turns"] == 2  # req_1 and req_2, each once


async def test_a_subagents_payload_is_filed_under_the_subagent(
    client: httpx.AsyncClient, transcript: Path
) -> None:
    payload = hook(transcript, "PreToolUse", agent_id=SUB, agent_type="Explore",
                   tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="t1")  # fmt: skip

    response = await client.post("/v1/hooks/ingest", json=payload)

    assert response.status_code == 201
    (event,) = (await client.get("/v1/events", params={"type": "ExternalHookReceived"})).json()[
        "events"
    ]
    assert event["meta"]["agent_id"] == f"ext-{SESSION}-{SUB}"


@pytest.mark.parametrize("agent_id", [42, "bad id!", "x" * 120])
async def test_an_agent_id_that_makes_no_agent_id_is_refused(
    client: httpx.AsyncClient, transcript: Path, agent_id: object
) -> None:
    response = await client.post(
        "/v1/hooks/ingest", json=hook(transcript, "SubagentStart", agent_id=agent_id)
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "agent_id"]
    assert (await client.get("/v1/events")).json()["events"] == []


async def test_a_session_naming_another_sessions_transcript_gets_none_of_it(
    app: FleetApp, client: httpx.AsyncClient, transcript: Path
) -> None:
    """The reader keeps its place by file: a second session naming the same transcript took
    what was written to it next as its own."""
    await client.post("/v1/hooks/ingest", json=hook(transcript, "Stop"))
    await card_when(client, f"ext-{SESSION}", lambda c: c["turns"] == 2)
    with transcript.open("a") as f:
        f.write(line("req_3", usage(0, 100, 5)))
    thief = {**hook(transcript, "Stop"), "session_id": "thief"}
    await client.post("/v1/hooks/ingest", json=thief)
    await client.post("/v1/hooks/ingest", json=hook(transcript, "Stop"))
    await drained(app)
    card = await card_when(client, f"ext-{SESSION}", lambda c: c["turns"] == 3)
    assert card["tokens"]["output"] == 166
    stolen = (await client.get("/v1/agents/ext-thief")).json()
    assert stolen["turns"] == 0 and stolen["tokens"]["total"] == 0, stolen
