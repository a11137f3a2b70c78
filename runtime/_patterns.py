"""Running a run: a pattern's steps, or the orchestrator agent, from RunStarted to RunCompleted.

A pattern run is conducted by an orchestrator that is code, not a model: it is
recorded as an agent of role `orchestrator` (model `pattern:<name>`) so the
graph shows it creating every agent and waiting on them, and it spends no
tokens at all, which is the seed's "the orchestrator sleeps" taken literally.
`run_orchestrator` instead gives the task to an orchestrator *agent* whose
tools are CRUD for agents plus `wait_for_agents`.

Notes (do not fix without reading this):
1. Agents are deleted when their phase is done, as the seed says; their events
   stay in the log, so every projection still shows what they did.
2. A step's declared `outputs` must exist when its agents finish: "every agent
   must produce concrete output" is a quality gate, not a hope.
3. The conductor is deterministic given its agents' results, so its progress
   is the log: a resumed run (`_run_resume.py`) runs the same code again with
   a `RunJournal` of what the log holds, and every agent the run created
   before is taken up (its result read, or the agent resumed) instead of
   created anew, and every board move recorded before is not written again.
   The process conducting a run holds the lease `run-<id>` (`_leases.py`).
4. A stop is not an end. Only a run that ends (RunCompleted or RunFailed)
   deletes the agents it still has; a run stopped before that (its task
   cancelled by Ctrl-C or by its fleet closing, or an error that is not the
   run's) leaves them as the log shows them, working or not, so that
   `fleet resume` takes them up where they were (a deleted agent cannot be
   resumed: the resumed run would fail on it).
5. The conductor's appends (the board's moves, its own events, RunCompleted)
   wait out an unavailable log (`_outage.py`) rather than fail the run, as
   its agents do; it is the only writer of its streams while it holds the
   run's lease, so an append that committed though it raised is found at the
   end of its stream and not written twice. So do `finish_orchestrator`'s.
6. Its reads of the log (its agents' outputs, the run's damage, its waits'
   reads, `_waits.py`) and its deletes of its agents (tried again: a delete
   whose AgentDeleted landed finds the agent gone) wait out an unavailable
   log too (`read_waiting`), and so does the creation of a step's
   agent: a create that raised for an outage may have appended AgentCreated
   (then its agent, found as the conductor's next child in the log, is taken
   up as a resumed run takes it up) or not (then the agent is created again).
7. The run's lease can lapse while the conductor waits out an outage (renewal
   fails too), and a `fleet resume` may take the run meanwhile. So after each
   outage wait the conductor renews the lease before it writes (`run_held`),
   and a lease that renewal finds taken stops the conductor (`run_lease`): it
   raises `AgentDrivenElsewhere` and writes nothing more, its agents left for
   the new conductor (note 4).
8. An orchestrator-agent run (`run_orchestrator`) waits out an unavailable log
   the same way: its RunStarted and RunCompleted/RunFailed, its reads, its
   deletes of the run's agents at its end, and the creation of its orchestrator
   agent (one whose AgentCreated landed is taken
   up, as note 6 takes up a step's agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    EventFilter,
    EventModel,
    EventStore,
    LeaseHeld,
    Meta,
    NewEvent,
    RecordedEvent,
    RunCompleted,
    RunFailed,
    RunStarted,
    TaskCreated,
    TaskMoved,
)
from events.errors import FleetError

from ._agent_spec import TRANSCRIPTS
from ._claude_code import require_claude_code
from ._fleet import TERMINAL, Fleet
from ._orchestrator_tools import ORCHESTRATOR_TOOLS
from ._outage import append_waiting, effect_waiting, read_waiting
from ._pattern_spec import BUILTIN_PATTERNS, PatternSpec, StepSpec
from ._run_damage import run_damage
from ._transcript import Transcript, transcript_path
from ._workspace import git_root
from .errors import (
    AgentDrivenElsewhere,
    InvalidAgentSpec,
    PatternError,
    RunNotResumable,
    StepFailed,
)

__all__ = [
    "RunJournal",
    "RunResult",
    "check_runnable",
    "conduct",
    "conductor_id",
    "finish_orchestrator",
    "new_run_id",
    "run_lease",
    "run_orchestrator",
    "run_pattern",
    "status_before_deletion",
    "workspace_head",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended."""

    run_id: str
    status: str  # "completed" or "failed", as the runs view says
    summary: str
    error: str | None
    duration_ms: float
    orchestrator_id: str


