"""Hooks end to end: settings.json in the workspace, a real fleet run, and Claude Code ingest.

The hooks package's own tests check the runners; these check what a user sees:
a guard script configured in `.fleet/settings.json` keeps `rm -rf` from running,
an HTTP audit hook hears every tool call in order, and a Claude Code session
posting through `fleet hook-forward` shows up as an agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api import ApiConfig, serving
from events import EventFilter, HookInvoked, SQLiteEventStore
from runtime import RuntimeOptions, open_runtime
from runtime.simulator import Call, Observation, Situation, Turn

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "hooks" / "fixtures"

GUARD = """#!/bin/sh
# A PreToolUse guard, as a Claude Code user writes one: exit 2 blocks, stderr is the reason.
if grep -q 'rm -rf' ; then
  echo "rm -rf is not allowed in this repository" >&2
  exit 2
fi
exit 0
"""


class serving_app:
    """A Starlette app under uvicorn on a loopback port (the audit endpoint)."""

    def __init__(self, app: Starlette) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
        )

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.task


def wrecker_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """A careless role: tries to delete the package, then reports what it was told."""
    results = yield Turn("Cleaning up.", [Call("Bash", {"command": "rm -rf textstats"})])
    listed = yield Turn("Checking.", [Call("Glob", {"pattern": "textstats/*.py"})])
    return f"rm said: {results[0].content} | files: {listed[0].content}"


def _settings(workspace: Path, hooks: dict[str, object]) -> None:
    folder = workspace / ".fleet"
    folder.mkdir(exist_ok=True)
    (folder / "settings.json").write_text(json.dumps({"hooks": hooks}))


async def test_a_command_hook_from_settings_blocks_rm_rf_and_the_model_sees_why(
    tmp_path: Path, workspace: Path
) -> None:
    guard = tmp_path / "guard.sh"
    guard.write_text(GUARD)
    guard.chmod(0o755)
    _settings(
        workspace,
        {
            "PreToolUse": [
                {"matcher": "Bash", "hooks": [{"type": "command", "command": str(guard)}]}
            ]
        },
    )
    async with open_runtime(
        RuntimeOptions(db=tmp_path / "f.db", workspace=workspace, env={})
    ) as rt:
        assert rt.simulator is not None
        rt.simulator.register_policy("wrecker", wrecker_policy)
        agent_id = (await rt.fleet.create_agent(name="careless", role="wrecker", task="tidy up"))[
            "id"
        ]
        await rt.fleet.wait_all([agent_id])

        assert (workspace / "textstats" / "counting.py").is_file(), "the file system is untouched"
        output = await rt.fleet.get_agent_output(agent_id)
        assert "rm -rf is not allowed in this repository" in output["summary"], (
            "the model saw the reason"
        )
        (blocked,) = await rt.store.read_all(where=EventFilter.of(types=["HookInvoked"]))
        assert blocked.data.decision == "block"
        assert blocked.data.kind == "command"
        completed = await rt.store.read_all(where=EventFilter.of(types=["ToolCallCompleted"]))
        assert [(e.data.name, e.data.blocked) for e in completed] == [  # type: ignore[union-attr]
            ("Bash", True),
            ("Glob", False),
        ]
        card = rt.runner.agent(agent_id)
        assert card is not None
        assert card["blocked_calls"] == 1


async def test_an_async_hook_still_running_at_exit_is_recorded_as_stopped(
    tmp_path: Path, workspace: Path
) -> None:
    """Regression: the exit cut a running `async` hook and left no HookInvoked at all."""
    started = tmp_path / "started"
    suite = tmp_path / "suite.sh"
    suite.write_text(
        "#!/bin/sh\ncat > /dev/null\necho 'collecting 42 tests'\necho 'warming up' >&2\n"
        f"touch '{started}'\nexec sleep 600\n"
    )
    suite.chmod(0o755)
    _settings(
        workspace,
        {"SessionStart": [{"hooks": [{"type": "command", "command": str(suite), "async": True}]}]},
    )
    db = tmp_path / "f.db"
    began = time.monotonic()
    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        task = (
            "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."
        )
        agent_id = (await rt.fleet.create_agent(name="scout", role="scout", task=task))["id"]
        await rt.fleet.wait_all([agent_id])
        async with asyncio.timeout(30):
            while not started.exists():
                await asyncio.sleep(0.02)
    assert time.monotonic() - began < 60, "the exit did not wait for the 600 s hook"

    async with SQLiteEventStore(db) as store:
        events = await store.read_all(where=EventFilter.of(types=["HookInvoked"]))
    [cut] = [e.data for e in events]
    assert isinstance(cut, HookInvoked)
    assert (cut.point, cut.agent_id, cut.detached) == ("SessionStart", agent_id, True)
    assert cut.decision == "error"
    assert cut.reason is not None and cut.reason.startswith("stopped at exit")
    assert "collecting 42 tests" in cut.reason and "warming up" in cut.reason


async def test_an_http_post_tool_use_hook_receives_every_call_in_order(
    tmp_path: Path, workspace: Path
) -> None:
    received: list[dict[str, object]] = []

    async def audit(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({})

    app = Starlette(routes=[Route("/audit", audit, methods=["POST"])])
    async with serving_app(app) as url:
        _settings(
            workspace, {"PostToolUse": [{"hooks": [{"type": "http", "url": f"{url}/audit"}]}]}
        )
        async with open_runtime(
            RuntimeOptions(db=tmp_path / "f.db", workspace=workspace, env={})
        ) as rt:
            task = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."
            agent_id = (await rt.fleet.create_agent(name="scout", role="scout", task=task))["id"]
            await rt.fleet.wait_all([agent_id])
            completed = await rt.store.read_all(where=EventFilter.of(types=["ToolCallCompleted"]))

    assert [p["tool_use_id"] for p in received] == [e.data.tool_use_id for e in completed]  # type: ignore[union-attr]
    assert {p["hook_event_name"] for p in received} == {"PostToolUse"}
    assert all(p["fleet_agent_id"] == agent_id and "fleet_usage" in p for p in received)


async def test_a_claude_code_session_forwarded_by_hook_forward_appears_as_an_agent(
    tmp_path: Path,
) -> None:
    config = ApiConfig(db=tmp_path / "f.db", store_poll_s=0.05, runtime=False)
    env = {k: v for k, v in os.environ.items() if k != "FLEET_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    points = ["SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop", "SessionEnd"]
    async with serving(config) as server:
        for point in points:
            payload = (FIXTURES / f"{point}.json").read_bytes()
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "api.cli", "hook-forward", "--url", server.url, "--source-app", "my-repo"],
                input=payload, capture_output=True, env=env, timeout=30,
            )  # fmt: skip
            assert done.returncode == 0
            assert done.stdout == b""
            assert done.stderr == b""
        # A refused event (a bad --source-app): still exit 0, but said on stderr (it was silent).
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "api.cli", "hook-forward", "--url", server.url,
             "--source-app", "my repo"],
            input=(FIXTURES / "Stop.json").read_bytes(), capture_output=True, env=env, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0
        assert b"refused the event (HTTP 422)" in done.stderr, done.stderr
        async with httpx.AsyncClient(base_url=server.url) as http:
            session = json.loads((FIXTURES / "SessionStart.json").read_text())["session_id"]
            card = (await http.get(f"/v1/agents/ext-{session}")).json()
            events = (await http.get("/v1/events", params={"type": "ExternalHookReceived"})).json()

    assert card["external"] is True
    assert card["source_app"] == "my-repo"
    assert card["tool_calls"]["count"] >= 1
    assert [e["data"]["hook_event_name"] for e in events["events"]] == points


def test_hook_forward_never_fails_claude_code_when_fleet_is_down(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "hook-forward", "--url", "http://127.0.0.1:9", "--timeout", "1"],
        input=(FIXTURES / "PreToolUse.json").read_bytes(), capture_output=True, env=env, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0
    assert done.stdout == b""


@pytest.mark.parametrize("bad", [b"", b"not json", b"[1, 2]"])
def test_hook_forward_with_garbage_on_stdin_exits_zero(bad: bytes) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "hook-forward", "--url", "http://127.0.0.1:9", "--timeout", "1"],
        input=bad, capture_output=True, env=env, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0
