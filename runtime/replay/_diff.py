"""Where a re-executed run departs from its recording: tool results, tool calls, hook decisions.

Each agent of the recording is paired with the agent of the re-execution that
has its name and role (the k-th of that name with the k-th). Within a pair, a
tool call is known by its step (the agent's model response that asked for it,
1-based over the agent's life) and its place in that response; a hook
decision by its hook point and step (and the call, at the tool points). Then:

- `tool_call`: the call made is not the recorded one (another name, or an
  input a PreToolUse hook rewrote differently), or one side has no such call;
- `tool_result`: the same call gave another result (or error or block flag);
- `hook_decision`: the hooks at one point decided otherwise (every decision
  that is not "none" counts; which hooks and their reasons are shown);
- `missing_response`: the agent asked for an answer the recording does not
  have (`ReplayResponder` answered 400; see `ReplayScript.misses`).

Results are compared after masking what differs on every run and says
nothing about tools or hooks (`REPLAY_MASKS`: the workspace folder, timings
like `0.07s`, `*_ms` numbers, git hashes); `exact=True` compares them raw.

Notes (do not fix without reading this):
1. Old ids in the recording (the run's, its agents') are translated to the
   re-execution's before anything is compared, as `ReplayResponder` does for the
   answers it serves.
2. When an agent of the re-execution stops early, the calls it never made are
   reported as one `tool_call` divergence (the first, with a count of the
   rest), not one per call: the cause is what matters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from events import (
    AgentCreated,
    HookInvoked,
    ModelResponded,
    RecordedEvent,
    ReplayDiverged,
    ToolCallCompleted,
    ToolCallRequested,
)

from ._answers import ReplayMiss, translate_ids

__all__ = [
    "REPLAY_MASKS",
    "REPLAY_UNCHECKED_TOOLS",
    "AgentTrace",
    "Divergence",
    "compare_runs",
    "trace_agents",
]

_TEXT_LIMIT = 2000

REPLAY_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b\d+\.\d+\s?m?s\b"), "<time>"),
    (re.compile(r'("\w+_ms"\s*:\s*)-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?'), r"\1<ms>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"), "<hash>"),
    # Where git prints a hash it can be all digits (one short hash in 27 is): `git commit`'s
    # "[main 1234567] subject", a `git log --oneline` line, and a hash alone on its line
    # (`git log -1 --format=%h`, `git rev-parse HEAD`).
    (re.compile(r"(\[[^\]\s]+ (?:\(root-commit\) )?)(?:[0-9a-f]{7,40}|<hash>)\]"), r"\1<hash>]"),
    (re.compile(r"(?m)^[0-9a-f]{7,40}(?= |$)"), "<hash>"),
)
"""What is masked in tool results before they are compared: (pattern, replacement)."""

REPLAY_UNCHECKED_TOOLS = frozenset({"wait_for_agents"})
"""Tools whose results are not compared: they tell when other agents finished (timing)."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """One place where the re-execution did something other than its recording."""

    agent_id: str  # in the re-execution (the recorded agent's id if it was never created)
    agent: str  # the agent's name
    step: int  # the agent's model response (1-based; 0 for the agent as a whole)
    kind: str  # tool_result | tool_call | hook_decision | missing_response
    expected: str
    actual: str
    tool: str | None = None
    detail: str = ""

    def to_event(self, run_id: str, replay_of: str) -> ReplayDiverged:
        """The `ReplayDiverged` event data of this divergence."""
        return ReplayDiverged(
            run_id=run_id,
            replay_of=replay_of,
            agent_id=self.agent_id,
            step=self.step,
            kind=self.kind,  # type: ignore[arg-type]
            expected=self.expected,
            actual=self.actual,
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the CLI's `--json` and the API)."""
        return {
            "agent_id": self.agent_id,
            "agent": self.agent,
            "step": self.step,
            "kind": self.kind,
            "tool": self.tool,
            "detail": self.detail,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass(slots=True)
class _Call:
    step: int
    ordinal: int
    tool_use_id: str
    name: str
    input: dict[str, Any]
    result: str | None = None
    is_error: bool = False
    blocked: bool = False


@dataclass(slots=True)
class AgentTrace:
    """What one agent did, keyed for comparison (see the module docstring)."""

    agent_id: str
    name: str
    role: str
    responses: int = 0
    calls: dict[tuple[int, int], _Call] = field(default_factory=dict)
    # (point, step, slot) -> [(hook, decision, reason)], in order
    hooks: dict[tuple[str, int, str], list[tuple[str, str, str]]] = field(default_factory=dict)


def trace_agents(events: Iterable[RecordedEvent]) -> list[AgentTrace]:
    """One trace per agent of a run's events, in the order the agents were created."""
    traces: dict[str, AgentTrace] = {}
    by_call: dict[tuple[str, str], _Call] = {}
    dispatches: dict[str, dict[tuple[str, int], int]] = {}
    last_point: dict[str, str | None] = {}
    for event in events:
        data = event.data
        if isinstance(data, AgentCreated):
            traces[data.agent_id] = AgentTrace(data.agent_id, data.name, data.role)
            dispatches[data.agent_id] = {}
            continue
        agent_id = getattr(data, "agent_id", None)
        trace = traces.get(agent_id) if isinstance(agent_id, str) else None
        if trace is None:
            continue
        point = data.point if isinstance(data, HookInvoked) else None
        if isinstance(data, ModelResponded):
            trace.responses += 1
        elif isinstance(data, ToolCallRequested):
            ordinal = 1 + sum(1 for step, _ in trace.calls if step == trace.responses)
            call = _Call(trace.responses, ordinal, data.tool_use_id, data.name, dict(data.input))
            trace.calls[(call.step, call.ordinal)] = call
            by_call[(trace.agent_id, data.tool_use_id)] = call
        elif isinstance(data, ToolCallCompleted):
            done = by_call.get((trace.agent_id, data.tool_use_id))
            if done is not None:
                done.result, done.is_error, done.blocked = data.result, data.is_error, data.blocked
        elif isinstance(data, HookInvoked):
            _hook(trace, data, by_call, dispatches[trace.agent_id], last_point.get(trace.agent_id))
        last_point[trace.agent_id] = point
    return list(traces.values())


def _hook(
    trace: AgentTrace,
    data: HookInvoked,
    by_call: Mapping[tuple[str, str], _Call],
    dispatches: dict[tuple[str, int], int],
    previous_point: str | None,
) -> None:
    call = by_call.get((trace.agent_id, data.tool_use_id or ""))
    if call is not None:
        key = (data.point, call.step, f"call {call.ordinal}")
        if data.point == "PreToolUse" and data.updated_input is not None:
            call.input = dict(data.updated_input)  # the input the tool was run with
    else:
        # Hooks of one dispatch are appended together: a new run of HookInvoked
        # at this point is the point's next dispatch in this step.
        slot = (data.point, trace.responses)
        if previous_point != data.point:
            dispatches[slot] = dispatches.get(slot, 0) + 1
        key = (data.point, trace.responses, str(dispatches.get(slot, 1)))
    trace.hooks.setdefault(key, []).append((data.hook, data.decision, data.reason or ""))


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _describe(call: _Call) -> str:
    return _clip(f"{call.name} {json.dumps(call.input, sort_keys=True, ensure_ascii=False)}")


def _outcome(call: _Call) -> str:
    if call.result is None:
        return "(no result: the call did not complete)"
    flag = "[blocked] " if call.blocked else "[error] " if call.is_error else ""
    return _clip(flag + call.result)


def _decisions(entries: Sequence[tuple[str, str, str]] | None) -> tuple[list[str], str]:
    """The decisions that count (sorted) and a readable account of them."""
    decided = [(h, d, r) for h, d, r in entries or () if d != "none"]
    if not decided:
        return [], "no hook decided (the call or step went ahead)"
    account = "; ".join(f"{h}: {d}" + (f" ({r})" if r else "") for h, d, r in decided)
    return sorted(d for _, d, _ in decided), _clip(account)


class _Masker:
    def __init__(self, masks: Sequence[tuple[re.Pattern[str], str]], roots: Iterable[str]) -> None:
        self.masks = masks
        self.roots = sorted({r for r in roots if r}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for root in self.roots:
            text = text.replace(root, "<workspace>")
        for pattern, replacement in self.masks:
            text = pattern.sub(replacement, text)
        return text


def compare_runs(
    recorded: Sequence[AgentTrace],
    replayed: Sequence[AgentTrace],
    *,
    ids: Mapping[str, str],
    misses: Sequence[ReplayMiss] = (),
    recorded_roots: Iterable[str] = (),
    replayed_roots: Iterable[str] = (),
    masks: Sequence[tuple[re.Pattern[str], str]] = REPLAY_MASKS,
    unchecked_tools: frozenset[str] = REPLAY_UNCHECKED_TOOLS,
) -> list[Divergence]:
    """Every divergence of `replayed` from `recorded`, agent by agent, step by step.

    `ids` translates the recording's ids to the re-execution's (module note 1);
    `*_roots` are each side's workspace folders (masked with `masks`). The
    arguments are never mutated.
    """
    calls = _Calls(ids, _Masker(masks, recorded_roots), _Masker(masks, replayed_roots))
    pairs, extra = _pair(recorded, replayed)
    out: list[tuple[_Key, Divergence]] = []
    for old, new in pairs:
        if new is None:
            out.append((_WHOLE, _never_created(old)))
        else:
            out += calls.compare(old, new, unchecked_tools)
            out += _compare_hooks(old, new)
    out += [(_WHOLE, _not_recorded(new)) for new in extra]
    paired = {old.agent_id: new for old, new in pairs if new is not None}
    for miss in misses:
        new = paired.get(miss.agent_id or "") or next(
            (t for t in replayed if t.name == miss.name and t.role == miss.role), None
        )
        out.append(((miss.turn, 0, 0), _missing_response(miss, new)))
    order = {t.agent_id: i for i, t in enumerate([*replayed, *recorded])}
    out.sort(key=lambda item: (order.get(item[1].agent_id, len(order)), item[0]))
    return [d for _, d in out]


def _never_created(old: AgentTrace) -> Divergence:
    return Divergence(
        old.agent_id, old.name, 0, "tool_call",
        f"agent {old.name} ({old.role}) with {old.responses} model responses and "
        f"{len(old.calls)} tool calls",
        "the agent was not created in the re-execution",
    )  # fmt: skip


def _not_recorded(new: AgentTrace) -> Divergence:
    return Divergence(
        new.agent_id, new.name, 0, "tool_call", "the recording has no such agent",
        f"agent {new.name} ({new.role}) with {new.responses} model responses and "
        f"{len(new.calls)} tool calls",
    )  # fmt: skip


def _missing_response(miss: ReplayMiss, new: AgentTrace | None) -> Divergence:
    return Divergence(
        new.agent_id if new else (miss.agent_id or ""), miss.name, miss.turn,
        "missing_response", "no recorded model response for this call",
        f"model call {miss.turn} was made", detail=miss.reason,
    )  # fmt: skip


_Key = tuple[int, int, int]  # (step, place in the step, order at that place)
_WHOLE: _Key = (0, 0, 0)


def _pair(
    recorded: Sequence[AgentTrace], replayed: Sequence[AgentTrace]
) -> tuple[list[tuple[AgentTrace, AgentTrace | None]], list[AgentTrace]]:
    pool: dict[tuple[str, str], list[AgentTrace]] = {}
    for trace in replayed:
        pool.setdefault((trace.name, trace.role), []).append(trace)
    pairs: list[tuple[AgentTrace, AgentTrace | None]] = []
    for old in recorded:
        queue = pool.get((old.name, old.role))
        pairs.append((old, queue.pop(0) if queue else None))
    extra = [t for queue in pool.values() for t in queue]
    return pairs, extra


class _Calls:
    """Compares the tool calls of a recorded agent and its re-execution, step by step."""

    def __init__(self, ids: Mapping[str, str], old_side: _Masker, new_side: _Masker) -> None:
        self.ids = ids
        self.old_side = old_side
        self.new_side = new_side

    def compare(
        self, old: AgentTrace, new: AgentTrace, unchecked: frozenset[str]
    ) -> list[tuple[_Key, Divergence]]:
        out: list[tuple[_Key, Divergence]] = []
        keys = sorted(set(old.calls) | set(new.calls))
        for index, key in enumerate(keys):
            a, b = old.calls.get(key), new.calls.get(key)
            at = (key[0], key[1], 1)  # after the call's PreToolUse decision
            if b is None:  # module note 2: the calls never made are one divergence
                assert a is not None
                rest = sum(1 for k in keys[index + 1 :] if k in old.calls and k not in new.calls)
                out.append((at, self._not_made(new, a, rest)))
                break
            if a is None:
                found: Divergence | None = self._unrecorded(new, b)
            else:
                found = self._other_call(new, a, b)
                if found is None and b.name not in unchecked:
                    found = self._other_result(new, a, b)
            if found is not None:
                out.append((at, found))
        return out

    def _unrecorded(self, new: AgentTrace, b: _Call) -> Divergence:
        return Divergence(
            new.agent_id, new.name, b.step, "tool_call", "(no such call recorded)",
            _describe(b), tool=b.name,
        )  # fmt: skip

    def _not_made(self, new: AgentTrace, a: _Call, rest: int) -> Divergence:
        later = f" (and {rest} later recorded calls)" if rest else ""
        return Divergence(
            new.agent_id, new.name, a.step, "tool_call", _describe(a) + later,
            "(not called: the agent stopped before this call)", tool=a.name,
        )  # fmt: skip

    def _other_call(self, new: AgentTrace, a: _Call, b: _Call) -> Divergence | None:
        expected_input = translate_ids(a.input, self.ids)
        if a.name == b.name and expected_input == b.input:
            return None
        moved = _Call(a.step, a.ordinal, a.tool_use_id, a.name, expected_input)
        return Divergence(
            new.agent_id, new.name, b.step, "tool_call", _describe(moved), _describe(b),
            tool=b.name, detail="the call made differs (a PreToolUse hook changed its input?)",
        )  # fmt: skip

    def _other_result(self, new: AgentTrace, a: _Call, b: _Call) -> Divergence | None:
        was = translate_ids(a.result, self.ids) if a.result is not None else None
        if (
            was is not None
            and b.result is not None
            and self.old_side(was) == self.new_side(b.result)
            and (a.is_error, a.blocked) == (b.is_error, b.blocked)
        ):
            return None
        shown = _Call(a.step, a.ordinal, a.tool_use_id, a.name, a.input, was, a.is_error,
                      a.blocked)  # fmt: skip
        return Divergence(
            new.agent_id, new.name, b.step, "tool_result", _outcome(shown), _outcome(b),
            tool=b.name, detail=_describe(b),
        )  # fmt: skip


def _compare_hooks(old: AgentTrace, new: AgentTrace) -> list[tuple[_Key, Divergence]]:
    out: list[tuple[_Key, Divergence]] = []
    for key in sorted(set(old.hooks) | set(new.hooks), key=lambda k: (k[1], k[0], k[2])):
        point, step, slot = key
        before, expected = _decisions(old.hooks.get(key))
        after, actual = _decisions(new.hooks.get(key))
        if before == after:
            continue
        ordinal = int(slot.split()[1]) if slot.startswith("call") else None
        call = new.calls.get((step, ordinal)) if ordinal is not None else None
        # A tool point's decision comes before its call's result; other points after the calls.
        at = (step, ordinal, 0) if ordinal is not None else (step, 1_000_000, int(slot))
        detail = f"{point}" + (f" of {_describe(call)}" if call else "")
        divergence = Divergence(
            new.agent_id, new.name, step, "hook_decision", expected, actual,
            tool=call.name if call else None, detail=detail,
        )  # fmt: skip
        out.append((at, divergence))
    return out
