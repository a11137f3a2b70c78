"""Approvals: a tool call a hook answered "ask" waits for a person, who allows or denies it.

    gate = ApprovalGate(log, hooks, timeout_s=600)
    answer = await gate.ask(call, "Bash", {"command": "rm -rf dist"}, reason="...", events=[...])
    ...                                             # elsewhere, a person (HTTP, CLI):
    await decide_approval(store, runner, approval_id, decision="allow", by="alice")

The flow, as Claude Code's permission dialog, with a person who may be
anywhere: PermissionRequest hooks run first and may decide (allow, with an
updated input, or deny). When none does, the agent appends `ApprovalRequested`
to its own stream, fires a Notification (`permission_prompt`) and sleeps on
the log's subscription, spending no tokens, until the stream
`approval-<id>` holds an `ApprovalDecided`: a person's answer, or its own
"deny" by "timeout" when `timeout_s` passes first.

Notes (do not fix without reading this):
1. Exactly one answer: `ApprovalDecided` is appended with expected version
   `NO_STREAM` to `approval-<id>`, so of a person and the timeout (or two
   people) the first wins and the others get `ApprovalClosed`. The answer's
   meta carries the agent's run, so an export of the run holds it.
2. Restart-safe: the pending approval is in the agent's stream. A resumed
   agent whose call was on hold finds it in its state and waits for the same
   approval, until the deadline counted from when it was asked (an answer
   given while no process ran is found at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from events import (
    NO_STREAM,
    ApprovalDecided,
    ApprovalRequested,
    EventFilter,
    EventStore,
    Meta,
    NewEvent,
    RecordedEvent,
    VersionConflict,
)
from projections import ProjectionRunner

from ._agent_hooks import AgentHooks
from ._agent_log import AgentLog
from .errors import ApprovalClosed, ApprovalNotFound

__all__ = [
    "Answer",
    "ApprovalGate",
    "approval_stream",
    "decide_approval",
    "wait_for_decision",
]

logger = logging.getLogger(__name__)

TIMEOUT_BY = "timeout"
"""`ApprovalDecided.by` when nobody answered in time."""


def approval_stream(approval_id: str) -> str:
    """The stream that holds an approval's answer (its only event)."""
    return f"approval-{approval_id}"


def new_approval_id() -> str:
    return f"apr_{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True, slots=True)
class Answer:
    """What became of a call on hold: allowed (maybe with a new input) or denied, and by whom."""

    allowed: bool
    reason: str | None
    by: str
    updated_input: dict[str, Any] | None = None


async def wait_for_decision(
    store: EventStore, approval_id: str, timeout_s: float
) -> ApprovalDecided | None:
    """The answer to `approval_id`, waiting up to `timeout_s` seconds for it; None if none came.

    Sleeps on the store's subscription: no polling of its own, no tokens.
    """
    stream = approval_stream(approval_id)
    head = await store.head()  # first the head, then the stream: an answer between is seen
    found = await store.read_stream(stream)
    if found:
        return _decision(found[0])
    if timeout_s <= 0:
        return None
    subscription = store.subscribe(after=head, where=EventFilter.of(stream_ids=[stream]))
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                async for event in subscription:
                    return _decision(event)
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]
    return None


def _decision(event: RecordedEvent) -> ApprovalDecided:
    data = event.data
    assert isinstance(data, ApprovalDecided), f"{event.stream_id} holds a {event.type}"
    return data


async def _append_decision(
    store: EventStore, decided: ApprovalDecided, meta: Meta
) -> RecordedEvent:
    """Append the answer; `ApprovalClosed` if there is one already (note 1)."""
    stream = approval_stream(decided.approval_id)
    try:
        [recorded] = await store.append(
            stream, [NewEvent(decided, meta)], expected_version=NO_STREAM
        )
    except VersionConflict:
        existing = await store.read_stream(stream)
        first = _decision(existing[0]) if existing else None
        status = "allowed" if first and first.decision == "allow" else "denied"
        raise ApprovalClosed(decided.approval_id, status, first.by if first else None) from None
    return recorded


