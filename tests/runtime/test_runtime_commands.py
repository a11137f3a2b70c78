"""Bash leaves no process behind: a `setsid` child and one that ignores SIGTERM die
when the command ends, times out or is cancelled.

The processes a test starts carry an environment variable with a unique value; the test
looks for it in /proc/*/environ afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from hooks import CONTAINED
from runtime import ToolContext, Workspace, worker_toolbox

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


def escapers(mark: str, *, then: str) -> str:
    """Start a `setsid` sleeper and a SIGTERM-ignoring loop, wait until both run, then `then`."""
    return f"""{MARK}={mark} setsid sh -c 'echo $$ > escaped.pid; exec sleep 600' >/dev/null 2>&1 &
{MARK}={mark} sh -c 'trap "" TERM; echo $$ > stubborn.pid; while :; do sleep 1; done' >/dev/null 2>&1 &
while [ ! -s escaped.pid ] || [ ! -s stubborn.pid ]; do sleep 0.01; done
echo both running
{then}"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def ctx(ws: Workspace) -> ToolContext:
    return ToolContext(workspace=ws, agent_id="a1")


@pytest.mark.parametrize(
    ("then", "timeout_s", "head"),
    [
        ("exit 0", 60, "exit code 0"),
        (
            "sleep 600",
            3,
            "timed out after 3s: the command and every process it started were killed",
        ),
    ],
    ids=["the command ends", "the command times out"],
)
async def test_no_process_of_a_command_outlives_it(
    ws: Workspace, then: str, timeout_s: float, head: str
) -> None:
    mark = uuid.uuid4().hex
    result = await worker_toolbox().call(
        "Bash", {"command": escapers(mark, then=then), "timeout": timeout_s * 1000}, ctx(ws)
    )
    assert result.content.startswith(head)
    assert "both running" in result.content
    assert marked(mark) == []


async def test_a_cancelled_command_leaves_no_process_either(ws: Workspace) -> None:
    mark = uuid.uuid4().hex
    call = asyncio.create_task(
        worker_toolbox().call("Bash", {"command": escapers(mark, then="sleep 600")}, ctx(ws))
    )
    async with asyncio.timeout(60):
        while len(marked(mark)) < 2:
            await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert marked(mark) == []


async def test_a_background_server_does_not_hold_the_command_open(ws: Workspace) -> None:
    """A child that keeps the output pipe open no longer makes the command wait for it."""
    mark = uuid.uuid4().hex
    result = await worker_toolbox().call(
        "Bash",
        {"command": f"{MARK}={mark} sleep 600 & echo started", "timeout": 120_000},
        ctx(ws),
    )
    assert result.content.startswith("exit code 0")
    assert marked(mark) == []
