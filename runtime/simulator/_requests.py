"""What the simulator accepts: a request body checked field by field, as the Messages API does.

`check_request(body, models, endpoint=..., version=...)` returns None for a
request the API would serve, else the `ErrorReply` the API would answer
(400 `invalid_request_error` naming the field, 404 for an unknown model). It
covers the request shapes of `POST /v1/messages` and
`POST /v1/messages/count_tokens` as the API reference documents them
(anthropic SDK 2.14, November 2026), beta fields included: `thinking`
(enabled, adaptive, disabled, between_tools), `context_management`,
`output_config`, `metadata`, `tool_choice`, tool definitions with their newer
fields and Anthropic's own (server) tools, and `role: "system"` messages
inside `messages`.

Notes (do not fix without reading this):
1. Unknown top-level fields are refused ("Extra inputs are not permitted"),
   as the API refuses them; an unknown *nested* field is let through, because
   the API adds nested fields faster than a simulator can follow and a client
   such as Claude Code sends them as soon as they exist.
2. `anthropic-beta` values are not checked: the API refuses a beta name it
   does not know, but Claude Code sends betas of its own release (e.g.
   `claude-code-20250219`, `per-turn-control-2026-07-01`), and an offline
   simulator that refused tomorrow's Claude Code would be no use.
3. Mid-conversation system messages: only models that accept them
   (`ModelInfo.system_messages`), and only right after a user turn (the
   API's placement rule). Their text is instructions, not a turn: the
   user/assistant alternation and the tool_use/tool_result pairing are
   checked as if they were not there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._models import ModelTable

__all__ = [
    "COUNT_TOKENS_FIELDS",
    "MESSAGES_FIELDS",
    "Endpoint",
    "ErrorReply",
    "check_messages",
    "check_request",
    "is_server_tool",
]


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An API error to answer instead of a message (`error_type` defaults from the status)."""

    status: int
    message: str
    error_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


MESSAGES_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stream", "metadata", "stop_sequences",
        "temperature", "top_k", "top_p", "thinking", "tool_choice", "tools", "output_config",
        "output_format", "context_management", "container", "mcp_servers", "service_tier",
        "speed", "inference_geo", "diagnostics", "cache_control", "compaction",
        "billing_policy", "fallbacks", "fallback_credit_token", "thread",
    }
)  # fmt: skip
"""The body fields `POST /v1/messages` accepts (beta fields included)."""

COUNT_TOKENS_FIELDS = frozenset(
    {
        "model", "messages", "system", "thinking", "tool_choice", "tools", "output_config",
        "output_format", "context_management", "mcp_servers", "speed", "cache_control",
        "compaction", "billing_policy",
    }
)  # fmt: skip
"""The body fields `POST /v1/messages/count_tokens` accepts."""

_SAMPLING = ("temperature", "top_p", "top_k")
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_THINKING = frozenset({"enabled", "disabled", "adaptive", "between_tools"})
_DISPLAY = frozenset({"summarized", "omitted", "updates"})
_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
_EDITS = frozenset({"clear_tool_uses_20250919", "clear_thinking_20251015", "compact_20260112"})
_SYSTEM_BLOCKS = frozenset({"text", "tool_addition", "tool_removal"})
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
# Anthropic-defined tools are typed `<name>_<yyyymmdd>` (web_search_20250305, bash_20250124).
_VERSIONED_TOOL = re.compile(r"[a-z][a-z0-9_]*_\d{8}")
_METADATA_USER_ID_CHARS = 256
_NEW_API_VERSION = "2026-10-21"

Endpoint = Literal["messages", "count_tokens"]


def _bad(message: str) -> ErrorReply:
    return ErrorReply(400, message)


def is_server_tool(tool: Mapping[str, Any]) -> bool:
    """Whether a tool definition is one of Anthropic's own (typed), not a custom tool."""
    kind = tool.get("type")
    return isinstance(kind, str) and kind != "custom"


def check_request(
    body: Any,
    models: ModelTable,
    *,
    endpoint: Endpoint = "messages",
    version: str | None = None,
) -> ErrorReply | None:
    """The API's answer to a request it would refuse, or None. `body` is never mutated.

    `version` is the `anthropic-version` header (`2026-10-21` refuses the
    sampling fields for every model).
    """
    if not isinstance(body, dict):
        return _bad("the request body must be a JSON object")
    allowed = MESSAGES_FIELDS if endpoint == "messages" else COUNT_TOKENS_FIELDS
    for name in body:
        if name not in allowed:
            return _bad(f"{name}: Extra inputs are not permitted")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _bad("model: Field required")
    if model not in models:
        return ErrorReply(404, f"model: {model}")
    info = models.resolve(model)
    max_tokens = body.get("max_tokens")
    if endpoint == "messages":
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            return _bad("max_tokens: Field required (an integer >= 0)")
        if max_tokens > info.max_output:
            return _bad(
                f"max_tokens: {max_tokens} > {info.max_output}, which is the maximum allowed "
                f"number of output tokens for {info.id}"
            )
    checks = (
        _check_sampling(body, info.sampling, version),
        _check_system(body.get("system")),
        _check_thinking(body.get("thinking"), max_tokens if endpoint == "messages" else None),
        _check_output_config(body.get("output_config"), "output_config"),
        _check_context_management(body.get("context_management")),
        _check_metadata(body.get("metadata")),
        _check_stream(body),
    )
    for refused in checks:
        if refused is not None:
            return refused
    names, refused = _check_tools(body.get("tools"))
    if refused is not None:
        return refused
    if (
        refused := _check_tool_choice(body.get("tool_choice"), names, body.get("thinking"))
    ) is not None:
        return refused
    return check_messages(body.get("messages"), system_messages=info.system_messages)


