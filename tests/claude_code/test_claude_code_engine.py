"""The claude-code engine: fleet agents run by the real Claude Code (claude-agent-sdk's bundled CLI).

Each test opens a fleet runtime offline (its simulator on loopback) and creates
agents with `engine="claude-code"`: Claude Code sessions whose every step is
one of fleet's events. No part is mocked: the SDK starts its bundled Claude
Code, which talks to the simulator over HTTP and runs its own tools. Claude
Code starts in a second or two, so the tests are few and each checks much.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import httpx
import pytest

import runtime
from api import ApiConfig, create_app
from events import EventFilter, open_store
from events.errors import LogNotFound, NotADatabase
from runtime import (
    Budgets,
    Runtime,
    RuntimeOptions,
    decide_approval,
    load_pattern,
    open_runtime,
    prepare_workspace,
    run_pattern,
)
from runtime.replay import RerunOptions, rerun
from runtime.simulator import Call, Observation, Situation, Turn

pytest.importorskip("claude_agent_sdk", reason="the claude-code engine needs fleet[claude-code]")

SCOUT = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."
AGAIN = "Task: rename `count_lines` to `line_count`\n\nWrite your findings to notes/more.md."
WAIT_S = 120.0
DENY_NOTES = json.dumps({"hookSpecificOutput": {
    "hookEventName": "PreToolUse", "permissionDecision": "deny",
    "permissionDecisionReason": "notes are read-only today"}})  # fmt: skip
ASK_GREP = json.dumps({"hookSpecificOutput": {
    "hookEventName": "PreToolUse", "permissionDecision": "ask",
    "permissionDecisionReason": "searches need a nod"}})  # fmt: skip


def sleeper_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """A role that starts a long command: something to delete while it works."""
    yield Turn(
        "Running a long job.",
        [Call("Bash", {"command": "echo $$ > sleeper.pid; exec sleep 60", "timeout": 120_000})],
    )
    return "done"


async def _runtime(tmp_path: Path, **options: Any) -> tuple[Path, Any]:
    workspace = await prepare_workspace(tmp_path / "repo")
    rt = open_runtime(
        RuntimeOptions(db=tmp_path / "fleet.db", workspace=workspace, env={}, **options)
    )
    return workspace, rt


async def _scout_done(rt: Runtime, name: str) -> tuple[str, dict[str, Any]]:
    """A Claude Code scout named `name` on SCOUT, once it has ended: its id and its card."""
    agent_id = (await rt.fleet.create_agent(name, "scout", SCOUT, engine="claude-code"))["id"]
    await rt.fleet.wait_all([agent_id], timeout_s=WAIT_S)
    card = rt.runner.agent(agent_id)
    assert card is not None
    return agent_id, card


async def _events(rt: Runtime, agent_id: str) -> list[Any]:
    return await rt.store.read_stream(f"agent-{agent_id}")


async def _until(check: Any, timeout: float = WAIT_S) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def test_a_claude_code_agent_is_created_commanded_in_its_session_and_deleted(
    tmp_path: Path,
) -> None:
    workspace, opened = await _runtime(tmp_path)
    async with opened as rt:
        assert rt.simulator is not None
        rt.simulator.register_policy("sleeper", sleeper_policy)
        fleet = rt.fleet
        agent_id = (await fleet.create_agent("scout-cc", "scout", SCOUT, engine="claude-code"))[
            "id"
        ]
        wake = await fleet.wait_for_agents([agent_id], WAIT_S)
        assert wake.statuses == {agent_id: "completed"}

        # The files Claude Code's tools touched, as fleet's own agents report them.
        output = await fleet.get_agent_output(agent_id)
        assert output["files_produced"] == ["notes/found.md"]
        assert "textstats/counting.py" in output["files_consumed"]
        assert "8 matching lines in 4 files" in output["summary"]
        assert "textstats/counting.py" in (workspace / "notes/found.md").read_text()

        # The same events as the fleet engine writes, with usage, cost and the session's id.
        events = await _events(rt, agent_id)
        created = events[0].data
        assert (created.engine, created.model) == ("claude-code", "claude-haiku-5-5")
        assert [e.type for e in events[:4]] == [
            "AgentCreated", "AgentCommanded", "ModelResponded", "ToolCallRequested"
        ]  # fmt: skip
        responses = [e.data for e in events if e.type == "ModelResponded"]
        assert [r.stop_reason for r in responses] == ["tool_use"] * 3 + ["end_turn"]
        # Each call is caused by the response that asked for it, as the fleet engine records.
        asked_in = {
            block["id"]: e.position
            for e in events
            if e.type == "ModelResponded"
            for block in e.data.content
            if block.get("type") == "tool_use"
        }
        requested = [e for e in events if e.type == "ToolCallRequested"]
        assert len(requested) == 6
        assert all(e.meta.causation_id == asked_in[e.data.tool_use_id] for e in requested)
        assert all(r.usage.output_tokens > 1 and r.cost_usd > 0 for r in responses)
        calls = [(e.data.name, e.data.is_error) for e in events if e.type == "ToolCallCompleted"]
        assert sorted(calls) == [("Grep", False)] + [("Read", False)] * 4 + [("Write", False)]
        status = await fleet.get_agent_status(agent_id)
        assert status["tool_calls"] == 6
        assert status["cost_usd"] == pytest.approx(sum(r.cost_usd for r in responses), abs=1e-6)

        # A command continues the same Claude Code session (resumed by the recorded id).
        await fleet.command_agent(agent_id, AGAIN)
        await fleet.wait_all([agent_id], timeout_s=WAIT_S)
        assert "notes/more.md" in (await fleet.get_agent_output(agent_id))["files_produced"]
        sessions = list((workspace / ".fleet/claude-code/projects").glob("*/*.jsonl"))
        assert [s.stem for s in sessions] == [created.session_id]
        said = sessions[0].read_text()
        assert "count_words" in said and "count_lines" in said

        # delete_agent interrupts a working session and ends it: its command dies with it.
        sleeper = (await fleet.create_agent("long", "sleeper", "work", engine="claude-code"))["id"]
        pid_file = workspace / "sleeper.pid"
        await _until(pid_file.exists)
        await _until(lambda: pid_file.read_text().strip() != "")
        pid = int(pid_file.read_text())
        # Its command's output goes to Claude Code's temporary folder: the workspace's, not /tmp.
        session = (await _events(rt, sleeper))[0].data.session_id
        temp = workspace / ".fleet/claude-code/tmp"
        await _until(lambda: any(temp.glob(f"claude-*/*/{session}/tasks/*.output")))
        await fleet.delete_agent(sleeper)
        assert (await fleet.get_agent_status(sleeper))["status"] == "deleted"
        deleted = (await _events(rt, sleeper))[-1].data
        assert (deleted.type, deleted.was_working) == ("AgentDeleted", True)
        await _until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=30)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


# claude-agent-sdk 0.2.189 leaves one anyio memory stream to the garbage collector after a
# session whose hook callbacks ran (not after one without hooks); the session itself ends
# cleanly, its process reaped.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_fleet_hooks_block_a_claude_code_call_and_a_budget_stops_its_agent(
    tmp_path: Path,
) -> None:
    workspace, opened = await _runtime(tmp_path / "hooked")
    (workspace / ".fleet").mkdir(exist_ok=True)
    deny = f"echo '{DENY_NOTES}'"
    ask = f"echo '{ASK_GREP}'"
    (workspace / ".fleet/settings.json").write_text(json.dumps({"hooks": {"PreToolUse": [
        {"matcher": "Write", "hooks": [{"type": "command", "command": deny}]},
        {"matcher": "Grep", "hooks": [{"type": "command", "command": ask}]}]}}))  # fmt: skip
    async with opened as rt:
        agent_id = (await rt.fleet.create_agent("guarded", "scout", SCOUT, engine="claude-code"))[
            "id"
        ]
        # The Grep waits for a person (fleet's approval); alice allows it.
        where = EventFilter.of(types=["ApprovalRequested"])
        async with asyncio.timeout(WAIT_S):
            while not (asked := await rt.store.read_all(where=where)):
                await asyncio.sleep(0.1)
        (request,) = asked
        assert (request.data.tool_name, request.data.reason) == ("Grep", "searches need a nod")
        await decide_approval(
            rt.store, rt.runner, request.data.approval_id, decision="allow", by="alice"
        )
        await rt.fleet.wait_all([agent_id], timeout_s=WAIT_S)

        # fleet's PreToolUse hook denied the Write: Claude Code did not write, the log says why.
        assert not (workspace / "notes/found.md").exists()
        events = await _events(rt, agent_id)
        hooks = [e for e in events if e.type == "HookInvoked" and e.data.point == "PreToolUse"]
        assert [e.data.decision for e in hooks] == ["ask", "deny"]
        hook = hooks[1]
        assert (hook.data.kind, hook.data.decision, hook.data.reason) == (
            "command", "deny", "notes are read-only today"
        )  # fmt: skip
        (write,) = [e for e in events if e.type == "ToolCallCompleted" and e.data.name == "Write"]
        assert write.data.blocked and write.data.is_error
        assert "notes are read-only today" in write.data.result
        (asked,) = [e for e in events if e.type == "ToolCallRequested" and e.data.name == "Write"]
        assert asked.position < hook.position < write.position
        (grep,) = [
            e.data for e in events if e.type == "ToolCallCompleted" and e.data.name == "Grep"
        ]
        assert not grep.blocked and "textstats/counting.py" in grep.result, "allowed, it ran"
        assert (await rt.fleet.get_agent_status(agent_id))["status"] == "completed"

    # A budget below the scout's cost stops it after its first answer, as a fleet agent.
    workspace, opened = await _runtime(tmp_path / "budget", budgets=Budgets(agent_usd=0.0002))
    async with opened as rt:
        _, card = await _scout_done(rt, "thrifty")
        assert (card["status"], card["limit"]) == ("failed", "cost")
        assert "cost budget reached" in card["error"]
        assert card["turns"] == 1
        assert not (workspace / "notes/found.md").exists()
    # Collected here, where the warning above is filtered, rather than in a later test.
    gc.collect()


async def test_a_scout_plan_build_run_with_claude_code_scouts_and_a_fleet_builder(
    tmp_path: Path,
) -> None:
    """The pattern's scout step says `engine = "claude-code"`; the other steps are fleet's."""
    text = (Path(runtime.__file__).parent / "patterns/scout-plan-build.toml").read_text()
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(text.replace('role = "scout"\n', 'role = "scout"\nengine = "claude-code"\n'))
    workspace, opened = await _runtime(tmp_path)
    async with opened as rt:
        result = await run_pattern(
            rt.fleet, load_pattern(mixed), "rename `count_words` to `word_count`"
        )
        assert result.status == "completed", result.error

        # The work is done: the code renamed, the sample's tests pass.
        code = (workspace / "textstats/counting.py").read_text()
        assert "def word_count(" in code and "count_words" not in code
        tests = subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=workspace,
                               capture_output=True, text=True, check=False)  # fmt: skip
        assert tests.returncode == 0, tests.stderr

        # Three Claude Code scouts, a fleet planner and builder: one graph, one board, costs.
        await rt.runner.wait_for(await rt.store.head())
        agents = {a["name"]: a for a in rt.runner.view("agents")["agents"]}
        engines = {name: a["engine"] for name, a in agents.items()}
        assert engines == {"orchestrator": "fleet", "scout-1": "claude-code",
                           "scout-2": "claude-code", "scout-3": "claude-code",
                           "plan": "fleet", "build": "fleet"}  # fmt: skip
        for i in (1, 2, 3):
            scout = agents[f"scout-{i}"]
            assert scout["files_produced"] == [f".fleet/notes/relevant-files-{i}.md"]
            assert scout["cost_usd"] > 0 and scout["session_id"]
        assert ".fleet/notes/relevant-files-2.md" in agents["plan"]["files_consumed"]
        graph = rt.runner.view("graph")
        conductor = result.orchestrator_id
        created = {
            e["to"] for e in graph["edges"] if e["kind"] == "created" and e["from"] == conductor
        }
        assert {a["id"] for a in agents.values() if a["id"] != conductor} <= created
        (task,) = [t for c in rt.runner.view("board")["columns"] for t in c["tasks"]]
        assert task["column"] == "DONE"
        total = rt.runner.view("fleet")["cost_usd"]
        assert total == pytest.approx(sum(a["cost_usd"] for a in agents.values()), abs=1e-6)

        # Re-executed: Claude Code gets the recorded answers from the replay server.
        assert rt.simulator is not None
        asked = rt.simulator.stats.requests
        again = await rerun(
            rt.store, rt.runner, result.run_id, RerunOptions(pattern=load_pattern(mixed))
        )
        assert (again.status, list(again.divergences)) == ("completed", [])
        assert rt.simulator.stats.requests == asked, "no request reached the simulator"
        await rt.runner.wait_for(await rt.store.head())
        replayed = [a for a in rt.runner.view("agents")["agents"] if a["run_id"] == again.run_id]
        scouts = [a for a in replayed if a["role"] == "scout"]
        assert [a["engine"] for a in scouts] == ["claude-code"] * 3
        assert [a["cost_usd"] for a in scouts] == [
            agents[f"scout-{i}"]["cost_usd"] for i in (1, 2, 3)
        ]


async def test_post_v1_agents_with_engine_claude_code(tmp_path: Path) -> None:
    """The API creates a claude-code agent; its card names the engine and the session."""
    workspace = await prepare_workspace(tmp_path / "repo")
    app = create_app(ApiConfig(db=tmp_path / "fleet.db", runtime=True, workspace=workspace))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http,
    ):
        body = {"name": "scout-http", "role": "scout", "task": SCOUT, "engine": "claude-code"}
        created = await http.post("/v1/agents", json=body)
        assert created.status_code == 201, created.text
        card_url = created.headers["location"]

        async def card() -> dict[str, Any]:
            return (await http.get(card_url)).json()  # type: ignore[no-any-return]

        async with asyncio.timeout(WAIT_S):
            while (done := await card())["status"] != "completed":
                await asyncio.sleep(0.1)
        assert done["engine"] == "claude-code" and done["session_id"]
        assert done["files_produced"] == ["notes/found.md"]
        assert (await http.delete(card_url)).status_code == 204


CRASHING_FLEET = """
import asyncio, sys
from pathlib import Path
from runtime import RuntimeOptions, open_runtime

