"""The agent: its lifecycle (create, command, run, delete, resume) and its loop.

    agent = Agent(store=store, client=client, hooks=dispatcher, spec=AgentSpec(...))
    await agent.create(task="rename `a` to `b` ...")    # AgentCreated, SessionStart, AgentCommanded
    outcome = await agent.run_until_idle()                # until end_turn, a limit or an error
    await agent.command("now also ...")                   # continues the same conversation
    agent = await Agent.resume(store, agent_id, client=client)   # after a restart

One step of the loop is one of: end the agent for a hook's `continue: false`;
run the pending tool calls (`_tool_calls.py`); end the turn with the Stop
hooks (`_agent_hooks.py`); or call the model, after the budget
(`_agent_budget.py`) and compaction (`_compaction.py`). Each step appends its
events to the agent's stream (`_agent_log.py`), whose fold is the agent's
state, so a resumed agent continues from the log, not from memory.

Notes (do not fix without reading this):
1. No exception leaves the loop with the agent still working: a model error,
   a broken hook or a bug ends the agent with AgentFailed naming it. Only an
   interruption (cancellation, KeyboardInterrupt, SystemExit) passes through,
   with the log left resumable, and `AgentDrivenElsewhere`, since another
   process owns the stream then and nothing may be written to it.
2. A hook answering `continue: false` ends the agent with
   AgentFailed(limit="hook") at its next step.
3. A step that fails because the log is unavailable (`StoreUnavailable`: a
   PostgreSQL restart, a connection cut mid-append, a full disk) does not end
   the agent: it waits for the log (`_outage.py`), folds what the log holds,
   and takes its next step from that, as a resumed agent would. A failed
   append folds nothing; one that committed though it raised is folded by the
   sync, so nothing is appended twice (and the expected version would refuse
   it). Tool calls whose completion was not appended are settled as
   interrupted (`_tool_calls.py`, note 4), not run again blindly; calls still
   `_fresh` (appended with their response, the step that would run them not
   begun) never ran, and run. A model's reply whose append failed is kept
   and appended once the log is back, if the agent's stream is still where
   the reply followed it: the call is not made (and paid for) again at each
   try; a full disk, where reads work and appends do not, tried it every few
   seconds for ten minutes. Only an outage longer than `OUTAGE_LIMIT_S` fails
   the agent, as any error does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    EventStore,
    ModelResponded,
    NewEvent,
)
from events.errors import StoreUnavailable
from hooks import HookDispatcher

from ._agent_budget import AgentBudget
from ._agent_hooks import MAX_STOP_CONTINUATIONS, AgentHooks
from ._agent_log import AgentLog
from ._agent_model import AgentModel
from ._agent_spec import (
    TRANSCRIPTS,
    AgentOutcome,
    AgentSpec,
    AgentStats,
    BudgetCheck,
    ToolboxFor,
    system_prompt_for,
)
from ._approvals import ApprovalGate
from ._client import ModelClient, ModelReply
from ._compaction import Compactor
from ._conversation import AgentState, AgentStatus, pending_calls, stream_id_of, text_of
from ._outage import LogOutage
from ._tool_calls import INTERRUPTIONS, ToolCalls, unexpected_error
from ._tools import Toolbox
from ._transcript import Transcript, transcript_path
from ._worker_tools import WORKER_TOOLS, worker_tool_name, worker_toolbox
from ._workspace import Workspace
from .errors import (
    AgentBusy,
    AgentDrivenElsewhere,
    AgentGone,
    AgentNotFound,
    InvalidAgentSpec,
    ModelCallFailed,
    PromptBlocked,
)

__all__ = ["MAX_STOP_CONTINUATIONS", "Agent"]

logger = logging.getLogger(__name__)


class Agent:
    """One agent: its loop, its stream, its hooks. Not thread-safe; one task drives it.

    Args:
        store: the event log.
        client: the model client (shared by all agents of a runtime).
        spec: who the agent is (checked here: `InvalidAgentSpec`, `UnknownModel`,
            `WorkspaceMissing` are raised before anything is written).
        toolbox: its tools (default: all worker tools).
        hooks: a `hooks.HookDispatcher`, or None for no hooks.
        tool_extra: given to every tool as `ToolContext.extra` (e.g. the fleet
            an orchestrator's tools act on).
        budget_check: an async callable of the agent id, awaited before each
            model call; a `BudgetExceeded` it returns ends the agent with
            AgentFailed(limit=its limit) (e.g. a fleet-wide budget).
    """

    def __init__(
        self,
        *,
        store: EventStore,
        client: ModelClient,
        spec: AgentSpec,
        toolbox: Toolbox | None = None,
        hooks: HookDispatcher | None = None,
        tool_extra: Mapping[str, Any] | None = None,
        budget_check: BudgetCheck | None = None,
    ) -> None:
        spec.check()
        self.model_info = client.resolve(spec.model)
        self.workspace = Workspace(spec.workspace)
        self.spec = replace(spec, workspace=self.workspace.root)
        self.store = store
        self.client = client
        self.toolbox = toolbox if toolbox is not None else worker_toolbox()
        self.hooks = hooks
        self.stats = AgentStats()
        self.context_window = spec.context_window or self.model_info.context_window
        folder = spec.transcript_dir or self.workspace.root / TRANSCRIPTS
        self.transcript: Transcript | None = None
        if spec.transcript:
            self.transcript = Transcript(
                transcript_path(folder, spec.agent_id),
                agent_id=spec.agent_id,
                cwd=str(self.workspace.root),
                sidechain=spec.parent_id is not None,
            )
        self._log = AgentLog(store, self.spec, self.stats, self.transcript)
        parent = None
        if spec.transcript and spec.parent_id is not None:
            parent = str(transcript_path(folder, spec.parent_id))
        self._hooks = AgentHooks(
            hooks,
            self._log,
            model_id=self.model_info.id,
            stats=self.stats,
            transcript_path="" if self.transcript is None else str(self.transcript.path),
            parent_transcript=parent,
        )
        self._model = AgentModel(client, self.model_info, self._log, self.toolbox, self.stats)
        self._budget = AgentBudget(self.spec, check=budget_check)
        self._compactor = Compactor(
            self._log,
            self._hooks,
            self._model,
            context_window=self.context_window,
            compact_at=self.spec.compact_at,
        )
        self._tools = ToolCalls(
            self._log,
            self._hooks,
            self.toolbox,
            self.workspace,
            extra=dict(tool_extra or {}),
            stats=self.stats,
            gate=ApprovalGate(self._log, self._hooks, timeout_s=self.spec.approval_timeout_s),
        )
        self._outage = LogOutage(store, f"agent {spec.agent_id}")  # module note 3
        # A model's reply whose append met an unavailable log, and the position it follows.
        self._unrecorded: tuple[int | None, ModelReply] | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[AgentOutcome] | None = None
        self._closed = False
        self._depth = 0

    # -- identity ---------------------------------------------------------------------------

    @property
    def agent_id(self) -> str:
        return self.spec.agent_id

    @property
    def stream_id(self) -> str:
        """The agent's stream, `agent-<id>`."""
        return self._log.stream_id

    @property
    def state(self) -> AgentState:
        """The agent's state, folded from its stream (read it; never change it)."""
        return self._log.state

    @property
    def status(self) -> AgentStatus:
        return self.state.status

    @property
    def system_prompt(self) -> str:
        return self._model.system_prompt

    def outcome(self) -> AgentOutcome:
        """The agent's current result (status, summary, artifacts, error)."""
        s = self.state
        return AgentOutcome(
            self.agent_id, s.status, s.summary, tuple(s.artifacts), s.error, s.limit
        )

    async def sync(self) -> None:
        """Fold the events of its stream appended since it was loaded (e.g. by another process)."""
        await self._log.sync()

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        """Count the wall time of a public call in `stats.busy_s` (nested calls once)."""
        self._depth += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.stats.busy_s += time.perf_counter() - started

    # -- lifecycle --------------------------------------------------------------------------

    async def create(self, task: str | None = None, *, by: str = "user") -> None:
        """Append AgentCreated, fire SessionStart (and SubagentStart), then command `task` if given.

        Raises `InvalidAgentSpec` if an agent with this id exists (nothing written),
        `PromptBlocked` if a UserPromptSubmit hook refuses the task (the agent
        exists, with status "created").
        """
        with self._busy():
            if self.state.status != "new":
                raise InvalidAgentSpec("agent_id", f"agent {self.agent_id!r} was created already")
            created = AgentCreated(
                agent_id=self.agent_id,
                name=self.spec.name,
                role=self.spec.role,
                model=self.model_info.id,
                parent_id=self.spec.parent_id,
                workspace=str(self.workspace.root),
                tools=self.toolbox.names,
                task=task,
                system_prompt=system_prompt_for(self.spec, self.toolbox.names),
                context_limit=self.context_window,
                max_turns=self.spec.max_turns,
                engine=self.spec.engine,
                session_id=self.spec.session_id,
            )
            await self._log.append([self._log.event(created, None)], create=True)
            await self._hooks.session_start("startup")
            if task is not None:
                await self.command(task, by=by)

    async def command(
        self, prompt: str, *, by: str = "user", causation_id: int | None = None
    ) -> int:
        """Give the agent a prompt (after UserPromptSubmit); returns its AgentCommanded position.

        Raises `AgentNotFound` (never created), `AgentGone` (deleted), `AgentBusy`
        (working), `PromptBlocked` (a hook refused it: only its HookInvoked are written).
        """
        with self._busy():
            if not prompt.strip():
                raise InvalidAgentSpec("prompt", "must not be empty")
            await self._log.sync()
            status = self.state.status
            if status == "new":
                raise AgentNotFound(self.agent_id)
            if status == "deleted":
                raise AgentGone(self.agent_id)
            if status == "working":
                raise AgentBusy(self.agent_id)
            self._hooks.stop_reason = None
            outcome = await self._hooks.dispatch("UserPromptSubmit", prompt=prompt)
            hook_events = self._hooks.events(outcome, causation_id)
            if outcome is not None and outcome.blocked:
                self._hooks.stop_reason = None
                if hook_events:
                    await self._log.append(hook_events)
                raise PromptBlocked(self.agent_id, outcome.reason)
            text = prompt
            if outcome is not None and outcome.additional_context:
                text = f"{prompt}\n\n{outcome.additional_context}"
            commanded = self._log.event(
                AgentCommanded(agent_id=self.agent_id, prompt=text, by=by), causation_id
            )
            recorded = await self._log.append([*hook_events, commanded])
            return recorded[-1].position

    async def run(self, prompt: str, *, by: str = "user") -> AgentOutcome:
        """`command(prompt)` then `run_until_idle()`."""
        await self.command(prompt, by=by)
        return await self.run_until_idle()

    def start(self) -> asyncio.Task[AgentOutcome]:
        """Run `run_until_idle()` in a task of its own (cancelled by `delete()` and `aclose()`)."""
        if self._task is not None and not self._task.done():
            return self._task
        self._task = asyncio.create_task(self.run_until_idle(), name=f"agent-{self.agent_id}")
        return self._task

    async def _cancel(self) -> bool:
        task, self._task = self._task, None
        if task is None or task.done():
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def delete(self, *, by: str = "user", was_working: bool | None = None) -> None:
        """Stop the agent if it works, append AgentDeleted, fire SessionEnd. Idempotent.

        `was_working` defaults to what the log says (the agent had a prompt unfinished).
        """
        cancelled = await self._cancel()
        async with self._lock:
            await self._log.sync()
            if self.state.status in ("new", "deleted"):
                return
            if was_working is None:
                was_working = cancelled or self.state.status == "working"
            deleted = AgentDeleted(agent_id=self.agent_id, by=by, was_working=was_working)
            events = await self._hooks.session_end("delete")
            await self._log.append([*events, self._log.event(deleted, None)])

    async def interrupt(self, *, by: str = "user") -> bool:
        """Stop the current turn: AgentFailed(limit="interrupted"); the agent stays. Idempotent.

        Cancels the task `start()` made, if any (a caller driving the loop in a
        task of its own cancels that first). Returns False when the agent was
        not working (nothing appended).
        """
        await self._cancel()
        async with self._lock:
            await self._log.sync()
            if self.state.status != "working":
                return False
            await self._fail(f"interrupted by {by}", limit="interrupted")
            return True

    async def aclose(self) -> None:
        """Cancel the task `start()` made, if any; fire SessionEnd (reason "close"). Idempotent."""
        await self._cancel()
        if self.state.status in ("new", "deleted") or self._closed:
            return
        self._closed = True
        with contextlib.suppress(AgentDrivenElsewhere):
            if events := await self._hooks.session_end("close"):
                await self._log.append(events)

    @classmethod
    async def load(
        cls,
        store: EventStore,
        agent_id: str,
        *,
        client: ModelClient,
        toolbox: Toolbox | None = None,
        toolbox_for: ToolboxFor | None = None,
        hooks: HookDispatcher | None = None,
        tool_extra: Mapping[str, Any] | None = None,
        budget_check: BudgetCheck | None = None,
        workspace: str | Path | None = None,
        **limits: Any,
    ) -> Agent:
        """Rebuild an agent from its stream; SessionStart fires with source "resume".

        It does not run: call `run_until_idle()` (an agent the log shows as
        working goes on from where the log stops). The spec comes from
        AgentCreated; `limits` (max_tokens, max_total_tokens, max_cost_usd,
        compact_at) are not in the log and may be given again. The toolbox is
        `toolbox`, else `toolbox_for(role, tool_names)`, else the worker tools
        AgentCreated names. The transcript is written anew from the stream.
        Raises `AgentNotFound` (no AgentCreated), `WorkspaceMissing`, `UnknownModel`.
        """
        events = await store.read_stream(stream_id_of(agent_id))
        created = next((e for e in events if isinstance(e.data, AgentCreated)), None)
        if created is None:
            raise AgentNotFound(agent_id)
        data = created.data
        assert isinstance(data, AgentCreated)
        if toolbox is None:
            if toolbox_for is not None:
                toolbox = toolbox_for(data.role, list(data.tools))
            else:
                names = [t for t in data.tools if worker_tool_name(t) in WORKER_TOOLS]
                toolbox = worker_toolbox(names)
        spec = AgentSpec(
            agent_id=agent_id,
            name=data.name,
            role=data.role,
            model=data.model,
            workspace=workspace or data.workspace,
            parent_id=data.parent_id,
            run_id=created.meta.run_id,
            max_turns=data.max_turns,
            context_window=data.context_limit,
            engine=data.engine,
            session_id=data.session_id,
            **limits,
        )
        agent = cls(
            store=store,
            client=client,
            spec=spec,
            toolbox=toolbox,
            hooks=hooks,
            tool_extra=tool_extra,
            budget_check=budget_check,
        )
        agent.state.apply_all(events)
        if agent.transcript is not None:
            await agent.transcript.rebuild(events)
        if agent.state.status != "deleted":
            await agent._hooks.session_start("resume")
        return agent

    resume = load
    """`Agent.resume(store, agent_id, client=...)`: the same as `load`."""

    # -- the loop ---------------------------------------------------------------------------

    async def run_until_idle(self) -> AgentOutcome:
        """Work until the current prompt is done (end_turn), a limit is hit, or an error.

        Every error ends the agent with AgentFailed, not an exception (module
        note 1). Raises `AgentDrivenElsewhere` if another process appends to its
        stream. Cancellation-safe: a cancelled run leaves the log resumable.
        """
        async with self._lock:
            with self._busy():
                try:
                    await self._log.sync()
                    async with self._log.deferred():  # its transcript lines (`_transcript.py`)
                        while self.state.status == "working":
                            await self._guarded_step()
                finally:  # its turn is over: its SDK client's place goes to the next agent
                    self.client.release(self.agent_id)
            return self.outcome()

    async def _guarded_step(self) -> None:
        """One step; anything it raises but an interruption ends the agent (module note 1),
        and an unavailable log is waited out first (note 3)."""
        try:
            await self._step()
        except (*INTERRUPTIONS, AgentDrivenElsewhere):
            raise
        except StoreUnavailable as e:
            if await self._outage.wait(e, self._log.sync):
                return  # the next step goes on from what the log holds
            failure: BaseException = e
        except BaseException as e:
            failure = e
        else:
            self._outage.over()
            return
        logger.warning("agent %s failed in its loop", self.agent_id, exc_info=failure)
        await self._log.sync()  # what the failed step did append is part of the state
        if self.state.status == "working":
            await self._fail(f"the agent's loop failed: {unexpected_error(failure)}")

    async def _step(self) -> None:
        state = self.state
        if self._hooks.stop_reason is not None:  # module note 2
            reason, self._hooks.stop_reason = self._hooks.stop_reason, None
            await self._fail(f"stopped by a hook: {reason}", limit="hook")
        elif state.pending:
            await self._tools.run_pending()
        elif state.messages and state.messages[-1]["role"] == "assistant":
            if state.last_stop_reason == "pause_turn":  # the API paused a long turn: go on
                await self._call_model()
            else:
                await self._end_turn()
        else:
            await self._call_model()

    async def _fail(self, error: str, *, limit: str | None = None) -> None:
        failed = AgentFailed(agent_id=self.agent_id, error=error, limit=limit)
        await self._log.append([self._log.event(failed, self.state.last_position)])

    async def _call_model(self) -> None:
        if not await self._within_limits():
            return
        cause = self.state.last_position
        kept, self._unrecorded = self._unrecorded, None
        if kept is not None and kept[0] == cause:
            reply = kept[1]  # answered before the log went away, not paid for twice (note 3)
        else:
            try:
                reply = await self._model.respond(self.state.messages)
            except ModelCallFailed as e:
                await self._fail(str(e))
                return
            self.stats.steps += 1
        tokens, cost = self.state.total_tokens, self.state.cost_usd
        responded = self._model.responded(reply)
        riding: list[NewEvent] = []  # what the next step would append, in this commit
        if self._nothing_between(reply, responded, tokens, cost):
            if calls := pending_calls(responded.content):
                riding = await self._tools.requests(calls, with_response=True)
            elif reply.stop_reason != "pause_turn" and self._hooks.stops_quietly():
                completed = AgentCompleted(
                    agent_id=self.agent_id,
                    summary=text_of(responded.content),
                    artifacts=list(self.state.files_written),
                    stop_reason=reply.stop_reason or "end_turn",
                )
                riding = [self._log.event(completed, -1)]  # caused by the response
        try:
            await self._log.append([self._log.event(responded, cause), *riding])
        except StoreUnavailable:
            self._unrecorded = (cause, reply)  # recorded once the log is back (note 3)
            raise
        for message in self._budget.passed_warning(tokens, cost, self.state):
            await self._hooks.notify(message, notification_type="budget_warning", title="Budget")
        if reply.stop_reason == "max_tokens":
            await self._fail(
                f"the response was cut at max_tokens ({self.spec.max_tokens})", limit="max_tokens"
            )
        elif reply.stop_reason == "refusal":
            await self._fail("the model refused to continue (stop_reason 'refusal')")

    def _nothing_between(
        self, reply: ModelReply, responded: ModelResponded, tokens: int, cost: float
    ) -> bool:
        """Whether the events of the next step may go in the response's append (one commit):
        its ToolCallRequested (`_tool_calls.py`, note 5), or the AgentCompleted of a turn
        that ends with no Stop hook to run.

        Only when nothing else would be appended or decided between the two:
        no hook's stop pending, no budget warning's Notification, no stop
        reason that fails the agent.
        """
        return (
            reply.stop_reason not in ("max_tokens", "refusal")
            and self._hooks.stop_reason is None
            and not self._budget.would_warn(tokens, cost, responded)
        )

    async def _within_limits(self) -> bool:
        """Budgets, then compaction when it is due; False when the agent was failed for a limit."""
        if (crossed := await self._budget.crossed(self.state)) is not None:
            await self._fail(crossed.reason, limit=crossed.limit)
            return False
        if not self._compactor.due():
            return True
        if await self._compactor.compact() and self._compactor.due():
            # Compacting again would make the same summary: stop rather than loop.
            await self._fail(self._compactor.still_full(), limit="context")
            return False
        if (reached := self._budget.reached(self.state)) is not None:  # the summary call counts
            await self._fail(reached.reason, limit=reached.limit)
            return False
        return True

    async def _end_turn(self) -> None:
        state = self.state
        decision = await self._hooks.stop()
        if decision.continue_with is not None:
            command = AgentCommanded(
                agent_id=self.agent_id, prompt=decision.continue_with, by=f"hook:{decision.point}"
            )
            await self._log.append(
                [*decision.events, self._log.event(command, state.last_position)]
            )
            return
        completed = AgentCompleted(
            agent_id=self.agent_id,
            summary=state.last_text,
            artifacts=list(state.files_written),
            stop_reason=state.last_stop_reason or "end_turn",
        )
        await self._log.append([*decision.events, self._log.event(completed, state.last_position)])
