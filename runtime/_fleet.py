"""The fleet: CRUD for agents, the sleep pattern, and budgets.

`Fleet` is the one interface that creates, commands, reads and deletes agents.
Each working agent is an asyncio task; everything it does is an event, and
everything the fleet answers about agents (status, output, lists) is read
from the projections, never from memory, so it is the same after a restart.

Notes (do not fix without reading this):
1. `wait_for_agents` is the orchestrator's sleep, spent on the log, not on
   tokens; `_waits.py` (a re-execution's scripted wakes too).
2. A budget is checked twice: before a command starts work (refused with
   `BudgetExceeded`, nothing appended) and after every model response of a
   running agent (the agent stops with `AgentFailed(limit=...)`). A run's
   budget (`Budgets.run_*`) counts the run's own events (the runs view), not
   the log's: a log keeps every earlier run, and `fleet run --budget-usd`
   is about this run. The fleet's (`fleet_*`) counts the whole log.
3. One live process drives an agent (`_leases.py`): the fleet holds the lease
   `agent-<id>` from the command that starts the agent until its drive task
   ends, and a delete or command takes it too. One from a process that does
   not hold it while a live one does is refused with `AgentDrivenElsewhere`
   before anything is written; within one process a delete goes through the
   agent's own task (it cancels it, and the agent's log settles its last
   append first, `_agent_log.py` note 1), so it never races the agent.
4. `max_live_agents` is counted and the AgentCreated it allows is appended
   under one lock: counted apart, creates made at once (an orchestrator's
   parallel tool calls, concurrent API requests) all passed it. The limit is
   this process's: two processes creating at once may pass it by one each.
5. Commands and deletes of one agent take turns in a process (a lock per
   agent, from the status check to the append): the lease is this process's
   whichever task holds it, so five DELETEs at once all passed the check and
   appended five AgentDeleted, and commands at once to an agent not loaded
   here each loaded their own copy and two were accepted. Across processes
   the lease keeps them apart, and a delete looks at the status again once
   it holds the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
import weakref
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from events import (
    AgentCommanded,
    AgentDeleted,
    EventStore,
    EventTooLarge,
    LeaseHeld,
    Meta,
    NewEvent,
)
from hooks import HookDispatcher
from projections import ProjectionRunner

from ._agent import Agent
from ._agent_spec import DEFAULT_APPROVAL_TIMEOUT_S, ENGINES, AgentSpec, Engine
from ._chat import Chat
from ._claude_code import ClaudeCodeAgent, new_session_id, require_claude_code
from ._client import ModelClient
from ._leases import DEFAULT_LEASE_TTL_S, Leaseholder
from ._models import ModelTable
from ._orchestrator_tools import orchestrator_toolbox
from ._roles import role_purpose, role_spec
from ._tools import Toolbox
from ._waits import TERMINAL, Recorder, ScriptedWake, Sleeper, WakeResult, WakeScript
from ._worker_tools import WORKER_TOOLS, worker_tool_name, worker_toolbox
from .errors import (
    AgentBusy,
    AgentDrivenElsewhere,
    AgentGone,
    AgentNotFound,
    AgentNotWorking,
    BudgetExceeded,
    FleetLimitReached,
    InvalidAgentSpec,
    WorkspaceMissing,
)

__all__ = [
    "TERMINAL",
    "Budgets",
    "Fleet",
    "FleetConfig",
    "Recorder",
    "ScriptedWake",
    "WakeResult",
    "WakeScript",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DRIVEN = frozenset({"working", "waiting"})  # statuses of an agent that some process should drive
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Budgets:
    """Limits that keep a runaway fleet from spending without bound (None: no limit).

    Each counts its own scope (module note 2): `agent_*` one agent's spending;
    `run_*` what a run's agents spend together (that run only, resumed or not:
    other runs in the log do not count; agents of no run have none);
    `fleet_*` everything the log holds, every run and agent since it began.
    """

    agent_tokens: int | None = None
    agent_usd: float | None = None
    agent_context_percent: float | None = None
    fleet_tokens: int | None = None
    fleet_usd: float | None = None
    run_tokens: int | None = None
    run_usd: float | None = None


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """How the fleet runs: where, on which model by default, and within which limits."""

    workspace: Path
    default_model: str = "haiku"
    max_live_agents: int = 64
    max_turns: int = 40
    budgets: Budgets = field(default_factory=Budgets)
    # Seconds an agent asleep in wait_for_agents waits before a Notification says so.
    notify_wait_after_s: float = 300.0
    # Seconds a tool call on hold waits for a person before it is denied.
    approval_timeout_s: float = DEFAULT_APPROVAL_TIMEOUT_S
    # Seconds a lease on an agent or a run lasts unless renewed (every third of it).
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    # What runs an agent created without naming its engine: "fleet" or "claude-code".
    engine: Engine = "fleet"
    # True: a commanded agent runs in this process at once. False: its command is
    # only appended, and a `Worker` (this process's or another machine's) takes
    # it over (runtime/_worker.py).
    drive_locally: bool = True


class Fleet:
    """Create, command, read and delete agents; run them concurrently."""

    def __init__(
        self,
        *,
        store: EventStore,
        runner: ProjectionRunner,
        client: ModelClient,
        hooks: HookDispatcher,
        config: FleetConfig,
        models: ModelTable | None = None,
        wake_script: WakeScript | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.client = client
        self.hooks = hooks
        self.config = config
        self.models = models or client.models
        self._agents: dict[str, Agent] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: set[asyncio.Task[Any]] = set()
        self._conductors: dict[str, Callable[[], None]] = {}  # run lease -> its stop
        self._closed = False
        # Held from counting the live agents to the AgentCreated that count allows.
        self._creating = asyncio.Lock()
        # One command or delete of an agent at a time in this process (note 5).
        self._changing: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.leases = Leaseholder(store, ttl_s=config.lease_ttl_s, on_lost=self._lease_lost)
        self.sleeper = Sleeper(
            store=store,
            runner=runner,
            hooks=hooks,
            status_of=lambda agent_id: str(self._record(agent_id)["status"]),
            sync=self._sync,
            workspace=config.workspace,
            notify_after_s=config.notify_wait_after_s,
            wake_script=wake_script,  # only a re-execution gives one
        )
        self.chat = Chat(self)
        """Conversations with the orchestrator on this fleet (`fleet chat`, the API)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every running agent task (agents stay in the log and can resume). Idempotent."""
        if self._closed:
            return
        self._closed = True
        runs = list(self._runs)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await self.leases.aclose()  # a new process may take the agents over at once

    # -- leases (module note 3) -------------------------------------------------

    async def _lease(self, agent_id: str) -> None:
        """Hold `agent-<id>`. Raises `AgentDrivenElsewhere` if a live process holds it."""
        try:
            await self.leases.acquire(f"agent-{agent_id}")
        except LeaseHeld as e:
            raise AgentDrivenElsewhere(agent_id, owner=e.owner) from None

    async def _unlease(self, agent_id: str) -> None:
        await self.leases.release(f"agent-{agent_id}")

    def _lease_lost(self, key: str) -> None:
        """Another process took over `key` (this one stalled past its lease): stop driving
        the agent, or stop conducting the run (`conducting`)."""
        stop = self._conductors.pop(key, None)
        if stop is not None:
            stop()
            return
        agent_id = key.removeprefix("agent-")
        task = self._tasks.pop(agent_id, None)
        if task is not None:
            task.cancel()
        self._agents.pop(agent_id, None)  # its state is stale now: load it again if needed

    def conducting(self, key: str, stop: Callable[[], None] | None) -> None:
        """Call `stop` if the run lease `key` is lost (None: no longer conducting it)."""
        if stop is None:
            self._conductors.pop(key, None)
        else:
            self._conductors[key] = stop

    def start_run(self, job: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run `job` (e.g. `run_pattern(...)`) in a task the fleet owns and cancels on close."""
        if self._closed:
            raise AgentGone(name)
        task = asyncio.create_task(job, name=name)
        self._runs.add(task)
        task.add_done_callback(self._run_done)
        return task

    def _run_done(self, task: asyncio.Task[Any]) -> None:
        self._runs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("%s ended with an error", task.get_name(), exc_info=task.exception())

    def is_driving(self, agent_id: str) -> bool:
        """Whether a task of this fleet is running the agent's loop now."""
        task = self._tasks.get(agent_id)
        return task is not None and not task.done()

    # -- reading --------------------------------------------------------------

    async def _sync(self) -> None:
        """Read your writes: wait until the projections have applied the log's head."""
        await self.runner.wait_for(await self.store.head(), timeout=10.0)

    def _record(self, agent_id: str) -> dict[str, Any]:
        record = self.runner.agent(agent_id)
        if record is None:
            raise AgentNotFound(agent_id)
        return record

    async def get_agent_status(self, agent_id: str) -> dict[str, Any]:
        """Status, context use, tokens and cost of one agent. Raises `AgentNotFound`."""
        await self._sync()
        r = self._record(agent_id)
        return {
            "id": r["id"],
            "name": r["name"],
            "role": r["role"],
            "model": r["model"],
            "status": r["status"],
            "context": r["context"],
            "tokens": r["tokens"]["total"],
            "cost_usd": r["cost_usd"],
            "tool_calls": r["tool_calls"]["count"],
            "error": r["error"],
        }

    async def get_agent_output(self, agent_id: str) -> dict[str, Any]:
        """An agent's result: summary, files consumed and produced, artifacts; no transcript."""
        await self._sync()
        r = self._record(agent_id)
        return {
            "id": r["id"],
            "status": r["status"],
            "summary": r["summary"],
            "artifacts": r["artifacts"],
            "files_consumed": r["files_consumed"],
            "files_produced": r["files_produced"],
            "error": r["error"],
        }

    async def list_agents(
        self,
        *,
        status: str | None = None,
        role: str | None = None,
        run_id: str | None = None,
        parent_id: str | None = None,
        include_deleted: bool = True,
    ) -> list[dict[str, Any]]:
        """Agents as the projections see them, filtered; in the order they were created."""
        await self._sync()
        return [
            a
            for a in self.runner.view("agents")["agents"]
            if (status is None or a["status"] == status)
            and (role is None or a["role"] == role)
            and (run_id is None or a["run_id"] == run_id)
            and (parent_id is None or a["parent_id"] == parent_id)
            and (include_deleted or a["status"] != "deleted")
        ]

    # -- creating and commanding ------------------------------------------------

    def _new_id(self, name: str) -> str:
        base = _ID_SAFE.sub("-", name).strip("-.")[:40] or "agent"
        return f"{base}-{uuid.uuid4().hex[:6]}"

    async def create_agent(
        self,
        name: str,
        role: str,
        task: str | None = None,
        *,
        model: str | None = None,
        tools: Iterable[str] | None = None,
        workspace: str | Path | None = None,
        parent_id: str | None = None,
        run_id: str | None = None,
        max_turns: int | None = None,
        instructions: str | None = None,
        engine: Engine | None = None,
    ) -> dict[str, Any]:
        """Create an agent and, given a task, start it working. Returns its status.

        `create_agent("scout-1", "scout", "find ...")`: name, role and task may be
        given in that order; everything after them by keyword. `instructions` are
        added to the role's system prompt (kept in AgentCreated, so a resumed agent
        has them too). `engine` runs it: "fleet" (fleet's own loop, the default
        unless `FleetConfig.engine` says otherwise) or "claude-code" (a Claude
        Code session, `_claude_code.py`).

        Raises `UnknownModel` (before anything is appended), `WorkspaceMissing`,
        `InvalidAgentSpec` (an unknown engine, a blank task), `EngineUnavailable` (no
        claude-agent-sdk), `FleetLimitReached`, `BudgetExceeded`.
        """
        if task is not None and not task.strip():  # refused before AgentCreated, not after
            raise InvalidAgentSpec("prompt", "must not be empty")
        if engine is None:  # the fleet's default; the orchestrator is always fleet's own
            engine = "fleet" if role == "orchestrator" else self.config.engine
        if engine not in ENGINES:
            raise InvalidAgentSpec("engine", f"{engine!r} is not one of {list(ENGINES)}")
        if engine == "claude-code":
            require_claude_code()
            if role == "orchestrator":
                raise InvalidAgentSpec("engine", "the orchestrator runs on fleet's engine only")
        info = self.models.resolve(model or self.config.default_model)
        root = Path(workspace) if workspace is not None else self.config.workspace
        if not root.is_dir():
            raise WorkspaceMissing(str(root))
        # Counted and created under one lock: creates at once all passed the count (note 4).
        async with self._creating:
            await self._sync()
            live = sum(
                1
                for a in self.runner.view("agents")["agents"]
                if a["status"] not in TERMINAL and not a["external"]
            )
            if live >= self.config.max_live_agents:
                raise FleetLimitReached(self.config.max_live_agents)
            self._check_shared_budgets(run_id)
            toolbox = self._toolbox(role, tools)
            agent_id = self._new_id(name)
            if task is not None:
                self._check_task_fits(agent_id, task)
            cls = ClaudeCodeAgent if engine == "claude-code" else Agent
            agent = cls(
                store=self.store,
                client=self.client,
                hooks=self.hooks,
                spec=AgentSpec(
                    agent_id=agent_id,
                    name=name,
                    role=role,
                    model=info.id,
                    workspace=root,
                    parent_id=parent_id,
                    run_id=run_id,
                    system_prompt="\n\n".join(filter(None, [role_purpose(role), instructions])),
                    max_turns=max_turns or self.config.max_turns,
                    max_total_tokens=self.config.budgets.agent_tokens,
                    max_cost_usd=self.config.budgets.agent_usd,
                    approval_timeout_s=self.config.approval_timeout_s,
                    engine=engine,
                    session_id=new_session_id() if engine == "claude-code" else None,
                ),
                toolbox=toolbox,
                tool_extra={"fleet": self},
                budget_check=self._budget_check,
            )
            await self._lease(agent_id)
            try:
                await agent.create(task=None)
            except BaseException:
                await self._unlease(agent_id)
                raise
        try:
            self._agents[agent_id] = agent
            if task:
                await self._start(agent, task, by=parent_id or "user")
        finally:
            await self._unlease(agent_id)  # the drive task holds it while the agent works
        return await self.get_agent_status(agent_id)

    def _check_task_fits(self, agent_id: str, task: str) -> None:
        """Raise `EventTooLarge` before AgentCreated for a task its AgentCommanded could not
        hold: it was refused after, and the agent stayed "created" for ever."""
        size = len(AgentCommanded(agent_id=agent_id, prompt=task).model_dump_json().encode())
        if size > self.store.max_event_bytes:
            raise EventTooLarge(
                f"agent-{agent_id}", "AgentCommanded", size, self.store.max_event_bytes
            )

    def _toolbox(self, role: str, tools: Iterable[str] | None) -> Toolbox:
        if role == "orchestrator":
            return orchestrator_toolbox()
        given = list(tools) if tools is not None else list(role_spec(role).tools)
        names = [worker_tool_name(n) for n in given]  # former names are accepted
        unknown = sorted(set(names) - set(WORKER_TOOLS))
        if unknown:
            raise InvalidAgentSpec("tools", f"unknown tools {unknown}; known: {list(WORKER_TOOLS)}")
        if len(set(names)) != len(names):
            raise InvalidAgentSpec("tools", f"a tool is named twice in {names}")
        # The file tools refuse to write the log's own files, wherever they are.
        return worker_toolbox(names, log_path=_log_file(self.store.location))

    async def command_agent(
        self, agent_id: str, prompt: str, *, by: str = "user"
    ) -> dict[str, Any]:
        """Give an agent a new task (continues its conversation). Returns its status.

        Raises `AgentNotFound`, `AgentGone` (deleted), `AgentBusy` (working),
        `BudgetExceeded` (nothing appended).
        """
        async with self._changing_agent(agent_id):  # note 5
            return await self._command(agent_id, prompt, by=by)

    def _changing_agent(self, agent_id: str) -> asyncio.Lock:
        """The lock a command or a delete of `agent_id` holds from its check to its append."""
        lock = self._changing.get(agent_id)
        if lock is None:
            lock = self._changing[agent_id] = asyncio.Lock()
        return lock

    async def _command(self, agent_id: str, prompt: str, *, by: str) -> dict[str, Any]:
        await self._sync()
        record = self._record(agent_id)
        if record["status"] == "deleted":
            raise AgentGone(agent_id)
        if record["external"]:
            raise AgentBusy(agent_id)  # an external session takes no commands from fleet
        task = self._tasks.get(agent_id)
        if task is not None and not task.done():
            if record["status"] in ("working", "waiting"):
                raise AgentBusy(agent_id)
            await asyncio.wait([task])  # the agent is idle; its task is letting go of its lease
        if not self.config.drive_locally and record["status"] in ("working", "waiting"):
            raise AgentBusy(agent_id)  # a worker somewhere drives it, or is about to
        self._check_budget(record)
        self._check_shared_budgets(record["run_id"])
        await self._lease(agent_id)
        try:
            agent = self._agents.get(agent_id) or await self._load(agent_id)
            await self._start(agent, prompt, by=by)
        finally:
            await self._unlease(agent_id)
        return await self.get_agent_status(agent_id)

    async def interrupt_agent(self, agent_id: str, *, by: str = "user") -> dict[str, Any]:
        """Stop an agent's current turn and keep the agent; returns its status.

        The turn ends with AgentFailed(limit="interrupted"); the agent takes a
        new command as any stopped agent does (its unanswered tool calls are
        closed with error results first). An agent the log shows working but that
        no live process drives (its process died) is stopped the same way.
        Raises `AgentNotFound`, `AgentGone` (deleted), `AgentNotWorking` (nothing
        to interrupt: nothing appended), `AgentDrivenElsewhere` (another live
        process holds its lease).
        """
        await self._sync()
        record = self._record(agent_id)
        if record["status"] == "deleted":
            raise AgentGone(agent_id)
        if record["external"] or record["status"] not in ("working", "waiting"):
            raise AgentNotWorking(agent_id, record["status"])
        await self._lease(agent_id)  # as a delete: a live process driving it keeps it
        try:
            task = self._tasks.pop(agent_id, None)
            live = self._agents.get(agent_id)
            if task is not None and not task.done() and isinstance(live, ClaudeCodeAgent):
                await live.end_session(task)  # Claude Code ends its turn and closes
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            agent = self._agents.get(agent_id) or await self._load(agent_id)
            await agent.interrupt(by=by)
        finally:
            await self._unlease(agent_id)
        return await self.get_agent_status(agent_id)

    async def _load(self, agent_id: str) -> Agent:
        """Rebuild an agent from its stream (after a restart, or one made by another process)."""
        events = await self.store.read_stream(f"agent-{agent_id}", limit=1)
        first = events[0].data if events else None
        cls = ClaudeCodeAgent if getattr(first, "engine", "fleet") == "claude-code" else Agent
        agent = await cls.load(
            self.store,
            agent_id,
            client=self.client,
            hooks=self.hooks,
            toolbox_for=lambda role, tools: self._toolbox(role, tools),
            tool_extra={"fleet": self},
            budget_check=self._budget_check,
            max_total_tokens=self.config.budgets.agent_tokens,
            max_cost_usd=self.config.budgets.agent_usd,
            approval_timeout_s=self.config.approval_timeout_s,
        )
        self._agents[agent_id] = agent
        return agent

    async def _start(self, agent: Agent, prompt: str, *, by: str) -> None:
        if self._closed:
            raise AgentGone(agent.spec.agent_id)
        await agent.command(prompt, by=by)
        if self.config.drive_locally:
            await self._spawn(agent)

    # -- driving for a worker ---------------------------------------------------

    def driving(self) -> set[str]:
        """The ids of the agents this process is driving now."""
        return {agent_id for agent_id, task in self._tasks.items() if not task.done()}

    async def take_over(self, agent_id: str) -> asyncio.Task[None] | None:
        """Drive an agent the log shows as working or waiting, if no live process does.

        For a `Worker`: takes the agent's lease (None when a live process
        holds it, or when, the lease held, the log shows the agent needs no
        driving any more), loads the agent from its stream and drives it from
        where its log ends in a task that holds the lease until the agent is
        idle. Cancel the task to stop driving; the agent stays resumable.
        Raises `AgentGone` after close.
        """
        if self._closed:
            raise AgentGone(agent_id)
        task = self._tasks.get(agent_id)
        if task is not None and not task.done():
            return task
        if self.leases.holds(f"agent-{agent_id}"):
            return None  # this process is creating, commanding or deleting it right now
        try:
            await self._lease(agent_id)
        except AgentDrivenElsewhere:
            return None
        try:
            # Holding the lease, read the log again: another process may have finished it.
            await self._sync()
            record = self.runner.agent(agent_id)
            if record is None or record["external"] or record["status"] not in _DRIVEN:
                return None
            await self._spawn(await self._load(agent_id))
            return self._tasks.get(agent_id)
        finally:
            await self._unlease(agent_id)  # the drive task holds its own

    async def _spawn(self, agent: Agent) -> None:
        """Drive `agent` in a task of its own, which holds its lease until the agent is idle."""
        agent_id = agent.spec.agent_id
        await self._lease(agent_id)
        task = asyncio.create_task(self._drive(agent), name=f"agent-{agent_id}")
        self._tasks[agent_id] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(agent_id, None) if self._tasks.get(agent_id) is t else None
        )

    async def _drive(self, agent: Agent) -> None:
        try:
            outcome = await agent.run_until_idle()
            logger.debug("agent %s is %s", agent.agent_id, outcome.status)
        except asyncio.CancelledError:
            raise
        except Exception:  # the agent has recorded AgentFailed; nothing more to do here
            logger.warning("agent %s ended with an error", agent.agent_id, exc_info=True)
        finally:
            await asyncio.shield(self._unlease(agent.agent_id))

    async def resume_unfinished(self, *, run_id: str | None = None) -> list[str]:
        """Resume every agent the log shows as working or waiting (after a restart).

        Only the agents of `run_id` when given. An agent a live process drives
        (it holds the agent's lease) is left to it; one whose process has ended
        is taken over. A pattern's conductor is not an agent to resume: its run
        is (`resume_run`). Returns the resumed ids.
        """
        await self._sync()
        resumed = []
        for record in self.runner.view("agents")["agents"]:
            if record["status"] not in ("working", "waiting") or record["external"]:
                continue
            if record["model"].startswith("pattern:"):
                continue
            if run_id is not None and record["run_id"] != run_id:
                continue
            try:
                if await self._resume_one(record["id"]):
                    resumed.append(record["id"])
            except AgentDrivenElsewhere as e:
                logger.info("not resuming %s: %s", record["id"], e)
        return resumed

    async def _resume_one(self, agent_id: str) -> bool:
        """Drive an agent the log shows working, unless it runs here already; True if started.

        Raises `AgentDrivenElsewhere` if a live process holds its lease.
        """
        if agent_id in self._tasks:
            return False
        await self._lease(agent_id)
        try:
            agent = self._agents.get(agent_id) or await self._load(agent_id)
            await agent.sync()  # another process may have moved it on
            if agent.status not in ("working", "waiting"):
                return False
            await self._spawn(agent)
        finally:
            await self._unlease(agent_id)
        return True

    async def adopt_agent(self, agent_id: str, prompt: str, *, by: str) -> None:
        """Take up an agent a resumed run created before it was interrupted.

        One the log shows created but never commanded gets `prompt`; one still
        working is resumed; one that ended is left as it is (its result stands).
        Raises `AgentNotFound`, `AgentDrivenElsewhere`.
        """
        await self._sync()
        status = self._record(agent_id)["status"]
        if status == "created":
            await self.command_agent(agent_id, prompt, by=by)
        elif status in ("working", "waiting"):
            await self._resume_one(agent_id)

    # -- budgets ----------------------------------------------------------------

    def _check_budget(self, record: dict[str, Any]) -> None:
        b = self.config.budgets
        _within(b.agent_tokens, b.agent_usd, record, f"agent {record['id']}")
        percent = record["context"]["percent"]
        if b.agent_context_percent is not None and percent >= b.agent_context_percent:
            raise BudgetExceeded(
                "context_percent", percent, b.agent_context_percent, f"agent {record['id']}"
            )

    def _check_shared_budgets(self, run_id: str | None) -> None:
        """The whole log's budgets, then those of the run `run_id` (its own spending only)."""
        b = self.config.budgets
        if b.fleet_tokens is not None or b.fleet_usd is not None:
            totals = self.runner.view("fleet")
            _within(b.fleet_tokens, b.fleet_usd, totals, "fleet")
        if run_id is None or (b.run_tokens is None and b.run_usd is None):
            return
        run = self.runner.run(run_id)
        if run is not None:  # an agent made with a run id no RunStarted opened has no run
            _within(b.run_tokens, b.run_usd, run, f"run {run_id}")

    async def _budget_check(self, agent_id: str) -> BudgetExceeded | None:
        """Called by a running agent after each model response: the limit it crossed, if any."""
        b = self.config.budgets
        if b == Budgets():
            return None
        await self._sync()
        try:
            record = self._record(agent_id)
            self._check_budget(record)
            self._check_shared_budgets(record["run_id"])
        except BudgetExceeded as e:
            return e
        return None

    # -- the sleep pattern --------------------------------------------------------

    async def wait_for_agents(
        self,
        agent_ids: Iterable[str],
        timeout_s: float,
        *,
        waiter_id: str | None = None,
        record: Recorder | None = None,
    ) -> WakeResult:
        """The sleep pattern (`Sleeper.wait_for_agents`, `_waits.py`). Raises `AgentNotFound`."""
        return await self.sleeper.wait_for_agents(
            agent_ids, timeout_s, waiter_id=waiter_id, record=record
        )

    async def wait_all(
        self,
        agent_ids: Iterable[str],
        *,
        waiter_id: str | None = None,
        record: Recorder | None = None,
        timeout_s: float = 3600,
    ) -> dict[str, str]:
        """Sleep until every agent in `agent_ids` has finished; wakes once per completion."""
        return await self.sleeper.wait_all(
            agent_ids, waiter_id=waiter_id, record=record, timeout_s=timeout_s
        )

    @property
    def wake_script(self) -> WakeScript | None:
        """A re-execution's script of wakes (`_waits.py` note 2); None in a live run."""
        return self.sleeper.wake_script

    @wake_script.setter
    def wake_script(self, script: WakeScript | None) -> None:
        self.sleeper.wake_script = script

    # -- deleting -----------------------------------------------------------------

    async def delete_agent(self, agent_id: str, *, by: str = "user") -> None:
        """Delete an agent: cancel it if working, append AgentDeleted. Its events remain.

        Raises `AgentNotFound`, `AgentGone` when it is already deleted.
        """
        async with self._changing_agent(agent_id):  # note 5
            await self._sync()
            record = self._record(agent_id)
            if record["status"] == "deleted":
                raise AgentGone(agent_id)
            if record["external"]:
                await self._delete_unloaded(agent_id, record, by=by, was_working=False)
                return
            await self._lease(agent_id)  # module note 3
            try:
                # Again under the lease: another process's delete may have held it first.
                await self._sync()
                record = self._record(agent_id)
                if record["status"] == "deleted":
                    raise AgentGone(agent_id)
                await self._delete_leased(agent_id, record, by=by)
            finally:
                await self._unlease(agent_id)

    async def _delete_leased(self, agent_id: str, record: dict[str, Any], *, by: str) -> None:
        task = self._tasks.pop(agent_id, None)
        running = task is not None and not task.done()
        # An agent whose process died is still "working" in the log: it was working.
        was_working = running or record["status"] == "working"
        live = self._agents.get(agent_id)
        if running and task is not None and isinstance(live, ClaudeCodeAgent):
            await live.end_session(task)  # Claude Code ends its turn and closes, or is cancelled
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        agent = self._agents.pop(agent_id, None)
        if agent is not None:
            await agent.delete(by=by)
        else:
            await self._delete_unloaded(agent_id, record, by=by, was_working=was_working)

    async def _delete_unloaded(
        self, agent_id: str, record: dict[str, Any], *, by: str, was_working: bool
    ) -> None:
        """AgentDeleted for an agent this process has not loaded (nothing of it runs here)."""
        await self.store.append(
            f"agent-{agent_id}",
            [
                NewEvent(
                    AgentDeleted(agent_id=agent_id, by=by, was_working=was_working),
                    Meta(
                        run_id=record["run_id"],
                        agent_id=agent_id,
                        parent_id=record["parent_id"],
                    ),
                )
            ],
        )

    async def delete_all_agents(
        self, *, run_id: str | None = None, by: str = "user", parent_id: str | None = None
    ) -> list[str]:
        """Delete every live agent (of a run, or created by `parent_id`); returns their ids."""
        targets = [
            a["id"]
            for a in await self.list_agents(
                run_id=run_id, parent_id=parent_id, include_deleted=False
            )
            if not a["external"] and a["id"] != by
        ]
        elsewhere: list[AgentDrivenElsewhere] = []
        for agent_id in targets:
            try:
                await self.delete_agent(agent_id, by=by)
            except AgentGone:
                continue
            except AgentDrivenElsewhere as e:
                elsewhere.append(e)  # the others are still deleted
        if elsewhere:
            raise elsewhere[0]
        return targets


def _within(
    tokens_limit: int | None, usd_limit: float | None, totals: dict[str, Any], scope: str
) -> None:
    """Raise `BudgetExceeded` if `totals` (an agent's card, a run's, the fleet view)
    reached a limit."""
    tokens, cost = totals["tokens"]["total"], totals["cost_usd"]
    if tokens_limit is not None and tokens >= tokens_limit:
        raise BudgetExceeded("tokens", tokens, tokens_limit, scope)
    if usd_limit is not None and cost >= usd_limit:
        raise BudgetExceeded("cost_usd", cost, usd_limit, scope)


def _log_file(location: str) -> str | None:
    """The log's file when the store is one (a path or `sqlite:///...`), else None."""
    if location.startswith("sqlite:///"):
        return location.removeprefix("sqlite:///")
    if location == "memory:" or "://" in location:
        return None
    return location
