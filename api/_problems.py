"""Errors as `application/problem+json` (RFC 9457), through exception handlers only.

Every error a route can meet is mapped here to a status, a problem type and a
title; the exception's own message (which names its facts) is the `detail`.
A route never builds an error response itself: it raises.

Notes (do not fix without reading this):
1. Problem types are `urn:fleet:problem:<slug>`: stable names a client can
   switch on, not URLs that would have to resolve.
2. Unexpected exceptions answer 500 with a fixed detail: their message may
   hold paths or data that do not belong in a response. They are logged.
3. A client that hangs up before its whole body has arrived (Starlette's
   `ClientDisconnect`, from reading the body) is no error of the server's:
   nothing is written, nobody is there to answer, and it is logged at debug
   level (it was a 500 and a page of traceback at ERROR).
4. A path may be served by several routes, one per method (`GET /v1/agents`
   is a view, `POST` and `DELETE` are commands in another module): the router
   answers 405 from the first route of the path, whose `Allow` names its own
   methods only, so a 405's `Allow` is gathered from every route of the path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route

from events import ExportInvalid, ImportConflict, ReplayError, RunNotFound
from events.errors import (
    EventTooLarge,
    FleetError,
    InvalidEvent,
    NotADatabase,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    UnknownEventType,
    VersionConflict,
)
from hooks.errors import (
    DispatcherClosed,
    HookConfigError,
    HookError,
    IngestError,
    IngestTooLarge,
    PayloadInvalid,
    UnknownHookPoint,
)
from projections.errors import (
    InvalidPosition,
    ProjectionError,
    ProjectionTimeout,
    RunnerClosed,
    UnknownProjection,
)
from runtime.errors import (
    AgentBusy,
    AgentDrivenElsewhere,
    AgentGone,
    AgentNotFound,
    AgentNotWorking,
    ApprovalClosed,
    ApprovalNotFound,
    BudgetExceeded,
    ChatCommandInvalid,
    ClientClosed,
    ConversationNotFound,
    EngineUnavailable,
    FleetLimitReached,
    InvalidAgentSpec,
    ModelCallFailed,
    ModelError,
    ModelTableInvalid,
    PatternError,
    PromptBlocked,
    RunNotResumable,
    StepFailed,
    ToolError,
    UnknownModel,
    WorkspaceMissing,
)
from runtime.replay.errors import ReplayImpossible, WorkspaceUnavailable

from .errors import ApiError, BodyTooLarge, HTTPProblem, InsecureServe

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_MEDIA_TYPE",
    "ProblemResponse",
    "problem",
    "validation_errors",
]

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
STORE_RETRY_S = 5
"""`Retry-After` of a 503 for a write the log refused (disk full)."""


class ProblemResponse(JSONResponse):
    """A JSON response with the problem+json media type."""

    media_type = PROBLEM_MEDIA_TYPE


# exception class -> (status, slug, title); the first class in the MRO that is listed wins.
# Every FleetError subclass of fleet's packages is covered (tests/api/test_api_problem_map.py);
# a root is listed too, so that a new leaf answers as its family does until it is listed.
_MAPPING: dict[type[BaseException], tuple[int, str, str]] = {
    # api/ (HTTPProblem has a handler of its own: it carries its status)
    BodyTooLarge: (413, "body-too-large", "Request body too large"),
    InsecureServe: (500, "insecure-serve", "Refusing to serve without a token"),
    ApiError: (500, "api-error", "API error"),
    # events/
    EventTooLarge: (413, "event-too-large", "Event too large"),
    InvalidEvent: (422, "invalid-event", "Invalid event"),
    VersionConflict: (409, "version-conflict", "Version conflict"),
    StoreClosed: (503, "unavailable", "Service unavailable"),
    StoreUnavailable: (503, "log-unavailable", "The log cannot be written"),
    NotADatabase: (500, "not-a-database", "The log is not a database"),
    UnknownEventType: (500, "unknown-event-type", "Unknown event type in the log"),
    StoreError: (500, "store-error", "Store error"),
    RunNotFound: (404, "run-not-found", "Run not found"),
    ExportInvalid: (422, "invalid-export", "Invalid run export"),
    ImportConflict: (409, "run-exists", "Run exists"),
    ReplayImpossible: (409, "replay-impossible", "Run cannot be re-executed"),
    RunNotResumable: (409, "run-not-resumable", "Run cannot be resumed"),
    WorkspaceUnavailable: (422, "workspace-unavailable", "Workspace unavailable"),
    ReplayError: (422, "replay-error", "Replay error"),
    # hooks/
    IngestTooLarge: (413, "body-too-large", "Request body too large"),
    IngestError: (422, "invalid-hook-payload", "Invalid hook payload"),
    HookConfigError: (422, "invalid-hook-settings", "Invalid hook settings"),
    UnknownHookPoint: (422, "unknown-hook-point", "Unknown hook point"),
    PayloadInvalid: (500, "hook-payload-invalid", "Hook payload could not be built"),
    DispatcherClosed: (503, "unavailable", "Service unavailable"),
    HookError: (500, "hook-error", "Hook error"),
    # runtime/
    AgentNotFound: (404, "agent-not-found", "Agent not found"),
    AgentGone: (409, "agent-deleted", "Agent deleted"),
    ApprovalNotFound: (404, "approval-not-found", "Approval not found"),
    ApprovalClosed: (409, "approval-closed", "Approval closed"),
    AgentBusy: (409, "agent-busy", "Agent busy"),
    AgentNotWorking: (409, "agent-not-working", "Agent not working"),
    ConversationNotFound: (404, "conversation-not-found", "Conversation not found"),
    ChatCommandInvalid: (422, "invalid-chat-command", "Invalid slash command"),
    AgentDrivenElsewhere: (409, "agent-driven-elsewhere", "Agent driven by another process"),
    FleetLimitReached: (409, "fleet-limit-reached", "Fleet limit reached"),
    BudgetExceeded: (409, "budget-exceeded", "Budget exceeded"),
    UnknownModel: (422, "unknown-model", "Unknown model"),
    InvalidAgentSpec: (422, "invalid-agent", "Invalid agent"),
    PromptBlocked: (409, "prompt-blocked", "Prompt blocked by a hook"),
    StepFailed: (422, "step-failed", "Pattern step failed"),
    PatternError: (422, "invalid-pattern", "Invalid pattern"),
    WorkspaceMissing: (422, "workspace-missing", "Workspace missing"),
    EngineUnavailable: (501, "engine-unavailable", "Engine unavailable"),
    ToolError: (422, "tool-error", "Tool error"),
    ModelCallFailed: (502, "model-call-failed", "Model call failed"),
    ModelTableInvalid: (500, "invalid-model-table", "Invalid model table"),
    ClientClosed: (503, "unavailable", "Service unavailable"),
    ModelError: (502, "model-error", "Model error"),
    # projections/
    InvalidPosition: (400, "invalid-position", "Invalid position"),
    UnknownProjection: (404, "unknown-projection", "Unknown projection"),
    ProjectionTimeout: (503, "projections-behind", "Projections behind"),
    RunnerClosed: (503, "unavailable", "Service unavailable"),
    ProjectionError: (500, "projection-failed", "Projection failed"),
}

_HTTP_SLUGS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "Request body too large"),
}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    members: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """Build a problem+json response; `members` are added to the document."""
    body: dict[str, Any] = {
        "type": f"urn:fleet:problem:{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if members:
        body.update({k: v for k, v in members.items() if k not in body})
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def validation_errors(error: ValidationError, *, prefix: str) -> list[dict[str, Any]]:
    """pydantic's errors as plain JSON: where (`loc`, starting with `prefix`), what, which rule."""
    return [
        {
            "loc": [prefix, *(str(part) for part in item["loc"])],
            "msg": item["msg"],
            "type": item["type"],
        }
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPProblem)
    return problem(
        exc.status, exc.title, exc.detail, slug=exc.slug, members=exc.members, headers=exc.headers
    )