def new_run_id() -> str:
    """A fresh run id (its stream is `run-<id>`)."""
    return uuid.uuid4().hex[:10]


def conductor_id(run_id: str) -> str:
    """The agent id a pattern run's conductor is recorded as."""
    return f"orchestrator-{run_id}"


@contextlib.asynccontextmanager
async def run_lease(fleet: Fleet, run_id: str) -> AsyncIterator[None]:
    """Hold `run-<id>` while conducting the run, waiting out an unavailable log to take it.
    Raises `AgentDrivenElsewhere` (its conductor) at once when a live process conducts
    it, or when one took it over meanwhile (module note 7): the body is cancelled then."""
    key = f"run-{run_id}"
    acquire = partial(fleet.leases.acquire, key)
    try:  # tried again as it is after an outage: a lease that was taken is already ours
        await read_waiting(fleet.store, acquire, who=f"run {run_id}")
    except LeaseHeld as e:
        raise AgentDrivenElsewhere(conductor_id(run_id), owner=e.owner) from None
    task = asyncio.current_task()
    assert task is not None
    lost = False

    def stop() -> None:
        nonlocal lost
        lost = True
        if asyncio.current_task() is not task:  # else `run_held` raises in the body itself
            task.cancel()

    fleet.conducting(key, stop)
    try:
        yield
    except asyncio.CancelledError:
        if lost and task.uncancel() == 0:  # not also cancelled by Ctrl-C or a closing fleet
            raise AgentDrivenElsewhere(conductor_id(run_id)) from None
        raise
    finally:
        fleet.conducting(key, None)
        await asyncio.shield(fleet.leases.release(key))


async def run_held(fleet: Fleet, run_id: str) -> None:
    """Renew the run's lease now; raise `AgentDrivenElsewhere` (its conductor) if another
    process took it over (module note 7). Raises `StoreError` as renewal does."""
    if not await fleet.leases.confirm(f"run-{run_id}"):
        raise AgentDrivenElsewhere(conductor_id(run_id))


@dataclass(slots=True)
class RunJournal:
    """What the log holds of a run being resumed (module note 3).

    `children`: (agent id, name) of each agent the conductor created, in order;
    `task_events`: how many events the run's board stream holds.
    """

    children: list[tuple[str, str]]
    task_events: int


class _Conductor:
    """The pattern's orchestrator: a recorded agent with no model, and the run's writer.

    It keeps a transcript as an agent does (the run's task as its prompt): its
    steps' agents are its children, and their SubagentStop hooks get its
    path as `transcript_path`, as Claude Code gives the main session's.
    """

    def __init__(
        self, fleet: Fleet, run_id: str, pattern: str, journal: RunJournal | None = None
    ) -> None:
        self.fleet = fleet
        self.run_id = run_id
        self.agent_id = conductor_id(run_id)
        self.pattern = pattern
        self.journal = journal or RunJournal([], 0)
        workspace = fleet.config.workspace
        self.transcript = Transcript(
            transcript_path(Path(workspace) / TRANSCRIPTS, self.agent_id),
            agent_id=self.agent_id,
            cwd=str(workspace),
        )

    async def record(self, data: EventModel) -> None:
        recorded = await self._append(
            f"agent-{self.agent_id}",
            NewEvent(data, Meta(run_id=self.run_id, agent_id=self.agent_id)),  # type: ignore[arg-type]
        )
        await self.transcript.record(recorded)

    async def run_event(self, data: EventModel) -> None:
        await self._append(f"run-{self.run_id}", NewEvent(data, Meta(run_id=self.run_id)))  # type: ignore[arg-type]

    async def task_event(self, data: EventModel) -> None:
        if self.journal.task_events > 0:  # recorded before the run was resumed
            self.journal.task_events -= 1
            return
        await self._append(
            f"task-{self.run_id}",
            NewEvent(data, Meta(run_id=self.run_id, agent_id=self.agent_id)),  # type: ignore[arg-type]
        )

    async def _append(self, stream_id: str, event: NewEvent) -> list[RecordedEvent]:
        """Append one event of the run, waiting out an unavailable log (module note 5)."""
        return await append_waiting(
            self.fleet.store, stream_id, [event], who=f"run {self.run_id}", held=self.held
        )

    async def held(self) -> None:
        """Raise `AgentDrivenElsewhere` if another process took the run over (note 7)."""
        await run_held(self.fleet, self.run_id)

    async def read(self, read: Callable[[], Awaitable[T]]) -> T:
        """`await read()`, waiting out an unavailable log (module note 6)."""
        return await read_waiting(self.fleet.store, read, who=f"run {self.run_id}")

    async def children(self) -> list[str]:
        """The ids of the agents the log shows this conductor created, in order."""
        where = EventFilter.of(types=("AgentCreated",), run_id=self.run_id)
        return [
            e.data.agent_id
            async for e in self.fleet.store.iter_all(where=where)
            if isinstance(e.data, AgentCreated) and e.meta.parent_id == self.agent_id
        ]


