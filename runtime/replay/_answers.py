"""Recorded answers: the simulator's server, answering each request from a recorded run.

    script = ReplayScript.from_events(recorded_events)
    async with Simulator(responder=ReplayResponder(script)) as model:
        client = ModelClient.from_env(simulator_base_url=model.base_url, env={})

The server is the simulator's own (same wire protocol, same streaming, same
request checks); its responder is the recording instead of the role policies:
each request of an agent is answered with that agent's recorded
`ModelResponded` content and usage. So a re-executed run sees exactly the
answers of its recording, costs nothing, and any difference comes from tools
and hooks.

Which recording answers a request:
- the agent: the system prompt's `You are <name>, ...` and `Role: <role>` lines
  pick the recorded agents of that name and role; of those, the one whose
  first prompt is the request's first user text (the first one not taken
  yet otherwise). A compacted conversation starts with the recorded summary,
  which names its agent.
- the turn: the number of assistant messages in the request (after the
  compaction it started from, if any). The compaction call itself is a turn.
A request beyond the recording (say a Stop hook now asks for one more turn)
is answered with a 400 `invalid_request_error` naming the agent and turn, so
the agent stops with a clear error, and it is noted in `misses`.

Notes (do not fix without reading this):
1. Agent and run ids differ between a recording and its re-execution (they
   are made fresh). A recorded answer may hold old ids (an orchestrator's
   `command_agent(agent_id=...)`), so every string of an answer goes through
   `ids` (old id -> new id) before it is served; the replay engine fills it
   as the new run creates its agents (`refresh`, awaited before each answer).
2. Usage is served as recorded, not re-estimated: the context-window use it
   implies decides compaction, so the re-execution compacts where the
   recording did. The cost shown for a replayed run is the recording's; no
   token was paid for it.
3. Several recorded agents may share a name, a role and a first prompt (a
   pattern's review loop makes a second builder and a second reviewer with the
   same task): a first request takes the next of them once the one before has
   moved past its first answer (an identical first request before that is the
   same agent asking again), and a later request goes to the one whose
   recorded answers its conversation holds (the tool_use ids served).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from events import (
    AgentCommanded,
    AgentCreated,
    AgentFailed,
    ContextCompacted,
    ModelResponded,
    RecordedEvent,
    Usage,
)

from .._compaction import COMPACTED_PREFIX
from .._conversation import REMINDER_OPEN
from ..simulator import ErrorReply, role_of, system_text

__all__ = ["RecordedAgent", "ReplayMiss", "ReplayResponder", "ReplayScript", "translate_ids"]

logger = logging.getLogger(__name__)

_NAME_LINE = re.compile(r"^You are (.+?), an agent of a fleet", re.MULTILINE)


def translate_ids(value: Any, ids: Mapping[str, str]) -> Any:
    """`value` (JSON data) with every old id in its strings replaced by its new id.

    Longer ids are replaced first, so an id that contains another is not cut.
    The argument is never mutated.
    """
    if not ids:
        return value
    keys = sorted(ids, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(k) for k in keys))

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(lambda m: ids[m.group(0)], item)
        if isinstance(item, list):
            return [walk(x) for x in item]
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        return item

    return walk(value)


@dataclass(slots=True)
class RecordedAgent:
    """One agent of the recording: who it was and the answers it got, in order."""

    agent_id: str
    name: str
    role: str
    first_prompt: str | None = None
    responses: list[ModelResponded] = field(default_factory=list)
    # summary -> index (in `responses`) of the compaction call that wrote it
    compactions: dict[str, int] = field(default_factory=dict)
    # The recording's model call failed here (the index after its last response).
    failed_at: int | None = None
    failure: str = ""


@dataclass(frozen=True, slots=True)
class ReplayMiss:
    """A request the recording had no answer for."""

    name: str
    role: str
    agent_id: str | None  # the recorded agent it was matched to, if any
    turn: int  # 1-based: the model call of that agent that went unanswered
    reason: str


class ReplayScript:
    """The recorded answers of one run, per agent, and the old -> new id translation."""

    def __init__(self, agents: Iterable[RecordedAgent]) -> None:
        self.agents = list(agents)
        self.ids: dict[str, str] = {}
        self.misses: list[ReplayMiss] = []
        self.served = 0
        self._claims: dict[tuple[str, str, str], list[RecordedAgent]] = {}
        self._served: dict[int, int] = {}  # id(recorded agent) -> responses served so far

    @classmethod
    def from_events(cls, events: Iterable[RecordedEvent]) -> ReplayScript:
        """The script of a run from its events (any order of streams; position order within)."""
        agents: dict[str, RecordedAgent] = {}
        for event in events:
            data = event.data
            if isinstance(data, AgentCreated):
                agents[data.agent_id] = RecordedAgent(data.agent_id, data.name, data.role)
                continue
            agent = agents.get(getattr(data, "agent_id", None) or "")
            if agent is None:
                continue
            if isinstance(data, AgentCommanded) and agent.first_prompt is None:
                agent.first_prompt = data.prompt
            elif isinstance(data, ModelResponded):
                agent.responses.append(data)
            elif isinstance(data, ContextCompacted) and agent.responses:
                agent.compactions[data.summary] = len(agent.responses) - 1
            elif isinstance(data, AgentFailed) and _model_failure(data.error):
                agent.failed_at, agent.failure = len(agent.responses), data.error
        return cls(agents.values())

    def answer(self, body: Mapping[str, Any]) -> ModelResponded | ReplayMiss | str:
        """The recorded response to `body`; a miss; or the recorded error text to answer with."""
        system = system_text(body.get("system"))
        found = _NAME_LINE.search(system)
        name, role = (found.group(1) if found else ""), role_of(system)
        messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
        first = _first_text(messages[0].get("content")) if messages else ""
        assistant_turns = sum(1 for m in messages if m.get("role") == "assistant")
        answered = [m.get("content") for m in messages if m.get("role") == "assistant"]
        agent, base = self._agent(name, role, first, answered)
        turn = base + assistant_turns
        if agent is None:
            reason = f"the recording has no agent {name!r} ({role})"
            return self._miss(name, role, None, turn, reason)
        if turn < len(agent.responses):
            self.served += 1
            self._served[id(agent)] = max(self._served.get(id(agent), 0), turn + 1)
            return agent.responses[turn]
        if turn == agent.failed_at:
            return agent.failure
        return self._miss(
            name, role, agent.agent_id, turn,
            f"the recording has {len(agent.responses)} model responses for agent {name!r} "
            f"({agent.agent_id}); this is call {turn + 1}",
        )  # fmt: skip

    def _agent(
        self, name: str, role: str, first: str, answered: list[Any]
    ) -> tuple[RecordedAgent | None, int]:
        candidates = [a for a in self.agents if a.name == name and a.role == role]
        if first.startswith(COMPACTED_PREFIX):
            summary = first[len(COMPACTED_PREFIX) :]
            for agent in candidates:
                if summary in agent.compactions:
                    return agent, agent.compactions[summary] + 1
            # A summary the recording does not have: the conversation has diverged.
        key = (name, role, first)
        claimed = self._claims.setdefault(key, [])
        if answered:  # note 3: the agent whose recorded answers this conversation holds
            said = [_said(c) for c in answered]
            for agent in reversed(claimed):
                recorded = [_said(r.content) for r in agent.responses[: len(said)]]
                if recorded == said:
                    return agent, 0
            if claimed:
                return claimed[-1], 0
        else:  # a first request: the same agent asking again, or the next one of that name
            for agent in claimed:
                if self._served.get(id(agent), 0) <= 1:
                    return agent, 0
        taken = {id(a) for agents in self._claims.values() for a in agents}
        free = [a for a in candidates if id(a) not in taken]
        exact = [a for a in free if translate_ids(a.first_prompt, self.ids) == first]
        chosen = exact[0] if exact else free[0] if free else None
        if chosen is not None:
            claimed.append(chosen)
        return chosen, 0

    def _miss(
        self, name: str, role: str, agent_id: str | None, turn: int, reason: str
    ) -> ReplayMiss:
        miss = ReplayMiss(name, role, agent_id, turn + 1, reason)
        self.misses.append(miss)
        logger.debug("replay miss: %s", reason)
        return miss


_MODEL_FAILURE = re.compile(r"^model '[^']*' call failed: ")


def _model_failure(error: str) -> bool:
    # How the agent loop records a failed model call (`ModelCallFailed`'s message).
    return _MODEL_FAILURE.match(error) is not None


def _said(content: Any) -> tuple[str, ...]:
    """What identifies an answer in a conversation: its tool_use ids, else its text."""
    blocks = (
        [b for b in content or [] if isinstance(b, Mapping)] if isinstance(content, list) else []
    )
    ids = tuple(str(b.get("id")) for b in blocks if b.get("type") == "tool_use")
    if ids:
        return ids
    if isinstance(content, str):
        return (content[:200],)
    return tuple(str(b.get("text", ""))[:200] for b in blocks if b.get("type") == "text")


def _first_text(content: Any) -> str:
    """The first text of a message that is not hook context (a `<system-reminder>` block)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "text":
                text = str(block.get("text", ""))
                if not text.startswith(REMINDER_OPEN):
                    return text
    return ""


