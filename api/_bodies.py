"""Request input: the body size limit (before any parsing), JSON bodies and query strings.

Bodies: over the limit is 413, not JSON is 400, JSON of the wrong shape is 422
with pydantic's errors listed. Query strings: a wrong or unknown parameter is
400 with the same error list (a typo in a filter must not silently widen it).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._problems import problem, validation_errors
from .errors import BodyTooLarge, HTTPProblem

__all__ = ["BodyLimit", "parse_body", "parse_query", "read_json"]

M = TypeVar("M", bound=BaseModel)


class BodyLimit:
    """ASGI middleware: refuse a body over `limit` bytes before the app parses any of it.

    An announced `Content-Length` over the limit is answered 413 at once; a
    chunked body is counted as it arrives and `BodyTooLarge` is raised from
    `receive()` when it passes the limit (the exception handlers answer 413).
    """

    def __init__(
        self, app: ASGIApp, limit: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        # Paths with a limit of their own (a run export is far larger than a command).
        self.overrides = dict(overrides or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.limit)
        length = _content_length(scope)
        if length is not None and length > limit:
            error = BodyTooLarge(limit, length)
            response = problem(
                413, "Request body too large", str(error), slug="body-too-large",
                headers={"Connection": "close"},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON. Raises `HTTPProblem` 400 when it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        raise HTTPProblem(400, "Malformed JSON", "the request body is empty; expected JSON",
                          slug="malformed-json")  # fmt: skip
    try:
        # Decoded here, strictly: json.loads(bytes) would guess UTF-16 or UTF-32 (RFC 8259: UTF-8).
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise HTTPProblem(400, "Malformed JSON", f"the body is not UTF-8: {e.reason}",
                          slug="malformed-json") from None  # fmt: skip
    except json.JSONDecodeError as e:
        raise HTTPProblem(
            400, "Malformed JSON",
            f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
            slug="malformed-json",
        ) from None  # fmt: skip
    except RecursionError:
        raise HTTPProblem(400, "Malformed JSON", "the body's JSON is nested too deeply",
                          slug="malformed-json") from None  # fmt: skip


def parse_body(model: type[M], value: Any) -> M:
    """`value` (parsed JSON) as `model`. Raises `HTTPProblem` 422 listing pydantic's errors."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        errors = validation_errors(e, prefix="body")
        raise HTTPProblem(422, "Invalid body", _summary(errors), slug="invalid-body",
                          members={"errors": errors}) from None  # fmt: skip


def parse_query(
    model: type[M],
    request: Request,
    *,
    lists: Collection[str] = (),
    aliases: dict[str, str] | None = None,
) -> M:
    """The query string as `model`; `lists` are the repeatable parameters.

    Unknown parameters and wrong values raise `HTTPProblem` 400 listing every error.
    `aliases` maps a parameter name to a field name (`from` -> `from_`).
    """
    aliases = aliases or {}
    params = request.query_params
    values: dict[str, Any] = {}
    for key in params:
        name = aliases.get(key, key)
        values[name] = params.getlist(key) if name in lists else params[key]
        if name not in lists and len(params.getlist(key)) > 1:
            raise HTTPProblem(400, "Invalid query", f"parameter {key!r} is given more than once",
                              slug="invalid-query")  # fmt: skip
    try:
        return model.model_validate(values)
    except ValidationError as e:
        inverse = {v: k for k, v in aliases.items()}
        errors = validation_errors(e, prefix="query")
        for error in errors:
            if len(error["loc"]) > 1:
                error["loc"][1] = inverse.get(error["loc"][1], error["loc"][1])
        raise HTTPProblem(400, "Invalid query", _summary(errors), slug="invalid-query",
                          members={"errors": errors}) from None  # fmt: skip


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = [f"{'.'.join(e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
