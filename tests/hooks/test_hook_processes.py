"""Command hooks leave no process behind: `setsid` and SIGTERM-ignoring children die too.

Each test marks the processes it starts with an environment variable holding a
unique value and looks for it in /proc/*/environ afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from hooks import (
    CONTAINED,
    HookDispatcher,
    build_payload,
    load_settings,
    start_command,
    stop_command,
)

pytestmark = pytest.mark.skipif(not CONTAINED, reason="process containment needs Linux's prctl")

MARK = "FLEET_TEST_MARK"


def marked(mark: str) -> list[int]:
    """Pids of the live (not zombie) processes whose environment holds `MARK=mark`."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in env and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def escapers(folder: Path, mark: str, *, then: str) -> str:
    """A shell script that starts a `setsid` sleeper and a SIGTERM-ignoring loop, then `then`."""
    return f"""cat >/dev/null
{MARK}={mark} setsid sh -c 'echo $$ > {folder}/escaped.pid; exec sleep 600' >/dev/null 2>&1 &
{MARK}={mark} sh -c 'trap "" TERM; echo $$ > {folder}/stubborn.pid; while :; do sleep 1; done' >/dev/null 2>&1 &
while [ ! -s {folder}/escaped.pid ] || [ ! -s {folder}/stubborn.pid ]; do sleep 0.01; done
{then}
"""


def hook_settings(command: str, timeout: float) -> Any:
    group = {"hooks": [{"type": "command", "command": command, "timeout": timeout}]}
    return load_settings({"hooks": {"PreToolUse": [group]}})


def payload() -> dict[str, Any]:
    return build_payload(
        "PreToolUse",
        session_id="s1",
        cwd="",
        agent_id="builder-1",
        tool_name="Bash",
        tool_input={"command": "ls"},
        tool_use_id="toolu_1",
    )


def started(folder: Path) -> list[int]:
    return [int((folder / f"{n}.pid").read_text()) for n in ("escaped", "stubborn")]


@pytest.mark.parametrize(
    ("then", "timeout", "decision"),
    [("exit 0", 60, "none"), ("sleep 600", 3, "timeout")],
    ids=["the hook ends", "the hook times out"],
)
async def test_no_process_of_a_command_hook_outlives_it(
    tmp_path: Path, then: str, timeout: float, decision: str
) -> None:
    mark = uuid.uuid4().hex
    script = tmp_path / "escape.sh"
    script.write_text("#!/bin/sh\n" + escapers(tmp_path, mark, then=then))
    script.chmod(0o755)
    async with HookDispatcher(hook_settings(str(script), timeout)) as hooks:
        outcome = await hooks.dispatch("PreToolUse", payload())
    assert outcome.invocations[0].decision == decision
    assert len(started(tmp_path)) == 2, "both escapers were running before the end"
    assert marked(mark) == []


async def test_stop_command_kills_a_running_command_and_all_it_started(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    proc = await start_command(
        escapers(tmp_path, mark, then="sleep 600"), stdin=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(30):
            while len(marked(mark)) < 2:
                await asyncio.sleep(0.02)
    finally:
        await stop_command(proc)
    assert proc.returncode is not None
    assert marked(mark) == []


async def run(command: str, **kwargs: Any) -> tuple[int, bytes]:
    proc = await start_command(
        command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, **kwargs
    )
    try:
        out, _ = await proc.communicate()
    finally:
        await stop_command(proc)
    assert proc.returncode is not None
    return proc.returncode, out


async def test_stopping_a_command_whose_output_nobody_reads_is_quick() -> None:
    """A command hook flooding stdout past its timeout: its reader was cancelled, the
    command blocked on the full pipe, and `wait()` (which waits for the pipes to close)
    held the stop for its whole grace, twice, though the command was gone at once."""
    proc = await start_command(
        "yes", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    await proc.stdout.read(1)  # it runs, and then nobody reads
    async with asyncio.timeout(60):  # the grace below is 120: stopped well before it
        await stop_command(proc, grace=120)
    assert proc.returncode is not None


async def test_the_reaper_exits_as_the_command_did() -> None:
    assert (await run("exit 3"))[0] == 3
    assert (await run("kill -TERM $$"))[0] == -signal.SIGTERM
    # SIGKILL (an out-of-memory kill) too: setting its handler failed, exit 1 and a traceback.
    code, _ = await run("kill -KILL $$")
    assert code == -signal.SIGKILL
    assert (await run("echo hello"))[1] == b"hello\n"
    assert (await run("yes | head -n 1"))[1] == b"y\n", "SIGPIPE is at its default again"


async def test_the_command_gets_exactly_the_environment_it_was_given() -> None:
    """The same as a bare `sh -c` gets: no LC_CTYPE added by the reaper's Python startup."""
    bare = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", "env", env={"ONLY": "this"}, stdout=asyncio.subprocess.PIPE
    )
    expected, _ = await bare.communicate()
    code, out = await run("env", env={"ONLY": "this"})
    assert code == 0
    assert sorted(out.decode().split()) == sorted(expected.decode().split())
    assert "ONLY=this" in out.decode().split()


def test_the_reaper_is_plain_python_with_no_import_of_fleet() -> None:
    """It runs with -I -S: nothing but the standard library may be imported there."""
    from hooks._processes import REAPER_PATH, command_argv

    argv = command_argv("true")
    assert argv[:4] == [sys.executable, "-I", "-S", str(REAPER_PATH)]
    source = REAPER_PATH.read_text()
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) or line.strip().startswith("import ")
    }
    assert imported <= {"__future__", "ctypes", "os", "signal", "sys", "time", "resource"}


def _children() -> set[int]:
    """This thread's child processes (the event loop's: asyncio forks on it)."""
    tid = threading.get_native_id()
    with open(f"/proc/self/task/{tid}/children") as f:
        return {int(pid) for pid in f.read().split()}


async def test_a_start_cancelled_once_its_command_runs_leaves_nothing_running() -> None:
    """Regression: a start cancelled after the fork (a runtime closing as an agent's Bash
    started) had asyncio SIGKILL the reaper alone, and the command it had begun ran on
    (a `sleep 30 && echo done > marker.txt` wrote its marker after the runtime closed)."""
    mark = uuid.uuid4().hex
    before = _children()
    start = asyncio.ensure_future(
        start_command(
            "exec sleep 600", env={**os.environ, MARK: mark},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        )
    )  # fmt: skip
    async with asyncio.timeout(30):
        while not _children() - before:  # one step at a time, until the reaper is forked
            await asyncio.sleep(0)
    # The loop held (the start cannot finish meanwhile) until the command runs under it.
    deadline = time.monotonic() + 30
    while len(marked(mark)) < 2:
        assert time.monotonic() < deadline, "the reaper never started the command"
        time.sleep(0.01)  # noqa: ASYNC251  # blocks the loop on purpose: the start stays pending
    assert not start.done()
    start.cancel()
    # Left to asyncio, the start waited for the orphaned command's pipe to close (600 s).
    async with asyncio.timeout(30):
        with pytest.raises(asyncio.CancelledError):
            await start
    assert marked(mark) == []
