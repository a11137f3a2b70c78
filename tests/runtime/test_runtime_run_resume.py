"""Runs stopped mid-way (Ctrl-C: the runtime closed) are interrupted, then resumed or abandoned.

The SIGKILL variants, with real processes, are in tests/cli/test_cli_resume.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from events import EventFilter, EventStore, RecordedEvent
from runtime import (
    RunNotResumable,
    RuntimeOptions,
    abandon_run,
    interrupted_runs,
    load_pattern,
    open_runtime,
    resume_run,
    run_orchestrator,
    run_pattern,
)

TASK = "rename `count_words` to `word_count` everywhere"


async def _stop_when(
    db: Path, workspace: Path, start: Callable[..., object], seen: Callable[[RecordedEvent], bool]
) -> None:
    """Start a run, and close its runtime (as Ctrl-C does) once the log holds `seen`."""
    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        rt.fleet.start_run(start(rt.fleet), name="run")  # type: ignore[arg-type]
        async with asyncio.timeout(60):
            async for event in rt.store.subscribe():
                if seen(event):
                    break


def _by(name: str, event_type: str) -> Callable[[RecordedEvent], bool]:
    return lambda e: e.type == event_type and (e.meta.agent_id or "").startswith(f"{name}-")


async def _types(store: EventStore, run_id: str, stream: str) -> list[str]:
    return [e.type for e in await store.read_stream(f"{stream}-{run_id}")]


async def test_an_interrupted_run_can_be_abandoned_and_is_then_not_resumable(
    tmp_path: Path, workspace: Path
) -> None:
    db = tmp_path / "fleet.db"
    spec = load_pattern("plan-build-review-ship")
    await _stop_when(
        db, workspace, lambda fleet: run_pattern(fleet, spec, TASK), _by("build", "ModelResponded")
    )

    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        [run_id] = await interrupted_runs(rt.store, rt.runner)
        await abandon_run(rt.fleet, run_id)

        assert await interrupted_runs(rt.store, rt.runner) == []
        run_events = await _types(rt.store, run_id, "run")
        assert run_events == ["RunStarted", "RunFailed"]
        assert (await _types(rt.store, run_id, "task"))[-1] == "TaskMoved"
        board = rt.runner.view("board")["columns"]
        assert [c["name"] for c in board if c["tasks"]] == ["FAILED"]
        live = await rt.fleet.list_agents(run_id=run_id, include_deleted=False)
        assert [a["status"] for a in live] == ["failed"]  # only the conductor is left, failed
        with pytest.raises(RunNotResumable, match="ended"):
            await resume_run(rt.fleet, run_id)
        with pytest.raises(RunNotResumable, match="cannot be resumed: it has ended"):
            await resume_run(rt.fleet, run_id)
        with pytest.raises(RunNotResumable, match="cannot be abandoned: it has ended"):
            await abandon_run(rt.fleet, run_id)
        with pytest.raises(RunNotResumable, match="cannot be abandoned: there is no such run"):
            await abandon_run(rt.fleet, "nope")


async def test_an_orchestrator_run_stopped_mid_way_resumes_to_completed(
    tmp_path: Path, workspace: Path
) -> None:
    db = tmp_path / "fleet.db"
    await _stop_when(
        db, workspace, lambda fleet: run_orchestrator(fleet, TASK), _by("scout", "ModelResponded")
    )

    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        [run_id] = await interrupted_runs(rt.store, rt.runner)
        result = await resume_run(rt.fleet, run_id)

        assert result.status == "completed", result.error
        assert await _types(rt.store, run_id, "run") == ["RunStarted", "RunCompleted"]
        orchestrators = [
            e
            async for e in rt.store.iter_all(
                where=EventFilter.of(run_id=run_id, types=["AgentCreated"])
            )
            if e.data.role == "orchestrator"  # type: ignore[union-attr]
        ]
        assert len(orchestrators) == 1, "the orchestrator agent was resumed, not made anew"
