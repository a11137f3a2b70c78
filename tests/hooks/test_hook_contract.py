"""Claude Code's hooks contract: every documented event loads, handler fields, rules, failures."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from events import HookInvoked
from hooks import (
    DEFAULT_TIMEOUT,
    DOCUMENTED_EVENTS,
    DORMANT_POINTS,
    HookConfigError,
    HookDispatcher,
    HookPoint,
    PermissionRule,
    build_payload,
    default_timeout,
    load_settings,
)

SH_IS_BASH = Path("/bin/sh").resolve().name == "bash"


def one_hook(point: str, hook: dict[str, Any], matcher: str | None = None) -> dict[str, Any]:
    return {"hooks": {point: [{"matcher": matcher, "hooks": [hook]}]}}


def command(cmd: str, **fields: Any) -> dict[str, Any]:
    return {"type": "command", "command": cmd, **fields}


def pre_tool(command_line: str, tool: str = "Bash", cwd: str = "") -> dict[str, Any]:
    return build_payload(
        "PreToolUse",
        session_id="s1",
        cwd=cwd,
        agent_id="builder-1",
        tool_name=tool,
        tool_input={"command": command_line},
        tool_use_id="toolu_1",
    )


def prompt_payload(text: str = "hi") -> dict[str, Any]:
    return build_payload("UserPromptSubmit", session_id="s1", prompt=text)


# -- every documented event loads -------------------------------------------------------


def test_every_event_claude_code_documents_loads(caplog: pytest.LogCaptureFixture) -> None:
    """A settings file with a hook on each of the 33 documented events loads, with no warning."""
    settings = {"hooks": {name: [{"hooks": [command("true")]}] for name in DOCUMENTED_EVENTS}}
    with caplog.at_level(logging.WARNING, logger="hooks"):
        config = load_settings(settings)
    assert len(DOCUMENTED_EVENTS) == 33
    assert {p.value for p in config.groups} == {p.value for p in HookPoint}
    assert set(config.kept) == DORMANT_POINTS
    assert config.warnings == ()
    assert not caplog.records


@pytest.mark.parametrize(
    "event", ["MessageDisplay", "DirectoryAdded", "PreModelSwitch", "PostModelSwitch"]
)
def test_the_newest_documented_events_load_and_are_kept(event: str) -> None:
    """Regression: these four made a valid .claude/settings.json fail to load."""
    group = {"hooks": [command("./log.sh", timeout=5)]}
    config = load_settings({"hooks": {event: [group], "Stop": [{"hooks": [command("x")]}]}})
    assert config.kept[event] == (group,)
    assert config.hook_count == 1
    assert any(event in line for line in config.skipped)


def test_an_unknown_event_name_is_kept_and_reported_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = {"hooks": [command("./x.sh")]}
    with caplog.at_level(logging.WARNING, logger="hooks"):
        config = load_settings({"hooks": {"PreToolUze": [group], "SomeFutureEvent": [group]}})
    assert config.kept == {"PreToolUze": (group,), "SomeFutureEvent": (group,)}
    [typo, future] = config.warnings
    assert "unknown hook event 'PreToolUze'; did you mean 'PreToolUse'?" in typo
    assert "kept, never fired" in future
    assert config.hook_count == 0
    assert [r.getMessage() for r in caplog.records if "PreToolUze" in r.getMessage()]


# -- handler fields ---------------------------------------------------------------------


def test_default_timeouts_are_claude_codes() -> None:
    hooks = [command("a"), {"type": "http", "url": "http://127.0.0.1:9/h"}]
    config = load_settings({"hooks": {p: [{"hooks": hooks}] for p in ("Stop", "UserPromptSubmit")}})
    stop = [h.timeout for g in config.groups[HookPoint.Stop] for h in g.hooks]
    prompt = [h.timeout for g in config.groups[HookPoint.UserPromptSubmit] for h in g.hooks]
    assert stop == [DEFAULT_TIMEOUT, DEFAULT_TIMEOUT] == [600.0, 600.0]
    assert prompt == [30.0, 30.0] == [default_timeout("UserPromptSubmit")] * 2
    explicit = load_settings(one_hook("Stop", command("a", timeout=7)))
    assert explicit.groups[HookPoint.Stop][0].hooks[0].timeout == 7.0


def test_handler_fields_are_read() -> None:
    hook = command(
        "node",
        args=["${CLAUDE_PROJECT_DIR}/scripts/check.js", "--fix"],
        shell="powershell",
        **{"async": True, "if": "Bash(git *)", "onFailure": "block"},
    )
    [spec] = load_settings(one_hook("PreToolUse", hook)).groups[HookPoint.PreToolUse][0].hooks
    assert spec.args == ("${CLAUDE_PROJECT_DIR}/scripts/check.js", "--fix")
    assert spec.shell is None  # ignored when args is set, as in Claude Code
    assert spec.detached is True
    assert spec.rule == PermissionRule("Bash", "git *")
    assert spec.on_failure == "block"
    shell_form = load_settings(one_hook("Stop", command("echo hi", shell="bash")))
    assert shell_form.groups[HookPoint.Stop][0].hooks[0].shell == "bash"


@pytest.mark.parametrize(
    ("hook", "field", "words"),
    [
        (command("x", onFailure="sometimes"), "onFailure", "'continue' or 'block'"),
        (command("x", shell="zsh"), "shell", "'bash' or 'powershell'"),
        (command("x", args="--fix"), "args", "valid list"),
        (command("x", **{"async": "yes"}), "async", "valid boolean"),
        (command("x", **{"if": "rm -rf /"}), "if", "not a permission rule"),
    ],
)
def test_bad_handler_fields_are_refused_with_their_path(
    hook: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(HookConfigError) as info:
        load_settings(one_hook("PreToolUse", hook))
    assert info.value.field == f"hooks.PreToolUse[0].hooks[0].{field}"
    assert words in info.value.detail


def test_if_on_an_event_that_is_not_a_tool_event_never_runs() -> None:
    config = load_settings(one_hook("Stop", command("./x.sh", **{"if": "Bash(git *)"})))
    assert config.hook_count == 0
    assert any("only evaluated on tool events" in line for line in config.skipped)


# -- if: permission rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "command_line", "runs"),
    [
        ("Bash(git *)", "FOO=bar git push", True),  # leading assignments are dropped
        ("Bash(git *)", "npm test && git push", True),  # every subcommand is checked
        ("Bash(rm *)", "echo $(rm -rf /)", True),  # and those inside $() and backticks
        ("Bash(rm *)", "echo `rm -rf /`", True),
        ("Bash(rm *)", "echo $(date)", False),
        ("Bash(git push *)", "echo $(date)", True),  # more than the command name: fails open
        ("Bash(npm run test:*)", "npm run test:unit", True),
        ("Bash(npm run test:*)", "npm run build", False),
        ("Bash(git *)", "echo 'unbalanced", True),  # cannot be parsed: fails open
        ("Bash", "anything at all", True),
        ("Read", "ls", False),  # another tool
        ("Bash(git *)", "git", True),  # a trailing " *" matches nothing too
        ("Bash(git *)", "gitk", False),
        ("Bash(*rm*-rf*)", "sudo rm -rf build", True),
        ("Bash(*rm*-rf*)", "echo form storm", False),
        ("Bash(make*test)", "make test", True),
        ("Bash(make*test)", "make tests", False),
    ],
)
def test_bash_rules_follow_claude_codes_table(rule: str, command_line: str, runs: bool) -> None:
    assert PermissionRule.parse(rule).matches("Bash", {"command": command_line}) is runs


def test_a_bash_rule_on_a_long_command_takes_no_time() -> None:
    """`*rm*-rf*` was a regular expression of three `.*`: on a 700 KB command with many
    "rm" and no "-rf" it backtracked for most of a minute, on the event loop."""
    rule = PermissionRule.parse("Bash(*rm*-rf*)")
    command = "echo " + "form storm " * 64_000
    started = time.monotonic()
    assert rule.matches("Bash", {"command": command}) is False
    assert time.monotonic() - started < 10  # the regex took about 45 s here


@pytest.mark.parametrize(
    ("rule", "file_path", "runs"),
    [
        ("Edit(*.ts)", "src/app/main.ts", True),  # no "/": any depth
        ("Edit(*.ts)", "src/app/main.py", False),
        ("Edit(/src/**)", "/proj/src/a/b.py", True),  # "/": the project's folder
        ("Edit(/src/**)", "/proj/lib/b.py", False),
        ("Edit(//etc/**)", "/etc/hosts", True),  # "//": an absolute path
        ("Edit(docs/**)", "docs/x.md", True),  # relative to cwd
    ],
)
def test_path_rules_are_gitignore_patterns(rule: str, file_path: str, runs: bool) -> None:
    matched = PermissionRule.parse(rule).matches(
        "Edit", {"file_path": file_path}, cwd="/proj", project_dir="/proj"
    )
    assert matched is runs


async def test_a_handler_with_if_runs_only_for_the_calls_its_rule_names(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    hook = command(f"cat >> {log}; echo >> {log}", **{"if": "Bash(rm *)"})
    async with HookDispatcher(load_settings(one_hook("PreToolUse", hook, "Bash"))) as hooks:
        skipped = await hooks.dispatch("PreToolUse", pre_tool("npm test"))
        ran = await hooks.dispatch("PreToolUse", pre_tool("cd build && rm -rf dist"))
    assert skipped.invocations == ()
    assert len(ran.invocations) == 1
    [line] = log.read_text().splitlines()
    assert json.loads(line)["tool_input"]["command"] == "cd build && rm -rf dist"


def test_a_python_hook_takes_if_on_tool_points_only() -> None:
    hooks = HookDispatcher()
    hooks.add_python("PreToolUse", lambda p: None, if_="Bash(rm *)")
    with pytest.raises(HookConfigError, match="not a tool point"):
        hooks.add_python("Stop", lambda p: None, if_="Bash(rm *)")
    with pytest.raises(HookConfigError, match="not a permission rule"):
        hooks.add_python("PreToolUse", lambda p: None, if_="rm -rf")


# -- exec form, shell form ----------------------------------------------------------------


async def test_exec_form_passes_each_argument_verbatim(tmp_path: Path) -> None:
    """`args`: no shell; the project folder placeholder is put in, `$HOME` and quotes are not."""
    code = (
        "import json, sys; print(json.dumps({'hookSpecificOutput': {'hookEventName': "
        "'UserPromptSubmit', 'additionalContext': json.dumps(sys.argv[1:])}}))"
    )
    hook = command(sys.executable, args=["-c", code, "${CLAUDE_PROJECT_DIR}/x y", "it's $HOME"])
    config = load_settings(one_hook("UserPromptSubmit", hook))
    async with HookDispatcher(config, project_dir=tmp_path) as hooks:
        outcome = await hooks.dispatch("UserPromptSubmit", prompt_payload())
    assert outcome.additional_context is not None
    assert json.loads(outcome.additional_context) == [f"{tmp_path}/x y", "it's $HOME"]


async def test_exec_form_with_a_missing_program_is_an_error_not_a_crash() -> None:
    hook = command("no-such-program-fleet", args=[])
    async with HookDispatcher(load_settings(one_hook("UserPromptSubmit", hook))) as hooks:
        outcome = await hooks.dispatch("UserPromptSubmit", prompt_payload())
    [record] = outcome.invocations
    assert record.decision == "error"
    assert "no executable named 'no-such-program-fleet'" in (record.reason or "")


async def test_shell_bash_runs_the_command_with_bash() -> None:
    """`[[ ]]` is bash, not /bin/sh (dash here): it works only with "shell": "bash"."""
    line = '[[ "a" == "a" ]] && echo bash-ran'
    async with HookDispatcher(load_settings(one_hook("UserPromptSubmit", command(line)))) as sh:
        plain = await sh.dispatch("UserPromptSubmit", prompt_payload())
    with_bash = load_settings(one_hook("UserPromptSubmit", command(line, shell="bash")))
    async with HookDispatcher(with_bash) as bash:
        outcome = await bash.dispatch("UserPromptSubmit", prompt_payload())
    assert outcome.additional_context == "bash-ran"
    if not SH_IS_BASH:
        assert plain.additional_context is None


@pytest.mark.skipif(shutil.which("pwsh") is not None, reason="PowerShell is installed here")
async def test_shell_powershell_without_powershell_is_a_clear_error() -> None:
    hook = command("Write-Host hi", shell="powershell")
    async with HookDispatcher(load_settings(one_hook("UserPromptSubmit", hook))) as hooks:
        outcome = await hooks.dispatch("UserPromptSubmit", prompt_payload())
    assert "PowerShell (pwsh) is not installed" in (outcome.invocations[0].reason or "")


async def test_identical_commands_run_once_but_other_args_are_another_hook(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    same = command("sh", args=["-c", f"echo x >> {log}"])
    other = command("sh", args=["-c", f"echo y >> {log}"])
    groups = [{"hooks": [same]}, {"hooks": [same, other]}]
    async with HookDispatcher(load_settings({"hooks": {"UserPromptSubmit": groups}})) as hooks:
        outcome = await hooks.dispatch("UserPromptSubmit", prompt_payload())
    assert len(outcome.invocations) == 2
    assert sorted(log.read_text().split()) == ["x", "y"]


# -- onFailure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmd", "timeout", "why"),
    [
        ("exit 1", 10, "exit code 1"),
        ("sleep 30", 0.5, "no answer within"),
        ("echo '{oops'", 10, ""),
    ],
)
async def test_on_failure_block_makes_a_failing_guard_fail_closed(
    cmd: str, timeout: float, why: str
) -> None:
    fail_open = load_settings(one_hook("PreToolUse", command(cmd, timeout=timeout)))
    fail_closed = load_settings(
        one_hook("PreToolUse", command(cmd, timeout=timeout, onFailure="block"))
    )
    async with HookDispatcher(fail_open) as hooks:
        allowed = await hooks.dispatch("PreToolUse", pre_tool("git push"))
    async with HookDispatcher(fail_closed) as hooks:
        blocked = await hooks.dispatch("PreToolUse", pre_tool("git push"))
    assert not allowed.blocked
    assert allowed.invocations[0].decision in ("error", "timeout")
    assert blocked.blocked
    assert blocked.permission == "deny"
    assert blocked.invocations[0].decision == "block"
    assert 'onFailure is "block"' in (blocked.reason or "")
    assert why in (blocked.reason or "")


async def test_on_failure_block_cannot_block_where_nothing_can_be_blocked() -> None:
    config = load_settings(one_hook("Notification", command("exit 1", onFailure="block")))
    payload = build_payload("Notification", session_id="s1", message="m")
    async with HookDispatcher(config) as hooks:
        outcome = await hooks.dispatch("Notification", payload)
    assert not outcome.blocked
    assert outcome.invocations[0].decision == "error"


# -- async: detached hooks ----------------------------------------------------------------


async def test_an_async_hook_runs_detached_and_cannot_decide(tmp_path: Path) -> None:
    """The dispatch returns while the hook still runs; its answer is recorded, not applied."""
    go = tmp_path / "go"
    answer = {
        "decision": "block",
        "reason": "too late to block",
        "systemMessage": "tests are green",
        "hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": "42 passed"},
    }
    script = tmp_path / "slow.sh"
    script.write_text(
        f"#!/bin/sh\ncat >/dev/null\nwhile [ ! -e {go} ]; do sleep 0.05; done\n"
        f"echo '{json.dumps(answer)}'\n"
    )
    script.chmod(0o755)
    config = load_settings(one_hook("PostToolUse", command(str(script), **{"async": True})))
    records: list[HookInvoked] = []
    done = asyncio.Event()

    async def sink(record: HookInvoked) -> None:
        records.append(record)
        done.set()

    payload = build_payload(
        "PostToolUse",
        session_id="s1",
        agent_id="a1",
        tool_name="Bash",
        tool_input={"command": "pytest"},
        tool_use_id="toolu_7",
        tool_response={"stdout": "ok"},
    )
    async with HookDispatcher(config) as hooks:
        outcome = await hooks.dispatch("PostToolUse", payload, on_detached=sink)
        assert outcome.invocations == ()
        assert not outcome.blocked
        assert records == []  # still running: it waits for `go`
        go.touch()
        async with asyncio.timeout(30):
            await done.wait()
    [record] = records
    assert record.detached is True
    assert record.decision == "block"  # recorded as said; the outcome was decided without it
    assert record.additional_context == "42 passed"
    assert record.system_message == "tests are green"
    assert record.tool_use_id == "toolu_7"
    assert record.agent_id == "a1"


async def test_closing_the_dispatcher_stops_detached_hooks(tmp_path: Path) -> None:
    config = load_settings(one_hook("Stop", command("sleep 600", **{"async": True})))
    records: list[HookInvoked] = []

    async def sink(record: HookInvoked) -> None:
        records.append(record)

    hooks = HookDispatcher(config)
    async with hooks:
        await hooks.dispatch("Stop", build_payload("Stop", session_id="s1"), on_detached=sink)
    [record] = records  # recorded before aclose() returned
    assert (record.detached, record.decision) == (True, "error")
    assert record.reason is not None
    assert record.reason.startswith("stopped at exit: still running after ")
    assert record.reason.endswith("when fleet closed; it printed nothing")


# -- PermissionRequest and PreToolUse answers -----------------------------------------------


def permission_payload() -> dict[str, Any]:
    return build_payload(
        "PermissionRequest",
        session_id="s1",
        tool_name="Bash",
        tool_input={"command": "rm -rf dist"},
        fleet_tool_use_id="toolu_3",
    )


@pytest.mark.parametrize(
    ("answer", "permission", "updated", "stop"),
    [
        ({"behavior": "allow", "updatedInput": {"command": "rm -rf dist/cache"}}, "allow",
         {"command": "rm -rf dist/cache"}, False),
        ({"behavior": "deny", "message": "not on Fridays"}, "deny", None, False),
        ({"behavior": "deny", "message": "stop now", "interrupt": True}, "deny", None, True),
    ],
)  # fmt: skip
async def test_a_permission_request_hook_decides_in_its_decision_object(
    answer: dict[str, Any], permission: str, updated: Any, stop: bool
) -> None:
    async with HookDispatcher() as hooks:
        out = {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": answer}}
        hooks.add_python("PermissionRequest", lambda p: out)
        outcome = await hooks.dispatch("PermissionRequest", permission_payload())
    assert outcome.permission == permission
    assert outcome.updated_input == updated
    assert outcome.stop is stop
    assert outcome.invocations[0].tool_use_id == "toolu_3"
    if permission == "deny":
        assert outcome.reason == answer["message"]


async def test_defer_is_no_decision_and_deny_beats_ask() -> None:
    async with HookDispatcher() as hooks:
        for decision in ("defer", "ask"):
            out = {"hookSpecificOutput": {"permissionDecision": decision}}
            hooks.add_python("PreToolUse", lambda p, out=out: out, name=decision)
        asked = await hooks.dispatch("PreToolUse", pre_tool("ls"))
        hooks.add_python(
            "PreToolUse", lambda p: {"hookSpecificOutput": {"permissionDecision": "deny"}}
        )
        denied = await hooks.dispatch("PreToolUse", pre_tool("ls"))
    assert asked.permission == "ask"
    assert [i.decision for i in asked.invocations] == ["none", "ask"]
    assert denied.permission == "deny"
