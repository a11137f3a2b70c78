"""The simulator's policies: deterministic scripted "models", chosen by the system prompt's role.

A policy is a generator function. It is given the `Situation` (role, task,
current prompt, the tools offered) and yields `Turn`s (some text and tool
calls); each `yield` receives the tool results of that turn as a list of
`Observation`s; its `return` value is the final answer (stop reason `end_turn`).

    def echo(situation):
        results = yield Turn("Looking.", [Call("Glob", {"pattern": "*.md"})])
        return f"I found: {results[0].content}"

    registry = PolicyRegistry.default().with_policy("echo", echo)

The simulator is stateless: for each request it replays the policy from the
start, feeding it the tool results found in the conversation, and answers with
the first turn the conversation does not hold yet. So the answer is a pure
function of the request (system prompt + messages + tools), and a resumed or
retried conversation gets the same answer.

Notes (do not fix without reading this):
1. The task is the first user message; the prompt is the last user message that
   is not only tool results. A policy works on the prompt and falls back to the
   task for what the prompt does not say.
2. Compaction: the runtime asks for a summary with a user text starting with
   `COMPACTION_PROMPT`. The simulator's summary ends with a `<simulator-state>`
   JSON block (task, prompt, the tool results so far, each capped), so that the
   replay can go on from a compacted conversation. A real model writes a
   summary in prose; nothing but the simulator reads that block.
3. A client such as Claude Code wraps context it adds in `<system-reminder>`
   tags inside user messages and sends `role: "system"` messages between
   turns. Neither is the user's prompt: reminders are dropped from what a
   user message says, and system messages are read as part of the system
   prompt (a policy finds the working directory there, for instance).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._compaction import COMPACTED_PREFIX, COMPACTION_PROMPT
from ._usage import CHARS_PER_TOKEN, canonical, estimate_tokens, input_usage

__all__ = [
    "Call",
    "Observation",
    "Policy",
    "PolicyRegistry",
    "PolicyResponder",
    "Reply",
    "Situation",
    "Turn",
    "cache_warming",
    "message_for",
    "register_policy",
    "respond",
]

_STATE_OPEN = "<simulator-state>"
_STATE_CLOSE = "</simulator-state>"
_STATE_RESULT_CHARS = 2_000
_ROLE_LINE = re.compile(r"^\s*Role:\s*([A-Za-z0-9_-]+)", re.MULTILINE)
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Call:
    """A tool call a policy wants made."""

    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Turn:
    """One assistant turn: some text and the tool calls to make (at least one)."""

    text: str
    calls: Sequence[Call]


@dataclass(frozen=True, slots=True)
class Observation:
    """The result of one tool call, as the conversation holds it."""

    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Situation:
    """What a policy knows: its role, the task, the current prompt and the tools offered."""

    role: str
    system: str
    task: str
    prompt: str
    tools: frozenset[str]
    model: str = ""


Policy = Callable[[Situation], Generator[Turn, list[Observation], str]]
"""A policy: a generator function of a `Situation` (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the simulated model answers: content blocks (without ids) and the stop reason."""

    text: str
    calls: Sequence[Call] = ()

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.calls else "end_turn"


class PolicyRegistry:
    """Policies by role; a role with none gets the generic policy. Immutable but for `register`."""

    __slots__ = ("_policies",)

    def __init__(self, policies: Mapping[str, Policy] | None = None) -> None:
        self._policies: dict[str, Policy] = dict(policies or {})

    @classmethod
    def default(cls) -> PolicyRegistry:
        """The built-in role policies (scout, planner, builder, reviewer, shipper) and any
        registered with `register_policy`."""
        from ._roles import ROLE_POLICIES

        return cls({**ROLE_POLICIES, **_EXTRA})

    def with_policy(self, role: str, policy: Policy) -> PolicyRegistry:
        """A new registry where `role` is played by `policy`."""
        return PolicyRegistry({**self._policies, role.lower(): policy})

    def register(self, role: str, policy: Policy) -> None:
        """Make `policy` play `role` in this registry (e.g. a simulator's own)."""
        self._policies[role.lower()] = policy

    def get(self, role: str) -> Policy:
        """The policy for `role`, or the generic one."""
        from ._generic import generic_policy

        return self._policies.get(role.lower(), generic_policy)

    @property
    def roles(self) -> list[str]:
        return sorted(self._policies)


_EXTRA: dict[str, Policy] = {}


def register_policy(role: str, policy: Policy) -> None:
    """Add a policy for `role` to every `PolicyRegistry.default()` made from now on (process-wide).

    For plugins and the orchestrator role; a test should prefer
    `PolicyRegistry.default().with_policy(...)` or `Simulator(...).register_policy(...)`.
    """
    _EXTRA[role.lower()] = policy


# -- reading a request -------------------------------------------------------------------


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []


def _text_of(content: Any) -> str:
    return "\n".join(str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")


def _said(content: Any) -> str:
    """What a user message says, without the `<system-reminder>` blocks a client adds (note 3)."""
    return _REMINDER.sub("", _text_of(content)).strip()


def _result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content", "")
    return content if isinstance(content, str) else _text_of(content)


def system_text(system: Any) -> str:
    """The system prompt as one string (it may be a string or a list of text blocks)."""
    return system if isinstance(system, str) else _text_of(system) if system else ""


def role_of(system: str) -> str:
    """The role named by a `Role: <role>` line of the system prompt ("" when none)."""
    match = _ROLE_LINE.search(system)
    return match.group(1).lower() if match else ""


@dataclass(slots=True)
class _State:
    task: str = ""
    prompt: str = ""
    steps: list[list[Observation]] = field(default_factory=list)


def _parse_state(text: str) -> _State | None:
    start = text.rfind(_STATE_OPEN)
    end = text.rfind(_STATE_CLOSE)
    if start < 0 or end < start:
        return None
    try:
        raw = json.loads(text[start + len(_STATE_OPEN) : end])
        steps = [[Observation(str(o["c"]), bool(o["e"])) for o in step] for step in raw["steps"]]
        return _State(str(raw["task"]), str(raw["prompt"]), steps)
    except (ValueError, KeyError, TypeError):
        return None


def _read_conversation(messages: Sequence[Mapping[str, Any]]) -> tuple[_State, bool]:
    """The task, the current prompt, the tool results since it; whether a summary is asked."""
    state = _State()
    if messages and messages[0].get("role") == "user":
        first = _said(messages[0].get("content"))
        restored = _parse_state(first) if first.startswith(COMPACTED_PREFIX) else None
        if restored is not None:
            state = restored
        else:
            state.task = state.prompt = first
    compaction = False
    last_calls: list[str] = []
    for index, message in enumerate(messages):
        if index == 0 and state.steps:
            continue
        if message.get("role") == "system":
            continue  # instructions, not a turn (note 3)
        blocks = _blocks(message.get("content"))
        if message.get("role") == "assistant":
            last_calls = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
            continue
        asks = [
            b
            for b in blocks
            if b.get("type") == "text" and str(b.get("text", "")).startswith(COMPACTION_PROMPT)
        ]
        if asks:
            compaction = True
            blocks = [b for b in blocks if all(b is not a for a in asks)]
        results = {str(b.get("tool_use_id")): b for b in blocks if b.get("type") == "tool_result"}
        if results:
            ordered = [results[i] for i in last_calls if i in results] or list(results.values())
            state.steps.append(
                [Observation(_result_text(b), bool(b.get("is_error", False))) for b in ordered]
            )
        elif index > 0 and _said(blocks):
            state.prompt = _said(blocks)
            state.steps = []
    return state, compaction


def _summary(state: _State, role: str) -> str:
    calls = sum(len(step) for step in state.steps)
    errors = sum(1 for step in state.steps for o in step if o.is_error)
    payload = {
        "task": state.task,
        "prompt": state.prompt,
        "steps": [
            [{"c": o.content[:_STATE_RESULT_CHARS], "e": o.is_error} for o in step]
            for step in state.steps
        ],
    }
    first_line = state.prompt.strip().splitlines()[0] if state.prompt.strip() else "(none)"
    return (
        f"Summary (offline simulator, role {role or 'generic'}): working on: {first_line}\n"
        f"Progress: {len(state.steps)} turns, {calls} tool calls ({errors} failed).\n"
        f"{_STATE_OPEN}{json.dumps(payload, separators=(',', ':'))}{_STATE_CLOSE}"
    )


def respond(body: Mapping[str, Any], registry: PolicyRegistry) -> Reply:
    """The simulated model's answer to one Messages API request body (a pure function of it)."""
    messages = body.get("messages") or []
    # Mid-conversation system messages add to the system prompt (note 3).
    system = "\n\n".join(
        [system_text(body.get("system"))]
        + [_text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    ).strip()
    role = role_of(system)
    state, compaction = _read_conversation(messages)
    if compaction:
        return Reply(_summary(state, role))
    tools = frozenset(str(t.get("name")) for t in body.get("tools") or [] if isinstance(t, Mapping))
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "none":
        tools = frozenset()  # the API answers without a tool call: so do the policies
    situation = Situation(
        role=role or "generic",
        system=system,
        task=state.task,
        prompt=state.prompt,
        tools=tools,
        model=str(body.get("model", "")),
    )
    return replay(registry.get(situation.role), situation, state.steps)


def replay(policy: Policy, situation: Situation, steps: Iterable[list[Observation]]) -> Reply:
    """Run `policy` past the recorded `steps` and return its next move."""
    gen = policy(situation)
    try:
        turn = next(gen)
        for observations in steps:
            turn = gen.send(observations)
    except StopIteration as stop:
        return Reply(str(stop.value or ""))
    finally:
        gen.close()
    if not turn.calls:
        return Reply(turn.text)
    return Reply(turn.text, tuple(turn.calls))


class PolicyResponder:
    """The simulator's default responder: the scripted policy of the request's role answers.

    It reads `policies` at every request, so a policy registered later plays too.
    """

    def __init__(self, policies: PolicyRegistry) -> None:
        self.policies = policies

    async def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        return message_for(body, respond(body, self.policies))


def cache_warming(body: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to `max_tokens: 0`: the prompt is cached (as its breakpoints say), no text."""
    message = message_for(body, Reply(""))
    message["content"] = []
    message["stop_reason"] = "max_tokens"
    message["usage"]["output_tokens"] = 0
    return message


def message_for(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    """The API's message for `reply` to `body`: ids from the request's digest, usage estimated."""
    # The transport (stream or not) is not part of what is asked.
    digest = hashlib.sha256(
        canonical({k: v for k, v in body.items() if k != "stream"}).encode()
    ).hexdigest()
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for index, call in enumerate(reply.calls):
        call_id = hashlib.sha256(f"{digest}:{index}".encode()).hexdigest()[:24]
        content.append(
            {"type": "tool_use", "id": f"toolu_sim_{call_id}", "name": call.name,
             "input": dict(call.input)}
        )  # fmt: skip
    stop_reason = reply.stop_reason
    output = sum(
        estimate_tokens(b["text"])
        if b["type"] == "text"
        else estimate_tokens(b["name"] + canonical(b["input"]))
        for b in content
    )
    max_tokens = int(body.get("max_tokens") or 0)
    if max_tokens and output > max_tokens:
        text = reply.text[: max_tokens * CHARS_PER_TOKEN]
        content = [{"type": "text", "text": text}] if text else []
        output, stop_reason = max_tokens, "max_tokens"
    usage_in = input_usage(body)
    return {
        "id": f"msg_sim_{digest[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage_in["input_tokens"],
            "cache_creation_input_tokens": usage_in["cache_creation_input_tokens"],
            "cache_read_input_tokens": usage_in["cache_read_input_tokens"],
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage_in["cache_creation_5m"],
                "ephemeral_1h_input_tokens": usage_in["cache_creation_1h"],
            },
            "output_tokens": max(output, 1),
            "service_tier": "standard",
        },
    }
