"""Running the tool calls of a model response: PreToolUse, the tool, PostToolUse, the result.

    calls = ToolCalls(log, hooks, toolbox, workspace, extra={}, stats=stats)
    await calls.run_pending()     # ToolCallRequested, then each call, then their ToolCallCompleted

Whatever happens inside a tool ends as a `ToolCallCompleted`: a `ToolError`
is the tool's own way to fail, and any other exception (an `OSError` on a
path too long, a bug that raises `ValueError`, even a `BaseException` that is
not an interruption) becomes an error result the model sees, naming the
exception, and is logged with its traceback. Only cancellation,
`KeyboardInterrupt` and `SystemExit` pass through: they stop the process or
the agent's task, not the tool call, and the log stays resumable.

Notes (do not fix without reading this):
1. The calls of one model response are run one after another and their
   ToolCallCompleted events are appended together when the last one ends (one
   durable commit instead of one per call), with the HookInvoked of their
   PreToolUse and PostToolUse hooks; each ToolCallRequested is appended before
   any of them runs. A call requested but not completed when a process died is
   not repeated blindly on resume (note 4).
2. A PreToolUse "ask" puts the call on hold for a person (`_approvals.py`):
   PermissionRequest hooks may decide, else ApprovalRequested is appended and
   the agent sleeps until someone allows or denies it (or the timeout
   denies it). The calls completed before it are appended with the request,
   so what ran is durable while the agent waits.
3. Input that fails validation (or names no tool) reaches no hook, as in
   Claude Code: neither PreToolUse (it would be shown a call that cannot run)
   nor PostToolUseFailure (the call never started).
4. A call found requested but not completed (its process died) is settled by
   its tool's kind (`_interrupted.py`): reads run again, writes are checked
   against the hashes their ToolCallRequested recorded, commands are not run
   again and the model is told; `ToolCallInterrupted` records which.
5. A response's ToolCallRequested are usually appended with its ModelResponded,
   in one durable commit (the agent's `_call_model`; their cause, given as
   -k, is recorded as the response's position), then run at the agent's next
   step: the same events, the same causes, one fsync less a step. Those
   calls are not taken for interrupted ones there. The agent appends them
   apart, here, when something may happen between the two: a hook's stop, a
   budget warning's Notification, a response that fails the agent.
6. The agent's transcript lines kept so far are written before its calls run
   only when its toolbox has a tool other than the worker tools (an
   orchestrator's, which start agents): the agents it starts, which may still
   be running at any later step, have hooks that read this transcript
   (SubagentStop's `transcript_path`). A worker agent starts none, and the
   hooks of its own calls flush the lines themselves (`_agent_hooks.py`): its
   steps leave the write, a thread hop (`_transcript.py`, note 3), to the end
   of its turn.
7. A result's text, files and response are made valid UTF-8 (`_utf8`) before
   anything sees them: a file name that is not UTF-8 on disk comes out of
   Python as lone surrogates (`\\udcff`), which no event, transcript or hook
   payload can hold. Glob or Grep in a folder holding one such name failed
   the agent (its ToolCallCompleted was refused as invalid); now each bad
   byte shows as U+FFFD, as ripgrep prints it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from events import (
    EventModel,
    NewEvent,
    RecordedEvent,
    ToolCallCompleted,
    ToolCallInterrupted,
    ToolCallRequested,
    valid_json,
    valid_text,
)

from ._agent_hooks import AgentHooks
from ._agent_log import AgentLog
from ._agent_spec import AgentStats
from ._approvals import ApprovalGate
from ._conversation import PendingCall
from ._interrupted import settle_interrupted, write_expectations
from ._tools import Toolbox, ToolContext, ToolResult
from ._worker_tools import WORKER_TOOLS
from ._workspace import Workspace
from .errors import ToolError

__all__ = ["INTERRUPTIONS", "ToolCalls", "unexpected_error"]

logger = logging.getLogger(__name__)

INTERRUPTIONS = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)
"""Exceptions that stop a task or the process: never turned into a tool error or a failure."""

_ERROR_CHARS = 2_000


def _utf8(result: ToolResult) -> ToolResult:
    """`result` with its text, files and response valid UTF-8 (note 7)."""
    return replace(
        result,
        content=valid_text(result.content),
        files_read=tuple(valid_text(f) for f in result.files_read),
        files_written=tuple(valid_text(f) for f in result.files_written),
        response=None if result.response is None else valid_json(result.response),
    )


def unexpected_error(error: BaseException) -> str:
    """An exception we did not raise on purpose, told in one capped line: `Type: message`."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


