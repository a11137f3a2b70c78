"""The real Claude Code, offline against fleet: it changes the files, fleet shows what it did.

`claude -p` runs on a copy of the sample repository against `fleet simulator`
(the simulator's generic policy drives Claude Code's own tools: an Explore
subagent searches, the session reads, edits, tests and writes a summary), with
`.claude/settings.json` posting every hook to a running `fleet serve`: the
README's `type: "http"` settings, as written there, in the first test, and
`fleet hook-forward` as a command hook in the second. Then each test checks
what a user would look at: the files, and fleet's agents, tool calls, files,
tokens and cost, graph and `fleet events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from cc_support import REPO, Process, claude_bin, fleet_on_path, offline_env

from runtime import prepare_workspace

TASK = "rename `count_words` to `word_count` and write a summary to CHANGES.md"
CHANGED = ["tests/test_counting.py", "textstats/__init__.py", "textstats/counting.py",
           "textstats/report.py"]  # fmt: skip
CLAUDE_TIMEOUT_S = 120


def readme_settings(server_url: str) -> dict[str, Any]:
    """The `.claude/settings.json` of the README's Claude Code section, with this server's port."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Claude Code\n") :]
    block = re.search(r"```json\n(\{\n  \"hooks\".*?)\n```", section, re.DOTALL)
    assert block is not None, "the README's Claude Code section lost its settings.json"
    settings: dict[str, Any] = json.loads(
        block.group(1).replace("http://127.0.0.1:8000", server_url)
    )
    return settings


async def run_claude(workspace: Path, home: Path, simulator: Process) -> str:
    """`claude -p TASK` in `workspace`; its answer. Fails the test on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        str(claude_bin()), "-p", "--permission-mode", "acceptEdits", "--allowedTools", "Bash",
        "--", TASK,
        cwd=workspace, env=offline_env(home, simulator.url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(CLAUDE_TIMEOUT_S):
        out, err = await process.communicate()
    assert process.returncode == 0, f"claude -p failed ({process.returncode}): {err.decode()}"
    return out.decode()


async def prepared(tmp_path: Path, settings: dict[str, Any]) -> tuple[Path, Path]:
    workspace = await prepare_workspace(tmp_path / "repo")
    (workspace / ".claude").mkdir()
    (workspace / ".claude" / "settings.json").write_text(json.dumps(settings, indent=1))
    home = tmp_path / "home"
    home.mkdir()
    return workspace, home


def _pythonpath() -> dict[str, str]:
    """The test's own PYTHONPATH, if any: a `fleet` command reads the log with this code."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


async def wait_for(http: httpx.AsyncClient, path: str, ready: Any, timeout: float = 30) -> Any:
    """GET `path` until `ready(json)` holds (the transcript is read after the hooks)."""
    async with asyncio.timeout(timeout):
        while True:
            response = await http.get(path)
            if response.status_code == 200 and ready(body := response.json()):
                return body
            await asyncio.sleep(0.1)


def sessions(agents: dict[str, Any], workspace: Path) -> list[dict[str, Any]]:
    """The external sessions whose files are in `workspace` (the server is shared)."""
    return [a for a in agents["agents"] if a["external"] and a["parent_id"] is None
            and any(f.startswith(str(workspace)) for f in a["files_produced"])]  # fmt: skip


