"""A pattern run killed with SIGKILL or stopped with Ctrl-C, resumed with `fleet resume`,
ends as if never stopped.

One run of plan-build-review-ship is killed twice, as a user's machine might:
a real `fleet run` process mid-build, then the real `fleet resume` process
that took it over, mid-review; a third resume finishes it. Another is stopped
with SIGINT (Ctrl-C) mid-build and finished by the real `fleet resume`. Their
files, board and commit are then compared with an uninterrupted run of the
same task. (Every kill point of every pattern: `python bench/resume.py --kills`.)

The processes stopped and the ones that resume talk to one simulator, this test's
(`ANTHROPIC_BASE_URL`, tests/sim_support.py), which holds the answer a step asks for
after its first tool calls until the process is stopped: the stop lands at that step
however slow the machine, not wherever a process racing a watcher had got to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sim_support import Request, holding_simulator, role, turn

from api.cli import main
from events import EventFilter, EventStore, RecordedEvent, SQLiteEventStore
from runtime import (
    RuntimeOptions,
    interrupted_runs,
    load_pattern,
    open_runtime,
    prepare_workspace,
    resume_run,
    run_pattern,
)
from runtime.simulator import Simulator

ROOT = Path(__file__).parents[2]
TASK = "rename `count_words` to `word_count` everywhere"
PATTERN = "plan-build-review-ship"


def _env(simulator: Simulator | None = None, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(extra)
    if simulator is not None:  # the model at this URL: the test's simulator, not one of its own
        environ["ANTHROPIC_BASE_URL"] = simulator.base_url
        environ["ANTHROPIC_API_KEY"] = "sim-offline"
    return environ


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child, before exec: SIGINT raises KeyboardInterrupt, as in a terminal (a test
    run in a shell's background inherits SIGINT ignored, and Ctrl-C would do nothing)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _start(
    *args: str, cwd: Path, simulator: Simulator | None = None, **env: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", *args, cwd=cwd, env=_env(simulator, **env),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )  # fmt: skip


async def _kill_when(
    proc: asyncio.subprocess.Process,
    db: Path,
    seen: Callable[[RecordedEvent], bool],
    sig: signal.Signals = signal.SIGKILL,
    held: asyncio.Event | None = None,
) -> str:
    """Send `sig` to `proc` as soon as the log holds an event `seen` picks (another
    process's) and, given `held`, once the simulator holds its next answer (so it
    is still at that step); returns what it said on stderr.

    Its stderr is read all along (a full pipe would stop it), and if it ends before the
    kill point the test fails at once with what it said. Killed, it must end killed;
    stopped with SIGINT, it must end as `fleet` does on Ctrl-C (exit code 130).
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
                    break
        if held is not None:
            await held.wait()

    draining = asyncio.create_task(drain())
    watching = asyncio.create_task(kill_point())
    ended = asyncio.create_task(proc.wait())
    try:
        async with asyncio.timeout(120):
            await asyncio.wait({watching, ended}, return_when=asyncio.FIRST_COMPLETED)
        if watching.done() and proc.returncode is None:
            proc.send_signal(sig)
            async with asyncio.timeout(60):  # a stopped process closes its fleet and ends
                await asyncio.wait({ended})
    finally:
        watching.cancel()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await draining
        await asyncio.gather(watching, ended, return_exceptions=True)
    stderr = b"".join(said).decode(errors="replace")
    expected = 130 if sig == signal.SIGINT else -sig
    assert proc.returncode == expected, f"it ended before the kill point:\n{stderr[-2000:]}"
    return stderr


