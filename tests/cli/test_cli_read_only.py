"""Issue 12, item 9: a read-only log is read by `fleet events`, `agents` and `replay`, and
`fleet serve` says in one line that it cannot serve it.

Read-only for real: as root (who ignores permission bits) the folder is a
read-only bind mount; otherwise its permissions are taken away.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import main
from events import AgentCreated, Meta, NewEvent, RunStarted, SQLiteEventStore


def fleet(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


async def _make_log(db: Path) -> None:
    async with SQLiteEventStore(db) as store:
        meta = Meta(run_id="r1")
        await store.append("run-r1", [NewEvent(RunStarted(run_id="r1", task="look"), meta)])
        created = AgentCreated(agent_id="a1", name="scout", role="scout", model="m")
        await store.append("agent-a1", [NewEvent(created, Meta(run_id="r1", agent_id="a1"))])


@pytest.fixture
def read_only_log(tmp_path: Path) -> Iterator[Path]:
    """A log in a folder nobody can write to."""
    source = tmp_path / "log"
    source.mkdir()
    asyncio.run(_make_log(source / "fleet.db"))
    if os.geteuid() != 0:
        source.chmod(0o555)
        (source / "fleet.db").chmod(0o444)
        yield source / "fleet.db"
        source.chmod(0o755)
        return
    view = tmp_path / "ro"
    view.mkdir()
    steps = [["mount", "--bind", str(source), str(view)],
             ["mount", "-o", "remount,ro,bind", str(view)]]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(view)], check=False)
            pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    try:
        assert not os.access(view, os.W_OK) or _cannot_write(view)
        yield view / "fleet.db"
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def _cannot_write(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return True
    return False


def test_read_commands_work_on_a_read_only_log(read_only_log: Path) -> None:
    db = str(read_only_log)
    code, out, err = fleet("events", "--db", db, "--json")
    assert code == 0, err
    assert [json.loads(line)["type"] for line in out.splitlines()] == [
        "RunStarted", "AgentCreated"
    ]  # fmt: skip
    code, out, err = fleet("agents", "--db", db, "--json")
    assert code == 0, err
    assert "a1" in out
    code, out, err = fleet("replay", "r1", "--db", db, "--json")
    assert code == 0, err
    assert json.loads(out)["run_id"] == "r1"
    code, out, err = fleet("replay", "r1", "--at", "1", "--db", db, "--json")
    assert code == 0, err
    assert sorted(os.listdir(read_only_log.parent)) == ["fleet.db"]  # nothing written beside it


def test_serve_on_a_read_only_log_is_one_line_and_a_failure(read_only_log: Path) -> None:
    code, _, err = fleet("serve", "--db", str(read_only_log), "--port", "0")
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"fleet: error: cannot serve {read_only_log}")
    assert "read-only" in err
