"""Shell command hooks: the payload on stdin, the answer in the exit code and the output."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from hooks import HookDispatcher, build_payload, load_settings

GUARD = """#!/bin/sh
# Blocks any tool input that contains rm -rf.
input=$(cat)
case "$input" in
  *'rm -rf'*) echo "rm -rf is not allowed in this workspace" >&2; exit 2 ;;
esac
exit 0
"""


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(body if body.startswith("#!") else "#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def settings(point: str, *commands: str, matcher: str | None = None, timeout: float = 10) -> Any:
    group = {
        "matcher": matcher,
        "hooks": [{"type": "command", "command": c, "timeout": timeout} for c in commands],
    }
    return load_settings({"hooks": {point: [group]}})


def pre_tool(command: str, cwd: str = "", tool: str = "Bash") -> dict[str, Any]:
    return build_payload(
        "PreToolUse",
        session_id="s1",
        cwd=cwd,
        agent_id="builder-1",
        tool_name=tool,
        tool_input={"command": command},
        tool_use_id="toolu_9",
    )


async def test_a_command_hook_blocks_rm_rf_with_its_stderr_as_reason(tmp_path: Path) -> None:
    guard = script(tmp_path, "guard.sh", GUARD)
    async with HookDispatcher(settings("PreToolUse", guard, matcher="Bash")) as hooks:
        fine = await hooks.dispatch("PreToolUse", pre_tool("ls -la"))
        bad = await hooks.dispatch("PreToolUse", pre_tool("rm -rf build/"))
        other_tool = await hooks.dispatch("PreToolUse", pre_tool("rm -rf", tool="Read"))
    assert not fine.blocked
    assert fine.invocations[0].decision == "none"
    assert bad.blocked
    assert bad.permission == "deny"
    assert bad.reason == "rm -rf is not allowed in this workspace"
    [inv] = bad.invocations
    assert (inv.point, inv.kind, inv.hook, inv.decision) == (
        "PreToolUse",
        "command",
        guard,
        "block",
    )
    assert (inv.agent_id, inv.tool_use_id) == ("builder-1", "toolu_9")
    assert inv.reason == bad.reason
    assert inv.duration_ms > 0
    assert other_tool.invocations == ()  # the matcher selects Bash only


async def test_the_hook_gets_the_payload_on_stdin_in_the_agents_folder(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    record = script(
        tmp_path,
        "record.sh",
        f"cat > {tmp_path}/stdin.json; pwd > {tmp_path}/cwd.txt\n"
        f'echo "$CLAUDE_PROJECT_DIR $FLEET_PROJECT_DIR" > {tmp_path}/env.txt\n',
    )
    payload = pre_tool("ls", cwd=str(workspace))
    async with HookDispatcher(settings("PreToolUse", record), project_dir=tmp_path) as hooks:
        await hooks.dispatch("PreToolUse", payload)
    assert json.loads((tmp_path / "stdin.json").read_text()) == payload
    assert (tmp_path / "cwd.txt").read_text().strip() == str(workspace)
    assert (tmp_path / "env.txt").read_text().split() == [str(tmp_path)] * 2


async def test_json_output_can_rewrite_the_tool_input(tmp_path: Path) -> None:
    answer = {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "allow",
            "permissionDecisionReason": "dry run forced",
            "updatedInput": {"command": "deploy --dry-run"},
            "additionalContext": "deploys are dry runs today",
        }
    }
    rewrite = script(tmp_path, "rewrite.sh", f"cat >/dev/null; echo '{json.dumps(answer)}'\n")
    async with HookDispatcher(settings("PreToolUse", rewrite)) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool("deploy"))
    assert not outcome.blocked
    assert outcome.permission == "allow"
    assert outcome.updated_input == {"command": "deploy --dry-run"}
    assert outcome.additional_context == "deploys are dry runs today"
    inv = outcome.invocations[0]
    assert inv.decision == "allow"
    assert inv.updated_input == {"command": "deploy --dry-run"}


async def test_a_hook_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = script(tmp_path, "hang.sh", f"echo $$ > {pids}; sleep 600 & echo $! >> {pids}; wait\n")
    async with HookDispatcher(settings("PreToolUse", hang, timeout=0.3)) as hooks:
        started = time.monotonic()
        outcome = await hooks.dispatch("PreToolUse", pre_tool("ls"))
        elapsed = time.monotonic() - started
    assert elapsed < 120  # not the hang's 600 s: the dispatch did not wait for it
    assert not outcome.blocked
    [inv] = outcome.invocations
    assert inv.decision == "timeout"
    assert "0.3 s" in (inv.reason or "")
    for pid in map(int, pids.read_text().split()):
        assert await gone(pid), f"process {pid} of the hook is still running"


async def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for its reaper counts as gone)."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 60  # a loaded machine may take a while to reap it
    while time.monotonic() < deadline:
        try:
            text = await asyncio.to_thread(stat.read_text)
            state = text.rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_exit_code_one_is_a_non_blocking_error(tmp_path: Path) -> None:
    fail = script(tmp_path, "fail.sh", "cat >/dev/null; echo 'jq: command not found' >&2; exit 1\n")
    async with HookDispatcher(settings("PreToolUse", fail)) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool("rm -rf /"))
    assert not outcome.blocked
    [inv] = outcome.invocations
    assert inv.decision == "error"
    assert inv.reason == "exit code 1: jq: command not found"


async def test_garbage_json_is_an_error_and_plain_text_is_ignored(tmp_path: Path) -> None:
    broken = script(tmp_path, "broken.sh", "cat >/dev/null; echo '{\"decision\": block'\n")
    chatty = script(tmp_path, "chatty.sh", "cat >/dev/null; echo 'formatted 3 files'\n")
    async with HookDispatcher(settings("PreToolUse", broken, chatty)) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool("ls"))
    assert not outcome.blocked
    assert [i.decision for i in outcome.invocations] == ["error", "none"]
    assert "not valid JSON" in (outcome.invocations[0].reason or "")


@pytest.mark.parametrize(
    ("printed", "reason"),
    [
        # The reason was a bare `ValueError: Exceeds the limit ...`, naming no output.
        (
            f"echo '{{\"n\": {'9' * 5000}}}'",
            "output is not valid JSON (Exceeds the limit (4300 digits)",
        ),
        # Valid JSON cut at 1 MiB was reported as "not valid JSON" alone.
        (
            'python3 -c \'import json; print(json.dumps({"systemMessage": "x" * 2_000_000}))\'',
            "the answer is over 1048576 bytes and was read that far: output is not valid JSON",
        ),
    ],
    ids=["integer-past-4300-digits", "answer-over-the-output-cap"],
)
async def test_an_unreadable_json_answer_says_why(
    tmp_path: Path, printed: str, reason: str
) -> None:
    hook = script(tmp_path, "answer.sh", f"cat >/dev/null; {printed}\n")
    async with HookDispatcher(settings("PreToolUse", hook)) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool("ls"))
    [inv] = outcome.invocations
    assert inv.decision == "error"
    assert (inv.reason or "").startswith(reason)


async def test_plain_text_is_context_at_user_prompt_submit(tmp_path: Path) -> None:
    context = script(tmp_path, "context.sh", "cat >/dev/null; echo 'Today is release day.'\n")
    async with HookDispatcher(settings("UserPromptSubmit", context)) as hooks:
        outcome = await hooks.dispatch(
            "UserPromptSubmit", build_payload("UserPromptSubmit", session_id="s", prompt="go")
        )
    assert outcome.additional_context == "Today is release day."


async def test_exit_two_where_nothing_can_be_blocked_is_an_error(tmp_path: Path) -> None:
    refuse = script(
        tmp_path, "refuse.sh", "cat >/dev/null; echo 'no session for you' >&2; exit 2\n"
    )
    async with HookDispatcher(settings("SessionStart", refuse)) as hooks:
        outcome = await hooks.dispatch(
            "SessionStart", build_payload("SessionStart", session_id="s")
        )
    assert not outcome.blocked
    assert outcome.invocations[0].decision == "error"
    assert "no session for you" in (outcome.invocations[0].reason or "")


async def test_a_stop_hook_keeps_the_agent_working(tmp_path: Path) -> None:
    again = script(
        tmp_path,
        "again.sh",
        """cat >/dev/null; echo '{"decision": "block", "reason": "run the tests"}'\n""",
    )
    async with HookDispatcher(settings("Stop", again)) as hooks:
        outcome = await hooks.dispatch("Stop", build_payload("Stop", session_id="s"))
    assert outcome.blocked
    assert outcome.reason == "run the tests"
    assert not outcome.stop


async def test_two_slow_hooks_run_at_once(tmp_path: Path) -> None:
    """Each hook says it started, waits (up to a minute) until both did, then says it
    ended: run one after the other, the first would end before the second started."""
    said = tmp_path / "said"
    body = (
        f"cat >/dev/null; echo start >> {said}\n"
        f"i=0; while [ $(grep -c start {said}) -lt 2 ] && [ $i -lt 6000 ]; do "
        "sleep 0.01; i=$((i+1)); done\n"
        f"echo end >> {said}\n"
    )
    one = script(tmp_path, "one.sh", body)
    two = script(tmp_path, "two.sh", body)
    async with HookDispatcher(settings("PreToolUse", one, two, timeout=120)) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool("ls"))
    assert [i.decision for i in outcome.invocations] == ["none", "none"]
    assert said.read_text().split() == ["start", "start", "end", "end"]


async def test_an_identical_command_in_two_groups_runs_once(tmp_path: Path) -> None:
    count = script(tmp_path, "count.sh", f"cat >/dev/null; echo x >> {tmp_path}/count\n")
    config = load_settings(
        {
            "PreToolUse": [
                {"matcher": "Bash", "hooks": [{"type": "command", "command": count}]},
                {"matcher": "*", "hooks": [{"type": "command", "command": count}]},
            ]
        }
    )
    async with HookDispatcher(config) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool("ls"))
    assert len(outcome.invocations) == 1
    assert (tmp_path / "count").read_text() == "x\n"


async def test_a_hook_that_ignores_stdin_or_floods_stdout_is_harmless(tmp_path: Path) -> None:
    deaf = script(tmp_path, "deaf.sh", "exit 0\n")
    flood = script(tmp_path, "flood.sh", "cat >/dev/null; head -c 3000000 /dev/zero | tr '\\0' y\n")
    big = pre_tool("x" * 2_000_000)  # more than a pipe holds
    async with HookDispatcher(settings("PreToolUse", deaf, flood)) as hooks:
        outcome = await hooks.dispatch("PreToolUse", big)
    assert [i.decision for i in outcome.invocations] == ["none", "none"]


async def test_a_missing_command_is_an_error_not_a_crash(tmp_path: Path) -> None:
    async with HookDispatcher(settings("PreToolUse", str(tmp_path / "nope.sh"))) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool("ls"))
    assert not outcome.blocked
    assert outcome.invocations[0].decision == "error"
    assert "exit code 127" in (outcome.invocations[0].reason or "")


async def test_a_huge_system_message_is_cut_in_the_log_line_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The record kept 10,000 characters, but the warning logged all of it: a hook saying
    a megabyte on every tool call wrote a megabyte to the log each time."""
    loud = script(
        tmp_path,
        "loud.sh",
        "cat >/dev/null; printf '{\"systemMessage\": \"'; head -c 1000000 /dev/zero | tr '\\0' y;"
        " printf '\"}'\n",
    )
    with caplog.at_level(logging.WARNING, logger="hooks"):
        async with HookDispatcher(settings("PreToolUse", loud)) as hooks:
            outcome = await hooks.dispatch("PreToolUse", pre_tool("ls"))
    [inv] = outcome.invocations
    assert inv.system_message is not None and len(inv.system_message) < 10_100
    [said] = [r.getMessage() for r in caplog.records if "says:" in r.getMessage()]
    assert len(said) < 10_500
    assert said.endswith("more characters cut]")