async def decide_approval(
    store: EventStore,
    runner: ProjectionRunner,
    approval_id: str,
    *,
    decision: Literal["allow", "deny"],
    by: str,
    reason: str | None = None,
) -> RecordedEvent:
    """A person's answer to a pending approval; returns the recorded `ApprovalDecided`.

    Raises `ApprovalNotFound` (no such approval), `ApprovalClosed` (answered
    already, or its agent failed, completed or was deleted first); nothing is
    written then.
    """
    await runner.wait_for(await store.head())
    agents = runner.projection("agents")
    approval = agents.approval_view(runner.state("agents"), approval_id)  # type: ignore[attr-defined]
    if approval is None:
        raise ApprovalNotFound(approval_id)
    if approval["status"] != "pending":
        raise ApprovalClosed(approval_id, approval["status"], approval.get("by"))
    decided = ApprovalDecided(
        approval_id=approval_id,
        agent_id=approval["agent_id"],
        tool_use_id=approval["tool_use_id"],
        decision=decision,
        reason=reason,
        by=by,
    )
    meta = Meta(run_id=approval["run_id"], agent_id=approval["agent_id"], source="api")
    recorded = await _append_decision(store, decided, meta)
    await runner.offer([recorded])
    return recorded


class ApprovalGate:
    """Puts one agent's tool calls on hold for a person (module docstring)."""

    def __init__(self, log: AgentLog, hooks: AgentHooks, *, timeout_s: float) -> None:
        self._log = log
        self._hooks = hooks
        self.timeout_s = timeout_s

    def pending(self, tool_use_id: str) -> bool:
        """Whether the log shows this call on hold already (a resumed agent, note 2)."""
        return tool_use_id in self._log.state.approvals

    async def ask(
        self,
        tool_use_id: str,
        tool_name: str,
        tool_input: dict[str, Any],
        *,
        reason: str | None,
        events: list[NewEvent],
        cause: int | None,
        usage: dict[str, Any],
    ) -> Answer:
        """PermissionRequest hooks, else a person: the answer to a call a hook put on hold.

        `events` (the calls finished before it, the PreToolUse hooks' records)
        are appended before it waits, with the request.
        """
        held = self._log.state.approvals.get(tool_use_id)
        if held is not None:  # note 2
            if events:
                await self._log.append(events)
            request, asked_at = held
            return await self._wait(request, asked_at)
        permission = await self._hooks.dispatch(
            "PermissionRequest",
            tool_name=tool_name,
            tool_input=tool_input,
            fleet_tool_use_id=tool_use_id,
            **usage,
        )
        hook_events = [*events, *self._hooks.events(permission, cause)]
        if permission is not None and permission.permission is not None:
            if hook_events:
                await self._log.append(hook_events)
            allowed = permission.permission == "allow"
            return Answer(
                allowed, permission.reason, "PermissionRequest hook", permission.updated_input
            )
        request = ApprovalRequested(
            approval_id=new_approval_id(),
            agent_id=self._log.spec.agent_id,
            tool_use_id=tool_use_id,
            tool_name=tool_name,
            tool_input=tool_input,
            reason=reason,
            timeout_s=self.timeout_s,
        )
        [*_, recorded] = await self._log.append([*hook_events, self._log.event(request, cause)])
        await self._hooks.notify(
            f"{self._log.spec.name} needs your permission to use {tool_name} "
            f"(approval {request.approval_id})",
            notification_type="permission_prompt",
            title="Permission needed",
        )
        return await self._wait(request, recorded.recorded_at)

    async def _wait(self, request: ApprovalRequested, asked_at: datetime) -> Answer:
        elapsed = (datetime.now(UTC) - asked_at).total_seconds()
        decided = await wait_for_decision(
            self._log.store, request.approval_id, request.timeout_s - elapsed
        )
        if decided is None:
            decided = await self._time_out(request)
        return Answer(decided.decision == "allow", decided.reason, decided.by)

    async def _time_out(self, request: ApprovalRequested) -> ApprovalDecided:
        """Deny for want of an answer, unless someone answered just now (note 1)."""
        decided = ApprovalDecided(
            approval_id=request.approval_id,
            agent_id=request.agent_id,
            tool_use_id=request.tool_use_id,
            decision="deny",
            reason=f"no answer within {request.timeout_s:g} s",
            by=TIMEOUT_BY,
        )
        try:
            await _append_decision(self._log.store, decided, self._log.meta(None))
        except ApprovalClosed:
            found = await self._log.store.read_stream(approval_stream(request.approval_id))
            return _decision(found[0])
        logger.debug("approval %s timed out: denied", request.approval_id)
        return decided
