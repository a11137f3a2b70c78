"""Issue 12, item 9: a read-only log is read by every read command (`fleet events`,
`agents`, `runs`, `approvals`, `replay`), and `fleet serve` says in one line that it
cannot serve it.

Read-only for real: as root (who ignores permission bits) the folder, or the file
alone, is a read-only bind mount; otherwise their permissions are taken away.
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
from events import AgentCreated, ApprovalRequested, Meta, NewEvent, RunStarted, SQLiteEventStore


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
        held = ApprovalRequested(
            approval_id="apr_1", agent_id="a1", tool_use_id="tu1", tool_name="Bash",
            tool_input={"command": "ls"}, reason="a person decides", timeout_s=600,
        )  # fmt: skip
        meta = Meta(run_id="r1", agent_id="a1")
        await store.append("agent-a1", [NewEvent(created, meta), NewEvent(held, meta)])


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
    with _read_only_mount(source, view):
        assert not os.access(view, os.W_OK) or _cannot_write(view / "probe")
        yield view / "fleet.db"


@pytest.fixture
def read_only_file(tmp_path: Path) -> Iterator[Path]:
    """A log file nobody can write to (a copy, chmod 444), in a folder anyone can."""
    source = tmp_path / "log.db"
    asyncio.run(_make_log(source))
    folder = tmp_path / "open"
    folder.mkdir()
    copy = folder / "fleet.db"
    copy.write_bytes(source.read_bytes())
    copy.chmod(0o444)
    if os.geteuid() != 0:
        yield copy
        return
    with _read_only_mount(source, copy):  # a read-only view of the file over the copy
        assert _cannot_write(copy)
        yield copy


@contextlib.contextmanager
def _read_only_mount(source: Path, target: Path) -> Iterator[None]:
    """`source` (a folder or a file) bind-mounted read-only on `target` (as root)."""
    steps = [["mount", "--bind", str(source), str(target)],
             ["mount", "-o", "remount,ro,bind", str(target)]]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=False)
            pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def _cannot_write(file: Path) -> bool:
    try:
        with file.open("a") as handle:
            handle.write("")
    except OSError:
        return True
    return False


def test_read_commands_work_on_a_read_only_log(read_only_log: Path) -> None:
    db = str(read_only_log)
    code, out, err = fleet("events", "--db", db, "--json")
    assert code == 0, err
    assert [json.loads(line)["type"] for line in out.splitlines()] == [
        "RunStarted", "AgentCreated", "ApprovalRequested"
    ]  # fmt: skip
    code, out, err = fleet("agents", "--db", db, "--json")
    assert code == 0, err
    assert "a1" in out
    code, out, err = fleet("replay", "r1", "--db", db, "--json")
    assert code == 0, err
    assert json.loads(out)["run_id"] == "r1"
    code, out, err = fleet("replay", "r1", "--at", "1", "--db", db, "--json")
    assert code == 0, err
    _runs_and_approvals_are_read(db)
    assert sorted(os.listdir(read_only_log.parent)) == ["fleet.db"]  # nothing written beside it


def test_runs_and_approvals_read_a_read_only_file(read_only_file: Path) -> None:
    """Regression: they opened the log for writing, and failed with Python-API advice."""
    _runs_and_approvals_are_read(str(read_only_file))


def _runs_and_approvals_are_read(db: str) -> None:
    code, out, err = fleet("runs", "--db", db, "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)["runs"]] == ["r1"]
    code, out, err = fleet("runs", "--db", db)
    assert code == 0, err
    assert "r1" in out
    code, out, err = fleet("approvals", "--db", db, "--json")
    assert code == 0, err
    assert [a["id"] for a in json.loads(out)["approvals"]] == ["apr_1"]
    code, out, err = fleet("approvals", "--db", db)
    assert code == 0, err
    assert "apr_1" in out


def test_serve_on_a_read_only_log_is_one_line_and_a_failure(read_only_log: Path) -> None:
    code, _, err = fleet("serve", "--db", str(read_only_log), "--port", "0")
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"fleet: error: cannot serve {read_only_log}")
    assert "read-only" in err