def _check_sampling(
    body: Mapping[str, Any], supported: bool, version: str | None
) -> ErrorReply | None:
    for name in _SAMPLING:
        if name not in body or body[name] is None:
            continue
        if version == _NEW_API_VERSION:
            return _bad(f"`{name}` is not supported in API version {_NEW_API_VERSION}")
        if not supported:
            return _bad(f"`{name}` is deprecated for this model.")
        value = body[name]
        if name == "top_k":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return _bad("top_k: Input should be an integer >= 0")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            return _bad(f"{name}: Input should be a number between 0 and 1")
    return None


def _check_stream(body: Mapping[str, Any]) -> ErrorReply | None:
    if "stream" in body and not isinstance(body["stream"], bool):
        return _bad("stream: Input should be a valid boolean")
    sequences = body.get("stop_sequences")
    if sequences is not None and (
        not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences)
    ):
        return _bad("stop_sequences: Input should be a list of strings")
    return None


def _check_text_blocks(blocks: Any, where: str, kinds: frozenset[str]) -> ErrorReply | None:
    for index, block in enumerate(blocks):
        if not isinstance(block, Mapping):
            return _bad(f"{where}.{index}: Input should be an object")
        kind = block.get("type")
        if kind not in kinds:
            expected = ", ".join(f"'{k}'" for k in sorted(kinds))
            return _bad(f"{where}.{index}.type: Input should be {expected}")
        if kind == "text" and not isinstance(block.get("text"), str):
            return _bad(f"{where}.{index}.text: Field required")
        if kind != "text" and not isinstance(block.get("tool"), Mapping):
            return _bad(f"{where}.{index}.tool: Field required")
    return None


def _check_system(system: Any) -> ErrorReply | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return _bad("system: Input should be a valid string or a list of text blocks")
    return _check_text_blocks(system, "system", frozenset({"text"}))


