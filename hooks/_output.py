"""What a hook says, and what all the hooks at one point say together.

A hook answers in Claude Code's JSON output contract:

    {"continue": true, "stopReason": "...", "suppressOutput": false, "systemMessage": "...",
     "decision": "block", "reason": "...",
     "hookSpecificOutput": {"hookEventName": "PreToolUse",
                            "permissionDecision": "allow" | "deny" | "ask",
                            "permissionDecisionReason": "...",
                            "updatedInput": {...}, "additionalContext": "..."}}

Each hook's answer becomes a `Verdict`; the verdicts of one dispatch are combined
into a `HookOutcome`: any deny or block wins (with every reason), else ask, else
allow ("defer" is Claude Code's way out for `claude -p` callers and counts as no
decision); `updatedInput` comes from the last hook in config order that gives
one; `additionalContext` is every hook's context, joined in config order.

A PermissionRequest hook answers in `hookSpecificOutput.decision`:
`{"behavior": "allow" | "deny", "updatedInput": {...}, "message": "...",
"interrupt": true}` ("interrupt" stops the agent, as `continue: false` does).

Notes (do not fix without reading this):
1. `continue: false` stops the agent. It also counts as a block (the pending
   action does not happen), except at Stop/SubagentStop, where "block" means the
   opposite ("do not stop") and the stop speaks for itself.
2. Plain (non-JSON) text on stdout is context at SessionStart and
   UserPromptSubmit, and ignored elsewhere, as in Claude Code. Text that starts
   like JSON (`{` or `[`) but is not a valid output object is an "error".
3. `suppressOutput` has no meaning in fleet (there is no transcript view): read, ignored.
4. JSON may escape half a UTF-16 surrogate pair (`"\\ud800"`), which
   JavaScript (Claude Code) takes and Python decodes to a `str` that cannot
   be encoded as UTF-8: stored as is, it would make the `HookInvoked` (and the
   tool call it rewrites) unstorable and stop the agent. Each such half
   becomes U+FFFD, as a UTF-8 decoder would make of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events import HookInvoked, valid_json

from ._points import BLOCKING_POINTS, HookPoint

__all__ = [
    "MAX_TEXT_CHARS",
    "Decision",
    "HookOutcome",
    "HookOutput",
    "HookSpecificOutput",
    "Permission",
]

Decision = Literal["none", "allow", "deny", "ask", "block", "error", "timeout"]
Permission = Literal["allow", "deny", "ask"]

MAX_TEXT_CHARS = 10_000
"""A reason or context longer than this is cut (Claude Code caps hook output alike)."""

_CONTEXT_TEXT_POINTS = frozenset({HookPoint.SessionStart, HookPoint.UserPromptSubmit})
_STOP_POINTS = frozenset({HookPoint.Stop, HookPoint.SubagentStop})
_PERMISSIONS: dict[str | None, Decision] = {"allow": "allow", "deny": "deny", "ask": "ask"}


class HookSpecificOutput(BaseModel):
    """The `hookSpecificOutput` object of a hook's answer."""

    model_config = ConfigDict(frozen=True, strict=True, extra="allow")

    hookEventName: str | None = None
    permissionDecision: str | None = None
    permissionDecisionReason: str | None = None
    updatedInput: dict[str, Any] | None = None
    additionalContext: str | None = None
    decision: dict[str, Any] | None = None  # PermissionRequest's {"behavior": ...}


class HookOutput(BaseModel):
    """A hook's answer in Claude Code's JSON output contract (unknown keys are kept, unused).

    Python hooks may return one of these, or the same shape as a dict.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="allow", populate_by_name=True)

    continue_: bool = Field(default=True, alias="continue")
    stopReason: str | None = None
    suppressOutput: bool = False
    systemMessage: str | None = None
    decision: str | None = None
    reason: str | None = None
    hookSpecificOutput: HookSpecificOutput | None = None


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` cut to `limit` characters, saying so when it was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters cut]"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one hook decided (internal: becomes one `HookInvoked`)."""

    decision: Decision = "none"
    reason: str | None = None
    updated_input: dict[str, Any] | None = None
    context: str | None = None
    stop: bool = False
    stop_reason: str | None = None
    system_message: str | None = None


NO_VERDICT = Verdict()


def error_verdict(reason: str) -> Verdict:
    return Verdict("error", clip(reason))


def exit2_verdict(point: HookPoint, stderr: str) -> Verdict:
    """A command hook's exit code 2: a block where the point can block, else an error."""
    reason = clip(stderr.strip()) or "blocked by hook (exit code 2)"
    if point in BLOCKING_POINTS:
        return Verdict("block", reason)
    return Verdict("error", f"exit code 2, but {point.value} cannot block: {reason}")