class _Outputs(dict[str, str]):
    """`{outputs[step]}` in a prompt: the step's artifacts, comma-separated."""

    def __missing__(self, key: str) -> str:
        return "(nothing yet)"


_APPROVED = re.compile(r"\bCHANGES REQUESTED\b", re.IGNORECASE)


def _approved(summary: str, marker: str) -> bool:
    return marker.lower() in summary.lower() and not _APPROVED.search(summary)


async def _is_git_repo(path: Path) -> bool:
    return await asyncio.to_thread(git_root, path) is not None


async def workspace_head(path: Path) -> str | None:
    """The git commit the workspace is at (recorded in RunStarted so a replay can start there)."""
    return await _git_out(path, "rev-parse", "HEAD")


async def _workspace_tree(path: Path) -> str | None:
    """A commit of the workspace's uncommitted changes to tracked files (`git stash create`:
    the tree and the stash are left as they are), None when it has none: what a run's
    "what changed" is diffed from, so edits made before the run are not counted in it."""
    return await _git_out(path, "stash", "create")


async def _uncommitted(path: Path) -> list[str]:
    """The paths `git status` shows as changed or untracked (not ignored) in the repository
    of `path`, the whole repository's (a step's `git add -A` takes all of them)."""
    # Not stripped: each line's status columns come first, the first line's a space too.
    out = await _git(path, "status", "--porcelain")
    return [line[3:] for line in out.splitlines()] if out else []


async def _git_out(path: Path, *args: str) -> str | None:
    """What `git args` prints in `path`, stripped; None outside a repository, on failure or
    for nothing."""
    if not await _is_git_repo(path):
        return None
    out = await _git(path, *args)
    return (out.strip() or None) if out is not None else None


async def _git(path: Path, *args: str) -> str | None:
    """What `git args` prints in `path`, as it prints it; None on failure."""
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out.decode(errors="replace") if proc.returncode == 0 else None


async def _run_config(fleet: Fleet, extra: dict[str, object] | None = None) -> dict[str, object]:
    config: dict[str, object] = {"git_head": await workspace_head(fleet.config.workspace)}
    tree = await _workspace_tree(fleet.config.workspace)
    if tree is not None:  # uncommitted changes when the run started
        config["git_tree"] = tree
    if fleet.config.engine != "fleet":  # a re-execution runs the agents on the same engine
        config["engine"] = fleet.config.engine
    # The limits in force, so a reader of the log (the dashboard's alerts) knows them.
    budgets = {k: v for k, v in asdict(fleet.config.budgets).items() if v is not None}
    if budgets:
        config["budgets"] = budgets
    return {**config, **(extra or {})}


async def run_pattern(
    fleet: Fleet,
    spec: PatternSpec,
    task: str,
    *,
    model: str | None = None,
    run_id: str | None = None,
    replay_of: str | None = None,
    checked: bool = False,
) -> RunResult:
    """Run `spec` on `task` in the fleet's workspace; returns when the run has ended.

    `replay_of` names the run this one re-executes (it goes into RunStarted).
    Raises `PatternError` before anything is appended when the pattern cannot
    run here (e.g. a step needs git and the workspace is not a git repository),
    and `UnknownModel` for a model name not in the table; `checked` says the
    caller has just asked `check_runnable` the same (its git commands are not
    run twice). A step that fails ends the run with RunFailed and a clear
    reason; it does not raise.
    """
    check_task(task)
    if not checked:
        await check_runnable(fleet, spec, model)
    run_id = run_id or new_run_id()
    conductor = _Conductor(fleet, run_id, spec.name)
    started = time.time()
    async with run_lease(fleet, run_id):
        await _start_run(conductor, spec, task, model, replay_of)
        return await conduct(conductor, spec, task, model, started)


