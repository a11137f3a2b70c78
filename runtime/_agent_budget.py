"""An agent's limits, checked before each model call: turns, tokens, cost, and an outside budget.

    budget = AgentBudget(spec, check=fleet_budget_check)
    crossed = await budget.crossed(state)      # None, or ("cost", "cost budget reached: ...")

The agent's own limits come from its `AgentSpec` (`max_turns` per command,
`max_total_tokens` and `max_cost_usd` for its whole life) and are read from
its folded state; the outside check (e.g. the fleet's budget) is awaited
after them. A crossed limit ends the agent with AgentFailed(limit=...).
`passed_warning` says when a model response took the agent's tokens or cost
past `WARN_AT` (80%) of its budget: the agent fires a Notification then.
"""

from __future__ import annotations

from dataclasses import dataclass

from events import ModelResponded

from ._agent_spec import AgentSpec, BudgetCheck
from ._conversation import AgentState

__all__ = ["WARN_AT", "AgentBudget", "Crossed"]

WARN_AT = 0.8
"""The share of a token or cost budget past which a Notification says so."""


@dataclass(frozen=True, slots=True)
class Crossed:
    """A limit the agent reached: its name (AgentFailed's `limit`) and the reason to record."""

    limit: str
    reason: str


class AgentBudget:
    """The limits of one agent; `check` is an outside budget awaited with the agent's id."""

    def __init__(self, spec: AgentSpec, *, check: BudgetCheck | None = None) -> None:
        self.spec = spec
        self._check = check

    def reached(self, state: AgentState) -> Crossed | None:
        """The agent's own limit `state` has reached, if any (turns, then tokens, then cost)."""
        spec = self.spec
        if spec.max_turns is not None and state.turns >= spec.max_turns:
            return Crossed(
                "turns", f"turn limit reached: {state.turns} model calls of {spec.max_turns}"
            )
        if spec.max_total_tokens is not None and state.total_tokens >= spec.max_total_tokens:
            return Crossed(
                "tokens",
                f"token budget reached: {state.total_tokens} of {spec.max_total_tokens}",
            )
        if spec.max_cost_usd is not None and state.cost_usd >= spec.max_cost_usd:
            return Crossed(
                "cost", f"cost budget reached: ${state.cost_usd:.4f} of ${spec.max_cost_usd:.4f}"
            )
        return None

    def would_warn(self, tokens_before: int, cost_before: float, responded: ModelResponded) -> bool:
        """Whether `passed_warning` will say something once `responded` is folded in."""
        usage = responded.usage
        tokens = tokens_before + usage.context_tokens + usage.output_tokens
        return bool(
            self._warnings(tokens_before, cost_before, tokens, cost_before + responded.cost_usd)
        )

    def passed_warning(
        self, tokens_before: int, cost_before: float, state: AgentState
    ) -> list[str]:
        """Messages for what went past `WARN_AT` of its budget since the counts before."""
        return self._warnings(tokens_before, cost_before, state.total_tokens, state.cost_usd)

    def _warnings(
        self, tokens_before: int, cost_before: float, tokens: int, cost: float
    ) -> list[str]:
        spec, said = self.spec, []
        limit, budget = spec.max_total_tokens, spec.max_cost_usd
        if limit is not None and tokens_before < WARN_AT * limit <= tokens:
            said.append(
                f"{spec.name} has used {tokens} of its {limit} tokens ({100 * tokens / limit:.0f}%)"
            )
        if budget is not None and cost_before < WARN_AT * budget <= cost:
            said.append(
                f"{spec.name} has spent ${cost:.4f} of its ${budget:.4f} "
                f"budget ({100 * cost / budget:.0f}%)"
            )
        return said

    async def crossed(self, state: AgentState) -> Crossed | None:
        """`reached(state)`, else the outside budget's verdict (awaited only when there is one)."""
        if (own := self.reached(state)) is not None:
            return own
        if self._check is None:
            return None
        exceeded = await self._check(self.spec.agent_id)
        return None if exceeded is None else Crossed(exceeded.limit, str(exceeded))