async def main() -> None:
    db, workspace, task = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    # A slow simulator: the agent is still working when the test kills this process.
    options = RuntimeOptions(db=db, workspace=workspace, env={}, simulator_latency_s=1.0)
    async with open_runtime(options) as rt:
        await rt.fleet.create_agent("scout-cc", "scout", task, engine="claude-code")
        await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_fleet_resume_continues_a_claude_code_agent_after_kill_9(tmp_path: Path) -> None:
    workspace = await prepare_workspace(tmp_path / "repo")
    db = tmp_path / "fleet.db"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_FLEET, str(db), str(workspace), SCOUT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its group: fleet and the Claude Code it started die together
    )  # fmt: skip
    try:
        # Killed once the session has made its first tool call.
        async with asyncio.timeout(WAIT_S):
            while not await _types(db, "ToolCallCompleted"):
                await asyncio.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # as a machine crash would
        await process.wait()
    before = await _types(db)
    assert "AgentCompleted" not in before

    resumed = subprocess.run(
        [str(Path(sys.executable).with_name("fleet")), "resume", "--db", str(db), "--json"],
        cwd=workspace, capture_output=True, text=True, timeout=WAIT_S, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    report = json.loads(resumed.stdout)
    (agent_id,) = report["resumed"]
    assert report["statuses"] == {agent_id: "completed"}

    # One continuous agent: created once, the log before the kill kept, then completed,
    # in the one Claude Code session it was created with.
    after = await _types(db)
    assert after[: len(before)] == before
    assert after.count("AgentCreated") == 1 and after[-1] == "AgentCompleted"
    assert "textstats/counting.py" in (workspace / "notes/found.md").read_text()
    sessions = list((workspace / ".fleet/claude-code/projects").glob("*/*.jsonl"))
    assert len(sessions) == 1


async def _types(db: Path, *only: str) -> list[str]:
    """The agents' event types in the log at `db` (none while its process is still creating it)."""
    try:
        async with open_store(db, readonly=True) as store:
            events = await store.read_all(lenient=True)
    except (LogNotFound, NotADatabase):
        return []
    return [e.type for e in events if e.stream_id.startswith("agent-") and e.type != "HookInvoked"
            and (not only or e.type in only)]  # fmt: skip


def test_fleet_run_with_engine_claude_code_runs_every_agent_of_the_run_on_claude_code(
    tmp_path: Path,
) -> None:
    """`fleet run --engine claude-code`: the scout and the builder are Claude Code sessions."""
    workspace = asyncio.run(prepare_workspace(tmp_path / "repo"))
    run = subprocess.run(
        [str(Path(sys.executable).with_name("fleet")), "run", "rename `count_lines` to `line_count`",
         "--pattern", "scout-builder", "--engine", "claude-code", "--workspace", str(workspace),
         "--db", str(tmp_path / "fleet.db"), "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=WAIT_S, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "completed"
    engines = [(a["role"], a["engine"]) for a in report["agents"]]
    assert engines == [
        ("orchestrator", "fleet"),
        ("scout", "claude-code"),
        ("builder", "claude-code"),
    ]
    assert report["tests"]["passed"] is True
    assert "def line_count(" in (workspace / "textstats/counting.py").read_text()


# The same garbage-collected stream as above, after a session that ran a subagent.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_subagent_claude_code_starts_is_a_child_agent_with_its_own_calls_and_cost(
    tmp_path: Path,
) -> None:
    workspace, opened = await _runtime(tmp_path)
    async with opened as rt:
        fleet = rt.fleet
        task = "rename `count_words` to `word_count`"
        agent_id = (await fleet.create_agent("coder", "coder", task, engine="claude-code"))["id"]
        wake = await fleet.wait_for_agents([agent_id], WAIT_S)
        assert wake.statuses == {agent_id: "completed"}
        assert "word_count" in (workspace / "textstats/counting.py").read_text()

        # The session's Agent call started a subagent: a child agent of its own.
        events = await _events(rt, agent_id)
        (call,) = [
            e.data for e in events if e.type == "ToolCallRequested" and e.data.name == "Agent"
        ]
        children = [a for a in rt.runner.view("agents")["agents"] if a["parent_id"] == agent_id]
        assert len(children) == 1
        child = children[0]
        kind = call.input["subagent_type"]
        assert (child["role"], child["status"], child["engine"]) == (
            kind,
            "completed",
            "claude-code",
        )
        assert child["name"].startswith(f"{kind}/")
        graph = rt.runner.view("graph")
        assert {"kind": "created", "from": agent_id, "to": child["id"]} in graph["edges"]

        # Its messages and searches are in its own stream, not the parent's.
        own = await _events(rt, child["id"])
        assert [e.type for e in own[:2]] == ["AgentCreated", "AgentCommanded"]
        assert own[0].data.task == call.input["prompt"] and own[-1].type == "AgentCompleted"
        searches = [e.data.name for e in own if e.type == "ToolCallCompleted"]
        assert searches and set(searches) <= {"Grep", "Bash", "Glob", "Read"}
        assert own[-1].data.summary.startswith("Lines to change for rename `count_words`")
        assert "- textstats/counting.py:6: def count_words(text):" in own[-1].data.summary
        # Its report is its last message, with the usage Claude Code gave it (output counted).
        answers = [e.data for e in own if e.type == "ModelResponded"]
        assert [a.stop_reason for a in answers] == ["tool_use", "end_turn"]
        assert all(a.usage.output_tokens > 1 for a in answers)
        parent_calls = {e.data.tool_use_id for e in events if e.type == "ToolCallRequested"}
        assert not parent_calls & {e.data.tool_use_id for e in own if e.type == "ToolCallRequested"}

        # Costs: each agent's own messages; the fleet's total adds the child's.
        child_cost = sum(e.data.cost_usd for e in own if e.type == "ModelResponded")
        parent_cost = sum(e.data.cost_usd for e in events if e.type == "ModelResponded")
        assert child_cost > 0 and child["cost_usd"] == pytest.approx(child_cost, abs=1e-6)
        status = await fleet.get_agent_status(agent_id)
        assert status["cost_usd"] == pytest.approx(parent_cost, abs=1e-6)
        total = rt.runner.view("fleet")["cost_usd"]
        assert total == pytest.approx(parent_cost + child_cost, abs=1e-6)
    gc.collect()


# The same garbage-collected stream as above, after a session whose hook callbacks ran.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_stop_hooks_context_keeps_a_claude_code_agent_going_as_a_fleet_agent(
    tmp_path: Path,
) -> None:
    """Stop `additionalContext` is the agent's next prompt (README, What a hook can say);
    the claude-code engine dropped it, so the same hook did nothing on that engine."""
    workspace, opened = await _runtime(tmp_path)
    (workspace / ".fleet").mkdir(exist_ok=True)
    hook = workspace / ".fleet/once.py"
    hook.write_text(
        "import json, sys\n"
        "if not json.load(sys.stdin).get('stop_hook_active'):\n"
        "    print(json.dumps({'hookSpecificOutput': {'hookEventName': 'Stop',"
        " 'additionalContext': 'also check the README'}}))\n"
    )
    (workspace / ".fleet/settings.json").write_text(json.dumps({"hooks": {"Stop": [{"hooks": [
        {"type": "command", "command": sys.executable, "args": [str(hook)]}]}]}}))  # fmt: skip
    async with opened as rt:
        agent_id, _ = await _scout_done(rt, "nudged")
        events = await _events(rt, agent_id)
        stops = [e for e in events if e.type == "HookInvoked" and e.data.point == "Stop"]
        assert [e.data.additional_context for e in stops] == ["also check the README", None]
        answered = [e for e in events if e.type == "ModelResponded"]
        assert any(stops[0].position < e.position < stops[1].position for e in answered)
        assert (await rt.fleet.get_agent_status(agent_id))["status"] == "completed"
    gc.collect()


async def test_a_claude_code_that_exits_with_an_error_fails_its_agent_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's error says "Check stderr output for details", and that stderr was only
    logged at debug level: the agent failed with no word of what Claude Code said."""
    broken = tmp_path / "claude"
    broken.write_text(
        "#!/bin/sh\necho 'Invalid API key · Please run /login' >&2\nexec 2>&-\nsleep 1\nexit 3\n"
    )
    broken.chmod(0o755)
    monkeypatch.setenv("FLEET_CLAUDE_BIN", str(broken))
    _, opened = await _runtime(tmp_path)
    async with opened as rt:
        _, card = await _scout_done(rt, "keyless")
        assert card["status"] == "failed"
        assert "Invalid API key · Please run /login" in card["error"]
        assert "Check stderr output" not in card["error"]


def _below_workspace(workspace: Path, name: str) -> list[int]:
    """The pids of processes whose argv[0] ends in `name` and that run in `workspace`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
            cwd = os.readlink(proc / "cwd")
        except (OSError, ValueError):
            continue
        if Path(argv0).name == name and Path(cwd) == workspace:
            found.append(int(proc.name))
    return found


async def test_a_claude_code_killed_mid_turn_fails_its_agent_and_its_command_dies(
    tmp_path: Path,
) -> None:
    workspace, opened = await _runtime(tmp_path)
    try:
        async with opened as rt:
            assert rt.simulator is not None
            rt.simulator.register_policy("sleeper", sleeper_policy)
            agent_id = (
                await rt.fleet.create_agent(
                    "doomed", "sleeper", "Task: sleep", engine="claude-code"
                )
            )["id"]
            await _until(lambda: (workspace / "sleeper.pid").exists())
            await _until(lambda: bool(_below_workspace(workspace, "claude")))
            for pid in _below_workspace(workspace, "claude"):
                os.kill(pid, signal.SIGKILL)  # an OOM kill, a crash
            await rt.fleet.wait_all([agent_id], timeout_s=WAIT_S)
            card = rt.runner.agent(agent_id)
            assert card is not None and card["status"] == "failed"
            assert "Claude Code was killed by SIGKILL" in card["error"]
            # The command it was running died with it (it lived on under init).
            await _until(lambda: not _below_workspace(workspace, "sleep"), timeout=30)
    finally:
        for pid in _below_workspace(workspace, "sleep"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# The same garbage-collected stream as above, after a session whose hook callbacks ran.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_hooks_continue_false_fails_a_claude_code_agent_as_a_fleet_agent(
    tmp_path: Path,
) -> None:
    """A fleet agent stopped by `continue: false` fails with limit "hook"; a claude-code
    agent completed, its first message ("I'll search ...") taken for its summary."""
    workspace, opened = await _runtime(tmp_path)
    (workspace / ".fleet").mkdir(exist_ok=True)
    enough = json.dumps({"continue": False, "stopReason": "one call is enough"})
    (workspace / ".fleet/settings.json").write_text(json.dumps({"hooks": {"PostToolUse": [
        {"hooks": [{"type": "command", "command": f"cat >/dev/null; echo '{enough}'"}]}]}}))  # fmt: skip
    async with opened as rt:
        agent_id, card = await _scout_done(rt, "halted")
        assert (card["status"], card["limit"]) == ("failed", "hook")
        assert card["error"] == "stopped by a hook: one call is enough"
        events = await _events(rt, agent_id)
        assert [e.data.name for e in events if e.type == "ToolCallCompleted"] == ["Grep"]
    gc.collect()


# The same garbage-collected stream as above.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_session_start_hooks_context_reaches_claude_code_with_the_first_prompt(
    tmp_path: Path,
) -> None:
    """A fleet agent's model sees SessionStart context before its first prompt; a Claude
    Code session was sent the prompt alone, so the context never reached its model."""
    workspace, opened = await _runtime(tmp_path)
    (workspace / ".fleet").mkdir(exist_ok=True)
    (workspace / ".fleet/settings.json").write_text(json.dumps({"hooks": {"SessionStart": [
        {"hooks": [{"type": "command", "command": "cat >/dev/null; echo 'Fact: tabs, never spaces'"}]}]}}))  # fmt: skip
    async with opened as rt:
        agent_id, card = await _scout_done(rt, "briefed")
        assert (await rt.fleet.get_agent_status(agent_id))["status"] == "completed"
        session = card["session_id"]
    (transcript,) = (workspace / ".fleet/claude-code/projects").glob(f"*/{session}.jsonl")
    prompts = [
        line["message"]["content"]
        for line in map(json.loads, transcript.read_text().splitlines())
        if line.get("type") == "user" and isinstance(line["message"]["content"], str)
    ]
    assert prompts[0] == (
        "<system-reminder>\nFact: tabs, never spaces\n</system-reminder>\n\n" + SCOUT
    )
    gc.collect()