async def conduct(
    conductor: _Conductor, spec: PatternSpec, task: str, model: str | None, started: float
) -> RunResult:
    """The run's steps, from the board's first card to RunCompleted or RunFailed.

    `started` is when the run started (seconds since the epoch, the run's
    duration counts from it). A resumed run comes here with its journal.
    """
    fleet, run_id = conductor.fleet, conductor.run_id
    board = spec.board or any(s.column for s in spec.steps)
    if board:
        await conductor.task_event(TaskCreated(task_id=run_id, title=task, column="PLAN"))
    runner = _PatternExecution(fleet, spec, task, model, conductor, board)
    error: str | None = None
    try:
        summary = await runner.execute()
    except StepFailed as e:
        error = str(e)
    except AgentDrivenElsewhere as e:
        if e.agent_id == conductor.agent_id:
            raise  # another process conducts the run now: not this one's to end (note 7)
        error = f"{type(e).__name__}: {e}"
    except FleetError as e:
        error = f"{type(e).__name__}: {e}"
    # The run ends here, so its agents go (note 1). A run stopped on the way (cancelled:
    # Ctrl-C, its fleet closing) never gets here: it keeps them to be resumed (note 4).
    with contextlib.suppress(FleetError):
        await conductor.read(
            partial(
                fleet.delete_all_agents,
                run_id=run_id,
                by=conductor.agent_id,
                parent_id=conductor.agent_id,
            )
        )
    if error is not None:
        return await _finish_failed(conductor, board, started, error)
    duration = (time.time() - started) * 1000
    if board:
        await conductor.task_event(
            TaskMoved(task_id=run_id, column="DONE", reason="all steps done")
        )
    await conductor.record(AgentCompleted(agent_id=conductor.agent_id, summary=summary))
    await conductor.run_event(RunCompleted(run_id=run_id, summary=summary, duration_ms=duration))
    return RunResult(run_id, "completed", summary, None, duration, conductor.agent_id)


def check_task(task: str) -> None:
    """Raise `InvalidAgentSpec` for a run's task with no text (blank): nothing is started."""
    if not task.strip():
        raise InvalidAgentSpec("task", "must not be empty")


async def check_runnable(fleet: Fleet, spec: PatternSpec | None, model: str | None) -> None:
    """Raise `PatternError` or `UnknownModel` if the pattern (None: the orchestrator) cannot
    run in this fleet with `model`. `run_pattern` asks first; a caller that shows a run as
    it goes asks before it shows anything."""
    fleet.models.resolve(model or fleet.config.default_model)
    if spec is None:
        return
    workspace = fleet.config.workspace
    git_step = next((step for step in spec.steps if step.requires_git), None)
    if git_step is not None:  # the workspace is looked at once, for the first such step
        if not await _is_git_repo(workspace):
            raise PatternError(
                f"step {git_step.id!r} of {spec.name} needs a git repository, "
                f"and {workspace} is not one"
            )
        if await workspace_head(workspace) is None:
            # Without a first commit there is nothing to diff a review against.
            raise PatternError(
                f"step {git_step.id!r} of {spec.name} needs a git repository with a commit, "
                f"and {workspace} has none yet: commit its files first"
            )
        # The shipper commits with `git add -A`: a user's work in progress went into the
        # run's commit, under the run's message.
        if changed := await _uncommitted(workspace):
            shown = ", ".join(changed[:3])
            if len(changed) > 3:
                shown += f" and {len(changed) - 3} more"
            raise PatternError(
                f"step {git_step.id!r} of {spec.name} commits in git, and the repository of "
                f"{workspace} has uncommitted changes ({shown}): commit or stash them first, "
                "or the run's commit would take them in"
            )
    for step in spec.steps:
        for name in step.models:
            fleet.models.resolve(name)
    if any((s.engine or fleet.config.engine) == "claude-code" for s in spec.steps):
        require_claude_code()  # EngineUnavailable before the run starts