def _starlette_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, (None, exc.detail))
    if exc.status_code == 404:
        path = request.scope.get("path", request.url.path)
        # A control character (%0A) is shown, not dropped: the path shown would exist.
        detail = f"no route for {request.method} {path if path.isprintable() else repr(path)}"
    elif exc.status_code == 405:
        allowed = _allowed(request, (exc.headers or {}).get("Allow", ""))
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
        return problem(405, title, detail, slug=slug, headers={**(exc.headers or {}),
                                                               "Allow": allowed})  # fmt: skip
    else:
        detail = exc.detail
    return problem(exc.status_code, title, detail, slug=slug, headers=exc.headers)


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed(request: Request, given: str) -> str:
    """Every method some route of this path takes (note 4), with those of the 405's `Allow`."""
    methods = {m.strip() for m in given.split(",") if m.strip()}
    scope = dict(request.scope)
    # At the top, as the app's router saw the request (a mount changed root_path).
    scope["root_path"] = scope.get("app_root_path", scope.get("root_path", ""))
    methods |= _route_methods(request.app.routes, scope)
    order = {m: i for i, m in enumerate(_METHOD_ORDER)}
    return ", ".join(sorted(methods, key=lambda m: (order.get(m, len(order)), m)))


def _route_methods(routes: list[BaseRoute], scope: dict[str, Any]) -> set[str]:
    methods: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):  # the first mount that takes the path is the one used
            return methods | _route_methods(route.routes, {**scope, **child})
        if isinstance(route, Route) and route.methods:
            methods |= route.methods
    return methods