async def test_claude_code_with_http_hooks_is_a_session_with_a_subagent_in_fleet(
    tmp_path: Path, simulator: Process, fleet_server: Process
) -> None:
    workspace, home = await prepared(tmp_path, readme_settings(fleet_server.url))

    answer = await run_claude(workspace, home, simulator)

    # The files really changed, and the tests still pass.
    assert "8 of 8 edits applied in 4 files" in answer
    for path in CHANGED:
        assert not re.search(r"\bcount_words\b", (workspace / path).read_text()), path
    assert "word_count" in (workspace / "CHANGES.md").read_text()
    tests = subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=workspace,
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert tests.returncode == 0, tests.stderr

    async with httpx.AsyncClient(base_url=fleet_server.url, timeout=10) as http:
        agents = await wait_for(http, "/v1/agents", lambda a: sessions(a, workspace))
        (session,) = sessions(agents, workspace)
        sid = session["id"]
        # The session: its prompt, its tool calls by tool, the files it read and wrote.
        session = await wait_for(http, f"/v1/agents/{sid}",
                                 lambda c: c["status"] == "completed" and c["turns"] >= 6)  # fmt: skip
        assert session["name"].startswith("my-repo/")
        assert session["task"] == TASK
        assert session["summary"] == answer.strip()
        assert session["tool_calls"]["by_tool"] == {"Agent": 1, "Read": 4, "Edit": 8, "Bash": 1,
                                                    "Write": 1}  # fmt: skip
        assert sorted(session["files_consumed"]) == [str(workspace / p) for p in CHANGED]
        assert sorted(session["files_produced"]) == sorted(
            [str(workspace / p) for p in CHANGED] + [str(workspace / "CHANGES.md")]
        )
        # Model, tokens, cache buckets, cost and context, from the transcript.
        assert session["model"] == "claude-opus-5-5"
        assert session["tokens"]["output"] > 0 and session["tokens"]["cache_read"] > 0
        assert session["cost_usd"] > 0
        assert session["context"]["limit"] == 1_000_000 and session["context"]["used"] > 0

        # The Explore subagent: an agent of its own, child of the session.
        children = [a for a in (await http.get("/v1/agents")).json()["agents"]
                    if a["parent_id"] == sid]  # fmt: skip
        assert len(children) == 1
        child = await wait_for(http, f"/v1/agents/{children[0]['id']}",
                               lambda c: c["status"] == "completed" and c["turns"] >= 2)  # fmt: skip
        assert child["name"].startswith("Explore/")
        assert child["summary"].startswith("Lines to change for rename `count_words`")
        assert child["tool_calls"]["by_tool"] == {"Bash": 1}
        assert child["tokens"]["output"] > 0 and child["cost_usd"] > 0
        graph = (await http.get("/v1/graph")).json()
        assert {"kind": "created", "from": sid, "to": child["id"]} in graph["edges"]

        # Each tool call with its input, as the hooks posted it.
        params = {"stream_id": f"session-{sid[4:]}", "type": "ExternalHookReceived",
                  "limit": 1000}  # fmt: skip
        page = (await http.get("/v1/events", params=params)).json()
        # Every hook point of the settings arrived, SessionStart (a command hook: Claude Code
        # runs no http hook there) first and SessionEnd last, each once.
        points = [e["data"]["hook_event_name"] for e in page["events"]]
        assert points[0] == "SessionStart" and points[-1] == "SessionEnd"
        assert points.count("SessionStart") == points.count("SessionEnd") == 1
        assert page["events"][0]["data"]["payload"]["source"] == "startup"
        edits = [e["data"]["payload"]["tool_input"] for e in page["events"]
                 if e["data"]["hook_event_name"] == "PreToolUse"
                 and e["data"]["payload"].get("tool_name") == "Edit"]  # fmt: skip
        assert {"file_path": str(workspace / "textstats/counting.py"),
                "old_string": "def count_words(text):", "new_string": "def word_count(text):",
                "replace_all": True} in edits  # fmt: skip
        greps = [e for e in page["events"] if e["meta"]["agent_id"] == child["id"]
                 and e["data"]["payload"].get("tool_name") == "Bash"]  # fmt: skip
        assert greps and "grep" in greps[0]["data"]["payload"]["tool_input"]["command"]

    # The CLI shows the ingested calls with their input, as the dashboard's feed does.
    db = re.search(r"serving (\S+) at", fleet_server.log.read_text())
    assert db is not None
    lines = subprocess.run([str(Path(sys.executable).with_name("fleet")), "events", "--db",
                            db.group(1), "--agent", sid], capture_output=True, text=True,
                           check=True, env={"COLUMNS": "400", "PATH": "", **_pythonpath()}).stdout  # fmt: skip
    assert "PreToolUse Edit file_path=" in lines
    assert f"UserPromptSubmit: {TASK}"[:60] in lines


async def test_fleet_hook_forward_as_a_command_hook_reaches_fleet_too(
    tmp_path: Path, simulator: Process, fleet_server: Process
) -> None:
    command = f"{fleet_on_path()} hook-forward --url {fleet_server.url} --source-app forwarded"
    # The README's hook points, each with the fallback command instead of the http hook.
    settings = readme_settings(fleet_server.url)
    for groups in settings["hooks"].values():
        for group in groups:
            group["hooks"] = [{"type": "command", "command": command, "timeout": 30}]
    workspace, home = await prepared(tmp_path, settings)

    await run_claude(workspace, home, simulator)

    async with httpx.AsyncClient(base_url=fleet_server.url, timeout=10) as http:
        agents = await wait_for(http, "/v1/agents", lambda a: sessions(a, workspace))
        (session,) = sessions(agents, workspace)
        card = await wait_for(http, f"/v1/agents/{session['id']}",
                              lambda c: c["status"] == "completed" and c["cost_usd"] > 0)  # fmt: skip
        assert card["name"].startswith("forwarded/")
        assert card["task"] == TASK
        assert card["tool_calls"]["by_tool"] == {"Agent": 1, "Read": 4, "Edit": 8, "Bash": 1,
                                                 "Write": 1}  # fmt: skip
        assert str(workspace / "CHANGES.md") in card["files_produced"]
        children = [a for a in (await http.get("/v1/agents")).json()["agents"]
                    if a["parent_id"] == session["id"]]  # fmt: skip
        assert [c["name"].split("/")[0] for c in children] == ["Explore"]
        assert children[0]["tool_calls"]["by_tool"] == {"Bash": 1}