async def _start_run(
    conductor: _Conductor, spec: PatternSpec, task: str, model: str | None, replay_of: str | None
) -> None:
    """RunStarted, then the conductor as an agent: AgentCreated and AgentCommanded."""
    fleet, workspace = conductor.fleet, str(conductor.fleet.config.workspace)
    await conductor.run_event(
        RunStarted(
            run_id=conductor.run_id,
            task=task,
            pattern=spec.name,
            workspace=workspace,
            model=model or fleet.config.default_model,
            simulated=fleet.client.simulated,
            config=await _run_config(fleet, _pattern_config(spec)),
            replay_of=replay_of,
        )
    )
    await conductor.record(
        AgentCreated(
            agent_id=conductor.agent_id,
            name="orchestrator",
            role="orchestrator",
            model=f"pattern:{spec.name}",
            workspace=workspace,
            tools=list(ORCHESTRATOR_TOOLS),
            task=task,
        )
    )
    await conductor.record(AgentCommanded(agent_id=conductor.agent_id, prompt=task, by="user"))


def _pattern_config(spec: PatternSpec) -> dict[str, object]:
    """A pattern not built in is kept whole in RunStarted, so the run can be resumed."""
    if BUILTIN_PATTERNS.get(spec.name) == spec:
        return {}
    return {"pattern_spec": spec.model_dump(mode="json")}


async def _finish_failed(
    conductor: _Conductor, board: bool, started: float, error: str
) -> RunResult:
    duration = (time.time() - started) * 1000
    if board:
        await conductor.task_event(
            TaskMoved(task_id=conductor.run_id, column="FAILED", reason=error)
        )
    await conductor.record(AgentFailed(agent_id=conductor.agent_id, error=error))
    await conductor.run_event(RunFailed(run_id=conductor.run_id, error=error, duration_ms=duration))
    return RunResult(conductor.run_id, "failed", "", error, duration, conductor.agent_id)


