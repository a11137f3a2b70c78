"""The app factory: routes, middleware, exception handlers and the lifespan.

Adding routes: write `api/_routes_<name>.py` exporting `routes` (paths
relative to `/v1`) and `operations` (their OpenAPI description), and add the
module to `ROUTE_MODULES`. The dashboard (`api/static/`, see `_static.py`) is
mounted at `/` after every API route, so `/v1/...` and `/healthz` win.

Notes (do not fix without reading this):
1. The lifespan opens everything in one `AsyncExitStack` and yields typed
   state (`Services`); it also keeps it on the app (`FleetApp.services`) for
   transports that do not pass lifespan state (httpx's `ASGITransport`) and
   for `serve()`, which ends the SSE streams and answers the waiting long
   polls before uvicorn waits for open connections at shutdown (an endless
   stream would hold it forever, a long poll up to its 30 s, past uvicorn's
   graceful timeout: cancelled, its client would get a 500).
2. Middleware order, outermost first: Starlette's ServerErrorMiddleware,
   RequestGuard (Host, Origin and body type: a rebound name or another
   site's page is refused before anything else, token or not), BearerAuth
   (so no unauthenticated byte is parsed), BodyLimit, then Starlette's
   ExceptionMiddleware and the router.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Message, Receive, Scope, Send

from events import Checkpoint, EventStore, FleetError, StoreError, StoreUnavailable, open_store
from projections import ProjectionRunner
from runtime import Runtime, RuntimeOptions, open_runtime

from . import (
    _routes_agents,
    _routes_approvals,
    _routes_chat,
    _routes_events,
    _routes_hooks,
    _routes_otlp,
    _routes_replay,
    _routes_views,
)
from ._auth import BearerAuth
from ._bodies import BodyLimit
from ._broadcast import Broadcaster
from ._config import ApiConfig
from ._guard import RequestGuard
from ._metrics import Metrics, metrics_endpoint
from ._models import Health
from ._openapi import Operation, document_bytes
from ._problems import EXCEPTION_HANDLERS, STORE_RETRY_S, problem
from ._state import STATE_KEY, Services, services
from ._static import STATIC_DIR, dashboard_mount, docs_route
from ._transcripts import SessionUsage

if TYPE_CHECKING:
    from .otel import LiveExporter

__all__ = ["ROUTE_MODULES", "FleetApp", "create_app"]

logger = logging.getLogger(__name__)

ROUTE_MODULES: tuple[ModuleType, ...] = (
    _routes_events,
    _routes_views,
    _routes_agents,
    _routes_approvals,
    _routes_chat,
    _routes_hooks,
    _routes_otlp,
    _routes_replay,
)
"""Modules with `routes` (under /v1) and `operations`; add yours here."""


class FleetApp(Starlette):
    """The fleet ASGI app: a `Starlette` with its config and, while it runs, its services."""

    def __init__(self, config: ApiConfig, routes: list[BaseRoute], middleware: list[Middleware]):
        self.config = config
        self.services: Services | None = None
        # Why the lifespan could not start, for the server to raise (`_serve.py`, note 3).
        self.startup_error: Exception | None = None
        super().__init__(
            routes=routes,
            middleware=middleware,
            exception_handlers=EXCEPTION_HANDLERS,
            lifespan=_lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            send = self._quiet_startup_failure(send)
        await super().__call__(scope, receive, send)

    def _quiet_startup_failure(self, send: Send) -> Send:
        """`send`, leaving out the traceback Starlette reports a startup failure with when
        it is one of fleet's errors: the server raises it, and `fleet serve` prints its
        one line (`_serve.py`, note 3)."""

        async def sending(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and isinstance(
                self.startup_error, FleetError
            ):
                message = {**message, "message": ""}
            await send(message)

        return sending

    def shutting_down(self, grace: float = 1.0) -> None:
        """End every SSE stream now and refuse new ones, and answer every waiting long
        poll now (server shutdown; note 1).

        Streams stuck in a send to a client that stopped reading are cancelled
        after `grace` seconds.
        """
        if self.services is not None:
            self.services.closing.set()
            self.services.broadcaster.end_streams("the server is shutting down", grace=grace)


@asynccontextmanager
async def _lifespan(app: FleetApp) -> AsyncIterator[dict[str, Services]]:
    async with AsyncExitStack() as stack:
        try:
            services = await _start(app, stack)
        except Exception as e:
            app.startup_error = e
            raise
        yield {STATE_KEY: services}


async def _start(app: FleetApp, stack: AsyncExitStack) -> Services:
    """Open everything the app serves, each closed by `stack`; the app's services."""
    config = app.config
    runtime: Runtime | None = None
    if config.runtime:
        # Store, projections, hooks, model client and Fleet, as `fleet run` opens them.
        runtime = await stack.enter_async_context(
            open_runtime(
                RuntimeOptions(
                    db=config.db,
                    workspace=config.workspace,
                    store_poll_s=config.store_poll_s,
                    drive_agents=config.drive_agents,
                    worker=config.worker,
                )
            )
        )
        store, runner = runtime.store, runtime.runner
        # Messages to the orchestrator left unanswered by a stop are answered now (in the
        # background: finding them reads the log's chat events).
        runtime.fleet.start_run(runtime.fleet.chat.resume_all(), name="chat-resume")
    else:
        store = await stack.enter_async_context(
            open_store(config.db, poll_interval=config.store_poll_s)
        )
        runner = await stack.enter_async_context(ProjectionRunner(store))
    broadcaster = await stack.enter_async_context(
        Broadcaster(
            store,
            queue_limit=config.sse_queue,
            recent=config.sse_recent,
            recent_bytes=config.sse_recent_bytes,
            lag_bytes=config.sse_lag_bytes,
            buffer_bytes=config.sse_buffer_bytes,
            flush_interval=config.sse_flush_s,
            wakeups_per_s=config.sse_wakeups_per_s,
        )
    )
    metrics = Metrics.watching(store)
    stack.callback(metrics.unwatch)
    otel = await _open_live_export(stack, config, store)
    usage = await stack.enter_async_context(SessionUsage(store, runner))
    app.services = Services(
        config, store, runner, broadcaster, runtime, otel, metrics, session_usage=usage
    )
    stack.callback(setattr, app, "services", None)
    logger.info("fleet API ready on %s at position %d", config.db, broadcaster.position)
    return app.services


