"""Re-executing a recorded run: its model answers from the log, its tools and hooks anew.

    result = await rerun(store, runner, "run-1a2b")
    for d in result.divergences:
        print(d.agent, d.step, d.kind, d.expected, "->", d.actual)

A re-execution is a new run (`RunStarted.replay_of` names the recording) on a
fresh copy of the recorded workspace: a `git clone` checked out at the
recorded `git_head` (or a plain copy of the folder when the run was not in a
git repository, see `_copy.py`). Its model is the simulator's server with a
`ReplayResponder`, which answers every request with the recording's answer,
behind the same Messages-API path and SDK as the simulator and Anthropic;
tools run for real in the copy; hooks are today's.
A pattern run goes through `run_pattern` again (its conductor is code), an
orchestrator run through `run_orchestrator`. Since the answers are the
recording's, whatever differs comes from tools and hooks: each difference is a
`ReplayDiverged` event on the new run's stream and a `Divergence` in the result.
Nothing is paid: no request leaves the machine.

Notes (do not fix without reading this):
1. Divergences are appended after the run has ended (RunCompleted or
   RunFailed), in one append on the run's stream, with `source="replay"`.
2. The default folder of the copy is beside the log when the store has a file
   (`path`, as the SQLite store has), else under the system's temp folder:
   the store is known here only through its protocol.
3. History drives the waits, as in durable-execution engines: the n-th
   `wait_for_agents` of an agent returns the recording's n-th wake of that
   agent (ids mapped to the new run's) once the agents it reported finished
   have finished here (`Fleet` note 4). Without that, a scout that finishes
   first under load changes the orchestrator's tool results, and a recorded
   `get_agent_output` could be served while that scout still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events import (
    AgentCreated,
    EventFilter,
    EventStore,
    Meta,
    NewEvent,
    RecordedEvent,
    RunCompleted,
    RunFailed,
    RunStarted,
    ToolCallCompleted,
    read_run,
)
from hooks import HookDispatcher, HooksConfig, load_project_settings
from projections import ProjectionRunner

from .._agent_spec import Engine
from .._client import ModelClient
from .._fleet import Budgets, Fleet, FleetConfig, ScriptedWake
from .._models import ModelTable
from .._pattern_spec import BUILTIN_PATTERNS, PatternSpec
from .._patterns import RunResult, new_run_id, run_orchestrator, run_pattern
from ..simulator import Simulator
from ._answers import ReplayResponder, ReplayScript, translate_ids
from ._copy import copy_workspace
from ._diff import REPLAY_MASKS, REPLAY_UNCHECKED_TOOLS, Divergence, compare_runs, trace_agents
from .errors import ReplayImpossible

__all__ = ["RerunOptions", "RerunResult", "rerun"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RerunOptions:
    """How to re-execute a run; every field has a default.

    Args:
        workspace: the folder for the copy (must not exist, or be empty);
            default `<log folder>/workspaces/replay-<new run id>` (module note 2).
        source: the repository to copy from instead of the recorded workspace
            (e.g. when the run was imported from another machine).
        hooks: the hooks to run: settings, or a dispatcher the caller owns;
            default the project settings of the source folder (today's hooks).
        prepare: awaited with the copy's path before the run starts (e.g. to
            change a file and see what the change does to the run).
        pattern: the pattern of a run whose pattern is not built in.
        exact: compare tool results raw, with nothing masked.
        unchecked_tools: tools whose results are not compared.
    """

    workspace: Path | None = None
    source: Path | None = None
    hooks: HooksConfig | HookDispatcher | None = None
    prepare: Callable[[Path], Awaitable[None]] | None = None
    pattern: PatternSpec | None = None
    exact: bool = False
    unchecked_tools: frozenset[str] = REPLAY_UNCHECKED_TOOLS


@dataclass(frozen=True, slots=True)
class RerunResult:
    """How a re-execution went, beside its recording."""

    run_id: str
    replay_of: str
    status: str  # completed | failed
    error: str | None
    summary: str
    workspace: Path
    source: Path  # what the workspace was copied from
    git_head: str | None  # the commit it was checked out at (None: a copy of the folder as it is)
    duration_ms: float
    recorded_duration_ms: float | None
    responses_served: int
    divergences: tuple[Divergence, ...] = field(default_factory=tuple)

    @property
    def diverged(self) -> bool:
        return bool(self.divergences)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the CLI's `--json`)."""
        return {
            "run_id": self.run_id,
            "replay_of": self.replay_of,
            "status": self.status,
            "error": self.error,
            "summary": self.summary,
            "workspace": str(self.workspace),
            "source": str(self.source),
            "git_head": self.git_head,
            "duration_ms": round(self.duration_ms, 3),
            "recorded_duration_ms": self.recorded_duration_ms,
            "responses_served": self.responses_served,
            "diverged": self.diverged,
            "divergences": [d.to_json() for d in self.divergences],
        }


# -- the re-execution ---------------------------------------------------------------------


