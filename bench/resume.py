"""Resuming runs after a crash: how long until a resumed run moves, and every kill point.

Run from the repository root::

    .venv/bin/python bench/resume.py                  # resume latency on logs of 10k and 100k events
    .venv/bin/python bench/resume.py --big            # ... and 1M events (several minutes to build)
    .venv/bin/python bench/resume.py --kills          # SIGKILL each built-in pattern at each point

Latency: a plan-build-review-ship run is stopped mid-build (its runtime
closed, as Ctrl-C does), then the log is padded with N events of other runs
(each run its own streams, as a busy log holds), and the time is measured
from opening a runtime on it (the projections catch up on the padding) to
the first event the resumed run appends. The baseline, in the same run, is
opening a copy of the same file and appending one event without any resume:
the ratio is what resuming adds to opening the log. Medians of `--trials`.

Kills: for each built-in pattern and each point (after the scouts,
mid-build, mid-review, between review and ship), a real `fleet run` process
is killed with SIGKILL when the log reaches the point, the run is resumed
in-process, and the table says whether it completed with the tests passing.

The machine has 2 cores and other work may be running: the figures are
indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path: take it off so
# nothing here shadows a package (bench/hooks.py), and put the repository root on.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))

from events import (  # noqa: E402
    EventFilter,
    Meta,
    NewEvent,
    RecordedEvent,
    SQLiteEventStore,
    TaskCreated,
)
from runtime import (  # noqa: E402
    RuntimeOptions,
    interrupted_runs,
    load_pattern,
    open_runtime,
    prepare_workspace,
    resume_run,
    run_pattern,
)

TASK = "rename `count_words` to `word_count` everywhere"


def _by(name: str, event_type: str) -> Callable[[RecordedEvent], bool]:
    return lambda e: e.type == event_type and (e.meta.agent_id or "").startswith(f"{name}-")


async def _interrupted_log(folder: Path) -> tuple[Path, Path]:
    """A log holding one plan-build-review-ship run stopped mid-build."""
    workspace = await prepare_workspace(folder / "repo")
    db = folder / "fleet.db"
    spec = load_pattern("plan-build-review-ship")
    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        rt.fleet.start_run(run_pattern(rt.fleet, spec, TASK), name="run")
        async for event in rt.store.subscribe():
            if _by("build", "ModelResponded")(event):
                break
    return db, workspace


async def _pad(db: Path, events: int) -> None:
    """`events` more events in the log: board cards of 1,000 other runs."""
    async with SQLiteEventStore(db) as store:
        batch = 1_000
        for start in range(0, events, batch):
            run = f"pad{start // batch}"
            await store.append(
                f"task-{run}",
                [
                    NewEvent(TaskCreated(task_id=f"{run}-{i}", title="padding"), Meta(run_id=run))
                    for i in range(min(batch, events - start))
                ],
            )


async def _first_event_after_resume(db: Path, workspace: Path) -> float:
    started = time.perf_counter()
    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        head = await rt.store.head()
        [run_id] = await interrupted_runs(rt.store, rt.runner)
        job = rt.fleet.start_run(resume_run(rt.fleet, run_id), name="resume")
        async for _ in rt.store.subscribe(after=head, where=EventFilter.of(run_id=run_id)):
            break
        elapsed = time.perf_counter() - started
        job.cancel()
    return elapsed


async def _baseline(db: Path, workspace: Path) -> float:
    started = time.perf_counter()
    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        await rt.store.append("bench-x", [NewEvent(TaskCreated(task_id="x", title="x"), Meta())])
        await rt.runner.wait_for(await rt.store.head())
        return time.perf_counter() - started


def _copy(db: Path, to: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        source = db.with_name(db.name + suffix)
        if source.exists():
            shutil.copyfile(source, to.with_name(to.name + suffix))
    return to


async def latency(sizes: list[int], trials: int) -> None:
    print(f"{'log events':>12} {'resume -> 1st event':>20} {'open + 1 append':>16} {'ratio':>6}")
    for size in sizes:
        resumes, baselines = [], []
        for _ in range(trials):
            with tempfile.TemporaryDirectory() as tmp:
                db, workspace = await _interrupted_log(Path(tmp))
                await _pad(db, size)
                twin = _copy(db, Path(tmp) / "twin.db")  # both start cold, from the same file
                baselines.append(await _baseline(twin, workspace))
                resumes.append(await _first_event_after_resume(db, workspace))
        r, b = statistics.median(resumes), statistics.median(baselines)
        print(f"{size:>12,} {r * 1000:>17.0f} ms {b * 1000:>13.0f} ms {r / b:>6.2f}")


POINTS: dict[str, Callable[[RecordedEvent], bool]] = {
    "after the scouts": _by("scout", "AgentDeleted"),
    "mid-build": _by("build", "ToolCallCompleted"),
    "mid-review": _by("review", "ToolCallCompleted"),
    "between review and ship": lambda e: e.type == "TaskMoved" and e.data.column == "SHIP",  # type: ignore[union-attr]
}


async def _kill_at(folder: Path, pattern: str, seen: Callable[[RecordedEvent], bool]) -> str:
    workspace = await prepare_workspace(folder / "repo")
    db = folder / "fleet.db"
    env = {
        **{k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
        "PYTHONPATH": str(ROOT),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "run", TASK, "--pattern", pattern,
        "--workspace", str(workspace), "--db", str(db), "--quiet", "--json",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(120):
            while not await asyncio.to_thread(db.exists):  # noqa: ASYNC110  # another process
                await asyncio.sleep(0.05)
            async with SQLiteEventStore(db, poll_interval=0.02) as watcher:
                async for event in watcher.subscribe():
                    if seen(event) or proc.returncode is not None:
                        break
        proc.send_signal(signal.SIGKILL)
    except (TimeoutError, ProcessLookupError):
        pass  # it ended before the kill point: the caller reports that
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    if proc.returncode != -signal.SIGKILL:
        return "point not reached"
    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        runs = await interrupted_runs(rt.store, rt.runner)
        if not runs:
            return "nothing interrupted"
        result = await resume_run(rt.fleet, runs[0])
    tests = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "unittest", "-q"], cwd=workspace, capture_output=True
    )
    return f"{result.status}, tests {'pass' if tests.returncode == 0 else 'FAIL'}"


async def kills() -> None:
    for pattern in ("scout-plan-build", "plan-build-review-ship", "scout-builder"):
        for point, seen in POINTS.items():
            with tempfile.TemporaryDirectory() as tmp:
                outcome = await _kill_at(Path(tmp), pattern, seen)
            print(f"{pattern:<24} {point:<26} {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="also a log of 1M events")
    parser.add_argument("--kills", action="store_true", help="every kill point of every pattern")
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    if args.kills:
        asyncio.run(kills())
        return
    sizes = [10_000, 100_000] + ([1_000_000] if args.big else [])
    asyncio.run(latency(sizes, args.trials))


if __name__ == "__main__":
    main()