def disk_filler_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """A role whose command fills the disk the log is on (the path is its prompt's last line)."""
    filler = situation.prompt.strip().splitlines()[-1]
    yield Turn("Filling.", [Call("Bash", {"command": f"cat /dev/zero > {filler}; echo full"})])
    return "filled the disk"


@contextlib.asynccontextmanager
async def _waited_out_a_full_disk(
    tmp_path: Path, small_disk: Path, caplog: pytest.LogCaptureFixture, policy: Any
) -> AsyncIterator[tuple[Runtime, str]]:
    """A claude-code agent of `policy` (given the filler's path) that filled the disk its
    log is on: yields the runtime and the agent once it waited for the log and the disk
    was freed."""
    import logging

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    workspace = await prepare_workspace(tmp_path / "repo")
    filler = small_disk / "filler"
    options = RuntimeOptions(db=small_disk / "fleet.db", workspace=workspace, env={})
    async with open_runtime(options) as rt:
        assert rt.simulator is not None
        rt.simulator.register_policy("disk-filler", policy)
        task = f"Fill the disk at\n{filler}"
        agent_id = (
            await rt.fleet.create_agent("filler", "disk-filler", task, engine="claude-code")
        )["id"]
        await _until(
            lambda: "still unavailable" in caplog.text or not rt.fleet.is_driving(agent_id)
        )
        filler.unlink()
        assert "still unavailable" in caplog.text, "the agent did not wait for the log"
        yield rt, agent_id
    gc.collect()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # as above