class _PatternExecution:
    def __init__(
        self,
        fleet: Fleet,
        spec: PatternSpec,
        task: str,
        model: str | None,
        conductor: _Conductor,
        board: bool,
    ) -> None:
        self.fleet = fleet
        self.spec = spec
        self.task = task
        self.model = model
        self.conductor = conductor
        self.board = board
        self.outputs = _Outputs()
        self.summaries: dict[str, str] = {}
        self.feedback = ""
        self.taken = 0  # the conductor's children taken up or created so far

    async def execute(self) -> str:
        waves = self.spec.order()
        flat = [step for wave in waves for step in wave]
        retries: dict[str, int] = {}
        index = 0
        while index < len(waves):
            wave = waves[index]
            # Steps of one wave run side by side; sequential here keeps the board legible,
            # while each step's agents (e.g. N scouts) always run in parallel.
            for step in wave:
                summary = await self._run_step(step)
                if step.review is None:
                    continue
                if _approved(summary, step.review.approve_marker):
                    self.feedback = ""
                    continue
                used = retries.get(step.id, 0)
                if used >= step.review.max_retries:
                    raise StepFailed(step.id, f"review rejected {used + 1} times: {summary[:300]}")
                retries[step.id] = used + 1
                self.feedback = f"Review feedback to address:\n{summary}"
                target = self.spec.step(step.review.retry)
                if self.board:
                    await self.conductor.task_event(
                        TaskMoved(
                            task_id=self.conductor.run_id,
                            column=target.column or "BUILD",
                            reason=f"review requested changes (retry {used + 1})",
                        )
                    )
                index = next(i for i, w in enumerate(waves) if target in w)
                break
            else:
                index += 1
        last = flat[-1].id
        return self.summaries.get(last, "")

    async def _run_step(self, step: StepSpec) -> str:
        fleet = self.fleet
        ids: list[str] = []
        for i in range(1, step.count + 1):
            model = step.models[(i - 1) % len(step.models)] if step.models else self.model
            prompt = step.prompt.format(
                task=self.task,
                index=i,
                outputs=self.outputs,
                feedback=self.feedback,
                workspace=fleet.config.workspace,
            ).strip()
            name = step.id if step.count == 1 else f"{step.id}-{i}"
            agent_id = await self._agent(step, name, prompt, model)
            ids.append(agent_id)
            if self.board and step.column and i == 1:
                await self.conductor.task_event(
                    TaskMoved(
                        task_id=self.conductor.run_id,
                        column=step.column,
                        assignee=agent_id,
                        artifacts=sorted(
                            {p for v in self.outputs.values() for p in v.split(", ") if p}
                        ),
                    )
                )
        statuses = await fleet.wait_all(
            ids, waiter_id=self.conductor.agent_id, record=self.conductor.record
        )
        read = self.conductor.read
        outputs = [await read(partial(fleet.get_agent_output, agent_id)) for agent_id in ids]
        for output in outputs:  # taken up by a resumed run after it deleted them
            if output["status"] == "deleted":
                output["status"] = await read(
                    partial(status_before_deletion, fleet.store, output["id"])
                )
        for agent_id in ids:
            if statuses.get(agent_id) not in TERMINAL - {"deleted"}:
                continue
            with contextlib.suppress(FleetError):  # AgentGone: its AgentDeleted had landed
                await read(partial(fleet.delete_agent, agent_id, by=self.conductor.agent_id))
        failed = [o for o in outputs if o["status"] != "completed"]
        if failed:
            reasons = "; ".join(f"{o['id']}: {o['error'] or o['status']}" for o in failed)
            raise StepFailed(step.id, reasons)
        # Completed is not done: an agent's failed edits or failing tests fail the step
        # (a review step's failing tests are its verdict, which the retry loop handles).
        damage = await read(
            partial(run_damage, fleet.store, agent_ids=ids, tests=step.review is None)
        )
        if damage:
            raise StepFailed(step.id, damage.describe())
        artifacts = await self._artifacts(step, outputs)
        self.outputs[step.id] = ", ".join(artifacts)
        self.summaries[step.id] = "\n".join(o["summary"] for o in outputs)
        return self.summaries[step.id]

    async def _agent(self, step: StepSpec, name: str, prompt: str, model: str | None) -> str:
        """A new agent for `step`, or the one the run created here before it was resumed."""
        journal = self.conductor.journal
        if journal.children:
            agent_id, recorded = journal.children.pop(0)
            if recorded != name:
                raise RunNotResumable(
                    self.conductor.run_id,
                    f"its log created {recorded!r} where pattern {self.spec.name!r} "
                    f"creates {name!r}",
                )
            await self._adopt(agent_id, prompt)
            return agent_id

        async def create() -> str:
            status = await self.fleet.create_agent(
                name=name,
                role=step.role,
                task=prompt,
                model=model,
                parent_id=self.conductor.agent_id,
                run_id=self.conductor.run_id,
                max_turns=step.max_turns,
                engine=step.engine,
            )
            self.taken += 1
            return str(status["id"])

        async def created() -> str | None:  # its AgentCreated had committed (module note 6)
            await self.conductor.held()  # module note 7
            children = await self.conductor.children()
            if len(children) <= self.taken:
                return None
            agent_id = children[self.taken]
            logger.info("run %s: %s had been created", self.conductor.run_id, agent_id)
            await self._adopt(agent_id, prompt)
            return agent_id

        return await effect_waiting(
            self.fleet.store, create, created, who=f"run {self.conductor.run_id}"
        )

    async def _adopt(self, agent_id: str, prompt: str) -> None:
        """Take up a child the log shows the conductor created (resumed, or met an outage)."""
        by = self.conductor.agent_id
        await self.conductor.read(partial(self.fleet.adopt_agent, agent_id, prompt, by=by))
        self.taken += 1

    async def _artifacts(self, step: StepSpec, outputs: list[dict[str, object]]) -> list[str]:
        if not step.outputs:
            produced: list[str] = []
            for o in outputs:
                produced.extend(str(p) for p in o["files_produced"])  # type: ignore[attr-defined]
            return sorted(set(produced))
        expected = [
            template.format(
                task=self.task, index=i, outputs=self.outputs, feedback="", workspace=""
            )
            for i in range(1, step.count + 1)
            for template in step.outputs
        ]
        missing = [p for p in expected if not (self.fleet.config.workspace / p).is_file()]
        if missing:
            raise StepFailed(step.id, f"declared outputs were not produced: {', '.join(missing)}")
        return expected


