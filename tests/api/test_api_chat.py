"""Talking to the orchestrator over HTTP: a conversation in the log, slash commands, interrupt."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apitest_support import wait_until

from api import ApiConfig, FleetApp, create_app
from events import ChatMessagePosted, Meta, NewEvent, SQLiteEventStore
from runtime import prepare_workspace
from runtime.simulator import Call, Observation, Situation, Turn

RENAME = "rename `count_words` to `word_count`"


@pytest.fixture
async def config(tmp_path: Path) -> ApiConfig:
    workspace = await prepare_workspace(tmp_path / "repo")
    return ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, workspace=workspace)


async def _say(client: httpx.AsyncClient, text: str, cid: str | None = None) -> dict[str, Any]:
    """Post a message, wait for its answer; returns the answer message."""
    posted = await client.post(
        "/v1/orchestrator/messages", json={"text": text, "conversation_id": cid}
    )
    assert posted.status_code == 202, posted.text
    accepted = posted.json()
    url = f"/v1/orchestrator/conversations/{accepted['conversation_id']}"
    answers: list[dict[str, Any]] = []

    async def answered() -> bool:
        messages = (await client.get(url)).json()["messages"]
        answers[:] = [m for m in messages if m["reply_to"] == accepted["position"]]
        return bool(answers)

    await wait_until(answered, within=60, what=f"the answer to {text!r}")
    return answers[0] | {"conversation_id": accepted["conversation_id"]}


async def _client(app: FleetApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


async def test_a_three_turn_conversation_survives_a_restart(config: ApiConfig) -> None:
    """Work, a question about it, a deletion: answered by the orchestrator, one agent, in the log."""
    app = create_app(config)
    async with app.router.lifespan_context(app), await _client(app) as client:
        first = await _say(client, RENAME)
        cid = first["conversation_id"]
        assert first["role"] == "orchestrator"
        assert first["text"].startswith("DONE: 4 scouts"), first["text"]
        assert "Applied 8 of 8 edits" in first["text"], "the scouts' common findings, once"
        orchestrator = first["agent_id"]
        assert orchestrator and first["author"] == orchestrator

    app = create_app(config)  # a restart: everything comes back from the log
    async with app.router.lifespan_context(app), await _client(app) as client:
        second = await _say(client, "What did the builder decide?", cid)
        assert second["agent_id"] == orchestrator, "the same orchestrator carries on"
        assert second["text"].startswith("builder (completed, "), second["text"]
        third = await _say(client, "Delete the scouts", cid)
        assert third["text"].startswith("Deleted 4: scout-1, scout-2, scout-3, scout-4"), third[
            "text"
        ]

        conversation = (await client.get(f"/v1/orchestrator/conversations/{cid}")).json()
        assert [m["role"] for m in conversation["messages"]] == ["user", "orchestrator"] * 3
        assert conversation["pending"] == 0
        assert conversation["orchestrator_id"] == orchestrator
        agents = (await client.get("/v1/agents", params={"run_id": f"chat-{cid}"})).json()
        by_status = {a["name"]: a["status"] for a in agents["agents"]}
        assert [n for n, s in by_status.items() if s == "deleted"] == [
            "scout-1", "scout-2", "scout-3", "scout-4",
        ]  # fmt: skip
        assert by_status["builder"] == "completed", "the builder is kept: nobody asked otherwise"
        # The answers are events of the log, as every observer (SSE, dashboard) sees them.
        events = (await client.get("/v1/events", params={"type": "ChatMessagePosted"})).json()
        texts = [e["data"]["text"] for e in events["events"]]
        assert texts == [m["text"] for m in conversation["messages"]]
        # The conversation is a run: listed, and replayed with its messages in its timeline.
        run = (await client.get(f"/v1/runs/chat-{cid}")).json()
        assert run["pattern"] == "chat" and run["task"] == RENAME
        timeline = (await client.get(f"/v1/runs/chat-{cid}/timeline")).json()
        said = [e["text"] for e in timeline["entries"] if e["kind"] == "chat"]
        assert said[0] == f"user (api): {RENAME}" and len(said) == 6


async def test_two_servers_on_one_log_answer_each_message_once(config: ApiConfig) -> None:
    """A follow-up posted to a second server while the first drives the orchestrator."""
    first, second = create_app(config), create_app(config)
    async with (
        first.router.lifespan_context(first),
        second.router.lifespan_context(second),
        await _client(first) as one,
        await _client(second) as two,
    ):
        asked = await one.post("/v1/orchestrator/messages", json={"text": RENAME})
        cid = asked.json()["conversation_id"]
        url = f"/v1/orchestrator/conversations/{cid}"

        async def working() -> bool:
            return (await one.get(url)).json()["orchestrator_id"] is not None or bool(
                (await one.get("/v1/agents", params={"run_id": f"chat-{cid}"})).json()["agents"]
            )

        await wait_until(working, within=120, what="the orchestrator to start")
        follow = await two.post(
            "/v1/orchestrator/messages", json={"text": "status", "conversation_id": cid}
        )
        assert follow.status_code == 202

        async def both_answered() -> bool:
            return (await two.get(url)).json()["pending"] == 0

        await wait_until(both_answered, within=90, what="both messages to be answered")
        messages = (await two.get(url)).json()["messages"]
        answers = [m["reply_to"] for m in messages if m["role"] == "orchestrator"]
        assert sorted(answers) == sorted([asked.json()["position"], follow.json()["position"]])
        assert not any(m["text"].startswith("Could not") for m in messages), messages


async def test_a_message_left_unanswered_by_a_stop_is_answered_when_the_server_starts(
    config: ApiConfig,
) -> None:
    """The message is in the log, its answer is not (the process stopped): serve answers it."""
    async with SQLiteEventStore(config.db) as store:
        asked = ChatMessagePosted(conversation_id="left", role="user", text="status", author="me")
        meta = Meta(run_id="chat-left")
        (posted,) = await store.append("chat-left", [NewEvent(asked, meta)])
    app = create_app(config)
    async with app.router.lifespan_context(app), await _client(app) as client:

        async def answered() -> bool:
            got = await client.get("/v1/orchestrator/conversations/left")
            return any(m["reply_to"] == posted.position for m in got.json()["messages"])

        await wait_until(answered, within=60, what="the answer to the message left unanswered")
        conversation = (await client.get("/v1/orchestrator/conversations/left")).json()
        assert conversation["messages"][-1]["text"] == "No agents yet."
        assert conversation["pending"] == 0


async def test_slash_commands_act_on_the_fleet_without_the_model(client: httpx.AsyncClient) -> None:
    created = await _say(client, '/create-agent scout-9 "Task: rename `count_words` to `wc`"')
    cid = created["conversation_id"]
    assert created["author"] == "fleet" and created["agent_id"] is None
    assert created["text"].startswith("created scout-9 (scout-9-"), created["text"]
    assert "a scout on" in created["text"]
    waited = await _say(client, "/wait 60", cid)
    assert "completed" in waited["text"], waited["text"]
    status = await _say(client, "/status scout-9", cid)
    assert status["text"].startswith("scout-9 (scout-9-") and ": completed, scout" in status["text"]
    # Asked once it has ended: how it ended (an agent can end before the /wait after it).
    again = await _say(client, "/wait 1", cid)
    assert again["text"].startswith("no agent is working; scout-9-"), again["text"]
    assert again["text"].endswith(": completed"), again["text"]
    output = await _say(client, "/output scout-9", cid)
    assert "files produced: .fleet/notes/" in output["text"] or "files produced" in output["text"]
    idle = await _say(client, "/interrupt scout-9", cid)
    assert "not working: nothing to interrupt" in idle["text"], idle["text"]
    cost = await _say(client, "/cost", cid)
    assert cost["text"].startswith("this conversation: 1 agents, "), cost["text"]
    deleted = await _say(client, "/delete-all-agents", cid)
    assert deleted["text"].startswith("deleted 1 agents: scout-9-"), deleted["text"]
    conversation = (await client.get(f"/v1/orchestrator/conversations/{cid}")).json()
    assert conversation["orchestrator_id"] is None, "slash commands never woke the orchestrator"


async def test_a_deleted_orchestrator_is_replaced_by_the_next_message(
    client: httpx.AsyncClient,
) -> None:
    first = await _say(client, "status")
    cid, old = first["conversation_id"], first["agent_id"]
    assert first["text"] == "No agents yet."
    deleted = await _say(client, "/delete orchestrator", cid)
    assert deleted["text"] == f"deleted {old}"
    again = await _say(client, "status", cid)
    assert again["agent_id"] not in (None, old)
    assert again["text"] == "No agents yet."
    conversation = (await client.get(f"/v1/orchestrator/conversations/{cid}")).json()
    assert conversation["orchestrator_id"] == again["agent_id"]


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"text": "/frobnicate now"}, 422, "invalid-chat-command"),
        ({"text": "/command only-an-id"}, 422, "invalid-chat-command"),
        ({"text": '/create-agent x "t" --colour red'}, 422, "invalid-chat-command"),
        ({"text": "/wait forever"}, 422, "invalid-chat-command"),
        ({"text": '/status "unclosed'}, 422, "invalid-chat-command"),
        ({"text": "   "}, 422, "invalid-body"),
        ({"text": ""}, 422, "invalid-body"),
        ({"text": "hi", "conversation_id": "../etc"}, 422, "invalid-body"),
        ({"text": "hi", "colour": "red"}, 422, "invalid-body"),
    ],
)
async def test_bad_messages_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, slug: str
) -> None:
    before = (await client.get("/v1/events")).json()["events"]
    response = await client.post("/v1/orchestrator/messages", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == f"urn:fleet:problem:{slug}"
    assert (await client.get("/v1/events")).json()["events"] == before


async def test_an_unknown_conversation_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/orchestrator/conversations/nope")
    assert response.status_code == 404
    assert response.json()["type"] == "urn:fleet:problem:conversation-not-found"


SLEEP = "sleep 97.531"  # a command line no other process has


def _sleeping() -> bool:
    """Whether a process runs `SLEEP` (read from /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().replace(b"\0", b" ").strip() == SLEEP.encode():
                return True
        except OSError:
            continue  # it ended while we looked
    return False


def _sleeper(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """A policy whose turn lasts until it is interrupted (a long shell command)."""
    yield Turn("Sleeping.", [Call("Bash", {"command": SLEEP})])
    return "woke up"


async def test_interrupt_stops_the_turn_and_keeps_the_agent(
    app: FleetApp, client: httpx.AsyncClient
) -> None:
    assert app.services is not None and app.services.runtime is not None
    simulator = app.services.runtime.simulator
    assert simulator is not None
    simulator.register_policy("sleeper", _sleeper)
    created = await client.post(
        "/v1/agents", json={"name": "sleepy", "role": "sleeper", "task": "sleep"}
    )
    agent_id = created.json()["id"]

    async def running_bash() -> bool:
        page = await client.get("/v1/events", params={"type": "ToolCallRequested"})
        return any(e["data"]["agent_id"] == agent_id for e in page.json()["events"])

    await wait_until(running_bash, within=120, what="the shell command to start")
    await wait_until(_sleeping, within=120, what="the sleep to run")
    interrupted = await client.post(f"/v1/agents/{agent_id}/interrupt")
    assert interrupted.status_code == 200, interrupted.text
    assert interrupted.json()["status"] == "failed"
    assert interrupted.json()["error"] == "interrupted by api"
    await wait_until(lambda: not _sleeping(), within=120, what="the turn's process to end")
    again = await client.post(f"/v1/agents/{agent_id}/interrupt")
    assert again.status_code == 409
    assert again.json()["type"] == "urn:fleet:problem:agent-not-working"
    # The agent stays: a new command continues its conversation.
    commanded = await client.post(f"/v1/agents/{agent_id}/commands", json={"prompt": "again"})
    assert commanded.status_code == 202
    assert (await client.post(f"/v1/agents/{agent_id}/interrupt")).status_code == 200
    missing = await client.post("/v1/agents/nobody/interrupt")
    assert missing.status_code == 404


async def test_a_question_about_the_status_is_answered_from_the_fleet_not_given_to_a_builder(
    config: ApiConfig,
) -> None:
    app = create_app(config)
    async with app.router.lifespan_context(app), await _client(app) as client:
        answer = await _say(client, "What is the status?")
        agents = (
            await client.get("/v1/agents", params={"run_id": f"chat-{answer['conversation_id']}"})
        ).json()["agents"]
        assert [a["role"] for a in agents] == ["orchestrator"], "no builder was created"
        assert answer["text"] == "No agents yet.", "its listing of the fleet, not a report"