def _output_problem(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "output"
    return f"invalid hook output: {where}: {err['msg']}"


def _permission_request(
    out: HookOutput,
) -> Verdict | tuple[Decision, str | None, dict[str, Any] | None, bool]:
    """PermissionRequest's `decision` object: (decision, reason, updated input, interrupt)."""
    hso = out.hookSpecificOutput
    raw = hso.decision if hso is not None else None
    if raw is None:
        if out.decision == "block":
            return "deny", out.reason, None, False
        return "none", out.reason, None, False
    behavior = raw.get("behavior")
    if behavior != "allow" and behavior != "deny":
        return error_verdict(f"invalid hook output: decision.behavior {behavior!r}")
    updated = raw.get("updatedInput") if behavior == "allow" else None
    if updated is not None and not isinstance(updated, dict):
        return error_verdict("invalid hook output: decision.updatedInput is not an object")
    message = raw.get("message") if behavior == "deny" else None
    interrupt = behavior == "deny" and raw.get("interrupt") is True
    return behavior, message if isinstance(message, str) else None, updated, interrupt


def verdict_from_output(point: HookPoint, out: HookOutput) -> Verdict:
    """Read one hook's answer at `point` (note 1 for `continue: false`)."""
    hso = out.hookSpecificOutput
    decision: Decision = "none"
    reason = out.reason
    updated: dict[str, Any] | None = None
    interrupt = False
    if point is HookPoint.PermissionRequest:
        read = _permission_request(out)
        if isinstance(read, Verdict):
            return read
        decision, reason, updated, interrupt = read
    elif point is HookPoint.PreToolUse:
        wanted = hso.permissionDecision if hso else None
        if wanted is None and out.decision is not None:
            # The deprecated top-level form: "approve" / "block".
            wanted = {"approve": "allow", "block": "deny"}.get(out.decision, out.decision)
        elif hso is not None and hso.permissionDecisionReason is not None:
            reason = hso.permissionDecisionReason
        if wanted in _PERMISSIONS:
            decision = _PERMISSIONS[wanted]
        elif wanted not in (None, "defer"):  # defer: no decision (module docstring)
            return error_verdict(f"invalid hook output: unknown permissionDecision {wanted!r}")
        updated = hso.updatedInput if hso else None
    elif out.decision == "block":
        if point in BLOCKING_POINTS:
            decision = "block"
        else:
            reason = f"decision 'block' ignored: {point.value} cannot block"
    elif out.decision not in (None, "approve"):
        return error_verdict(f"invalid hook output: unknown decision {out.decision!r}")
    if decision in ("deny", "block") and not reason:
        reason = "blocked by hook"
    stop = not out.continue_ or interrupt
    stop_reason = None
    if stop:
        asked = "a hook asked the agent to stop (continue: false)"
        default = (reason if interrupt else None) or asked
        stop_reason = clip(out.stopReason or default)
        if point not in _STOP_POINTS:
            decision, reason = "block", reason or stop_reason
    context = hso.additionalContext if hso else None
    return Verdict(
        decision,
        valid_json(clip(reason)) if reason else None,
        valid_json(updated),
        valid_json(clip(context)) if context else None,
        stop,
        valid_json(stop_reason),
        valid_json(clip(out.systemMessage)) if out.systemMessage else None,
    )


def verdict_from_value(point: HookPoint, value: object) -> Verdict:
    """Read what a Python hook returned: None, a `HookOutput`, or a dict of that shape."""
    if value is None:
        return NO_VERDICT
    if isinstance(value, HookOutput):
        return verdict_from_output(point, value)
    if isinstance(value, Mapping):
        try:
            return verdict_from_output(point, HookOutput.model_validate(value))
        except ValidationError as e:
            return error_verdict(_output_problem(e))
    return error_verdict(f"hook returned {type(value).__name__}; expected a dict or None")


def verdict_from_text(point: HookPoint, text: str) -> Verdict:
    """Read a command's stdout (exit 0) or an HTTP hook's 2xx body (note 2)."""
    text = text.strip()
    if not text:
        return NO_VERDICT
    if text[0] not in "{[":
        if point in _CONTEXT_TEXT_POINTS:
            return Verdict(context=clip(text))
        return NO_VERDICT
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:  # a decode error, an integer past 4,300 digits
        return error_verdict(f"output is not valid JSON ({e}): {text[:200]!r}")
    if not isinstance(value, dict):
        return error_verdict(f"output is JSON but not an object: {text[:200]!r}")
    return verdict_from_value(point, value)


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """What the hooks at one point decided together, and the record of each invocation.

    `invocations` are `events.HookInvoked` data in config order, for the runtime to
    append. `updated_input` is None when the call is blocked.
    """

    blocked: bool = False
    reason: str | None = None
    permission: Permission | None = None
    updated_input: dict[str, Any] | None = None
    additional_context: str | None = None
    stop: bool = False
    stop_reason: str | None = None
    system_messages: tuple[str, ...] = ()
    invocations: tuple[HookInvoked, ...] = ()


NO_OUTCOME = HookOutcome()


def combine(
    point: HookPoint, verdicts: list[Verdict], invocations: tuple[HookInvoked, ...]
) -> HookOutcome:
    """The joint decision of the hooks at one point; `verdicts` are in config order."""
    if all(v is NO_VERDICT for v in verdicts):  # observers only: the common case
        return HookOutcome(invocations=invocations)
    blocking = [v for v in verdicts if v.decision in ("deny", "block")]
    blocked = bool(blocking)
    permission: Permission | None = None
    if point is HookPoint.PermissionRequest:
        if blocked:
            permission = "deny"
        elif any(v.decision == "allow" for v in verdicts):
            permission = "allow"
    elif point is HookPoint.PreToolUse:
        if blocked:
            permission = "deny"
        elif any(v.decision == "ask" for v in verdicts):
            permission = "ask"
        elif any(v.decision == "allow" for v in verdicts):
            permission = "allow"
    if blocked:
        reasons = [v.reason for v in blocking if v.reason]
    else:
        reasons = [v.reason for v in verdicts if v.decision == "ask" and v.reason]
    updated = None
    if not blocked:
        for v in verdicts:
            if v.updated_input is not None:
                updated = v.updated_input  # the last in config order wins
    contexts = [v.context for v in verdicts if v.context]
    stops = [v for v in verdicts if v.stop]
    return HookOutcome(
        blocked=blocked,
        reason="\n".join(reasons) or None,
        permission=permission,
        updated_input=updated,
        additional_context="\n".join(contexts) or None,
        stop=bool(stops),
        stop_reason="\n".join(v.stop_reason for v in stops if v.stop_reason) or None,
        system_messages=tuple(v.system_message for v in verdicts if v.system_message),
        invocations=invocations,
    )
