"""Resuming and abandoning runs whose process died: the run's progress is the log.

    for run_id in await interrupted_runs(store, runner):     # running, and nobody conducts it
        result = await resume_run(fleet, run_id)              # on to RunCompleted or RunFailed
    await abandon_run(fleet, run_id)                          # or give up on it

A run is *interrupted* when the log says it is running and no live process
holds its lease `run-<id>` (`_leases.py`): its process was killed, or stopped
before the run ended. `fleet runs` shows it so until it is resumed or
abandoned.

A pattern run is resumed by conducting it again with the journal of what its
log holds (`_patterns.py`, note 3): the agents it created are taken up in
order (a finished one's result is read, a working one is resumed where its
stream stops, one never commanded is given its task), and the board moves
already recorded are not written again. An orchestrator run is resumed by
resuming its agents (the orchestrator agent's conversation is in the log)
and waiting for the orchestrator to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial
from pathlib import Path
from typing import Literal

from events import (
    AgentCommanded,
    AgentCreated,
    AgentFailed,
    EventFilter,
    EventStore,
    Meta,
    NewEvent,
    RecordedEvent,
    RunFailed,
    RunStarted,
    TaskMoved,
)
from projections import ProjectionRunner, mark_interrupted

from ._fleet import Fleet
from ._orchestrator_tools import ORCHESTRATOR_TOOLS
from ._outage import read_waiting
from ._pattern_spec import BUILTIN_PATTERNS, PatternSpec
from ._patterns import (
    RunJournal,
    RunResult,
    _Conductor,
    _create_orchestrator,
    conduct,
    conductor_id,
    finish_orchestrator,
    run_lease,
)
from .errors import AgentNotFound, RunNotResumable, WorkspaceMissing

__all__ = ["abandon_run", "interrupted_runs", "resume_run"]

logger = logging.getLogger(__name__)


async def interrupted_runs(store: EventStore, runner: ProjectionRunner) -> list[str]:
    """The runs the log shows running that no live process conducts, oldest first."""
    await runner.wait_for(await store.head(), timeout=30.0)
    runs = runner.view("runs")["runs"]
    return [r["id"] for r in await mark_interrupted(store, runs) if r["status"] == "interrupted"]


async def _started(
    store: EventStore, run_id: str, action: Literal["resumed", "abandoned"] = "resumed"
) -> RecordedEvent:
    """The run's RunStarted. Raises `RunNotResumable` (saying it cannot be `action`)
    when it is unknown or has ended."""
    events = await store.read_stream(f"run-{run_id}")
    if not events or not isinstance(events[0].data, RunStarted):
        raise RunNotResumable(run_id, "there is no such run in the log", action=action)
    if len(events) > 1:
        ended = "completed" if events[-1].type == "RunCompleted" else "failed"
        raise RunNotResumable(run_id, f"it has ended ({ended})", action=action)
    return events[0]


async def check_resumable(store: EventStore, run_id: str) -> None:
    """Raise `RunNotResumable` when `run_id` is unknown or has ended, before anything is
    opened to resume it (what `resume_run` would refuse first)."""
    await _started(store, run_id)


def _pattern_of(run_id: str, started: RunStarted) -> PatternSpec:
    dumped = started.config.get("pattern_spec")
    if dumped is not None:
        return PatternSpec.model_validate(dumped)
    spec = BUILTIN_PATTERNS.get(started.pattern or "")
    if spec is None:
        raise RunNotResumable(run_id, f"its pattern {started.pattern!r} is not known here")
    return spec


async def resume_run(fleet: Fleet, run_id: str) -> RunResult:
    """Go on with an interrupted run until it ends; returns how it ended.

    The fleet's workspace must be the run's (`RunStarted.workspace`). Raises
    `RunNotResumable` (unknown, ended, or another workspace),
    `AgentDrivenElsewhere` when a live process conducts it; nothing is
    written then.
    """
    # Its reads wait out an unavailable log, as the run's lease and its appends do.
    check = partial(_started, fleet.store, run_id)
    recorded = await read_waiting(fleet.store, check, who=f"run {run_id}")
    started = recorded.data
    assert isinstance(started, RunStarted)
    if started.workspace and Path(started.workspace) != fleet.config.workspace:
        raise RunNotResumable(
            run_id, f"it works in {started.workspace}, not in {fleet.config.workspace}"
        )
    if not await asyncio.to_thread(fleet.config.workspace.is_dir):
        raise WorkspaceMissing(str(fleet.config.workspace))
    began = recorded.recorded_at.timestamp()
    spec = None if started.pattern == "orchestrator" else _pattern_of(run_id, started)
    async with run_lease(fleet, run_id):
        # It may have ended while we took the lease.
        await read_waiting(fleet.store, check, who=f"run {run_id}")
        if spec is None:
            return await _resume_orchestrator(fleet, run_id, started, began)
        journal, conductor_exists = await read_waiting(
            fleet.store, partial(_journal, fleet.store, run_id), who=f"run {run_id}"
        )
        conductor = _Conductor(fleet, run_id, spec.name, journal)
        if not conductor_exists:  # killed between RunStarted and the conductor's creation
            await _record_conductor(conductor, spec, started)
        logger.info(
            "resuming run %s (%s): %d agents to take up, %d board moves recorded",
            run_id, spec.name, len(journal.children), journal.task_events,
        )  # fmt: skip
        return await conduct(conductor, spec, started.task, started.model, began)


async def _journal(store: EventStore, run_id: str) -> tuple[RunJournal, bool]:
    """What the log holds of a pattern run: its conductor's agents, its board moves."""
    me = conductor_id(run_id)
    created = [e async for e in store.iter_all(where=_created_in(run_id))]
    children = [
        (e.data.agent_id, e.data.name)
        for e in created
        if isinstance(e.data, AgentCreated) and e.meta.parent_id == me
    ]
    exists = any(isinstance(e.data, AgentCreated) and e.data.agent_id == me for e in created)
    task_events = await store.stream_version(f"task-{run_id}")
    return RunJournal(children, task_events), exists


