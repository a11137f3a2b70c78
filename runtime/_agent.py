"""The agent loop: prompt -> model -> tool_use -> hooks -> tool -> hooks -> tool_result -> ...

    agent = Agent(store=store, client=client, hooks=dispatcher, spec=AgentSpec(...))
    await agent.create(task="rename `a` to `b` ...")    # AgentCreated, SessionStart, AgentCommanded
    outcome = await agent.run_until_idle()                # until end_turn, a limit or an error
    await agent.command("now also ...")                   # continues the same conversation
    agent = await Agent.resume(store, agent_id, client=client)   # after a restart

Every step appends its event to the agent's stream `agent-<id>` with
`expected_version` (this agent's task is the only writer of its stream; a
conflict means another process drives it, and this one stops with
`AgentDrivenElsewhere`). The state, the conversation included, is folded from
those same events (`_conversation.py`), so a resumed agent continues from the
log, not from memory.

Notes (do not fix without reading this):
1. The calls of one model response are run one after another and their
   ToolCallCompleted events are appended together when the last one ends (one
   durable commit instead of one per call), with the HookInvoked of their
   PreToolUse and PostToolUse hooks; each ToolCallRequested is appended before
   any of them runs. A call requested but not completed when a process
   died is run again on resume (at-least-once): the log cannot tell whether it ran.
2. Compaction is one model call (the same path for Anthropic and the
   simulator) asking for a summary; its ModelResponded and the ContextCompacted
   are appended together, atomically, so a crash cannot leave the summary
   request in the conversation. The summary call's cost is the agent's cost.
3. A PreToolUse "ask" is treated as "deny": nobody is there to answer.
4. A Stop (or SubagentStop) hook that blocks makes its reason the agent's next
   prompt (an AgentCommanded by "hook:Stop"), at most `MAX_STOP_CONTINUATIONS`
   times in a row; a hook answering `continue: false` ends the agent with
   AgentFailed(limit="hook").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from events import (
    NO_STREAM,
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    ContextCompacted,
    EventModel,
    EventStore,
    Meta,
    ModelResponded,
    NewEvent,
    RecordedEvent,
    ToolCallCompleted,
    ToolCallRequested,
    VersionConflict,
)
from hooks import HookDispatcher, HookOutcome, build_payload

from ._agent_spec import (
    AgentOutcome,
    AgentSpec,
    AgentStats,
    BudgetCheck,
    ToolboxFor,
    system_prompt_for,
)
from ._client import ModelClient, ModelReply
from ._conversation import AgentState, AgentStatus, PendingCall, stream_id_of
from ._tools import WORKER_TOOLS, Toolbox, ToolContext, ToolResult, worker_toolbox
from ._workspace import Workspace
from .errors import (
    AgentBusy,
    AgentDrivenElsewhere,
    AgentGone,
    AgentNotFound,
    InvalidAgentSpec,
    ModelCallFailed,
    PromptBlocked,
    ToolError,
)
from .simulator._policies import COMPACTED_PREFIX, COMPACTION_PROMPT

# AgentSpec and its kin live in _agent_spec; re-exported for modules importing them from here.
__all__ = [
    "MAX_STOP_CONTINUATIONS",
    "Agent",
    "AgentOutcome",
    "AgentSpec",
    "AgentStats",
    "BudgetCheck",
    "ToolboxFor",
]

logger = logging.getLogger(__name__)

MAX_STOP_CONTINUATIONS = 3


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
        self.stream_id = stream_id_of(spec.agent_id)
        self.state = AgentState(spec.agent_id)
        self.stats = AgentStats()
        self.context_window = spec.context_window or self.model_info.context_window
        self._tool_extra = dict(tool_extra or {})
        self._budget_check = budget_check
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[AgentOutcome] | None = None
        self._stop_reason: str | None = None  # a hook's `continue: false`
        self._closed = False
        self._depth = 0

    # -- identity ---------------------------------------------------------------------------

    @property
    def agent_id(self) -> str:
        return self.spec.agent_id

    @property
    def status(self) -> AgentStatus:
        return self.state.status

    @property
    def system_prompt(self) -> str:
        created = self.state.created
        return (
            created.system_prompt
            if created is not None
            else system_prompt_for(self.spec, self.toolbox.names)
        )

    def outcome(self) -> AgentOutcome:
        """The agent's current result (status, summary, artifacts, error)."""
        s = self.state
        return AgentOutcome(
            self.agent_id, s.status, s.summary, tuple(s.artifacts), s.error, s.limit
        )

    def _meta(self, causation: int | None, *, source: str = "runtime") -> Meta:
        return Meta(
            run_id=self.spec.run_id,
            agent_id=self.agent_id,
            parent_id=self.spec.parent_id,
            causation_id=causation,
            source=source,  # type: ignore[arg-type]
        )

    # -- the log ----------------------------------------------------------------------------

    async def _append(
        self, events: Sequence[NewEvent], *, create: bool = False
    ) -> list[RecordedEvent]:
        started = time.perf_counter()
        expected = NO_STREAM if create else self.state.version
        try:
            recorded = await self.store.append(self.stream_id, events, expected_version=expected)
        except VersionConflict as e:
            if create:
                raise InvalidAgentSpec(
                    "agent_id", f"an agent {self.agent_id!r} exists already"
                ) from e
            raise AgentDrivenElsewhere(self.agent_id, self.state.version, e.actual) from e
        self.state.apply_all(recorded)
        self.stats.appends += 1
        self.stats.append_s += time.perf_counter() - started
        return recorded

    def _event(self, data: EventModel, causation: int | None) -> NewEvent:
        return NewEvent(data, self._meta(causation))  # type: ignore[arg-type]

    def _hook_events(self, outcome: HookOutcome | None, causation: int | None) -> list[NewEvent]:
        if outcome is None:
            return []
        meta = self._meta(causation, source="hook")
        return [NewEvent(inv, meta) for inv in outcome.invocations]

    async def _sync(self) -> None:
        """Apply events of our stream we have not seen (e.g. one a cancelled append wrote)."""
        self.state.apply_all(
            await self.store.read_stream(self.stream_id, after_version=self.state.version)
        )

    # -- hooks ------------------------------------------------------------------------------

    async def _dispatch(self, point: str, **fields: Any) -> HookOutcome | None:
        hooks = self.hooks
        if hooks is None or not hooks.has_hooks(point):
            return None
        started = time.perf_counter()
        payload = build_payload(
            point,
            session_id=self.agent_id,
            cwd=str(self.workspace.root),
            agent_id=self.agent_id,
            parent_id=self.spec.parent_id,
            run_id=self.spec.run_id,
            **fields,
        )
        outcome = await hooks.dispatch(point, payload)
        self.stats.hook_s += time.perf_counter() - started
        if outcome.stop:
            self._stop_reason = outcome.stop_reason or f"a {point} hook stopped the agent"
        return outcome

    async def _session_start(self, source: str) -> None:
        outcome = await self._dispatch(
            "SessionStart", source=source, model=self.model_info.id, agent_type=self.spec.role
        )
        events = self._hook_events(outcome, self.state.last_position)
        if self.spec.parent_id is not None and source == "startup":
            sub = await self._dispatch(
                "SubagentStart", subagent_id=self.agent_id, agent_type=self.spec.role
            )
            events += self._hook_events(sub, self.state.last_position)
        if events:
            await self._append(events)

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
        `PromptBlocked` if a UserPromptSubmit hook refuses the task (the agent exists, idle).
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
            )
            await self._append([self._event(created, None)], create=True)
            await self._session_start("startup")
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
            await self._sync()
            status = self.state.status
            if status == "new":
                raise AgentNotFound(self.agent_id)
            if status == "deleted":
                raise AgentGone(self.agent_id)
            if status == "working":
                raise AgentBusy(self.agent_id)
            self._stop_reason = None
            outcome = await self._dispatch("UserPromptSubmit", prompt=prompt)
            hook_events = self._hook_events(outcome, causation_id)
            if outcome is not None and outcome.blocked:
                self._stop_reason = None
                if hook_events:
                    await self._append(hook_events)
                raise PromptBlocked(self.agent_id, outcome.reason)
            text = prompt
            if outcome is not None and outcome.additional_context:
                text = f"{prompt}\n\n{outcome.additional_context}"
            commanded = self._event(
                AgentCommanded(agent_id=self.agent_id, prompt=text, by=by), causation_id
            )
            recorded = await self._append([*hook_events, commanded])
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
            await self._sync()
            if self.state.status in ("new", "deleted"):
                return
            if was_working is None:
                was_working = cancelled or self.state.status == "working"
            outcome = await self._dispatch("SessionEnd", reason="delete")
            events = [
                *self._hook_events(outcome, self.state.last_position),
                self._event(
                    AgentDeleted(agent_id=self.agent_id, by=by, was_working=was_working), None
                ),
            ]
            await self._append(events)

    async def aclose(self) -> None:
        """Cancel the task `start()` made, if any; fire SessionEnd (reason "close"). Idempotent."""
        await self._cancel()
        if self.state.status in ("new", "deleted") or self._closed:
            return
        self._closed = True
        with contextlib.suppress(AgentDrivenElsewhere):
            outcome = await self._dispatch("SessionEnd", reason="close")
            events = self._hook_events(outcome, self.state.last_position)
            if events:
                await self._append(events)

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
        AgentCreated names. Raises `AgentNotFound` (no AgentCreated),
        `WorkspaceMissing`, `UnknownModel`.
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
                toolbox = worker_toolbox([t for t in data.tools if t in WORKER_TOOLS])
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
        if agent.state.status != "deleted":
            await agent._session_start("resume")
        return agent

    resume = load
    """`Agent.resume(store, agent_id, client=...)`: the same as `load`."""

    # -- the loop ---------------------------------------------------------------------------

    async def run_until_idle(self) -> AgentOutcome:
        """Work until the current prompt is done (end_turn), a limit is hit, or an error.

        Model and tool errors end the agent with AgentFailed, not an exception.
        Raises `AgentDrivenElsewhere` if another process appends to its stream.
        Cancellation-safe: a cancelled run leaves the log resumable.
        """
        async with self._lock:
            with self._busy():
                await self._sync()
                while self.state.status == "working":
                    await self._step()
            return self.outcome()

    async def _step(self) -> None:
        state = self.state
        if self._stop_reason is not None:
            reason, self._stop_reason = self._stop_reason, None
            await self._fail(f"stopped by a hook: {reason}", limit="hook")
        elif state.pending:
            await self._run_tools()
        elif state.messages and state.messages[-1]["role"] == "assistant":
            await self._end_turn()
        else:
            await self._call_model()

    async def _fail(self, error: str, *, limit: str | None = None) -> None:
        failed = AgentFailed(agent_id=self.agent_id, error=error, limit=limit)
        await self._append([self._event(failed, self.state.last_position)])

    def _limit_reached(self) -> tuple[str, str] | None:
        s, spec = self.state, self.spec
        if spec.max_turns is not None and s.turns >= spec.max_turns:
            return "turns", f"turn limit reached: {s.turns} model calls of {spec.max_turns}"
        if spec.max_total_tokens is not None and s.total_tokens >= spec.max_total_tokens:
            return "tokens", f"token budget reached: {s.total_tokens} of {spec.max_total_tokens}"
        if spec.max_cost_usd is not None and s.cost_usd >= spec.max_cost_usd:
            return "cost", f"cost budget reached: ${s.cost_usd:.4f} of ${spec.max_cost_usd:.4f}"
        return None

    async def _respond(self, messages: list[dict[str, Any]]) -> ModelReply:
        started = time.perf_counter()
        try:
            return await self.client.respond(
                model=self.model_info.id,
                system=self.system_prompt,
                messages=messages,
                tools=self.toolbox.definitions(),
                max_tokens=self.spec.max_tokens,
            )
        finally:
            self.stats.model_s += time.perf_counter() - started

    def _responded(
        self, reply: ModelReply, *, content: list[dict[str, Any]] | None = None
    ) -> ModelResponded:
        return ModelResponded(
            agent_id=self.agent_id,
            message_id=reply.message_id,
            model=reply.model,
            stop_reason=reply.stop_reason,
            content=reply.content if content is None else content,
            usage=reply.usage,
            cost_usd=reply.cost_usd,
            duration_ms=reply.duration_ms,
            turn=self.state.turns + 1,
        )

    async def _call_model(self) -> None:
        if (limit := self._limit_reached()) is not None:
            await self._fail(limit[1], limit=limit[0])
            return
        if self._budget_check is not None:
            exceeded = await self._budget_check(self.agent_id)
            if exceeded is not None:
                await self._fail(str(exceeded), limit=exceeded.limit)
                return
        threshold = self.spec.compact_at * self.context_window
        if self.state.context_tokens > threshold:
            if await self._compact() and self.state.context_tokens > threshold:
                # Compacting again would make the same summary: stop rather than loop.
                await self._fail(
                    "the context window is still full after compaction: "
                    f"{self.state.context_tokens} tokens of {self.context_window} "
                    f"(compacting above {threshold:.0f})",
                    limit="context",
                )
                return
            if (limit := self._limit_reached()) is not None:
                await self._fail(limit[1], limit=limit[0])
                return
        cause = self.state.last_position
        try:
            reply = await self._respond(self.state.messages)
        except ModelCallFailed as e:
            await self._fail(str(e))
            return
        self.stats.steps += 1
        await self._append([self._event(self._responded(reply), cause)])
        if reply.stop_reason == "max_tokens":
            await self._fail(
                f"the response was cut at max_tokens ({self.spec.max_tokens})", limit="max_tokens"
            )
        elif reply.stop_reason == "refusal":
            await self._fail("the model refused to continue (stop_reason 'refusal')")

    async def _end_turn(self) -> None:
        state = self.state
        point = "SubagentStop" if self.spec.parent_id is not None else "Stop"
        fields: dict[str, Any] = {
            "stop_hook_active": state.hook_continuations > 0,
            "last_assistant_message": state.last_text or None,
        }
        if point == "SubagentStop":
            fields |= {"subagent_id": self.agent_id, "agent_type": self.spec.role}
        outcome = await self._dispatch(point, **fields)
        self._stop_reason = None  # `continue: false` at Stop: the agent stops, as it would anyway
        events = self._hook_events(outcome, state.last_position)
        if (
            outcome is not None
            and outcome.blocked
            and not outcome.stop
            and state.hook_continuations < MAX_STOP_CONTINUATIONS
        ):
            reason = outcome.reason or f"a {point} hook asked the agent to continue"
            command = AgentCommanded(agent_id=self.agent_id, prompt=reason, by=f"hook:{point}")
            await self._append([*events, self._event(command, state.last_position)])
            return
        completed = AgentCompleted(
            agent_id=self.agent_id,
            summary=state.last_text,
            artifacts=list(state.files_written),
            stop_reason=state.last_stop_reason or "end_turn",
        )
        await self._append([*events, self._event(completed, state.last_position)])

    async def _compact(self) -> bool:
        """Summarise the conversation (PreCompact first); True if it was compacted."""
        state = self.state
        before = state.context_tokens
        outcome = await self._dispatch("PreCompact", trigger="auto")
        if outcome is not None and outcome.blocked:
            await self._append(self._hook_events(outcome, state.last_position))
            return False
        cause = state.last_position
        messages = [dict(m) for m in state.messages]
        last = messages[-1]
        content = last["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        messages[-1] = {**last, "content": [*blocks, {"type": "text", "text": COMPACTION_PROMPT}]}
        try:
            reply = await self._respond(messages)
        except ModelCallFailed as e:
            logger.debug("compaction of %s failed, carrying on uncompacted: %s", self.agent_id, e)
            return False
        summary = reply.text or "(the model gave no summary)"
        after_messages = [{"role": "user", "content": COMPACTED_PREFIX + summary}]
        try:
            after = await self.client.count_tokens(
                model=self.model_info.id,
                system=self.system_prompt,
                messages=after_messages,
                tools=self.toolbox.definitions(),
            )
        except ModelCallFailed:
            after = (len(self.system_prompt) + len(after_messages[0]["content"])) // 4
        text_only = [b for b in reply.content if b.get("type") == "text"]
        compacted = ContextCompacted(
            agent_id=self.agent_id,
            trigger="auto",
            tokens_before=before,
            tokens_after=after,
            summary=summary,
        )
        events = [
            *self._hook_events(outcome, cause),
            self._event(self._responded(reply, content=text_only), cause),
            self._event(compacted, cause),
        ]
        await self._append(events)
        restart = await self._dispatch(
            "SessionStart", source="compact", model=self.model_info.id, agent_type=self.spec.role
        )
        if hook_events := self._hook_events(restart, self.state.last_position):
            await self._append(hook_events)
        return True

    # -- tools ------------------------------------------------------------------------------

    def _tool_context(self, requested_at: int | None) -> ToolContext:
        async def emit(data: EventModel) -> RecordedEvent:
            return (await self._append([self._event(data, requested_at)]))[-1]

        return ToolContext(
            workspace=self.workspace,
            agent_id=self.agent_id,
            run_id=self.spec.run_id,
            parent_id=self.spec.parent_id,
            emit=emit,
            extra=self._tool_extra,
        )

    async def _run_tools(self) -> None:
        state = self.state
        unrequested = [c for c in state.pending if c.requested_at is None]
        if unrequested:
            cause = state.last_position
            await self._append(
                [
                    self._event(
                        ToolCallRequested(
                            agent_id=self.agent_id,
                            tool_use_id=c.tool_use_id,
                            name=c.name,
                            input=c.input,
                        ),
                        cause,
                    )
                    for c in unrequested
                ]
            )
        # The results of one response's calls are appended together (note 1 of the module).
        done: list[NewEvent] = []
        for call in list(state.pending):
            if self._stop_reason is not None:
                break
            done += await self._run_tool(call)
        if done:
            await self._append(done)

    async def _run_tool(self, call: PendingCall) -> list[NewEvent]:
        """Run one call with its hooks; its HookInvoked and ToolCallCompleted, not appended yet."""
        cause = call.requested_at
        usage_fields = {"usage": self.state.usage(), "cost_usd": self.state.cost_usd}
        blocked = False
        result: ToolResult
        tool_input: dict[str, Any] = call.input
        started = time.perf_counter()
        pre_events: list[NewEvent] = []
        try:
            validated = self.toolbox.validate(call.name, call.input)
        except ToolError as e:
            result = ToolResult(str(e), is_error=True)
        else:
            pre = await self._dispatch(
                "PreToolUse",
                tool_name=call.name,
                tool_input=call.input,
                tool_use_id=call.tool_use_id,
                **usage_fields,
            )
            pre_events = self._hook_events(pre, cause)
            if pre is not None and (pre.blocked or pre.permission in ("deny", "ask")):
                blocked = True
                result = ToolResult(
                    f"blocked by a PreToolUse hook: {pre.reason or 'no reason given'}",
                    is_error=True,
                )
            else:
                try:
                    if pre is not None and pre.updated_input is not None:
                        tool_input = pre.updated_input
                        validated = self.toolbox.validate(call.name, tool_input)
                    tool_started = time.perf_counter()
                    try:
                        result = await self.toolbox.get(call.name)(
                            validated, self._tool_context(cause)
                        )
                    finally:
                        self.stats.tool_s += time.perf_counter() - tool_started
                except ToolError as e:
                    result = ToolResult(str(e), is_error=True)
        post_events: list[NewEvent] = pre_events
        if not blocked:
            if result.is_error:
                post = await self._dispatch(
                    "PostToolUseFailure",
                    tool_name=call.name,
                    tool_input=tool_input,
                    tool_use_id=call.tool_use_id,
                    error=result.content,
                    **usage_fields,
                )
            else:
                post = await self._dispatch(
                    "PostToolUse",
                    tool_name=call.name,
                    tool_input=tool_input,
                    tool_use_id=call.tool_use_id,
                    tool_response=result.content,
                    **usage_fields,
                )
            post_events += self._hook_events(post, cause)
            if post is not None:
                notes = [
                    n for n in (post.reason if post.blocked else None, post.additional_context) if n
                ]
                if notes:
                    text = result.content + "".join(f"\n\n[hook] {n}" for n in notes)
                    result = replace(result, content=text)
        completed = ToolCallCompleted(
            agent_id=self.agent_id,
            tool_use_id=call.tool_use_id,
            name=call.name,
            result=result.content,
            is_error=result.is_error,
            blocked=blocked,
            duration_ms=(time.perf_counter() - started) * 1000,
            files_read=list(result.files_read),
            files_written=list(result.files_written),
        )
        self.stats.tool_calls += 1
        return [*post_events, self._event(completed, cause)]