def _message(response: ModelResponded, model: str, ids: Mapping[str, str]) -> dict[str, Any]:
    usage: Usage = response.usage
    return {
        "id": response.message_id or "msg_replay",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": translate_ids([dict(b) for b in response.content], ids),
        "stop_reason": response.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage.cache_creation_5m_input_tokens,
                "ephemeral_1h_input_tokens": usage.cache_creation_1h_input_tokens,
            },
            "output_tokens": usage.output_tokens,
            "service_tier": "standard",
        },
    }


class ReplayResponder:
    """A simulator responder serving a `ReplayScript`: give it as `Simulator(responder=...)`.

    Args:
        script: the recorded answers (its `ids`, `misses` and `served` change as it serves).
        refresh: awaited before each answer (the engine updates `script.ids` there).
    """

    def __init__(
        self, script: ReplayScript, *, refresh: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.script = script
        self._refresh = refresh

    async def __call__(self, body: dict[str, Any]) -> dict[str, Any] | ErrorReply:
        if self._refresh is not None:
            await self._refresh()
        answer = self.script.answer(body)
        if isinstance(answer, ReplayMiss):
            return ErrorReply(400, f"replay: {answer.reason}", "invalid_request_error")
        if isinstance(answer, str):
            return ErrorReply(400, f"replay of a recorded failure: {answer}")
        return _message(answer, str(body["model"]), self.script.ids)
