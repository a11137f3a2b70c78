"""Approvals over HTTP: a person answers a call on hold; the agent runs in another store on the log."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx

from api import Serving
from events import SQLiteEventStore
from hooks import HookDispatcher
from runtime import Agent, AgentSpec, ModelClient, Simulator, prepare_workspace
from runtime.simulator import Call, Observation, Situation, Turn

ASK = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "ask"}}


def cleaner(situation: Situation) -> Generator[Turn, list[Observation], str]:
    seen = yield Turn("Cleaning.", [Call("Bash", {"command": "echo cleaned"})])
    return f"error={seen[0].is_error}: {seen[0].content}"


async def pending(http: httpx.AsyncClient) -> dict[str, Any]:
    """The first pending approval, once there is one (waits on the log, 30 s at most)."""
    async with asyncio.timeout(30):
        while True:
            found = (await http.get("/v1/approvals")).json()
            if found["count"]:
                return found["approvals"][0]  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)


async def test_a_person_answers_over_http_and_the_agent_goes_on(
    server: Serving, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    workspace = await prepare_workspace(tmp_path / "ws")
    async with (
        Simulator() as sim,
        ModelClient.from_env(simulator_base_url=sim.base_url, env={}) as client,
        SQLiteEventStore(server.app.config.db, poll_interval=0.05) as store,
        HookDispatcher() as hooks,
    ):
        sim.register_policy("cleaner", cleaner)
        hooks.add_python("PreToolUse", lambda p: ASK)
        spec = AgentSpec(
            agent_id="a1", name="cleaner-1", role="cleaner", model="haiku",
            workspace=workspace, run_id="r1",
        )  # fmt: skip
        agent = Agent(store=store, client=client, spec=spec, hooks=hooks)
        await agent.create(task="clean up")
        task = asyncio.create_task(agent.run_until_idle())
        approval = await pending(http)
        assert (approval["agent_name"], approval["tool_name"]) == ("cleaner-1", "Bash")
        assert approval["tool_input"] == {"command": "echo cleaned"}
        card = (await http.get("/v1/agents/a1")).json()
        assert (card["status"], card["waiting_for"]) == ("waiting", "approval")

        bad = await http.post(f"/v1/approvals/{approval['id']}", json={"decision": "maybe"})
        assert bad.status_code == 422
        # A blank reason would tell the agent nothing.
        for blank in ("", " \n"):
            bad = await http.post(
                f"/v1/approvals/{approval['id']}", json={"decision": "deny", "reason": blank}
            )
            assert bad.status_code == 422, bad.text
            assert "must say why" in bad.text
        # An unknown query parameter is a 400 here too (it was ignored: the call was decided).
        for request in (
            http.get(f"/v1/approvals/{approval['id']}?bogus=1"),
            http.post(f"/v1/approvals/{approval['id']}?bogus=1", json={"decision": "deny"}),
        ):
            refused = await request
            assert refused.status_code == 400, refused.text
            assert "takes no query parameters" in refused.json()["detail"]
        assert (await pending(http))["id"] == approval["id"]  # still pending
        answer = await http.post(
            f"/v1/approvals/{approval['id']}",
            json={"decision": "allow", "reason": "fine", "who": "alice"},
        )
        assert answer.status_code == 200
        assert answer.json()["decision"] == "allow"
        assert answer.json()["by"] == "alice"
        outcome = await asyncio.wait_for(task, 30)

    assert outcome.status == "completed"
    assert "cleaned" in outcome.summary
    one = (await http.get(f"/v1/approvals/{approval['id']}")).json()
    assert (one["status"], one["by"], one["decision_reason"]) == ("allowed", "alice", "fine")
    again = await http.post(f"/v1/approvals/{approval['id']}", json={"decision": "deny"})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert "allowed by alice" in again.json()["detail"]
    missing = await http.post("/v1/approvals/apr_nothing", json={"decision": "deny"})
    assert missing.status_code == 404
    assert (await http.get("/v1/approvals")).json()["count"] == 0
    every = (await http.get("/v1/approvals", params={"status": "all", "agent_id": "a1"})).json()
    assert [a["id"] for a in every["approvals"]] == [approval["id"]]
