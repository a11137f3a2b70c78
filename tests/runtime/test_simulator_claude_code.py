"""The simulator against what the real Claude Code 2.1.332 sent it (recorded; see the fixtures' README).

Each recorded request is sent again, with its headers and `?beta=true`, over
loopback HTTP; the recorded hooks and transcripts go through fleet's ingest.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import ApiConfig, create_app
from api.cli._render import describe_event
from events import SQLiteEventStore
from runtime import Simulator, TranscriptReader

FIXTURES = Path(__file__).parent / "fixtures" / "claude-code-2.1.332"
REQUESTS = ["request-first.json", "request-subagent.json", "request-tool-results.json"]


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


async def replay(sim: Simulator, request: dict[str, Any], **changes: Any) -> httpx.Response:
    headers = {**request["headers"], "x-api-key": "sk-ant-offline"}
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=30) as http:
        return await http.post(
            f"{request['path']}?{request['query']}", json={**request["body"], **changes},
            headers=headers,
        )  # fmt: skip


def streamed(response: httpx.Response) -> tuple[list[str], list[dict[str, Any]]]:
    """The event names of an SSE answer, and the content blocks it opened."""
    names, blocks = [], []
    for chunk in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines())
        names.append(fields["event"])
        data = json.loads(fields["data"])
        if fields["event"] == "content_block_start":
            blocks.append(data["content_block"])
    return names, blocks


def test_the_recording_holds_the_shapes_the_simulator_once_refused() -> None:
    first = recorded("request-first.json")
    body = first["body"]
    assert first["query"] == "beta=true" and body["stream"] is True
    assert "per-turn-control-2026-07-01" in first["headers"]["anthropic-beta"]
    assert [m["role"] for m in body["messages"]] == ["user", "system"]
    assert {"thinking", "context_management", "output_config", "metadata"} <= set(body)


@pytest.mark.parametrize("name", REQUESTS)
async def test_each_recorded_request_gets_a_streamed_answer(sim: Simulator, name: str) -> None:
    request = recorded(name)

    response = await replay(sim, request)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    names, blocks = streamed(response)
    assert names[0] == "message_start" and names[-1] == "message_stop"
    offered = {t["name"] for t in request["body"]["tools"]}
    assert {b["name"] for b in blocks if b["type"] == "tool_use"} <= offered


async def test_the_session_delegates_the_search_to_an_explore_subagent(sim: Simulator) -> None:
    response = await replay(sim, recorded("request-first.json"), stream=False)

    (call,) = [b for b in response.json()["content"] if b["type"] == "tool_use"]
    assert call["name"] == "Agent"
    assert call["input"]["subagent_type"] == "Explore"
    assert call["input"]["run_in_background"] is False
    assert "rename `count_words` to `word_count`" in call["input"]["prompt"]


async def test_the_subagent_searches_and_the_session_edits_by_absolute_path(sim: Simulator) -> None:
    searched = await replay(sim, recorded("request-subagent.json"), stream=False)
    request = recorded("request-tool-results.json")
    edited = await replay(sim, request, stream=False)

    (grep,) = [b for b in searched.json()["content"] if b["type"] == "tool_use"]
    assert grep["name"] == "Bash" and "grep" in grep["input"]["command"]
    edits = [b["input"] for b in edited.json()["content"] if b["type"] == "tool_use"]
    assert len(edits) == 8
    assert all(e["file_path"].startswith("/") and e["replace_all"] for e in edits)


async def test_an_older_model_refuses_the_recorded_request_as_the_api_would(
    sim: Simulator,
) -> None:
    response = await replay(sim, recorded("request-first.json"), model="claude-sonnet-4-5",
                            max_tokens=64_000)  # fmt: skip

    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "messages.1.role: 'system' is not supported on this model"
    )


async def test_the_recorded_transcripts_hold_one_response_per_request() -> None:
    reader = TranscriptReader()
    session = await reader.read(str(FIXTURES / "transcript.jsonl"), final=True)
    subagent = await reader.read(str(FIXTURES / "transcript-subagent.jsonl"), final=True)

    assert len(session) == 6 and len(subagent) == 2
    assert {r.model for r in session + subagent} == {"claude-opus-5-5"}
    assert all(r.agent_id is None for r in session)
    hooks = [json.loads(line) for line in (FIXTURES / "hooks.jsonl").read_text().splitlines()]
    started = next(h for h in hooks if h["hook_event_name"] == "SubagentStart")
    assert {r.agent_id for r in subagent} == {started["agent_id"]}
    assert all(r.usage.output_tokens > 0 for r in session + subagent)


async def test_the_recorded_hooks_make_a_session_and_its_subagent_in_fleet(tmp_path: Path) -> None:
    """The 37 payloads, posted to the ingest endpoint, with the transcripts where they now are."""
    hooks = [json.loads(line) for line in (FIXTURES / "hooks.jsonl").read_text().splitlines()]
    session_id = hooks[0]["session_id"]
    for hook in hooks:
        hook["transcript_path"] = str(FIXTURES / "transcript.jsonl")
        if "agent_transcript_path" in hook:
            hook["agent_transcript_path"] = str(FIXTURES / "transcript-subagent.jsonl")
    config = ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, runtime=False)
    app = create_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://testserver"
        ) as client,
    ):
        for hook in hooks:
            assert (await client.post("/v1/hooks/ingest", json=hook)).status_code == 201
        assert app.services is not None and app.services.session_usage is not None
        async with asyncio.timeout(30):
            await app.services.session_usage.drained()
        agents = {a["id"]: a for a in (await client.get("/v1/agents")).json()["agents"]}

    session = agents[f"ext-{session_id}"]
    (child,) = [a for a in agents.values() if a["parent_id"] == session["id"]]
    assert session["tool_calls"]["by_tool"] == {"Agent": 1, "Read": 4, "Edit": 8, "Bash": 1,
                                                "Write": 1}  # fmt: skip
    assert (session["turns"], child["turns"]) == (6, 2)
    assert child["name"].startswith("Explore/") and child["tool_calls"]["by_tool"] == {"Bash": 1}
    assert session["cost_usd"] > 0 and child["cost_usd"] > 0
    assert session["status"] == child["status"] == "completed"

    async with SQLiteEventStore(config.db) as store:
        lines = [describe_event(e) for e in await store.read_all()]
    assert any(line.startswith("PreToolUse Edit file_path=/") for line in lines)
    assert any(line.startswith("SubagentStart Explore ") for line in lines)
    assert any(line.startswith("PreToolUse Bash command=grep ") for line in lines)
