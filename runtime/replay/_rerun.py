"""Re-executing a recorded run: its model answers from the log, its tools and hooks anew.

    result = await rerun(store, runner, "run-1a2b")
    for d in result.divergences:
        print(d.agent, d.step, d.kind, d.expected, "->", d.actual)

A re-execution is a new run (`RunStarted.replay_of` names the recording) on a
fresh copy of the recorded workspace: a `git clone` checked out at the
recorded `git_head` (or a plain copy of the folder when the run was not in a
git repository). Its model is the `ReplayModel`, which answers every request
with the recording's answer, behind the same Messages-API path and SDK as the
simulator and Anthropic; tools run for real in the copy; hooks are today's.
A pattern run goes through `run_pattern` again (its conductor is code), an
orchestrator run through `run_orchestrator`. Since the answers are the
recording's, whatever differs comes from tools and hooks: each difference is a
`ReplayDiverged` event on the new run's stream and a `Divergence` in the result.
Nothing is paid: no request leaves the machine.

Notes (do not fix without reading this):
1. `run_pattern` and `run_orchestrator` write RunStarted themselves and take no
   `replay_of`; the fleet of a re-execution writes through `_ReplayLog`, which
   adds `replay_of` to that one event and passes everything else to the store
   untouched. (A `replay_of=` argument on those two functions would retire it.)
2. The clone's `origin` remote is removed: a tool that pushes must not reach
   the repository the run was recorded in.
3. Divergences are appended after the run has ended (RunCompleted or
   RunFailed), in one append on the run's stream, with `source="replay"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from events import (
    ANY,
    AgentCreated,
    EventFilter,
    ExpectedVersion,
    Meta,
    NewEvent,
    RecordedEvent,
    ReplayError,
    RunCompleted,
    RunFailed,
    RunStarted,
    SQLiteEventStore,
)
from hooks import HookDispatcher, HooksConfig, load_project_settings
from projections import ProjectionRunner
from projections._timeline import run_events

from .._client import ModelClient
from .._fleet import Fleet, FleetConfig
from .._models import ModelTable
from .._pattern_spec import BUILTIN_PATTERNS, PatternSpec
from .._patterns import RunResult, new_run_id, run_orchestrator, run_pattern
from ._answers import ReplayModel, ReplayScript
from ._diff import (
    REPLAY_MASKS,
    REPLAY_UNCHECKED_TOOLS,
    Divergence,
    compare_runs,
    trace_agents,
)

__all__ = [
    "ReplayImpossible",
    "RerunOptions",
    "RerunResult",
    "WorkspaceUnavailable",
    "copy_workspace",
    "rerun",
]

logger = logging.getLogger(__name__)


class WorkspaceUnavailable(ReplayError):
    """The recorded workspace cannot be copied for a re-execution."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot copy the workspace {path}: {reason}")


class ReplayImpossible(ReplayError):
    """This run cannot be re-executed (it has not ended, or its pattern is unknown here)."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"cannot re-execute run {run_id!r}: {reason}")


@dataclass(frozen=True, slots=True)
class RerunOptions:
    """How to re-execute a run; every field has a default.

    Args:
        workspace: the folder for the copy (must not exist, or be empty);
            default `<log folder>/workspaces/replay-<new run id>`.
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


# -- the workspace copy ----------------------------------------------------------------


