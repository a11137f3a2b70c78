"""The simulator's `GET /v1/models` and `GET /v1/models/{id}`: the model table as the API lists it.

Each model is the API's model object: `id`, `type`, `display_name` (made from
the id: `claude-opus-5-5` is "Claude Opus 5.5"), `created_at` (the date of the
model's first price in the price table, or the epoch when none is known, as
the API does for an unknown release date), `max_input_tokens`, `max_tokens`
and `lifecycle`. The list is newest first and pages with `limit`, `after_id`
and `before_id`, as the API's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from .._models import ModelInfo, ModelTable, PriceTable
from ._requests import ErrorReply

__all__ = ["display_name", "model_object", "model_page"]

_EPOCH = date(1970, 1, 1)
_DEFAULT_LIMIT = 20
_MAX_LIMIT = 1000


def display_name(model_id: str) -> str:
    """`claude-opus-5-5` -> "Claude Opus 5.5"; a date suffix (`-20250514`) is dropped."""
    words: list[str] = []
    version: list[str] = []
    for part in model_id.split("-"):
        if part.isdigit() and len(part) == 8:
            continue
        (version if part.isdigit() else words).append(part)
    name = " ".join(w.capitalize() for w in words)
    return f"{name} {'.'.join(version)}".strip() if version else name


def model_object(info: ModelInfo, prices: PriceTable | None = None) -> dict[str, Any]:
    """The API's model object for `info`."""
    table = prices or PriceTable.default()
    released = table.first_priced(info.id) or _EPOCH
    return {
        "type": "model",
        "id": info.id,
        "display_name": display_name(info.id),
        "created_at": f"{released.isoformat()}T00:00:00Z",
        "max_input_tokens": info.context_window,
        "max_tokens": info.max_output,
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
    }


def _items(query: Mapping[str, str]) -> list[tuple[str, str]]:
    multi = getattr(query, "multi_items", None)  # starlette's QueryParams keeps repeats
    return list(multi()) if callable(multi) else list(query.items())


def model_page(models: ModelTable, query: Mapping[str, str]) -> dict[str, Any] | ErrorReply:
    """One page of `GET /v1/models` for `query` (`limit`, `after_id`, `before_id`, `lifecycle`)."""
    raw = query.get("limit", str(_DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        return ErrorReply(400, f"limit: Input should be an integer from 1 to {_MAX_LIMIT}")
    limit = int(raw)
    # Every simulated model is active: a filter without "active" lists none.
    wanted = {v for key, v in _items(query) if key in ("lifecycle", "lifecycle[]")}
    prices = PriceTable.default(models)
    listed = sorted(
        (model_object(info, prices) for info in models if not wanted or "active" in wanted),
        key=lambda m: (m["created_at"], m["id"]),
        reverse=True,
    )
    ids = [m["id"] for m in listed]
    after, before = query.get("after_id"), query.get("before_id")
    for cursor in (after, before):
        if cursor is not None and cursor not in ids:
            return ErrorReply(400, f"no model with id {cursor!r} to page from")
    if before is not None:
        end = ids.index(before)
        page = listed[max(0, end - limit) : end]
        more = end - limit > 0
    else:
        start = ids.index(after) + 1 if after is not None else 0
        page = listed[start : start + limit]
        more = start + limit < len(listed)
    return {
        "data": page,
        "has_more": more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
