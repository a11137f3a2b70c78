"""Text every event can hold: valid UTF-8, whatever Python was handed.

Python holds what is not UTF-8 as lone surrogates: a file name's bad byte on
disk (`\\udcff`, from surrogateescape), or half of a surrogate pair that JSON
escaped (`"\\ud83d"`: a JavaScript string cut in the middle of an emoji, as a
truncated tool output from Claude Code is). No event can be encoded with one.
Each becomes U+FFFD, as ripgrep prints a bad byte, and the rest is kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["surrogate_escaped", "valid_json", "valid_text"]

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def surrogate_escaped(raw: bytes) -> bool:
    """Whether JSON text `raw` escapes a UTF-16 surrogate (`\\ud83d`): a pair's halves, whole
    or not. Only then can its parsed strings hold a lone one: a cheap test before a walk."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def valid_text(value: str) -> str:
    """`value` as valid UTF-8: each byte or half pair a lone surrogate stood for is U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = value.encode("utf-8", "surrogateescape")  # \udc80-\udcff: a byte on disk
        except UnicodeEncodeError:
            # Any other: a half pair is one U+FFFD, two halves that make a pair one character.
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return raw.decode("utf-8", "replace")
    return value


def valid_json(value: Any) -> Any:
    """`value` (parsed JSON: dicts, lists, strings, ...) with every string, keys too,
    `valid_text`; a new structure where anything changed, never the one given mutated."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, Mapping):
        return {valid_json(k): valid_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [valid_json(v) for v in value]
    return value