def _check_thinking(thinking: Any, max_tokens: Any) -> ErrorReply | None:
    if thinking is None:
        return None
    if not isinstance(thinking, Mapping) or thinking.get("type") not in _THINKING:
        return _bad(
            "thinking.type: Input should be 'enabled', 'disabled', 'adaptive' or 'between_tools'"
        )
    display = thinking.get("display")
    if display is not None and display not in _DISPLAY:
        return _bad("thinking.display: Input should be 'summarized', 'omitted' or 'updates'")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            return _bad("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            return _bad(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if isinstance(max_tokens, int) and budget >= max_tokens:
            return _bad("`max_tokens` must be greater than `thinking.budget_tokens`.")
    return None


def _check_output_config(config: Any, where: str) -> ErrorReply | None:
    if config is None:
        return None
    if not isinstance(config, Mapping):
        return _bad(f"{where}: Input should be an object")
    effort = config.get("effort")
    if effort is not None and effort not in _EFFORTS:
        return _bad(f"{where}.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    fmt = config.get("format")
    if fmt is not None and (
        not isinstance(fmt, Mapping)
        or fmt.get("type") != "json_schema"
        or not isinstance(fmt.get("schema"), Mapping)
    ):
        return _bad(f"{where}.format: Input should be a json_schema format with a schema")
    return None


def _check_context_management(config: Any) -> ErrorReply | None:
    if config is None:
        return None
    if not isinstance(config, Mapping):
        return _bad("context_management: Input should be an object")
    edits = config.get("edits", [])
    if not isinstance(edits, list):
        return _bad("context_management.edits: Input should be a valid list")
    for index, edit in enumerate(edits):
        if not isinstance(edit, Mapping) or edit.get("type") not in _EDITS:
            expected = ", ".join(f"'{e}'" for e in sorted(_EDITS))
            return _bad(f"context_management.edits.{index}.type: Input should be {expected}")
    return None


def _check_metadata(metadata: Any) -> ErrorReply | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        return _bad("metadata: Input should be an object")
    for name in metadata:
        if name != "user_id":
            return _bad(f"metadata.{name}: Extra inputs are not permitted")
    user_id = metadata.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        return _bad("metadata.user_id: Input should be a valid string")
    if isinstance(user_id, str) and len(user_id) > _METADATA_USER_ID_CHARS:
        return _bad(
            f"metadata.user_id: String should have at most {_METADATA_USER_ID_CHARS} characters"
        )
    return None


def _check_tools(tools: Any) -> tuple[set[str], ErrorReply | None]:
    names: set[str] = set()
    if tools is None:
        return names, None
    if not isinstance(tools, list):
        return names, _bad("tools: Input should be a valid list")
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            return names, _bad(f"tools.{index}: Input should be an object")
        name = tool.get("name")
        if is_server_tool(tool):
            kind = str(tool["type"])
            if not (_VERSIONED_TOOL.fullmatch(kind) or kind == "mcp_toolset"):
                return names, _bad(f"tools.{index}.type: unknown tool type '{kind}'")
            if kind == "mcp_toolset":
                continue  # named by its server, not by `name`
        elif not isinstance(tool.get("input_schema"), Mapping):
            return names, _bad(f"tools.{index}.custom.input_schema: Field required")
        elif tool["input_schema"].get("type") != "object":
            return names, _bad(f"tools.{index}.custom.input_schema.type: Input should be 'object'")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            return names, _bad(
                f"tools.{index}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )
        if name in names:
            return names, _bad("tools: Tool names must be unique.")
        names.add(name)
    return names, None


def _check_tool_choice(choice: Any, names: set[str], thinking: Any) -> ErrorReply | None:
    if choice is None:
        return None
    if not isinstance(choice, Mapping) or choice.get("type") not in _TOOL_CHOICES:
        return _bad("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] == "tool" and choice.get("name") not in names:
        return _bad(f"tool_choice.name: no tool named {choice.get('name')!r} in `tools`")
    thinks = isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive")
    if thinks and choice["type"] in ("any", "tool"):
        return _bad("Thinking may not be enabled when tool_choice forces tool use.")
    return None


def _check_system_message(
    index: int, message: Mapping[str, Any], previous: Any
) -> ErrorReply | None:
    if previous != "user":
        return _bad(f"messages.{index}: a system message must immediately follow a user message")
    content = message.get("content")
    if (content is None or content == [] or content == "") and not message.get("output_config"):
        return _bad(f"messages.{index}: a system message needs content or output_config")
    if isinstance(content, list):
        refused = _check_text_blocks(content, f"messages.{index}.content", _SYSTEM_BLOCKS)
        if refused is not None:
            return refused
    elif content is not None and not isinstance(content, str):
        return _bad(f"messages.{index}.content: must be a string or a list of blocks")
    clear_at = message.get("clear_at")
    if clear_at is not None and clear_at not in ("next_user_message", "never"):
        return _bad(f"messages.{index}.clear_at: Input should be 'next_user_message' or 'never'")
    return _check_output_config(message.get("output_config"), f"messages.{index}.output_config")


def _check_turn(
    index: int, message: Mapping[str, Any], pending: set[str]
) -> tuple[set[str], ErrorReply | None]:
    """A user or assistant message: its content, and the tool results it owes or gives."""
    for name in ("clear_at", "output_config"):
        if name in message:
            return pending, _bad(f"messages.{index}.{name}: Extra inputs are not permitted")
    content = message.get("content")
    if not isinstance(content, str | list):
        return pending, _bad(f"messages.{index}.content: must be a string or a list of blocks")
    blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
    if message["role"] == "assistant":
        if pending:
            return pending, _bad(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(pending))}."
            )
        return {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}, None
    answered = {str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"}
    unexpected = answered - pending
    if unexpected:
        return pending, _bad(
            f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` "
            f"blocks: {', '.join(sorted(unexpected))}. "
            "Each `tool_result` block must have a "
            "corresponding `tool_use` block in the previous message."
        )
    missing = pending - answered
    if missing:
        return pending, _bad(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(sorted(missing))}. Each `tool_use` block must "
            "have a corresponding `tool_result` block in the next message."
        )
    return set(), None


def check_messages(messages: Any, *, system_messages: bool = False) -> ErrorReply | None:
    """The API's answer to a `messages` list it would refuse, or None (note 3)."""
    if not isinstance(messages, list) or not messages:
        return _bad("messages: at least one message is required")
    pending: set[str] = set()
    previous: Any = None
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role == "system":
            if not system_messages:
                return _bad(f"messages.{index}.role: 'system' is not supported on this model")
            refused = _check_system_message(index, message, previous)
        elif role in ("user", "assistant"):
            pending, refused = _check_turn(index, message, pending)
        else:
            expected = (
                "'user', 'assistant' or 'system'" if system_messages else "'user' or 'assistant'"
            )
            return _bad(f"messages.{index}.role: must be {expected}")
        if refused is not None:
            return refused
        previous = role
    if messages[0].get("role") != "user":
        return _bad("messages.0.role: the first message must use the 'user' role")
    return None
