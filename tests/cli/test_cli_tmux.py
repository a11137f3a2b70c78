"""`fleet demo` in a real terminal (tmux, 80x40): the live view shows the current run only, whole."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from events import AgentCreated, Meta, NewEvent, RunStarted, SQLiteEventStore

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


async def _another_run(db: Path) -> None:
    """An earlier run of the same log, with agents the demo's view must not list."""
    async with SQLiteEventStore(db) as store:
        meta = Meta(run_id="earlier")
        await store.append("run-earlier", [NewEvent(RunStarted(run_id="earlier", task="t"), meta)])
        for i in range(30):
            agent = AgentCreated(agent_id=f"old-{i}", name=f"old-agent-{i}", role="scout",
                                 model="claude-haiku-4-5")  # fmt: skip
            await store.append(f"agent-old-{i}", [NewEvent(agent, meta)])


def _tmux(server: str, *args: str) -> str:
    done = subprocess.run(["tmux", "-L", server, *args], capture_output=True, text=True, timeout=30)
    return done.stdout


async def test_demo_in_80_columns_lists_only_its_run_with_nothing_cut(tmp_path: Path) -> None:
    db = tmp_path / ".fleet" / "fleet.db"
    db.parent.mkdir()
    await _another_run(db)
    server = f"fleet-test-{uuid.uuid4().hex[:8]}"
    command = (
        f"cd {tmp_path} && PYTHONPATH={ROOT} {sys.executable} -m api.cli demo --latency 0.02; "
        "echo DEMO-EXIT=$?; sleep 600"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "COLUMNS")}
    subprocess.run(
        ["tmux", "-L", server, "new-session", "-d", "-x", "80", "-y", "40", "-s", "demo", command],
        env=env, check=True, timeout=30,
    )  # fmt: skip
    try:
        screen = ""
        for _ in range(600):  # up to 2 minutes on a loaded machine
            screen = _tmux(server, "capture-pane", "-p", "-t", "demo", "-S", "-200")
            if "DEMO-EXIT=" in screen:
                break
            await asyncio.sleep(0.2)
        assert "DEMO-EXIT=0" in screen, screen
    finally:
        _tmux(server, "kill-server")
    lines = screen.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in screen, "an id or a number was cut"
    assert "old-agent" not in screen, "the view lists another run's agents"
    assert re.search(r"run \w+ · \d+\.\d s elapsed · 6 agents", screen), screen
    ids = re.findall(r"\b(?:scout-\d|plan|build)-[0-9a-f]{6}\b", screen)
    assert len(set(ids)) == 5, ids
    header = next(line for line in lines if line.split()[:2] == ["agent", "id"])
    assert "status" in header and "cost" in header
    assert "agents of this run" in screen
