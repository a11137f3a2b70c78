"""An agent's hook points: the payload each one gets, and the HookInvoked events it leaves.

    hooks = AgentHooks(dispatcher, log, model_id="claude-haiku-...", stats=stats)
    outcome = await hooks.dispatch("UserPromptSubmit", prompt=prompt)
    events = hooks.events(outcome, causation)     # its HookInvoked, not appended yet

Every payload carries the fields Claude Code gives (`session_id` is the agent
id, `cwd` its workspace, `transcript_path` its transcript) plus the agent's,
run's and parent's ids. A hook answering `continue: false` is remembered in
`stop_reason`: the loop ends the agent with AgentFailed(limit="hook") at its
next step. A detached (`async`) hook's record is appended when it ends.

Notes (do not fix without reading this):
1. A Stop (or SubagentStop) hook that blocks makes its reason the agent's next
   prompt, and one that answers `additionalContext` (non-error feedback) makes
   that context its next prompt, as in Claude Code; at most
   `MAX_STOP_CONTINUATIONS` (Claude Code's 8) times in a row, after which the
   agent completes as it would without the hook.
2. SessionEnd's `reason` is one of Claude Code's: a fleet agent's session ends
   as "other"; `fleet_reason` says how ("delete", "close").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from events import HookInvoked, NewEvent
from hooks import HookDispatcher, HookOutcome, build_payload

from ._agent_log import AgentLog
from ._agent_spec import AgentStats

__all__ = ["MAX_STOP_CONTINUATIONS", "AgentHooks", "StopDecision"]

logger = logging.getLogger(__name__)

MAX_STOP_CONTINUATIONS = 8


@dataclass(frozen=True, slots=True)
class StopDecision:
    """What the Stop hooks said at the end of a turn: their events, and a prompt to go on with."""

    events: Sequence[NewEvent]
    point: str  # "Stop", or "SubagentStop" for an agent with a parent
    continue_with: str | None  # the hook's reason, when it asks the agent to continue


class AgentHooks:
    """Dispatches one agent's hook points; None as the dispatcher means no hooks.

    Args:
        dispatcher: a `hooks.HookDispatcher`, or None.
        log: the agent's stream (the ids and workspace of every payload, the meta of events).
        model_id: the model named in SessionStart payloads.
        stats: where the time spent in hooks is counted.
        transcript_path: the agent's transcript (`transcript_path` in every payload).
        parent_transcript: its parent's, for an agent with a parent (SubagentStop's
            `transcript_path`, its own being `agent_transcript_path`).
    """

    def __init__(
        self,
        dispatcher: HookDispatcher | None,
        log: AgentLog,
        *,
        model_id: str,
        stats: AgentStats,
        transcript_path: str = "",
        parent_transcript: str | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.stop_reason: str | None = None  # a hook's `continue: false`, until the loop acts
        self.transcript_path = transcript_path
        self.parent_transcript = parent_transcript
        self._log = log
        self._model_id = model_id
        self._stats = stats

    async def dispatch(self, point: str, **fields: Any) -> HookOutcome | None:
        """Run the hooks of `point` with the agent's payload; None when it has no hooks."""
        dispatcher, spec = self.dispatcher, self._log.spec
        if dispatcher is None or not dispatcher.has_hooks(point):
            return None
        started = time.perf_counter()
        await self._log.flush_transcript()  # hooks may read it (`_transcript.py`, note 3)
        fields.setdefault("transcript_path", self.transcript_path)
        payload = build_payload(
            point,
            session_id=spec.agent_id,
            cwd=str(spec.workspace),
            agent_id=spec.agent_id,
            parent_id=spec.parent_id,
            run_id=spec.run_id,
            **fields,
        )
        outcome = await dispatcher.dispatch(point, payload, on_detached=self._detached)
        self._stats.hook_s += time.perf_counter() - started
        if outcome.stop:
            self.stop_reason = outcome.stop_reason or f"a {point} hook stopped the agent"
        return outcome

    async def _detached(self, record: HookInvoked) -> None:
        """A detached hook ended: its record goes to the agent's stream (and to the model)."""
        meta = self._log.meta(self._log.state.last_position, source="hook")
        await self._log.append([NewEvent(record, meta)])

    async def notify(
        self, message: str, *, notification_type: str, title: str | None = None
    ) -> None:
        """Fire Notification (Claude Code's: a person should look) and append its records."""
        outcome = await self.dispatch(
            "Notification", message=message, notification_type=notification_type, title=title
        )
        if events := self.events(outcome, self._log.state.last_position):
            await self._log.append(events)

    def events(self, outcome: HookOutcome | None, causation: int | None) -> list[NewEvent]:
        """The HookInvoked events of `outcome` (none for None), caused by `causation`."""
        if outcome is None:
            return []
        meta = self._log.meta(causation, source="hook")
        return [NewEvent(inv, meta) for inv in outcome.invocations]

    async def session_start(self, source: str) -> None:
        """SessionStart (and SubagentStart for a new agent with a parent); appends their events."""
        log, spec = self._log, self._log.spec
        outcome = await self.dispatch(
            "SessionStart", source=source, model=self._model_id, agent_type=spec.role
        )
        events = self.events(outcome, log.state.last_position)
        if spec.parent_id is not None and source == "startup":
            sub = await self.dispatch(
                "SubagentStart", subagent_id=spec.agent_id, agent_type=spec.role
            )
            events += self.events(sub, log.state.last_position)
        if events:
            await log.append(events)

    async def session_end(self, how: str) -> list[NewEvent]:
        """SessionEnd, the agent ended `how` (note 2); its events, not appended yet."""
        outcome = await self.dispatch("SessionEnd", reason="other", fleet_reason=how)
        return self.events(outcome, self._log.state.last_position)

    def stops_quietly(self) -> bool:
        """True when `stop()` has no hook to run: the turn ends with no event of its own."""
        point = "SubagentStop" if self._log.spec.parent_id is not None else "Stop"
        return self.dispatcher is None or not self.dispatcher.has_hooks(point)

    async def stop(self) -> StopDecision:
        """Stop (SubagentStop for a child) at the end of a turn: go on, or let the agent end."""
        state, spec = self._log.state, self._log.spec
        point = "SubagentStop" if spec.parent_id is not None else "Stop"
        fields: dict[str, Any] = {
            "stop_hook_active": state.hook_continuations > 0,
            "last_assistant_message": state.last_text or None,
        }
        if point == "SubagentStop":
            fields |= {
                "subagent_id": spec.agent_id,
                "agent_type": spec.role,
                "agent_transcript_path": self.transcript_path,
                "transcript_path": self.parent_transcript or self.transcript_path,
            }
        outcome = await self.dispatch(point, **fields)
        self.stop_reason = None  # `continue: false` at Stop: the agent stops, as it would anyway
        events = self.events(outcome, state.last_position)
        if outcome is None or outcome.stop or state.hook_continuations >= MAX_STOP_CONTINUATIONS:
            return StopDecision(events, point, None)
        if outcome.blocked:
            reason = outcome.reason or f"a {point} hook asked the agent to continue"
            return StopDecision(events, point, reason)
        if outcome.additional_context:  # note 1: feedback that keeps the agent going
            return StopDecision(events, point, outcome.additional_context)
        return StopDecision(events, point, None)
