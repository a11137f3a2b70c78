"""The OpenAPI 3.1 document, built by hand from each routes module's `operations`.

A routes module exports `routes` (Starlette routes under `/v1`) and
`operations` (one `Operation` per method and path); `build_document()` turns
the operations into paths, and the pydantic models they name into
`components/schemas` (pydantic's JSON Schema is OpenAPI 3.1's dialect).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from events import AGENT_ID_PATTERN

from ._models import ID_PATTERN, Problem

__all__ = ["Operation", "build_document", "document_bytes"]

_REF = "#/components/schemas/{model}"

_STATUS_TEXT = {
    200: "OK",
    304: "Not modified: the view's ETag is one `If-None-Match` names (no body)",
    201: "Created",
    202: "Accepted",
    204: "No content",
    400: "Bad request: malformed JSON, a wrong query parameter or header",
    401: "Missing or wrong bearer token",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Unsupported media type: a body of a Content-Type the route does not take",
    422: "The body is JSON of the wrong shape",
    503: "Not ready, or shutting down",
}


_VIEW_HEADERS = {
    "ETag": {
        "description": "a hash of the body: send it back in If-None-Match",
        "schema": {"type": "string"},
    },
    "Fleet-Position": {
        "description": "the log position the view reflects",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path, as the OpenAPI document describes it."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    summary: str
    description: str = ""
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_schema: Mapping[str, Any] | None = None
    response: type[BaseModel] | None = None
    response_schema: Mapping[str, Any] | None = None
    status: int = 200
    media_type: str = "application/json"
    body_media_type: str = "application/json"
    errors: tuple[int, ...] = ()
    headers: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    """Header parameters: name -> (description, JSON schema)."""
    path_params: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    tag: str | None = None
    conditional: bool = False
    """A view: answers with `ETag` and `Fleet-Position`, and 304 to a matching `If-None-Match`."""


def build_document(operations: Iterable[Operation], *, title: str = "fleet") -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations` (a new dict; nothing is cached or mutated)."""
    operations = list(operations)
    models: dict[type[BaseModel], None] = {Problem: None}
    for op in operations:
        for model in (op.query, op.body, op.response):
            if model is not None:
                models[model] = None
    keyed, top = models_json_schema([(model, "validation") for model in models], ref_template=_REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, keyed, schemas)
    # Query models became parameters; they are not schemas a client needs.
    used = {m for op in operations for m in (op.body, op.response) if m is not None}
    for op in operations:
        if op.query is not None and op.query not in used:
            schemas.pop(keyed[(op.query, "validation")]["$ref"].rsplit("/", 1)[1], None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": _version(),
            "description": (
                "An event-sourced runtime for fleets of LLM agents. Every agent action is an "
                "event in one log; everything here is derived from it. Errors are "
                "application/problem+json (RFC 9457)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query_token": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
        "security": [{"bearer": []}],
    }


def _operation(
    op: Operation, keyed: Mapping[tuple[Any, Any], Any], schemas: dict[str, Any]
) -> dict[str, Any]:
    slug = op.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    out: dict[str, Any] = {
        "operationId": f"{op.method.lower()}_{slug}",
        "summary": op.summary,
    }
    if op.description:
        out["description"] = op.description
    if op.tag:
        out["tags"] = [op.tag]
    parameters: list[dict[str, Any]] = []
    for name, description in op.path_params.items():
        parameters.append({
            "name": name, "in": "path", "required": True, "description": description,
            "schema": {
                "type": "string",
                "pattern": AGENT_ID_PATTERN if name == "agent_id" else ID_PATTERN,
            },
        })  # fmt: skip
    if op.query is not None:
        parameters.extend(_query_parameters(op.query, keyed, schemas))
    headers = dict(op.headers)
    if op.conditional:
        headers["If-None-Match"] = (
            "the ETag of the view you hold: 304 with no body while the view is the same",
            {"type": "string"},
        )
    for name, (description, schema) in headers.items():
        parameters.append({
            "name": name, "in": "header", "required": False, "description": description,
            "schema": dict(schema),
        })  # fmt: skip
    if parameters:
        out["parameters"] = parameters
    body_schema = (
        _ref(keyed[(op.body, "validation")]) if op.body is not None
        else dict(op.body_schema) if op.body_schema is not None
        else None
    )  # fmt: skip
    if body_schema is not None:
        out["requestBody"] = {
            "required": True,
            "content": {op.body_media_type: {"schema": body_schema}},
        }
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": _STATUS_TEXT.get(op.status, "OK")}
    if op.stream:
        # Each Server-Sent Event (as schemathesis reads `schema` for text/event-stream):
        # `id` is the position, `data` the event's JSON.
        event = {"$ref": _REF.format(model=op.response.__name__)} if op.response else {}
        ok["content"] = {
            op.media_type: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[0-9]+$"},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": event,
                        },
                        "retry": {"type": "integer"},
                    },
                }
            }
        }
    elif op.response is not None:
        ok["content"] = {op.media_type: {"schema": _ref(keyed[(op.response, "validation")])}}
    elif op.response_schema is not None:
        ok["content"] = {op.media_type: {"schema": dict(op.response_schema)}}
    responses[str(op.status)] = ok
    if op.conditional:
        ok["headers"] = dict(_VIEW_HEADERS)
        responses["304"] = {"description": _STATUS_TEXT[304], "headers": dict(_VIEW_HEADERS)}
    statuses = {*op.errors, 401, 503}
    if body_schema is not None:  # read_json: 415 for a body not typed application/json
        statuses |= {400, 413, 415, 422}
    if op.query is not None:
        statuses.add(400)
    problem_ref = {"$ref": _REF.format(model="Problem")}
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/problem+json": {"schema": problem_ref}},
        }
    out["responses"] = responses
    if op.stream:
        out["security"] = [{"bearer": []}, {"query_token": []}]
    return out


def _query_parameters(
    model: type[BaseModel],
    keyed: Mapping[tuple[Any, Any], Any],
    schemas: dict[str, Any],
) -> list[dict[str, Any]]:
    ref = keyed[(model, "validation")]["$ref"]
    schema = schemas[ref.rsplit("/", 1)[1]]
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(dict(prop))
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": prop}  # fmt: skip
        if description:
            param["description"] = description
        if prop.get("type") == "array":
            param["style"] = "form"
            param["explode"] = True
        parameters.append(param)
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """`X | None` as just `X`: a query string cannot say null, only leave the parameter out."""
    options = prop.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        if len(rest) == 1:
            del prop["anyOf"]
            prop = {**rest[0], **prop}
        else:
            prop["anyOf"] = rest
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def _ref(schema: Mapping[str, Any]) -> dict[str, Any]:
    return dict(schema)


def _version() -> str:
    try:
        return metadata.version("fleet")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def document_bytes(operations: Iterable[Operation]) -> bytes:
    """The document as compact JSON bytes (what `GET /v1/openapi.json` serves)."""
    return json.dumps(build_document(operations), separators=(",", ":")).encode()
