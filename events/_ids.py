"""What an id looks like: the one rule that the API's paths and an import's run id share.

A run id names a stream (`run-<id>`), a file (`fleet export` writes `<id>.jsonl`)
and a path (`/v1/runs/<id>/timeline`), and is printed to the terminal: it may
hold no `/`, no control character, no space, and is not empty or unbounded.
"""

from __future__ import annotations

import re

__all__ = ["AGENT_ID_PATTERN", "AGENT_ID_RULE", "ID_PATTERN", "ID_RULE", "is_agent_id", "is_id"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
"""What an id in a path or a stream name may look like: no `/`, no `..` start, no spaces."""

ID_RULE = "1-128 letters, digits or ._:@- starting with a letter or digit"
"""`ID_PATTERN` in words, for an error message."""

_ID = re.compile(ID_PATTERN)


def is_id(value: object) -> bool:
    """Whether `value` is a string of the shape `ID_PATTERN` gives."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


AGENT_ID_RULE = "1-200 letters, digits or ._:@- starting with a letter or digit"
"""An agent id in words: an id, longer (`orchestrator-<run id>` of a 128-character run id)."""

AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$"
"""What an agent id may look like (`AGENT_ID_RULE` in words)."""

_AGENT_ID = re.compile(AGENT_ID_PATTERN)


def is_agent_id(value: object) -> bool:
    """Whether `value` can be an agent's id: it names a stream, and a file (its transcript,
    `<agent id>.jsonl`), so it holds no `/` and does not start with a dot."""
    return isinstance(value, str) and _AGENT_ID.fullmatch(value) is not None
