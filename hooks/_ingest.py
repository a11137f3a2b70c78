"""Ingest: hook payloads posted by external agents (a real Claude Code session).

`parse_external()` is the check the API runs on a posted body before anything is
written. (`fleet hook-forward`, which posts a payload from a Claude Code hook, is
in api/cli/_forward.py: it must import almost nothing.)

Notes (do not fix without reading this):
1. The payload is kept as it came: unknown fields and unknown (future) hook
   points are accepted. Only the known fields of known points are type-checked,
   and none but `hook_event_name` and `session_id` is required, because Claude
   Code's payloads differ between versions.
2. The size limit is half the store's event limit: the payload is stored inside
   an `ExternalHookReceived` event, whose other fields need room too.
3. A string holding a lone surrogate (JSON's `"\\ud83d"`, half of an emoji's
   pair: JavaScript cuts strings between the halves, and Claude Code's tool
   outputs are cut to a length) is kept with U+FFFD in its place
   (`events.valid_json`): no event can hold the half, and refusing the
   payload lost the whole hook event.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from events import DEFAULT_MAX_EVENT_BYTES, ExternalHookReceived, valid_json

from ._points import PAYLOAD_MODELS, HookPayload
from .errors import IngestError, IngestTooLarge

__all__ = ["DEFAULT_MAX_INGEST_BYTES", "DEFAULT_SOURCE_APP", "parse_external"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_INGEST_BYTES = DEFAULT_MAX_EVENT_BYTES // 2
"""The largest external payload accepted, in bytes of JSON (note 2)."""

DEFAULT_SOURCE_APP = "claude-code"
"""The `source_app` recorded when the poster does not name one."""

_SOURCE_APP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}")


def _lenient(model: type[HookPayload]) -> type[BaseModel]:
    # Same fields and types, all optional but the two ids, strictly typed, extras kept.
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in ("hook_event_name", "session_id"):
            fields[name] = (str, ...)
        else:
            fields[name] = (info.annotation | None, None)  # type: ignore[operator]
    return create_model(
        f"External{model.__name__}",
        __config__=ConfigDict(strict=True, extra="allow"),
        **fields,
    )


_COMMON = _lenient(HookPayload)
_MODELS: dict[str, type[BaseModel]] = {
    point.value: _lenient(model) for point, model in PAYLOAD_MODELS.items()
}


def _decode(body: bytes | bytearray | str, limit: int) -> Any:
    size = len(body.encode()) if isinstance(body, str) else len(body)
    if size > limit:
        raise IngestTooLarge(size, limit)
    try:
        # Decoded as UTF-8 here: json.loads would guess UTF-16/32 from the first bytes.
        text = body if isinstance(body, str) else bytes(body).decode("utf-8")
    except UnicodeDecodeError as e:
        raise IngestError(f"not UTF-8 text: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise IngestError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise IngestError("not valid JSON: nested too deeply") from None


def _json_kind(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(
        type(value), "a number" if isinstance(value, int | float) else "a non-JSON value"
    )


def parse_external(
    body: bytes | bytearray | str | object,
    *,
    source_app: str | None = None,
    max_bytes: int = DEFAULT_MAX_INGEST_BYTES,
) -> ExternalHookReceived:
    """Check a hook payload posted by an external agent and wrap it as event data.

    `body` is the raw request body (bytes, or str holding JSON text) or an
    already parsed JSON value (a dict, or anything `json.loads` gives). The payload
    must be a JSON object of at most `max_bytes` bytes with non-empty string
    `hook_event_name` and `session_id`; the known fields of the known points
    must have their types (note 1). `source_app` names the sender
    (default "claude-code"): letters, digits and `._:@/-`, at most 64 characters.

    Raises:
        IngestTooLarge: over `max_bytes`.
        IngestError: anything else wrong, naming the field at fault.

    The argument is never mutated; the event holds a copy of the payload.
    """
    app = DEFAULT_SOURCE_APP if source_app is None else source_app
    if not isinstance(app, str) or not _SOURCE_APP.fullmatch(app):
        raise IngestError(
            "must be 1 to 64 letters, digits or ._:@/- starting with a letter or digit",
            "source_app",
        )
    raw = isinstance(body, bytes | bytearray | str)
    value = _decode(body, max_bytes) if raw else body  # type: ignore[arg-type]
    if not isinstance(value, Mapping):
        raise IngestError(f"expected a JSON object, got {_json_kind(value)}")
    try:
        # Re-encoded as the store will: checks it is JSON at all and measures it.
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        try:
            size = len(encoded.encode())
        except UnicodeEncodeError:
            # Half a surrogate pair, `"\ud83d"`: Claude Code's output cut in an emoji
            # (note 3). Refusing it lost the whole event; the half becomes U+FFFD.
            value = valid_json(value)
            encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            size = len(encoded.encode())
    except (TypeError, ValueError, RecursionError) as e:
        raise IngestError(f"not JSON-serializable: {e}") from None
    if size > max_bytes:
        raise IngestTooLarge(size, max_bytes)
    for name in ("hook_event_name", "session_id"):
        field = value.get(name)
        if not isinstance(field, str) or not field.strip():
            got = "missing" if field is None else f"got {json.dumps(field)[:60]}"
            raise IngestError(f"must be a non-empty string ({got})", name)
    point = value["hook_event_name"]
    try:
        _MODELS.get(point, _COMMON).model_validate(value)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise IngestError(err["msg"], where) from None
    # A parsed body is ours already; a caller's mapping is copied (and made plain JSON).
    payload: dict[str, Any] = dict(value) if raw else json.loads(encoded)
    return ExternalHookReceived(
        source_app=app, session_id=value["session_id"], hook_event_name=point, payload=payload
    )
