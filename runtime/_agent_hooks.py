"""An agent's hook points: the payload each one gets, and the HookInvoked events it leaves.

    hooks = AgentHooks(dispatcher, log, model_id="claude-haiku-...", stats=stats)
    outcome = await hooks.dispatch("UserPromptSubmit", prompt=prompt)
    events = hooks.events(outcome, causation)     # its HookInvoked, not appended yet

Every payload carries the fields Claude Code gives (`session_id` is the agent
id, `cwd` its workspace) plus the agent's, run's and parent's ids. A hook
answering `continue: false` is remembered in `stop_reason`: the loop ends the
agent with AgentFailed(limit="hook") at its next step.

Notes (do not fix without reading this):
1. A Stop (or SubagentStop) hook that blocks makes its reason the agent's next
   prompt, at most `MAX_STOP_CONTINUATIONS` times in a row; after that the
   agent completes as it would without the hook.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from events import NewEvent
from hooks import HookDispatcher, HookOutcome, build_payload

from ._agent_log import AgentLog
from ._agent_spec import AgentStats

__all__ = ["MAX_STOP_CONTINUATIONS", "AgentHooks", "StopDecision"]

MAX_STOP_CONTINUATIONS = 3


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
    """

    def __init__(
        self,
        dispatcher: HookDispatcher | None,
        log: AgentLog,
        *,
        model_id: str,
        stats: AgentStats,
    ) -> None:
        self.dispatcher = dispatcher
        self.stop_reason: str | None = None  # a hook's `continue: false`, until the loop acts
        self._log = log
        self._model_id = model_id
        self._stats = stats

    async def dispatch(self, point: str, **fields: Any) -> HookOutcome | None:
        """Run the hooks of `point` with the agent's payload; None when it has no hooks."""
        dispatcher, spec = self.dispatcher, self._log.spec
        if dispatcher is None or not dispatcher.has_hooks(point):
            return None
        started = time.perf_counter()
        payload = build_payload(
            point,
            session_id=spec.agent_id,
            cwd=str(spec.workspace),
            agent_id=spec.agent_id,
            parent_id=spec.parent_id,
            run_id=spec.run_id,
            **fields,
        )
        outcome = await dispatcher.dispatch(point, payload)
        self._stats.hook_s += time.perf_counter() - started
        if outcome.stop:
            self.stop_reason = outcome.stop_reason or f"a {point} hook stopped the agent"
        return outcome

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

    async def session_end(self, reason: str) -> list[NewEvent]:
        """SessionEnd with `reason`; its events, not appended yet."""
        outcome = await self.dispatch("SessionEnd", reason=reason)
        return self.events(outcome, self._log.state.last_position)

    async def stop(self) -> StopDecision:
        """Stop (SubagentStop for a child) at the end of a turn: go on, or let the agent end."""
        state, spec = self._log.state, self._log.spec
        point = "SubagentStop" if spec.parent_id is not None else "Stop"
        fields: dict[str, Any] = {
            "stop_hook_active": state.hook_continuations > 0,
            "last_assistant_message": state.last_text or None,
        }
        if point == "SubagentStop":
            fields |= {"subagent_id": spec.agent_id, "agent_type": spec.role}
        outcome = await self.dispatch(point, **fields)
        self.stop_reason = None  # `continue: false` at Stop: the agent stops, as it would anyway
        events = self.events(outcome, state.last_position)
        if (
            outcome is not None
            and outcome.blocked
            and not outcome.stop
            and state.hook_continuations < MAX_STOP_CONTINUATIONS
        ):
            reason = outcome.reason or f"a {point} hook asked the agent to continue"
            return StopDecision(events, point, reason)
        return StopDecision(events, point, None)
