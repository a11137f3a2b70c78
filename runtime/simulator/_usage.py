"""Token usage as the simulator reports it: an estimate, and prompt caching from breakpoints.

Token usage is an estimate, `ceil(chars / 4)` of each part's canonical JSON
(the tools, the system prompt, each message), and `count_tokens` returns the
same total. Prompt caching is simulated deterministically from the request's
`cache_control` breakpoints: everything up to the last breakpoint is cached
(written), and of that, the conversation before the previous user turn counts
as read from the cache, as it would be in an agent loop that moves its
breakpoint forward each turn. Prefixes under `MIN_CACHEABLE_TOKENS` are not
cached, as on the real API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CHARS_PER_TOKEN",
    "MIN_CACHEABLE_TOKENS",
    "canonical",
    "count_request_tokens",
    "estimate_tokens",
    "input_usage",
]

CHARS_PER_TOKEN = 4
MIN_CACHEABLE_TOKENS = 1024


def estimate_tokens(text: str) -> int:
    """The simulator's token estimate of `text`: one token per 4 characters, rounded up."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def canonical(value: Any) -> str:
    """`value` as compact JSON with sorted keys (what the estimates and digests are made of)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _parts(body: Mapping[str, Any]) -> list[tuple[int, Any]]:
    """(tokens, cache_control of its last breakpoint or None) of tools, system and each message."""
    parts: list[tuple[int, Any]] = []
    tools = body.get("tools") or []
    parts.append((estimate_tokens(canonical(tools)) if tools else 0, _breakpoint(tools)))
    system = body.get("system") or ""
    parts.append((estimate_tokens(canonical(system)) if system else 0, _breakpoint(system)))
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        parts.append((estimate_tokens(canonical(content)), _breakpoint(content)))
    return parts


def _breakpoint(value: Any) -> Any:
    if isinstance(value, list):
        found = None
        for item in value:
            if isinstance(item, Mapping) and item.get("cache_control"):
                found = item["cache_control"]
        return found
    return None


def count_request_tokens(body: Mapping[str, Any]) -> int:
    """Input tokens of a request body, as `count_tokens` reports them (all cache buckets)."""
    return sum(tokens for tokens, _ in _parts(body))


def input_usage(body: Mapping[str, Any]) -> dict[str, int]:
    """The input side of a response's usage: uncached, cache-written (5m, 1h) and cache-read."""
    parts = _parts(body)
    total = sum(tokens for tokens, _ in parts)
    marked = [i for i, (_, control) in enumerate(parts) if control]
    usage = {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    usage |= {"cache_creation_5m": 0, "cache_creation_1h": 0}
    if not marked:
        return usage
    last = marked[-1]
    cached = sum(tokens for tokens, _ in parts[: last + 1])
    if cached < MIN_CACHEABLE_TOKENS:
        return usage
    messages = len(parts) - 2
    read = sum(tokens for tokens, _ in parts[:messages]) if messages >= 3 else 0
    read = min(read, cached)
    if read < MIN_CACHEABLE_TOKENS:
        read = 0
    created = cached - read
    one_hour = isinstance(parts[last][1], Mapping) and parts[last][1].get("ttl") == "1h"
    usage.update(
        input_tokens=total - cached,
        cache_creation_input_tokens=created,
        cache_read_input_tokens=read,
        cache_creation_5m=0 if one_hour else created,
        cache_creation_1h=created if one_hour else 0,
    )
    return usage