async def run_orchestrator(
    fleet: Fleet,
    task: str,
    *,
    model: str | None = None,
    run_id: str | None = None,
    replay_of: str | None = None,
) -> RunResult:
    """Give `task` to an orchestrator agent (CRUD tools + wait_for_agents); returns when it ends.

    `replay_of` names the run this one re-executes (it goes into RunStarted).
    """
    check_task(task)
    run_id = run_id or new_run_id()
    started = time.time()
    model_name = fleet.models.resolve(model or fleet.config.default_model).id
    async with run_lease(fleet, run_id):
        started_ = RunStarted(
            run_id=run_id,
            task=task,
            pattern="orchestrator",
            workspace=str(fleet.config.workspace),
            model=model_name,
            simulated=fleet.client.simulated,
            config=await _run_config(fleet),
            replay_of=replay_of,
        )
        await append_waiting(
            fleet.store,
            f"run-{run_id}",
            [NewEvent(started_, Meta(run_id=run_id))],
            who=f"run {run_id}",
            held=partial(run_held, fleet, run_id),
        )
        orchestrator_id = await _create_orchestrator(fleet, run_id, task, model_name)
        return await finish_orchestrator(fleet, run_id, orchestrator_id, started)


async def _create_orchestrator(fleet: Fleet, run_id: str, task: str, model: str) -> str:
    """The run's orchestrator agent, created waiting out an unavailable log (module note 8):
    one whose AgentCreated committed before the connection was cut is taken up (given
    its task if it had not been), not created a second time."""
    where = EventFilter.of(types=("AgentCreated",), run_id=run_id)

    async def create() -> str:
        status = await fleet.create_agent(
            name="orchestrator", role="orchestrator", task=task, model=model, run_id=run_id
        )
        return str(status["id"])

    async def created() -> str | None:
        await run_held(fleet, run_id)
        found = [
            e.data.agent_id
            async for e in fleet.store.iter_all(where=where)
            if isinstance(e.data, AgentCreated)
            and e.data.role == "orchestrator"
            and e.data.parent_id is None
        ]
        if not found:
            return None
        logger.info("run %s: %s had been created", run_id, found[0])
        await fleet.adopt_agent(found[0], task, by="user")
        return found[0]

    return await effect_waiting(fleet.store, create, created, who=f"run {run_id}")


async def finish_orchestrator(
    fleet: Fleet, run_id: str, orchestrator_id: str, started: float
) -> RunResult:
    """Wait for the orchestrator agent of run `run_id`, then end the run as it ended."""
    meta = Meta(run_id=run_id)
    await fleet.wait_all([orchestrator_id])
    who = f"run {run_id}"
    held = partial(run_held, fleet, run_id)
    output = await read_waiting(
        fleet.store, partial(fleet.get_agent_output, orchestrator_id), who=who
    )
    with contextlib.suppress(FleetError):  # AgentDrivenElsewhere: its driver deletes it
        delete = partial(fleet.delete_all_agents, run_id=run_id, by="user")
        await read_waiting(fleet.store, delete, who=who)  # tried again: module note 6
    duration = (time.time() - started) * 1000
    summary = output["summary"] or ""
    ok = output["status"] == "completed" and not summary.startswith("FAILED")
    damage = (
        await read_waiting(fleet.store, partial(run_damage, fleet.store, run_id=run_id), who=who)
        if ok
        else None
    )
    ok = ok and not damage
    if ok:
        completed = RunCompleted(run_id=run_id, summary=summary, duration_ms=duration)
        await append_waiting(
            fleet.store, f"run-{run_id}", [NewEvent(completed, meta)], who=who, held=held
        )
        return RunResult(run_id, "completed", summary, None, duration, orchestrator_id)
    if damage:
        error = f"the orchestrator completed, but its agents' work did not: {damage.describe()}"
    else:
        error = output["error"] or summary or f"orchestrator ended {output['status']}"
    failed = RunFailed(run_id=run_id, error=error, duration_ms=duration)
    await append_waiting(fleet.store, f"run-{run_id}", [NewEvent(failed, meta)], who=who, held=held)
    return RunResult(run_id, "failed", summary, error, duration, orchestrator_id)


async def status_before_deletion(store: EventStore, agent_id: str) -> str:
    """How a deleted agent had ended: "completed", "failed", or "deleted" (mid-work)."""
    status = "deleted"
    for event in await store.read_stream(f"agent-{agent_id}"):
        match event.data:
            case AgentCompleted():
                status = "completed"
            case AgentFailed():
                status = "failed"
            case AgentCommanded():
                status = "deleted"
            case AgentDeleted():
                break
    return status