async def test_a_claude_code_agent_waits_out_a_full_disk_under_its_log_as_a_fleet_agent(
    tmp_path: Path, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: the session's append that met the full disk failed the agent (and its
    AgentFailed could not be appended either), where a fleet agent waits for the log."""
    waited = _waited_out_a_full_disk(tmp_path, small_disk, caplog, disk_filler_policy)
    async with waited as (rt, agent_id):
        wake = await rt.fleet.wait_for_agents([agent_id], WAIT_S)
        assert wake.statuses == {agent_id: "completed"}
        events = await _events(rt, agent_id)
        assert "AgentFailed" not in [e.type for e in events]
        completed = [e for e in events if e.type == "ToolCallCompleted"]
        assert len(completed) == 1 and "full" in completed[0].data.result


def disk_filler_and_crash_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """A role whose command fills the disk the log is on, then kills its Claude Code."""
    filler = situation.prompt.strip().splitlines()[-1]
    yield Turn("Filling.", [Call("Bash", {"command": f"cat /dev/zero > {filler}; kill -9 $PPID"})])
    return "unreachable"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # as above
async def test_a_claude_code_agent_whose_session_died_in_an_outage_fails_once_the_log_is_back(
    tmp_path: Path, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The session dies while the log's disk is full: its AgentFailed waits for the log.

    Regression: the AgentFailed's append raised StoreUnavailable out of the agent's run,
    and the agent stayed "working" in the log with nothing driving it."""
    waited = _waited_out_a_full_disk(tmp_path, small_disk, caplog, disk_filler_and_crash_policy)
    async with waited as (rt, agent_id):
        wake = await rt.fleet.wait_for_agents([agent_id], WAIT_S)
        assert wake.statuses == {agent_id: "failed"}
        [failed] = [e for e in await _events(rt, agent_id) if e.type == "AgentFailed"]
        assert "the Claude Code session failed" in failed.data.error
    gc.collect()