async def _open_live_export(
    stack: AsyncExitStack, config: ApiConfig, store: EventStore
) -> LiveExporter | None:
    """The live OTLP exporter when the config names an endpoint (its position in the log's file)."""
    if not config.otlp_endpoint:
        return None
    # Imported here: the OpenTelemetry SDK is a third of a second that only this needs.
    from .otel import CheckpointPositions, LiveExporter, SpanSender

    sender = await stack.enter_async_context(SpanSender(config.otlp_endpoint))
    positions = CheckpointPositions(store.checkpoints, f"otel-export {sender.endpoint}")
    exporter = LiveExporter(store, sender, positions, content=config.otlp_content)
    return await stack.enter_async_context(exporter)


def create_app(config: ApiConfig | None = None) -> FleetApp:
    """The fleet HTTP API as an ASGI app; `config` defaults to `ApiConfig.from_env()`.

    Nothing is opened here: the app's lifespan opens the store, the projection
    runner and the SSE broadcaster, and closes them in reverse order.
    """
    config = ApiConfig.from_env() if config is None else config
    operations: list[Operation] = [*_OPERATIONS]
    v1: list[BaseRoute] = []
    for module in ROUTE_MODULES:
        v1.extend(module.routes)
        operations.extend(module.operations)
    document = document_bytes(operations)

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    v1.append(Route("/openapi.json", openapi, methods=["GET"]))
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        # No trailing-slash redirects: a wrong path is a clear 404, not a 307 to guess at.
        Mount("/v1", app=Router(routes=v1, redirect_slashes=False)),
    ]
    if (STATIC_DIR / "index.html").is_file():
        routes.append(docs_route())
        routes.append(dashboard_mount())
    middleware = [
        Middleware(RequestGuard, allow_hosts=config.allow_hosts),
        Middleware(BearerAuth, token=config.token_value),
        Middleware(
            BodyLimit,
            limit=config.max_body_bytes,
            overrides={
                "/v1/runs/import": config.max_import_bytes,
                **dict.fromkeys(_routes_otlp.OTLP_PATHS, config.max_otlp_bytes),
            },
        ),
    ]
    app = FleetApp(config, routes, middleware)
    app.router.redirect_slashes = False
    return app