async def _record_conductor(conductor: _Conductor, spec: PatternSpec, started: RunStarted) -> None:
    await conductor.record(
        AgentCreated(
            agent_id=conductor.agent_id,
            name="orchestrator",
            role="orchestrator",
            model=f"pattern:{spec.name}",
            workspace=str(conductor.fleet.config.workspace),
            tools=list(ORCHESTRATOR_TOOLS),
            task=started.task,
        )
    )
    await conductor.record(
        AgentCommanded(agent_id=conductor.agent_id, prompt=started.task, by="user")
    )


async def _resume_orchestrator(
    fleet: Fleet, run_id: str, started: RunStarted, began: float
) -> RunResult:
    """Resume the run's agents and its orchestrator (create it if the run had not), waiting
    out an unavailable log as `run_orchestrator` does (`_patterns.py`, note 8)."""
    who = f"run {run_id}"
    created = await read_waiting(
        fleet.store, partial(_agents_created, fleet.store, run_id), who=who
    )
    orchestrators = [
        e.data.agent_id
        for e in created
        if isinstance(e.data, AgentCreated)
        and e.data.role == "orchestrator"
        and e.data.parent_id is None
    ]
    if orchestrators:
        orchestrator_id = orchestrators[0]
        # Each is tried again as it is: it looks at the log before it writes.
        unfinished = partial(fleet.resume_unfinished, run_id=run_id)
        resumed = await read_waiting(fleet.store, unfinished, who=who)
        logger.info("resuming run %s: agents %s", run_id, resumed)
        adopt = partial(fleet.adopt_agent, orchestrator_id, started.task, by="user")
        await read_waiting(fleet.store, adopt, who=who)  # commanded if it never was
    else:  # killed before the orchestrator agent was created
        model = started.model or fleet.models.resolve(fleet.config.default_model).id
        orchestrator_id = await _create_orchestrator(fleet, run_id, started.task, model)
    return await finish_orchestrator(fleet, run_id, orchestrator_id, began)


async def _agents_created(store: EventStore, run_id: str) -> list[RecordedEvent]:
    return [e async for e in store.iter_all(where=_created_in(run_id))]


async def abandon_run(fleet: Fleet, run_id: str, *, by: str = "user") -> None:
    """Give up on an interrupted run: its live agents are deleted and it ends failed.

    Raises `RunNotResumable` (unknown or ended), `AgentDrivenElsewhere` when
    a live process conducts it or drives one of its agents.
    """
    recorded = await _started(fleet.store, run_id, "abandoned")
    async with run_lease(fleet, run_id):
        await _started(fleet.store, run_id, "abandoned")
        error = f"abandoned by {by} (its process had stopped)"
        me = conductor_id(run_id)
        started = recorded.data
        assert isinstance(started, RunStarted)
        if started.pattern == "orchestrator":
            await fleet.delete_all_agents(run_id=run_id, by=by)
        else:  # the conductor is not deleted: it ends failed, below
            await fleet.delete_all_agents(run_id=run_id, by=by, parent_id=me)
        meta = Meta(run_id=run_id, agent_id=me)
        if await fleet.store.stream_version(f"task-{run_id}"):
            await fleet.store.append(
                f"task-{run_id}",
                [NewEvent(TaskMoved(task_id=run_id, column="FAILED", reason=error), meta)],
            )
        with contextlib.suppress(AgentNotFound):  # an orchestrator run has no conductor
            status = (await fleet.get_agent_status(me))["status"]
            if status not in ("working", "waiting", "created"):
                raise AgentNotFound(me)
            await fleet.store.append(
                f"agent-{me}", [NewEvent(AgentFailed(agent_id=me, error=error), meta)]
            )
        duration = (time.time() - recorded.recorded_at.timestamp()) * 1000
        run_meta = Meta(run_id=run_id)
        await fleet.store.append(
            f"run-{run_id}",
            [NewEvent(RunFailed(run_id=run_id, error=error, duration_ms=duration), run_meta)],
        )


def _created_in(run_id: str) -> EventFilter:
    return EventFilter.of(run_id=run_id, types=["AgentCreated"])