async def test_a_session_whose_turn_ends_in_an_api_error_is_failed_in_fleet(
    tmp_path: Path, simulator: Process, fleet_server: Process
) -> None:
    """Claude Code sends StopFailure, not Stop: the session is failed, with Claude Code's error."""
    workspace, home = await prepared(tmp_path, readme_settings(fleet_server.url))
    process = await asyncio.create_subprocess_exec(
        str(claude_bin()), "-p", "--model", "claude-no-such-model", "--", "hello",
        cwd=workspace, env=offline_env(home, simulator.url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(CLAUDE_TIMEOUT_S):
        out, _ = await process.communicate()
    assert process.returncode == 1, out.decode()

    def ended(agents: dict[str, Any]) -> list[dict[str, Any]]:
        return [a for a in agents["agents"] if a["external"] and a["task"] == "hello"
                and a["finished_at"] is not None]  # fmt: skip

    async with httpx.AsyncClient(base_url=fleet_server.url, timeout=10) as http:
        (card,) = ended(await wait_for(http, "/v1/agents", ended))
        params = {"stream_id": f"session-{card['id'][4:]}", "limit": 100}
        page = (await http.get("/v1/events", params=params)).json()
        points = [e["data"]["hook_event_name"] for e in page["events"]]
        assert points[-2:] == ["StopFailure", "SessionEnd"]
        # After its SessionEnd, still failed, saying why, in the card and the fleet's counts.
        card = (await http.get(f"/v1/agents/{card['id']}")).json()
        assert card["status"] == "failed"
        assert card["error"].startswith("model_not_found: ")
        assert "claude-no-such-model" in card["error"]
        nodes = (await http.get("/v1/graph")).json()["nodes"]
        assert [n["status"] for n in nodes if n["id"] == card["id"]] == ["failed"]
        assert (await http.get("/v1/fleet")).json()["agents"]["by_status"]["failed"] >= 1


async def test_a_session_killed_mid_turn_is_interrupted_not_working(
    tmp_path: Path, simulator: Process, fleet_server: Process
) -> None:
    """SIGKILL sends no Stop and no SessionEnd: the log keeps the session working, the API and
    `fleet agents` say now that its process is gone (the README's settings: SessionStart
    through `fleet hook-forward`, which names Claude Code's process)."""
    settings = readme_settings(fleet_server.url)
    # A Bash hook that holds the turn: Claude Code is mid-turn, in a tool call, when killed.
    hold = {"type": "command", "command": "sleep 600", "timeout": 900}
    settings["hooks"]["PreToolUse"].append({"matcher": "Bash", "hooks": [hold]})
    workspace, home = await prepared(tmp_path, settings)
    process = await asyncio.create_subprocess_exec(
        str(claude_bin()), "-p", "--permission-mode", "acceptEdits", "--allowedTools", "Bash",
        "--", TASK,
        cwd=workspace, env=offline_env(home, simulator.url), start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def held(agents: dict[str, Any]) -> list[dict[str, Any]]:
            return [a for a in agents["agents"] if a["external"] and a["status"] == "working"
                    and a["process"] is not None and a["process"]["pid"] == process.pid
                    and (a["tool_calls"]["last"] or {}).get("name") == "Bash"]  # fmt: skip

        async with httpx.AsyncClient(base_url=fleet_server.url, timeout=10) as http:
            (card,) = held(await wait_for(http, "/v1/agents", held, timeout=CLAUDE_TIMEOUT_S))
            session = card["parent_id"] or card["id"]
            os.killpg(process.pid, signal.SIGKILL)  # Claude Code and its hook, at once
            await process.wait()

            ids = [session, card["id"]]  # the session, and its subagent if the Bash was one's
            for agent_id in ids:
                now = await wait_for(http, f"/v1/agents/{agent_id}",
                                     lambda c: c["status"] != "working")  # fmt: skip
                assert now["status"] == "interrupted", now
            fleet = (await http.get("/v1/fleet")).json()
            assert fleet["agents"]["by_status"]["interrupted"] >= len(set(ids))
            # The log is not rewritten: as of the session's last hook, it was working.
            at = (await http.get(f"/v1/agents/{session}")).json()["position"]
            head = int((await http.get("/v1/fleet")).headers["Fleet-Position"])
            if at < head:
                past = (await http.get(f"/v1/agents/{session}", params={"at": at})).json()
                assert past["status"] == "working"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()

    db = re.search(r"serving (\S+) at", fleet_server.log.read_text())
    assert db is not None
    out = subprocess.run([str(Path(sys.executable).with_name("fleet")), "agents", "--db",
                          db.group(1), "--json"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "400"}).stdout  # fmt: skip
    cards = {a["id"]: a["status"] for a in json.loads(out)["agents"]}
    assert cards[session] == "interrupted"
