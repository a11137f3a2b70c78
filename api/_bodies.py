"""Request input: the body size limit (before any parsing), JSON bodies and query strings.

Bodies: over the limit is 413, not typed `application/json` or sent with a
`Content-Encoding` is 415, not JSON is 400, JSON of the wrong shape is 422
with pydantic's errors listed. Query strings: a wrong or unknown parameter is
400 with the same error list (a typo in a filter must not silently widen it).
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._problems import problem, validation_errors
from .errors import BodyTooLarge, HTTPProblem

__all__ = ["BodyLimit", "parse_body", "parse_query", "read_json", "require_identity"]

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
    """The request body parsed as JSON.

    Raises `HTTPProblem` 415 unless the body is typed `application/json` (UTF-8),
    400 when it is not JSON: empty, not UTF-8, malformed, nested too deeply, an
    integer of more digits than Python converts (4,300), or NaN and Infinity
    (not JSON, and stored they would turn into null).
    """
    _require_json_type(request)
    require_identity(request)
    raw = await request.body()
    if not raw.strip():
        raise _malformed("the request body is empty; expected JSON")
    try:
        # Decoded here, strictly: json.loads(bytes) would guess UTF-16 or UTF-32 (RFC 8259: UTF-8).
        return _strict_loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise _malformed(f"the body is not UTF-8: {e.reason}") from None
    except json.JSONDecodeError as e:
        raise _malformed(
            f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise _malformed("the body's JSON is nested too deeply") from None
    except ValueError as e:  # NaN, Infinity, or an int past sys.get_int_max_str_digits()
        if "integer string conversion" in str(e):
            limit = sys.get_int_max_str_digits()
            raise _malformed(f"an integer in the body has more than {limit} digits") from None
        raise _malformed(f"the body is not valid JSON: {e}") from None


def _malformed(detail: str) -> HTTPProblem:
    return HTTPProblem(400, "Malformed JSON", detail, slug="malformed-json")


def require_identity(request: Request) -> None:
    """Raise `HTTPProblem` 415 when the body is sent with a `Content-Encoding` (gzip, br...):
    bodies are taken as they are sent, and a compressed one read as JSON was "not UTF-8"."""
    value = request.headers.get("content-encoding", "").strip()
    if value and value.lower() != "identity":
        raise HTTPProblem(
            415, "Unsupported content encoding",
            f"this route takes a body sent as it is, not with Content-Encoding {value[:40]!r}",
            slug="unsupported-content-encoding",
        )  # fmt: skip


def _require_json_type(request: Request) -> None:
    value = request.headers.get("content-type", "")
    media, _, params = value.partition(";")
    charset = ""
    for param in params.split(";"):
        key, _, given = param.partition("=")
        if key.strip().lower() == "charset":
            charset = given.strip().strip('"').lower()
    if media.strip().lower() == "application/json" and charset in ("", "utf-8", "utf8"):
        return
    got = f"a body typed {value.strip()[:80]!r}" if value.strip() else "a body with no type"
    raise HTTPProblem(
        415, "Unsupported media type",
        f"this route takes JSON sent as 'Content-Type: application/json' (UTF-8), not {got}",
        slug="unsupported-media-type",
    )  # fmt: skip


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of range (it would be Infinity)")
    return value


_strict_loads = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float).decode


def parse_body(model: type[M], value: Any) -> M:
    """`value` (parsed JSON) as `model`. Raises `HTTPProblem` 422 listing pydantic's errors."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        errors = validation_errors(e, prefix="body")
        raise HTTPProblem(422, "Invalid body", _summary(errors), slug="invalid-body",
                          members={"errors": errors}) from None  # fmt: skip


def parse_query(model: type[M], request: Request, *, lists: Collection[str] = ()) -> M:
    """The query string as `model`; `lists` are the repeatable parameters.

    Raises `HTTPProblem` 400 for an unknown parameter (naming the ones the path
    takes: `after` on the stream, which takes `from`, said only "Extra inputs
    are not permitted"), a repeated one that is not a list, or a wrong value
    (every error listed).
    """
    params = request.query_params
    known = _parameters(model)
    unknown = sorted(set(params) - known)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise HTTPProblem(
            400, "Invalid query",
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {names}; "
            f"{request.url.path} takes "
            + (", ".join(sorted(known)) if known else "no query parameters"),
            slug="invalid-query",
            members={"errors": [
                {"loc": ["query", name], "msg": "unknown parameter", "type": "extra_forbidden"}
                for name in unknown
            ]},
        )  # fmt: skip
    values: dict[str, Any] = {}
    for key in params:
        values[key] = params.getlist(key) if key in lists else params[key]
        if key not in lists and len(params.getlist(key)) > 1:
            raise HTTPProblem(400, "Invalid query", f"parameter {key!r} is given more than once",
                              slug="invalid-query")  # fmt: skip
    try:
        return model.model_validate(values)
    except ValidationError as e:
        errors = validation_errors(e, prefix="query")
        raise HTTPProblem(400, "Invalid query", _summary(errors), slug="invalid-query",
                          members={"errors": errors}) from None  # fmt: skip


@functools.cache
def _parameters(model: type[BaseModel]) -> frozenset[str]:
    """The query parameters `model` takes (a field's alias, else its name), once a model."""
    return frozenset(field.alias or name for name, field in model.model_fields.items())


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = [f"{'.'.join(e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