class _Pairing:
    """Pairs the new run's agents with the recording's (name and role, in creation order)."""

    def __init__(self, store: EventStore, script: ReplayScript, run_id: str, after: int):
        self.store = store
        self.script = script
        self.run_id = run_id
        self.after = after
        self.pool: dict[tuple[str, str], list[str]] = {}
        for agent in script.agents:
            self.pool.setdefault((agent.name, agent.role), []).append(agent.agent_id)

    async def refresh(self) -> None:
        where = EventFilter.of(run_id=self.run_id, types=["AgentCreated"])
        async for event in self.store.iter_all(after=self.after, where=where):
            self.after = event.position
            data = event.data
            assert isinstance(data, AgentCreated)
            queue = self.pool.get((data.name, data.role))
            if queue:
                self.script.ids[queue.pop(0)] = data.agent_id


class _RecordedWakes:
    """The recording's `wait_for_agents` results, served in order to each waiter (note 3).

    Given to the re-execution's `Fleet` as its `wake_script`.
    """

    def __init__(self, pairing: _Pairing, recorded: Sequence[RecordedEvent]) -> None:
        self.pairing = pairing
        self.wakes: dict[str, list[dict[str, Any]]] = {}
        for event in recorded:
            data = event.data
            if isinstance(data, ToolCallCompleted) and data.name == "wait_for_agents":
                self.wakes.setdefault(data.agent_id, []).append(_wake_of(data))
        self.taken: dict[str, int] = {}

    async def __call__(self, waiter_id: str, agent_ids: list[str]) -> ScriptedWake | None:
        await self.pairing.refresh()
        ids = self.pairing.script.ids
        old = next((o for o, n in ids.items() if n == waiter_id), None)
        if old is None:
            return None  # an agent the recording does not have: wait as a live run does
        n = self.taken.get(old, 0)
        self.taken[old] = n + 1
        wakes = self.wakes.get(old, [])
        wake = wakes[n] if n < len(wakes) else {}
        # translate_ids maps values only: the statuses' keys are ids too
        statuses = {translate_ids(k, ids): s for k, s in wake.get("statuses", {}).items()}
        if not wake or set(statuses) != set(agent_ids):
            return None  # not the recorded call (the conversation diverged): a live wait
        return ScriptedWake(wake["woke_because"], translate_ids(wake["changed"], ids), statuses)


def _wake_of(data: ToolCallCompleted) -> dict[str, Any]:
    """A recorded wake as the tool returned it ({} when it is not one: an error, say)."""
    try:
        wake = json.loads(data.result)
    except ValueError:
        return {}
    if data.is_error or not isinstance(wake, dict):
        return {}
    if not {"woke_because", "changed", "statuses"} <= set(wake):
        return {}
    return wake


def _recorded_pattern(
    run_id: str, started: RunStarted, given: PatternSpec | None
) -> PatternSpec | None:
    """The pattern the run followed; None for an orchestrator run (it has no pattern)."""
    if started.pattern == "orchestrator":
        return None
    name = started.pattern or ""
    if given is not None:
        if given.name != name:
            raise ReplayImpossible(
                run_id, f"it ran pattern {name!r}, and the pattern given is {given.name!r}"
            )
        return given
    spec = BUILTIN_PATTERNS.get(name)
    if spec is None:
        raise ReplayImpossible(
            run_id, f"its pattern {name!r} is not built in: give its TOML file (--pattern FILE)"
        )
    return spec


def _models_file() -> dict[str, str]:
    file = os.environ.get("FLEET_MODELS_FILE")
    return {"FLEET_MODELS_FILE": file} if file else {}


async def rerun(
    store: EventStore,
    runner: ProjectionRunner,
    run_id: str,
    options: RerunOptions | None = None,
) -> RerunResult:
    """Re-execute run `run_id` (see the module docstring); returns when the new run has ended.

    Raises `RunNotFound`, `ReplayImpossible` (the run has not ended, or its
    pattern is unknown) and `WorkspaceUnavailable` before anything is
    appended. A re-execution whose run fails still returns (status "failed").
    """
    options = options or RerunOptions()
    recorded = await read_run(store, run_id)
    started, ended = _recorded_run(run_id, recorded)
    spec = _recorded_pattern(run_id, started, options.pattern)
    source = options.source or (Path(started.workspace) if started.workspace else None)
    if source is None:
        raise ReplayImpossible(run_id, "no workspace was recorded: give one with --source")
    new_id = new_run_id()
    git_head = started.config.get("git_head")
    workspace = await copy_workspace(
        source, options.workspace or _default_workspace(store, f"replay-{new_id}"), git_head
    )
    if options.prepare is not None:
        await options.prepare(workspace)
    script = ReplayScript.from_events(recorded)
    script.ids[run_id] = new_id
    pairing = _Pairing(store, script, new_id, await store.head())
    began = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        fleet = await _replay_fleet(
            stack,
            store,
            runner,
            options,
            pairing,
            source,
            workspace,
            started.model or "haiku",
            engine="claude-code" if started.config.get("engine") == "claude-code" else "fleet",
            wakes=_RecordedWakes(pairing, recorded),
            budgets=_recorded_budgets(started),
        )
        result = await _run_again(fleet, started, spec, new_id, replay_of=run_id)
    duration = (time.perf_counter() - began) * 1000
    divergences = compare_runs(
        trace_agents(recorded),
        trace_agents(await read_run(store, new_id)),
        ids=script.ids,
        misses=script.misses,
        recorded_roots=_roots(started.workspace),
        replayed_roots=_roots(str(workspace)),
        masks=() if options.exact else REPLAY_MASKS,
        unchecked_tools=options.unchecked_tools,
    )
    await _record_divergences(store, new_id, run_id, divergences)
    return RerunResult(
        run_id=new_id,
        replay_of=run_id,
        status=result.status,
        error=result.error,
        summary=result.summary,
        workspace=workspace,
        source=await asyncio.to_thread(source.resolve),
        git_head=git_head,
        duration_ms=duration,
        recorded_duration_ms=ended.duration_ms,
        responses_served=script.served,
        divergences=tuple(divergences),
    )


