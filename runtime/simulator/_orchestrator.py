"""The offline simulator's orchestrator: decompose, create, sleep, read, build, report, delete.

It plays the seed's orchestrator with the real CRUD tools: four scouts in
parallel (alternating models), the sleep pattern (one `wait_for_agents` per
completion, no tokens spent between), their outputs read as summaries and
artifact paths, then one builder commanded with the scouts' findings, and
every agent deleted at the end. Like every simulated role it is a pure
function of the conversation (see `_policies.py`).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from ._policies import Call, Observation, Situation, Turn, register_policy

__all__ = ["SCOUT_MODELS", "orchestrator_policy"]

SCOUT_MODELS = ("haiku", "sonnet", "haiku", "sonnet")
_DONE = frozenset({"completed", "failed", "deleted"})
_WAIT_S = 30.0
_CONVERSATION = "Mode: conversation"


def _json(observation: Observation) -> Any:
    if observation.is_error:
        return None
    try:
        return json.loads(observation.content)
    except ValueError:
        return None


def _task_of(situation: Situation) -> str:
    return (situation.prompt or situation.task).strip()


def _sleep_until_done(ids: list[str]) -> Generator[Turn, list[Observation], dict[str, str]]:
    """Wait (the sleep pattern) until every agent in `ids` is done; one wake per completion."""
    statuses = {i: "working" for i in ids}
    while any(s not in _DONE for s in statuses.values()):
        pending = sorted(i for i, s in statuses.items() if s not in _DONE)
        result = yield Turn(
            f"Sleeping until one of {len(pending)} agents finishes.",
            [Call("wait_for_agents", {"agent_ids": pending, "timeout_s": _WAIT_S})],
        )
        woke = _json(result[0])
        if woke is None:
            break
        statuses.update({k: str(v) for k, v in woke.get("statuses", {}).items() if k in statuses})
    return statuses


def orchestrator_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Scouts in parallel, then a builder on their findings; reports and cleans up.

    In a conversation (`Mode: conversation` in the system prompt) it answers
    each message in the grammar of `_orchestrator_chat.py` and keeps its agents.
    """
    if _CONVERSATION in situation.system:
        from ._orchestrator_chat import conversation_policy  # it builds on this module

        return (yield from conversation_policy(situation))
    return (yield from _work(_task_of(situation), keep=False))


def _work(task: str, *, keep: bool) -> Generator[Turn, list[Observation], str]:
    """The seed's flow: scouts, sleep, their findings, a builder, sleep, its report."""
    scouts = yield from _create_scouts(task)
    if isinstance(scouts, str):
        return scouts
    statuses = yield from _sleep_until_done(scouts)
    findings = yield from _read_findings(scouts)
    if not findings:
        if not keep:
            yield Turn("No scout produced findings; cleaning up.", [Call("delete_all_agents", {})])
        failed = ", ".join(f"{i}: {s}" for i, s in statuses.items())
        return f"FAILED: no scout produced findings ({failed})"
    built = yield from _create_builder(task, findings)
    if isinstance(built, Observation):
        if not keep:
            yield Turn(
                "The builder could not be created; cleaning up.", [Call("delete_all_agents", {})]
            )
        return f"FAILED: could not create the builder ({built.content})"
    yield from _sleep_until_done([built])
    result = yield Turn(
        "The builder is done. Reading its output.",
        [Call("get_agent_output", {"agent_id": built})],
    )
    output = _json(result[0]) or {}
    if not keep:
        yield Turn(
            "Work complete: deleting every agent I created.", [Call("delete_all_agents", {})]
        )
    verdict = "DONE" if output.get("status") == "completed" else "FAILED"
    changed = ", ".join(output.get("files_produced", [])) or "no files"
    return (
        f"{verdict}: {len(scouts)} scouts found the relevant lines ({', '.join(findings)}); "
        f"the builder changed {changed}.\nBuilder's report: {output.get('summary', '')}"
    )


def _create_scouts(task: str) -> Generator[Turn, list[Observation], list[str] | str]:
    """Create the scouts in one turn: their ids, or the failure to report."""
    created = yield Turn(
        f"I'll split this up: {len(SCOUT_MODELS)} scouts search in parallel, then a builder acts "
        "on their findings. I will sleep while they work.",
        [
            Call(
                "create_agent",
                {
                    "name": f"scout-{i}",
                    "role": "scout",
                    "model": model,
                    "task": (
                        f"Task: {task}\n\nFind the files and exact lines this task touches. Do "
                        "not change any file. Write your findings to "
                        f".fleet/notes/relevant-files-{i}.md "
                        "and report back to the orchestrator."
                    ),
                },
            )
            for i, model in enumerate(SCOUT_MODELS, start=1)
        ],
    )
    scouts = [d["agent_id"] for d in map(_json, created) if d and "agent_id" in d]
    if not scouts:
        errors = "; ".join(o.content for o in created if o.is_error)
        return f"FAILED: could not create any scout ({errors})"
    return scouts


def _read_findings(scouts: list[str]) -> Generator[Turn, list[Observation], list[str]]:
    """The notes (`.md` artifacts) of the scouts that completed, read as outputs."""
    outputs = yield Turn(
        "The scouts are done. Reading their outputs (summaries and artifacts only).",
        [Call("get_agent_output", {"agent_id": i}) for i in scouts],
    )
    findings: list[str] = []
    for data in map(_json, outputs):
        if data and data.get("status") == "completed":
            findings.extend(p for p in data.get("files_produced", []) if p.endswith(".md"))
    return findings


def _create_builder(
    task: str, findings: list[str]
) -> Generator[Turn, list[Observation], str | Observation]:
    """Create the builder: its id, or the tool's result when it could not be created."""
    built = yield Turn(
        "Creating a builder with the scouts' findings.",
        [
            Call(
                "create_agent",
                {
                    "name": "builder",
                    "role": "builder",
                    "model": "sonnet",
                    "task": (
                        f"Task: {task}\n\nThe scouts' findings are in {', '.join(findings)}. "
                        "Make the precise changes they call for, then run the project's tests "
                        "and report the result."
                    ),
                },
            )
        ],
    )
    builder = _json(built[0])
    return str(builder["agent_id"]) if builder else built[0]


register_policy("orchestrator", orchestrator_policy)
