"""Read models restricted to some agents: queries over the views, for the API's filters.

`fleet_totals(cards, events)` is the fleet view over any set of agent cards
(those of one run, one role, ...), computed from the agents view: the fleet
projection keeps its totals for the whole fleet only. With every card it
equals `FleetProjection.view` up to the rounding of `cost_usd`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._lifecycle import ACTIVE_STATUSES, STATUSES

__all__ = ["fleet_totals"]

_TOKENS = ("input", "output", "cache_write", "cache_read")


def fleet_totals(cards: Iterable[Mapping[str, Any]], events: Mapping[str, Any]) -> dict[str, Any]:
    """The fleet view of `cards` (agent cards as `AgentsProjection.view` gives them).

    `events` is the fleet view's `events` section (the log's pace), copied
    as it is: the pace is the whole log's. Nothing passed in is mutated.
    """
    by_status = dict.fromkeys(STATUSES, 0)
    tokens = dict.fromkeys(_TOKENS, 0)
    total = deleted = context = 0
    cost = 0.0
    for card in cards:
        total += 1
        status = card["status"]
        by_status[status] = by_status.get(status, 0) + 1
        for key in _TOKENS:
            tokens[key] += card["tokens"][key]
        cost += card["cost_usd"]
        if status == "deleted":
            deleted += 1
        else:
            context += card["context"]["used"]
    return {
        "agents": {
            "total": total,
            "active": sum(n for s, n in by_status.items() if s in ACTIVE_STATUSES),
            "by_status": by_status,
        },
        "agents_created": total,
        "agents_deleted": deleted,
        "tokens": {**tokens, "total": sum(tokens.values())},
        "cost_usd": round(cost, 6),
        "context_tokens_in_use": context,
        "events": {**events, "series": list(events["series"])},
    }