async def healthz(request: Request) -> Response:
    """`GET /healthz`: 200 once the app is ready; 503 when it stopped following the log."""
    app = services(request)
    broadcaster = app.broadcaster
    store_ok = await _store_writable(app)
    stopped = app.runner.failure  # the read models no longer follow the log
    ok = broadcaster.running and store_ok and stopped is None
    try:
        head = await app.store.head()
    except StoreError as e:  # a health check says why, it does not fail (a dropped schema)
        return problem(
            503, "Service degraded", f"the log cannot be read: {e}", slug="log-unavailable",
            headers={"Retry-After": str(STORE_RETRY_S)},
        )  # fmt: skip
    body = Health(
        status="ok" if ok else "degraded",
        store="ok" if store_ok else "degraded",
        store_error=app.store_health.failure,
        head=head,
        projections=app.runner.position,
        broadcast=broadcaster.position,
        subscribers=broadcaster.subscriber_count,
        streams=broadcaster.open_streams,
        cut_offs=broadcaster.cut_offs,
        auth=app.config.token is not None,
    )
    if not store_ok:
        return problem(
            503, "Service degraded", f"the log cannot be written: {app.store_health.failure}",
            slug="log-unavailable", members=body.model_dump(),
            headers={"Retry-After": str(STORE_RETRY_S)},
        )  # fmt: skip
    if stopped is not None:
        return problem(
            503, "Service degraded", f"the read models stopped following the log: {stopped}",
            slug="unavailable", members=body.model_dump(), headers={"Retry-After": "1"},
        )  # fmt: skip
    if not ok:
        reason = broadcaster.failure or "it is shutting down"
        return problem(
            503, "Service degraded", f"the server stopped following the log: {reason}",
            slug="unavailable", members=body.model_dump(), headers={"Retry-After": "1"},
        )  # fmt: skip
    return JSONResponse(body.model_dump())


_PROBE = "fleet-write-probe"  # a checkpoint row no projection reads


async def _store_writable(app: Services) -> bool:
    """False while the log refuses writes; retried with a probe write at most once a second."""
    health = app.store_health
    if health.failure is None:
        return True
    now = time.monotonic()
    if now - health.probed_at < 1.0:
        return False
    health.probed_at = now
    try:
        head = await app.store.head()
        await app.store.checkpoints.save_checkpoints([Checkpoint(_PROBE, 1, head, "{}")])
    except StoreUnavailable as e:
        health.failed(e.reason)
        return False
    if health.recovered():
        logger.warning("the log can be written again: writes are accepted")
    return True


_OPERATIONS = [
    Operation("GET", "/healthz", "Health",
              "200 when the server is ready: the log's head, the projections' and the live "
              "stream's positions, and the SSE subscriber count.",
              response=Health, tag="server"),
    Operation("GET", "/metrics", "Metrics",
              "The server in Prometheus' text format: events appended, append latency, SSE "
              "subscribers and cut-offs, projection lag, agents by status, tokens and cost by "
              "model, and the live OpenTelemetry export when it is on.",
              response_schema={"type": "string"}, media_type="text/plain", tag="server"),
    Operation("GET", "/v1/openapi.json", "This document", response_schema={"type": "object"},
              tag="server"),
]  # fmt: skip