def _recorded_run(
    run_id: str, recorded: Sequence[RecordedEvent]
) -> tuple[RunStarted, RunCompleted | RunFailed]:
    """The recording's RunStarted and how it ended. Raises `ReplayImpossible` if it has not."""
    run_stream = f"run-{run_id}"
    started = next(e.data for e in recorded if e.stream_id == run_stream)
    assert isinstance(started, RunStarted)
    ending = [e.data for e in recorded if isinstance(e.data, RunCompleted | RunFailed)]
    if not ending:
        raise ReplayImpossible(run_id, "it has not ended yet")
    return started, ending[-1]


def _default_workspace(store: EventStore, folder: str) -> Path:
    """Where the copy goes when no folder is given (module note 2)."""
    log = getattr(store, "path", None)
    if isinstance(log, str | Path):
        return Path(log).parent / "workspaces" / folder
    return Path(tempfile.gettempdir()) / "fleet" / "workspaces" / folder


def _recorded_budgets(started: RunStarted) -> Budgets:
    """The agent and run budgets the run was recorded under (RunStarted.config), so a run a
    budget stopped stops there again. The log's own (`fleet_*`) are left out: they count
    the whole log, the recording too."""
    recorded = started.config.get("budgets")
    if not isinstance(recorded, dict):
        return Budgets()
    known = {f.name for f in dataclasses.fields(Budgets)}
    kept: dict[str, Any] = {
        k: v for k, v in recorded.items()
        if k in known and k.startswith(("agent_", "run_")) and isinstance(v, int | float)
    }  # fmt: skip
    return Budgets(**kept)


async def _replay_fleet(
    stack: contextlib.AsyncExitStack,
    store: EventStore,
    runner: ProjectionRunner,
    options: RerunOptions,
    pairing: _Pairing,
    source: Path,
    workspace: Path,
    default_model: str,
    engine: Engine = "fleet",
    wakes: _RecordedWakes | None = None,
    budgets: Budgets | None = None,
) -> Fleet:
    """A fleet whose model is the recording (a simulator with a `ReplayResponder`).

    A claude-code agent's Claude Code is pointed at the same server, as at the simulator.
    """
    env = _models_file()
    models = ModelTable.default()
    if env:
        models = models.with_file(env["FLEET_MODELS_FILE"])
    responder = ReplayResponder(pairing.script, refresh=pairing.refresh)
    model = await stack.enter_async_context(
        Simulator(responder=responder, models=models, chunk_chars=4096)
    )
    client = await stack.enter_async_context(
        ModelClient.from_env(simulator_base_url=model.base_url, env=env, max_retries=0)
    )
    hooks = options.hooks
    if not isinstance(hooks, HookDispatcher):
        config = hooks if hooks is not None else load_project_settings(source)
        hooks = await stack.enter_async_context(HookDispatcher(config, project_dir=workspace))
    return await stack.enter_async_context(
        Fleet(
            store=store,
            runner=runner,
            client=client,
            hooks=hooks,
            config=FleetConfig(
                workspace=workspace,
                default_model=default_model,
                engine=engine,
                budgets=budgets or Budgets(),
            ),
            wake_script=wakes,
        )
    )


async def _run_again(
    fleet: Fleet, started: RunStarted, spec: PatternSpec | None, new_id: str, *, replay_of: str
) -> RunResult:
    task, model = started.task, started.model
    if spec is None:
        return await run_orchestrator(fleet, task, model=model, run_id=new_id, replay_of=replay_of)
    return await run_pattern(fleet, spec, task, model=model, run_id=new_id, replay_of=replay_of)


async def _record_divergences(
    store: EventStore, new_id: str, replay_of: str, divergences: Sequence[Divergence]
) -> None:
    """One append on the new run's stream, after it has ended (module note 1)."""
    if divergences:
        await store.append(
            f"run-{new_id}",
            [
                NewEvent(
                    d.to_event(new_id, replay_of),
                    Meta(run_id=new_id, agent_id=d.agent_id or None, source="replay"),
                )
                for d in divergences
            ],
        )
    logger.debug("re-execution %s of %s: %d divergences", new_id, replay_of, len(divergences))


def _roots(path: str | None) -> list[str]:
    if not path:
        return []
    return [path, os.path.realpath(path)]