async def _git(cwd: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def _checked(cwd: Path, *args: str) -> str:
    code, out = await _git(cwd, *args)
    if code != 0:
        raise WorkspaceUnavailable(str(cwd), f"git {' '.join(args)} failed: {out}")
    return out


def _empty_or_absent(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


async def copy_workspace(source: Path, dest: Path, git_head: str | None) -> Path:
    """A fresh copy of `source` at `dest`: a clone at `git_head`, else a copy of the folder.

    Returns the copy's absolute path. Raises `WorkspaceUnavailable` when
    `source` is missing, is not a git repository although a head was
    recorded, lacks that commit, or `dest` is not empty.
    """
    source, dest = await asyncio.to_thread(source.resolve), await asyncio.to_thread(dest.resolve)
    if not await asyncio.to_thread(source.is_dir):
        raise WorkspaceUnavailable(
            str(source), "it does not exist (give the repository to copy with --source)"
        )
    if not await asyncio.to_thread(_empty_or_absent, dest):
        raise WorkspaceUnavailable(str(dest), "the destination exists and is not empty")
    if git_head is None:
        await asyncio.to_thread(shutil.copytree, source, dest, symlinks=True, dirs_exist_ok=True)
        return await asyncio.to_thread(dest.resolve)
    if not await asyncio.to_thread((source / ".git").exists):
        raise WorkspaceUnavailable(
            str(source), f"the run was recorded at commit {git_head[:12]} but it is not a git "
            "repository now",
        )  # fmt: skip
    code, _ = await _git(source, "cat-file", "-e", f"{git_head}^{{commit}}")
    if code != 0:
        raise WorkspaceUnavailable(str(source), f"it has no commit {git_head[:12]}")
    await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
    await _checked(dest.parent, "clone", "--quiet", "--no-checkout", str(source), str(dest))
    code, branch = await _git(source, "symbolic-ref", "--quiet", "--short", "HEAD")
    await _checked(dest, "checkout", "--quiet", "-B", branch if code == 0 else "main", git_head)
    await _checked(dest, "remote", "remove", "origin")  # module note 2
    for key in ("user.name", "user.email"):
        code, value = await _git(source, "config", key)
        if code == 0 and value:
            await _checked(dest, "config", key, value)
    return await asyncio.to_thread(dest.resolve)


# -- the log as a re-execution writes it ---------------------------------------------


class _ReplayLog:
    """The store, with `replay_of` added to the new run's RunStarted (module note 1)."""

    def __init__(self, store: SQLiteEventStore, run_id: str, replay_of: str) -> None:
        self._store = store
        self._stream = f"run-{run_id}"
        self._replay_of = replay_of

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> list[RecordedEvent]:
        if stream_id == self._stream:
            events = [
                NewEvent(e.data.model_copy(update={"replay_of": self._replay_of}), e.meta)
                if isinstance(e.data, RunStarted)
                else e
                for e in events
            ]
        return await self._store.append(stream_id, events, expected_version=expected_version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


# -- the re-execution ---------------------------------------------------------------------


class _Pairing:
    """Pairs the new run's agents with the recording's (name and role, in creation order)."""

    def __init__(self, store: SQLiteEventStore, script: ReplayScript, run_id: str, after: int):
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


def _recorded_pattern(run_id: str, started: RunStarted, given: PatternSpec | None) -> PatternSpec:
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
    store: SQLiteEventStore,
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
    recorded = await run_events(store, run_id)
    run_stream = f"run-{run_id}"
    started = next(e.data for e in recorded if e.stream_id == run_stream)
    assert isinstance(started, RunStarted)
    ending = [e.data for e in recorded if isinstance(e.data, RunCompleted | RunFailed)]
    if not ending:
        raise ReplayImpossible(run_id, "it has not ended yet")
    spec = None if started.pattern == "orchestrator" else _recorded_pattern(
        run_id, started, options.pattern
    )  # fmt: skip
    new_id = new_run_id()
    source = options.source or (Path(started.workspace) if started.workspace else None)
    if source is None:
        raise ReplayImpossible(run_id, "no workspace was recorded: give one with --source")
    folder = f"replay-{new_id.removeprefix('run-')}"
    dest = options.workspace or store.path.parent / "workspaces" / folder
    git_head = started.config.get("git_head")
    workspace = await copy_workspace(source, dest, git_head)
    if options.prepare is not None:
        await options.prepare(workspace)
    script = ReplayScript.from_events(recorded)
    script.ids[run_id] = new_id
    pairing = _Pairing(store, script, new_id, await store.head())
    env = _models_file()
    models = ModelTable.default()
    if env:
        models = models.with_file(env["FLEET_MODELS_FILE"])
    began = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        model = await stack.enter_async_context(
            ReplayModel(script, refresh=pairing.refresh, models=models)
        )
        client = await stack.enter_async_context(
            ModelClient.from_env(simulator_base_url=model.base_url, env=env, max_retries=0)
        )
        hooks = options.hooks
        if not isinstance(hooks, HookDispatcher):
            config = hooks if hooks is not None else load_project_settings(source)
            hooks = await stack.enter_async_context(HookDispatcher(config, project_dir=workspace))
        fleet = await stack.enter_async_context(
            Fleet(
                store=cast(SQLiteEventStore, _ReplayLog(store, new_id, run_id)),
                runner=runner,
                client=client,
                hooks=hooks,
                config=FleetConfig(workspace=workspace, default_model=started.model or "haiku"),
            )
        )
        task, model_name = started.task, started.model
        result: RunResult
        if spec is None:
            result = await run_orchestrator(fleet, task, model=model_name, run_id=new_id)
        else:
            result = await run_pattern(fleet, spec, task, model=model_name, run_id=new_id)
    duration = (time.perf_counter() - began) * 1000
    replayed = await run_events(store, new_id)
    divergences = compare_runs(
        trace_agents(recorded),
        trace_agents(replayed),
        ids=script.ids,
        misses=script.misses,
        recorded_roots=_roots(started.workspace),
        replayed_roots=_roots(str(workspace)),
        masks=() if options.exact else REPLAY_MASKS,
        unchecked_tools=options.unchecked_tools,
    )
    if divergences:
        await store.append(
            f"run-{new_id}",
            [
                NewEvent(
                    d.to_event(new_id, run_id),
                    Meta(run_id=new_id, agent_id=d.agent_id or None, source="replay"),
                )
                for d in divergences
            ],
        )
    logger.debug("re-execution %s of %s: %d divergences", new_id, run_id, len(divergences))
    end = ending[-1]
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
        recorded_duration_ms=end.duration_ms,
        responses_served=script.served,
        divergences=tuple(divergences),
    )


def _roots(path: str | None) -> list[str]:
    if not path:
        return []
    return [path, os.path.realpath(path)]