def _fleet_error(request: Request, exc: Exception) -> Response:
    for cls in type(exc).__mro__:
        mapped = _MAPPING.get(cls)
        if mapped is not None:
            break
    else:
        mapped = (500, "internal-error", "Internal error")
    status, slug, title = mapped
    members: dict[str, Any] = {}
    field = getattr(exc, "field", None)
    if isinstance(exc, IngestError) and field:
        members["errors"] = [{"loc": ["body", *field.split(".")], "msg": exc.detail}]
    if isinstance(exc, StoreUnavailable):
        _log_store_failure(request, exc)
        retry = {"Retry-After": str(STORE_RETRY_S)}
        return problem(status, title, str(exc), slug=slug, headers=retry)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    return problem(status, title, str(exc), slug=slug, members=members, headers=headers)


def _log_store_failure(request: Request, exc: StoreUnavailable) -> None:
    """Log the first refused write of an outage (one line); the others at debug level."""
    from ._state import services

    try:
        first = services(request).store_health.failed(getattr(exc, "reason", str(exc)))
    except HTTPProblem:  # outside the lifespan
        first = True
    if first:
        logger.error(
            "the log cannot be written (%s): answering 503 to writes until it can; "
            "/healthz says when", getattr(exc, "reason", exc),
        )  # fmt: skip
    else:
        logger.debug("%s %s refused: %s", request.method, request.url.path, exc)


def _client_gone(request: Request, exc: Exception) -> Response:
    # Note 3: never sent (the connection is gone); 499 is nginx's "client closed request".
    logger.debug("%s %s: the client hung up before its body arrived", request.method,
                 request.url.path)  # fmt: skip
    return Response(status_code=499)


def _unexpected(request: Request, exc: Exception) -> Response:
    # Note 2: ServerErrorMiddleware logs and re-raises after this answers.
    return problem(
        500,
        "Internal server error",
        "the server met an unexpected error; it is in the server's log",
        slug="internal-error",
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPProblem: _http_problem,
    HTTPException: _starlette_http,
    FleetError: _fleet_error,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}
"""The app's exception handlers: pass to `Starlette(exception_handlers=...)`."""
