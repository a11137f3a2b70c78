"""A pattern run killed with SIGKILL, resumed with `fleet resume`, ends as if never killed.

One run of plan-build-review-ship is killed twice, as a user's machine might:
a real `fleet run` process mid-build, then the real `fleet resume` process
that took it over, mid-review; a third resume finishes it. Its files, board
and commit are then compared with an uninterrupted run of the same task.
(Every kill point of every pattern: `python bench/resume.py --kills`.)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from api.cli import main
from events import EventStore, RecordedEvent, SQLiteEventStore
from runtime import (
    RuntimeOptions,
    interrupted_runs,
    load_pattern,
    open_runtime,
    prepare_workspace,
    resume_run,
    run_pattern,
)

ROOT = Path(__file__).parents[2]
TASK = "rename `count_words` to `word_count` everywhere"
PATTERN = "plan-build-review-ship"


def _env() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    environ["PYTHONPATH"] = str(ROOT)
    return environ


async def _start(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", *args, cwd=cwd, env=_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _kill_when(
    proc: asyncio.subprocess.Process, db: Path, seen: Callable[[RecordedEvent], bool]
) -> None:
    """SIGKILL `proc` as soon as the log holds an event `seen` picks (another process's).

    Its stderr is read all along (a full pipe would stop it), and if it ends before the
    kill point the test fails at once with what it said.
    """
    said: list[bytes] = []

    async def drain() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(65536):
            said.append(chunk)

    async def kill_point() -> None:
        while not await asyncio.to_thread(db.exists):
            await asyncio.sleep(0.05)
        async with SQLiteEventStore(db, poll_interval=0.02) as watcher:
            async for event in watcher.subscribe():
                if seen(event):
                    return

    draining = asyncio.create_task(drain())
    watching = asyncio.create_task(kill_point())
    ended = asyncio.create_task(proc.wait())
    try:
        async with asyncio.timeout(120):
            await asyncio.wait({watching, ended}, return_when=asyncio.FIRST_COMPLETED)
        if watching.done() and proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
    finally:
        watching.cancel()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await draining
        await asyncio.gather(watching, ended, return_exceptions=True)
    stderr = b"".join(said).decode(errors="replace")[-2000:]
    assert proc.returncode == -signal.SIGKILL, f"it ended before the kill point:\n{stderr}"


def _of(name: str, event_type: str) -> Callable[[RecordedEvent], bool]:
    return lambda e: e.type == event_type and (e.meta.agent_id or "").startswith(f"{name}-")


def _files(workspace: Path) -> dict[str, str]:
    return {
        str(p.relative_to(workspace)): p.read_text(errors="replace")
        for p in sorted(workspace.rglob("*"))
        if p.is_file()
        and not {".git", "transcripts", "__pycache__"} & set(p.relative_to(workspace).parts)
    }


def _commits(workspace: Path) -> list[str]:
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=workspace, capture_output=True, text=True, check=True
    )
    return log.stdout.splitlines()


async def _board(store: EventStore, run_id: str) -> list[tuple[str, str | None]]:
    events = await store.read_stream(f"task-{run_id}")
    return [(e.type, getattr(e.data, "column", None)) for e in events]


async def test_a_pattern_run_killed_mid_build_and_mid_review_resumes_to_the_same_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = await prepare_workspace(tmp_path / "repo")
    db = tmp_path / "fleet.db"
    # A little model latency: a killed process must still be working when its kill point
    # is seen (the watcher reads the log from the start, then follows it).
    common = ("--db", str(db), "--quiet", "--json", "--latency", "0.1")

    run = await _start("run", TASK, "--pattern", PATTERN, "--workspace", str(workspace),
                       *common, cwd=tmp_path)  # fmt: skip
    await _kill_when(run, db, _of("build", "ToolCallCompleted"))
    statuses = await _run_statuses(db, capsys)
    assert statuses == ["interrupted"], await _what_the_log_holds(db)
    resume = await _start("resume", *common, cwd=tmp_path)
    await _kill_when(resume, db, _of("review", "ToolCallCompleted"))

    options = RuntimeOptions(db=db, workspace=workspace, env={})
    async with open_runtime(options) as rt:
        [run_id] = await interrupted_runs(rt.store, rt.runner)
        result = await resume_run(rt.fleet, run_id)
        assert result.status == "completed", result.error
        assert await interrupted_runs(rt.store, rt.runner) == []
        board = await _board(rt.store, run_id)

    baseline = await prepare_workspace(tmp_path / "baseline")
    options = RuntimeOptions(db=tmp_path / "baseline.db", workspace=baseline, env={})
    async with open_runtime(options) as rt:
        expected = await run_pattern(rt.fleet, load_pattern(PATTERN), TASK)
        assert expected.status == "completed", expected.error
        expected_board = await _board(rt.store, expected.run_id)

    assert _files(workspace) == _files(baseline)
    assert _commits(workspace) == _commits(baseline)
    assert len(_commits(workspace)) == 2  # the sample's first commit, and the shipper's
    assert board == expected_board
    assert await _run_statuses(db, capsys) == ["completed"]


async def _what_the_log_holds(db: Path) -> str:
    """For a failure's message: the log's run events and head, and its checkpoints."""
    async with SQLiteEventStore(db, readonly=True) as store:
        runs = [
            (e.position, e.type) for e in await store.read_all() if e.stream_id.startswith("run-")
        ]
        checkpoints = {
            n: c.position for n, c in (await store.checkpoints.load_checkpoints()).items()
        }
        return f"run events {runs}, head {await store.head()}, checkpoints {checkpoints}"


async def _run_statuses(db: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What `fleet runs --json` says of each run's status (the command, run in a thread)."""
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["runs", "--db", str(db), "--json"]) == 0
    return [r["status"] for r in json.loads(capsys.readouterr().out)["runs"]]