async def _finish(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """Wait for `proc` to end by itself; its exit code and stderr."""
    async with asyncio.timeout(120):
        _, stderr = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, stderr.decode(errors="replace")


def _next_turn_of(step_role: str) -> Callable[[Request], bool]:
    """The request of a step's agent for its second turn: its first tool calls are done."""
    return lambda body: role(body) == step_role and turn(body) == 2


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
    common = ("--db", str(db), "--quiet", "--json")

    async with holding_simulator() as (sim, holding):
        mid_build = holding.arm(_next_turn_of("builder"))
        run = await _start("run", TASK, "--pattern", PATTERN, "--workspace", str(workspace),
                           *common, cwd=tmp_path, simulator=sim)  # fmt: skip
        await _kill_when(run, db, _of("build", "ToolCallCompleted"), held=mid_build)
        statuses = await _run_statuses(db, capsys)
        assert statuses == ["interrupted"], await _what_the_log_holds(db)
        mid_review = holding.arm(_next_turn_of("reviewer"))
        resume = await _start("resume", *common, cwd=tmp_path, simulator=sim)
        await _kill_when(resume, db, _of("review", "ToolCallCompleted"), held=mid_review)

        options = RuntimeOptions(
            db=db,
            workspace=workspace,
            env={"ANTHROPIC_BASE_URL": sim.base_url, "ANTHROPIC_API_KEY": "sim-offline"},
        )
        async with open_runtime(options) as rt:
            [run_id] = await interrupted_runs(rt.store, rt.runner)
            result = await resume_run(rt.fleet, run_id)
            assert result.status == "completed", result.error
            assert await interrupted_runs(rt.store, rt.runner) == []
            board = await _board(rt.store, run_id)

    await _same_as_uninterrupted(tmp_path, workspace, board)
    assert await _run_statuses(db, capsys) == ["completed"]


async def test_a_pattern_run_stopped_with_ctrl_c_mid_build_resumes_to_the_same_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C is a stop, not an end: the agent at work stays resumable, not deleted."""
    workspace = await prepare_workspace(tmp_path / "repo")
    db = tmp_path / "fleet.db"

    async with holding_simulator() as (sim, holding):
        mid_build = holding.arm(_next_turn_of("builder"))
        # As a user runs it: the live view, no --quiet.
        run = await _start("run", TASK, "--pattern", PATTERN, "--workspace", str(workspace),
                           "--db", str(db), cwd=tmp_path, simulator=sim)  # fmt: skip
        await _kill_when(run, db, _of("build", "ToolCallCompleted"), signal.SIGINT, mid_build)
        assert await _run_statuses(db, capsys) == ["interrupted"], await _what_the_log_holds(db)
        async with SQLiteEventStore(db, readonly=True) as store:
            deleted = await store.read_all(where=EventFilter.of(types=["AgentDeleted"]))
            assert not [e.stream_id for e in deleted if e.data.was_working]  # type: ignore[union-attr]

        code, stderr = await _finish(await _start("resume", "--db", str(db), "--quiet",
                                                  cwd=tmp_path, simulator=sim))  # fmt: skip
        assert code == 0, stderr[-2000:]
    async with SQLiteEventStore(db, readonly=True) as store:
        [started] = await store.read_all(where=EventFilter.of(types=["RunStarted"]))
        board = await _board(store, started.data.run_id)  # type: ignore[union-attr]
    await _same_as_uninterrupted(tmp_path, workspace, board)
    assert await _run_statuses(db, capsys) == ["completed"]


@pytest.mark.parametrize("view", [(), ("--quiet",)], ids=["live-view", "quiet"])
async def test_ctrl_c_with_an_answer_in_flight_ends_with_one_line_saying_how_to_go_on(
    tmp_path: Path, view: tuple[str, ...]
) -> None:
    """No traceback (the simulator's answer in flight is not left to be cancelled at the
    end of the loop), and the line's `fleet resume` command finishes the run."""
    workspace = await prepare_workspace(tmp_path / "repo")
    db = tmp_path / "fleet.db"

    # Each answer of its own simulator pauses an hour: the first agent's first answer is in
    # flight at SIGINT, however long the test takes to see the kill point.
    run = await _start("run", TASK, "--pattern", PATTERN, "--workspace", str(workspace),
                       "--db", str(db), "--latency", "3600", *view, cwd=tmp_path)  # fmt: skip
    stderr = await _kill_when(run, db, _of("plan", "AgentCommanded"), signal.SIGINT)
    async with SQLiteEventStore(db, readonly=True) as store:
        [started] = await store.read_all(where=EventFilter.of(types=["RunStarted"]))
    run_id = started.data.run_id  # type: ignore[union-attr]
    resume = f"fleet resume --db {db}"
    assert stderr.splitlines() == [
        f"fleet: stopped; run {run_id} is interrupted, not ended: `{resume}` carries it on"
    ]

    code, stderr = await _finish(await _start(*resume.split()[1:], "--quiet", cwd=tmp_path))
    assert code == 0, stderr[-2000:]


SLOW_ONCE_TEST = """\
import os, time, unittest


class SlowOnce(unittest.TestCase):
    def test_the_first_run_waits(self):
        marker = os.environ.get("SLOW_ONCE")
        if marker and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(120)
"""


async def test_a_run_killed_while_its_tests_run_resumes_and_runs_them_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the simulator's builder took its test run, cut short and not run again
    on resume (a command), for failing tests, and the resumed run failed."""
    workspace = await prepare_workspace(tmp_path / "repo")
    (workspace / "tests" / "test_slow_once.py").write_text(SLOW_ONCE_TEST)
    subprocess.run(["git", "add", "-A"], cwd=workspace, check=True)
    subprocess.run(["git", "commit", "-qm", "a slow test"], cwd=workspace, check=True)
    db, marker = tmp_path / "fleet.db", tmp_path / "tests-started"
    common = ("--db", str(db), "--quiet", "--json")

    def build_tests(e: RecordedEvent) -> bool:
        return _of("build", "ToolCallRequested")(e) and e.data.name == "Bash"  # type: ignore[union-attr]

    async def tests_running() -> None:
        while not await asyncio.to_thread(marker.is_file):
            await asyncio.sleep(0.05)

    running = asyncio.Event()
    waiter = asyncio.create_task(tests_running())
    waiter.add_done_callback(lambda _: running.set())
    run = await _start("run", TASK, "--pattern", PATTERN, "--workspace", str(workspace),
                       *common, cwd=tmp_path, SLOW_ONCE=str(marker))  # fmt: skip
    try:
        await _kill_when(run, db, build_tests, held=running)
    finally:
        waiter.cancel()
        with contextlib.suppress(OSError, ValueError):  # the tests it ran, left waiting
            os.kill(int(marker.read_text()), signal.SIGKILL)

    code, stderr = await _finish(await _start("resume", *common, cwd=tmp_path))
    assert code == 0, stderr[-2000:]
    assert await _run_statuses(db, capsys) == ["completed"]
    async with SQLiteEventStore(db, readonly=True) as store:
        settled = await store.read_all(where=EventFilter.of(types=["ToolCallInterrupted"]))
    assert [(e.data.name, e.data.resolution) for e in settled] == [("Bash", "not_run")]  # type: ignore[union-attr]
    assert _commits(workspace)[0] == "Rename count_words to word_count"


async def _same_as_uninterrupted(
    tmp_path: Path, workspace: Path, board: list[tuple[str, str | None]]
) -> None:
    """The files, commits and board of `workspace`'s run are an uninterrupted run's."""
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
