"""The simulator's orchestrator in a conversation: it answers follow-ups and keeps its agents.

The grammar it knows (case does not matter), tried in this order:

    status | list | which agents ...        list_agents, one line per agent (also any
                                             question with the word "status" in it)
    what did [the] WHO decide|find|say|do    list_agents, get_agent_output of WHO (a name or
                                             a role), its summary
    delete|remove [the] WHAT                 WHAT: all / everything, a role in the plural
                                             ("the scouts"), or a name; delete_agent each
    stop|interrupt [the] WHO                 interrupt_agent on each of WHO that works
    rename `a` to `b` / replace "x" with "y" the seed's flow: scouts, then a builder
    anything else                            one builder on it, with the first message as
                                             context; its report

Like every policy it is a pure function of the conversation: the current
prompt is the last user message, the task the first one.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

from ._orchestrator import _json, _sleep_until_done, _work
from ._policies import Call, Observation, Situation, Turn
from ._roles import _directives_in

__all__ = ["conversation_policy"]

_STATUS = re.compile(
    r"^\s*(?:status|list|which agents|what agents|how are|how is)|\bstatus\b", re.IGNORECASE
)
_ASK = re.compile(
    r"what did (?:the\s+)?(?P<who>[\w.-]+)\s+(?:decide|find|say|do|report|write|change)",
    re.IGNORECASE,
)
_DELETE = re.compile(r"^\s*(?:delete|remove)\s+(?:the\s+)?(?P<what>[\w. -]+?)\W*$", re.IGNORECASE)
_STOP = re.compile(r"^\s*(?:stop|interrupt)\s+(?:the\s+)?(?P<who>[\w.-]+?)\W*$", re.IGNORECASE)
_ALL = frozenset({"all", "everything", "all agents", "every agent", "agents"})
_LIVE = frozenset({"created", "working", "waiting", "completed", "failed"})


def conversation_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Answer the current message (see the module docstring)."""
    prompt = situation.prompt.strip()
    if _STATUS.search(prompt):
        agents = yield from _list("Listing the agents.")
        lines = [f"{a['name']} ({a['id']}): {a['status']}" for a in agents]
        return "\n".join(lines) if lines else "No agents yet."
    if match := _ASK.search(prompt):
        return (yield from _ask(match["who"]))
    if match := _DELETE.match(prompt):
        return (yield from _delete(match["what"].strip()))
    if match := _STOP.match(prompt):
        return (yield from _stop(match["who"]))
    if _directives_in(prompt):
        return (yield from _work(prompt, keep=True))
    return (yield from _follow_up(prompt, situation.task.strip()))


def _list(why: str) -> Generator[Turn, list[Observation], list[dict[str, Any]]]:
    """The run's agents but the orchestrators (mine and any other)."""
    result = yield Turn(why, [Call("list_agents", {})])
    listed = _json(result[0]) or []
    return [a for a in listed if a.get("role") != "orchestrator"]


def _matching(agents: list[dict[str, Any]], who: str) -> list[dict[str, Any]]:
    """Agents named `who`, else of the role `who` (a plural "scouts" names the role scout)."""
    who = who.lower()
    named = [a for a in agents if a["name"].lower() == who or a["id"].lower() == who]
    if named:
        return named
    role = who[:-1] if who.endswith("s") else who
    return [a for a in agents if a["role"].lower() == role]


def _ask(who: str) -> Generator[Turn, list[Observation], str]:
    agents = yield from _list(f"Looking for {who}.")
    found = _matching(agents, who)
    if not found:
        names = ", ".join(a["name"] for a in agents) or "none"
        return f"No agent is called or works as {who!r}. The agents: {names}."
    agent = found[-1]  # the newest
    result = yield Turn(
        f"Reading {agent['name']}'s output.", [Call("get_agent_output", {"agent_id": agent["id"]})]
    )
    output = _json(result[0]) or {}
    files = ", ".join(output.get("files_produced", [])) or "no files"
    said = output.get("summary") or output.get("error") or "nothing yet"
    return f"{agent['name']} ({output.get('status', agent['status'])}, {files}) reported: {said}"


def _delete(what: str) -> Generator[Turn, list[Observation], str]:
    agents = yield from _list(f"Finding {what} to delete.")
    live = [a for a in agents if a["status"] in _LIVE]
    targets = live if what.lower() in _ALL else _matching(live, what)
    if not targets:
        return f"Nothing to delete: no live agent is {what!r}."
    results = yield Turn(
        f"Deleting {len(targets)} agents.",
        [Call("delete_agent", {"agent_id": a["id"]}) for a in targets],
    )
    done = [a["name"] for a, r in zip(targets, results, strict=True) if not r.is_error]
    errors = [r.content for r in results if r.is_error]
    return f"Deleted {len(done)}: {', '.join(done) or 'none'}." + (
        f" Errors: {'; '.join(errors)}" if errors else ""
    )


def _stop(who: str) -> Generator[Turn, list[Observation], str]:
    agents = yield from _list(f"Finding {who} to interrupt.")
    targets = [a for a in _matching(agents, who) if a["status"] in ("working", "waiting")]
    if not targets:
        return f"Nothing to interrupt: no agent {who!r} is working."
    results = yield Turn(
        f"Interrupting {len(targets)} agents.",
        [Call("interrupt_agent", {"agent_id": a["id"]}) for a in targets],
    )
    done = [a["name"] for a, r in zip(targets, results, strict=True) if not r.is_error]
    return f"Interrupted {', '.join(done) or 'none'}; they keep their context."


def _follow_up(prompt: str, first: str) -> Generator[Turn, list[Observation], str]:
    """A follow-up I have no recipe for: one builder works on it, I report what it says."""
    created = yield Turn(
        "I'll give this to a builder.",
        [
            Call(
                "create_agent",
                {
                    "name": "builder",
                    "role": "builder",
                    "task": f"Task: {prompt}\n\nThe conversation began with: {first}",
                },
            )
        ],
    )
    data = _json(created[0])
    if not data:
        return f"FAILED: could not create a builder ({created[0].content})"
    builder = str(data["agent_id"])
    yield from _sleep_until_done([builder])
    result = yield Turn(
        "Reading the builder's output.", [Call("get_agent_output", {"agent_id": builder})]
    )
    output = _json(result[0]) or {}
    said = output.get("summary") or output.get("error")
    return f"The builder ({output.get('status')}) reported: {said}"
