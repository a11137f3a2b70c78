"""Upcasting: lift event data stored by an older schema to the current one.

An upcaster maps `(type, from_version)` to a function of the raw data dict that
returns the data as of `from_version + 1`. Reading applies them in a chain, so a
row stored at schema 1 of a type now at schema 3 goes 1 -> 2 -> 3. The stored
row is never rewritten: events are immutable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._catalogue import EVENT_TYPES

__all__ = ["UPCASTERS", "upcast"]

RawData = dict[str, Any]
Upcaster = Callable[[RawData], RawData]


def _tool_call_completed_v1_to_v2(data: RawData) -> RawData:
    # Schema 1 named the result `output` and the error flag `error`.
    lifted = dict(data)
    if "output" in lifted:
        lifted["result"] = lifted.pop("output")
    if "error" in lifted:
        lifted["is_error"] = bool(lifted.pop("error"))
    return lifted


def _hook_invoked_v1_to_v2(data: RawData) -> RawData:
    # Schema 2 added `system_message` and `detached`; a v1 hook said neither.
    return {**data, "system_message": None, "detached": False}


def _agent_created_v1_to_v2(data: RawData) -> RawData:
    # Schema 2 added `engine` and `session_id`: every v1 agent ran fleet's own loop.
    return {**data, "engine": "fleet", "session_id": None}


def _external_hook_received_v1_to_v2(data: RawData) -> RawData:
    # Schema 2 added `process`: a v1 poster named none.
    return {**data, "process": None}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("ToolCallCompleted", 1): _tool_call_completed_v1_to_v2,
    ("HookInvoked", 1): _hook_invoked_v1_to_v2,
    ("AgentCreated", 1): _agent_created_v1_to_v2,
    ("ExternalHookReceived", 1): _external_hook_received_v1_to_v2,
}


def upcast(event_type: str, schema_version: int, data: RawData) -> RawData:
    """Return `data` lifted from `schema_version` to the type's current schema.

    The argument is never mutated. Raises `KeyError` if a step of the chain is
    missing, which is a programming error (a bumped SCHEMA_VERSION without its
    upcaster): a test checks every chain is complete.
    """
    current = EVENT_TYPES[event_type].SCHEMA_VERSION
    version = schema_version
    while version < current:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    return data