@dataclass(slots=True)
class _Attempt:
    """One call on its way: the tool and input it runs with, its hook events, its result."""

    call: PendingCall
    tool_name: str
    tool_input: dict[str, Any]
    events: list[NewEvent] = field(default_factory=list)
    validated: BaseModel | None = None
    result: ToolResult | None = None
    blocked: bool = False
    notes: list[str] = field(default_factory=list)  # what hooks say next to the result


class ToolCalls:
    """Runs an agent's pending tool calls with their hooks; no exception of a tool escapes.

    Args:
        log: the agent's stream (pending calls, appends).
        hooks: the agent's hook points.
        toolbox: the tools it may call.
        workspace: where its tools run.
        extra: given to every tool as `ToolContext.extra`.
        stats: where the time spent in tools is counted.
        gate: where a call a hook answered "ask" waits for a person (note 2).
    """

    def __init__(
        self,
        log: AgentLog,
        hooks: AgentHooks,
        toolbox: Toolbox,
        workspace: Workspace,
        *,
        extra: Mapping[str, Any],
        stats: AgentStats,
        gate: ApprovalGate,
    ) -> None:
        self._log = log
        self._hooks = hooks
        self._toolbox = toolbox
        # Whether it may start agents, whose hooks read its transcript (note 6).
        self._starts_agents = not set(toolbox.names) <= set(WORKER_TOOLS)
        self._workspace = workspace
        self._extra = extra
        self._stats = stats
        self._gate = gate
        self._done: list[NewEvent] = []  # this response's finished calls, not appended yet
        # The calls requested with their model response, not run yet (note 5).
        self._fresh: set[str] = set()

    async def requests(
        self, calls: list[PendingCall], *, with_response: bool = False
    ) -> list[NewEvent]:
        """The ToolCallRequested of `calls`, with their write expectations, not appended yet.

        `with_response`: they are appended right after the ModelResponded whose
        calls they are, in its append (note 5), and caused by it as -k; else
        they are caused by the last event of the stream. Calls requested with
        their response are run by the next `run_pending`, not settled as
        interrupted.
        """
        log = self._log
        expected = await write_expectations(self._toolbox, self._workspace, calls)
        requests = []
        for i, c in enumerate(calls):
            before, after = expected.get(c.tool_use_id, (None, None))
            requested = ToolCallRequested(
                agent_id=log.spec.agent_id,
                tool_use_id=c.tool_use_id,
                name=c.name,
                input=c.input,
                before_sha256=before,
                after_sha256=after,
            )
            cause = -(i + 1) if with_response else log.state.last_position
            requests.append(log.event(requested, cause))
        self._fresh = {c.tool_use_id for c in calls} if with_response else set()
        return requests

    async def run_pending(self) -> None:
        """Record the calls not requested yet, run every pending call, append their results."""
        log = self._log
        # Requested before this step (not with its response, just now), and not on hold:
        # its process stopped mid-call (note 4).
        fresh, self._fresh = self._fresh, set()
        interrupted = {
            c.tool_use_id
            for c in log.state.pending
            if c.requested_at is not None
            and c.tool_use_id not in fresh
            and not self._gate.pending(c.tool_use_id)
        }
        unrequested = [c for c in log.state.pending if c.requested_at is None]
        if unrequested:
            await log.append(await self.requests(unrequested))
        if self._starts_agents:
            await log.flush_transcript()  # their hooks may read this transcript (note 6)
        self._done = []  # appended together: module note 1 (or with an approval, note 2)
        pending = list(log.state.pending)
        for i, call in enumerate(pending):
            if self._hooks.stop_reason is not None:
                break
            if call.tool_use_id in interrupted:
                settled = await settle_interrupted(
                    call,
                    self._toolbox,
                    self._workspace,
                    self._context(call.requested_at),
                    later=[c for c in pending[i + 1 :] if c.tool_use_id in interrupted],
                )
                note = ToolCallInterrupted(
                    agent_id=log.spec.agent_id,
                    tool_use_id=call.tool_use_id,
                    name=call.name,
                    resolution=settled.resolution,
                    reason=settled.reason,
                )
                self._done.append(log.event(note, call.requested_at))
                if settled.result is not None:
                    result = _utf8(settled.result)
                    self._done.append(self._completed(call, result, time.perf_counter()))
                    continue
            self._done += await self._run(call)
        done, self._done = self._done, []
        if done:
            await log.append(done)

    async def _run(self, call: PendingCall) -> list[NewEvent]:
        """One call with its hooks: its HookInvoked and ToolCallCompleted, not appended yet."""
        started = time.perf_counter()
        usage = {"usage": self._log.state.usage(), "cost_usd": self._log.state.cost_usd}
        attempt = await self._before(call, usage)
        ran_ms = 0.0
        if attempt.result is None:
            assert attempt.validated is not None
            ran = time.perf_counter()
            attempt.result = _utf8(await self._execute(attempt, attempt.validated))
            ran_ms = (time.perf_counter() - ran) * 1000
        if not attempt.blocked and attempt.validated is not None:  # module note 3
            await self._after(attempt, usage, ran_ms)
        result = attempt.result
        if result.response is not None and self._log.transcript is not None:
            self._log.transcript.responses[call.tool_use_id] = result.response
        if attempt.notes:
            text = result.content + "".join(f"\n\n[hook] {n}" for n in attempt.notes)
            result = replace(result, content=text)
        completed = self._completed(call, result, started, blocked=attempt.blocked)
        return [*attempt.events, completed]

    def _completed(
        self, call: PendingCall, result: ToolResult, started: float, *, blocked: bool = False
    ) -> NewEvent:
        """The call's ToolCallCompleted, not appended yet."""
        completed = ToolCallCompleted(
            agent_id=self._log.spec.agent_id,
            tool_use_id=call.tool_use_id,
            name=call.name,
            result=result.content,
            is_error=result.is_error,
            blocked=blocked,
            duration_ms=(time.perf_counter() - started) * 1000,
            files_read=list(result.files_read),
            files_written=list(result.files_written),
        )
        self._stats.tool_calls += 1
        return self._log.event(completed, call.requested_at)

    async def _before(self, call: PendingCall, usage: dict[str, Any]) -> _Attempt:
        """Validate the input and run PreToolUse: a result already when the call will not run."""
        try:  # a former tool name is the tool's own call (`Toolbox.resolve`)
            name, tool_input = self._toolbox.resolve(call.name, call.input)
        except ToolError as e:
            return _Attempt(call, call.name, call.input, result=ToolResult(str(e), is_error=True))
        attempt = _Attempt(call, name, tool_input)
        checked = self._validate(name, tool_input)
        if isinstance(checked, ToolResult):  # module note 3
            attempt.result = checked
            return attempt
        if self._gate.pending(call.tool_use_id):  # resumed while on hold (note 2)
            return await self._held(attempt, None, usage)
        pre = await self._hooks.dispatch(
            "PreToolUse",
            tool_name=name,
            tool_input=tool_input,
            tool_use_id=call.tool_use_id,
            **usage,
        )
        attempt.events = self._hooks.events(pre, call.requested_at)
        if pre is not None and pre.additional_context:
            attempt.notes.append(pre.additional_context)
        if pre is not None and (pre.blocked or pre.permission == "deny"):
            attempt.blocked = True
            reason = pre.reason or "no reason given"
            attempt.result = ToolResult(f"blocked by a PreToolUse hook: {reason}", is_error=True)
            return attempt
        if pre is not None and pre.updated_input is not None:
            attempt.tool_input = pre.updated_input
        if pre is not None and pre.permission == "ask":  # note 2
            return await self._held(attempt, pre.reason, usage)
        return self._checked(attempt)

    def _checked(self, attempt: _Attempt) -> _Attempt:
        """The attempt with its input validated, or with the error result the model sees."""
        checked = self._validate(attempt.tool_name, attempt.tool_input)
        if isinstance(checked, ToolResult):
            attempt.result = checked
        else:
            attempt.validated = checked
        return attempt

    async def _held(self, attempt: _Attempt, reason: str | None, usage: dict[str, Any]) -> _Attempt:
        """The call waits for an answer (note 2): allowed, it runs; denied, it is blocked."""
        call = attempt.call
        answer = await self._gate.ask(
            call.tool_use_id,
            attempt.tool_name,
            attempt.tool_input,
            reason=reason,
            events=[*self._done, *attempt.events],
            cause=call.requested_at,
            usage=usage,
        )
        self._done, attempt.events = [], []  # appended by the gate
        if not answer.allowed:
            attempt.blocked = True
            why = answer.reason or "no reason given"
            attempt.result = ToolResult(f"denied by {answer.by}: {why}", is_error=True)
            return attempt
        if answer.updated_input is not None:
            attempt.tool_input = answer.updated_input
        return self._checked(attempt)

    def _validate(self, name: str, raw: Mapping[str, Any]) -> BaseModel | ToolResult:
        """The checked input, or the error result the model sees."""
        try:
            return self._toolbox.validate(name, raw)
        except ToolError as e:
            return ToolResult(str(e), is_error=True)
        except INTERRUPTIONS:
            raise
        except BaseException as e:  # a validator that raises is a tool that fails
            return self._unexpected(name, e)

    async def _execute(self, attempt: _Attempt, validated: BaseModel) -> ToolResult:
        """Run the tool; whatever it raises but an interruption becomes an error result."""
        started = time.perf_counter()
        tool = self._toolbox.get(attempt.tool_name)
        try:
            return await tool(validated, self._context(attempt.call.requested_at))
        except ToolError as e:
            return ToolResult(str(e), is_error=True)
        except INTERRUPTIONS:
            raise
        except BaseException as e:  # the module docstring: any other exception is a tool error
            return self._unexpected(attempt.tool_name, e)
        finally:
            self._stats.tool_s += time.perf_counter() - started

    def _unexpected(self, name: str, error: BaseException) -> ToolResult:
        agent_id = self._log.spec.agent_id
        logger.warning("tool %s of agent %s raised", name, agent_id, exc_info=error)
        return ToolResult(f"the tool failed: {unexpected_error(error)}", is_error=True)

    async def _after(self, attempt: _Attempt, usage: dict[str, Any], ran_ms: float) -> None:
        """PostToolUse (PostToolUseFailure for an error); their notes are added to the result."""
        call, result = attempt.call, attempt.result
        assert result is not None
        common = {
            "tool_name": attempt.tool_name,
            "tool_input": attempt.tool_input,
            "tool_use_id": call.tool_use_id,
            "duration_ms": round(ran_ms, 3),
            **usage,
        }
        if result.is_error:
            post = await self._hooks.dispatch("PostToolUseFailure", error=result.content, **common)
        else:
            response = result.content if result.response is None else dict(result.response)
            post = await self._hooks.dispatch("PostToolUse", tool_response=response, **common)
        attempt.events += self._hooks.events(post, call.requested_at)
        if post is not None:
            reason = post.reason if post.blocked else None
            attempt.notes += [n for n in (reason, post.additional_context) if n]

    def _context(self, requested_at: int | None) -> ToolContext:
        async def emit(data: EventModel) -> RecordedEvent:
            return (await self._log.append([self._log.event(data, requested_at)]))[-1]

        spec = self._log.spec
        return ToolContext(
            workspace=self._workspace,
            agent_id=spec.agent_id,
            run_id=spec.run_id,
            parent_id=spec.parent_id,
            emit=emit,
            extra=self._extra,
        )
