"""Running the app under uvicorn: `serve()` for `fleet serve`, `serving()` for tests and embedding.

Notes (do not fix without reading this):
1. Without a token, only loopback addresses are allowed: the API commands
   agents that run tools, so an open port without auth would hand a shell to
   anyone on the network. A host name other than `localhost` counts as
   non-loopback (it could resolve anywhere). Beyond loopback the token must
   have at least 16 characters (`WeakToken`).
2. At shutdown uvicorn waits for open connections before it runs the app's
   lifespan shutdown; an SSE stream never ends by itself and a long poll
   waits up to 30 s, so the server subclass ends the streams and answers
   the polls (after closing the listening sockets) first.
   `timeout_graceful_shutdown` is the backstop.
3. When the app's lifespan cannot start (invalid hook settings in the
   workspace, a log it cannot open), uvicorn calls `sys.exit(3)` inside the
   server's task, and asyncio lets a `SystemExit` out of the event loop: a
   page of tracebacks and sockets left open. The server subclass raises the
   lifespan's own error instead (`FleetApp.startup_error`; a traceback only
   for an unexpected one), so `serve()` raises it and `fleet serve` prints
   its one line; both close the sockets they bound.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from projections import is_loopback_peer

from ._app import FleetApp, create_app
from ._config import ApiConfig
from ._listen import bind_sockets, normalize_host
from ._transport import FleetH11Protocol
from .errors import MIN_TOKEN_CHARS, ApiError, InsecureServe, WeakToken

__all__ = ["Serving", "is_loopback", "serve", "serving"]

logger = logging.getLogger(__name__)

_GRACEFUL_S = 5


def is_loopback(host: str) -> bool:
    """True if `host` is a loopback address (or `localhost`): safe to serve without a token."""
    return host.lower().rstrip(".") == "localhost" or is_loopback_peer(host.strip("[]"))


def _check_exposure(config: ApiConfig, host: str) -> str:
    """`host` normalized; raises `InsecureServe` or `WeakToken` beyond loopback (note 1)."""
    host = normalize_host(host)
    if not is_loopback(host):
        token = config.token_value
        if token is None:
            raise InsecureServe(host)
        if len(token) < MIN_TOKEN_CHARS:
            raise WeakToken(host, len(token))
    return host


class _Server(uvicorn.Server):
    """uvicorn's server, ending the app's SSE streams and long polls when it shuts down
    (note 2)."""

    def __init__(self, config: uvicorn.Config, app: FleetApp) -> None:
        super().__init__(config)
        self.fleet_app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:  # the lifespan could not start (note 3)
            error = self.fleet_app.startup_error
            if error is not None:
                raise error from None
            raise ApiError("the server could not start; see its log") from None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        self.fleet_app.shutting_down()
        await super().shutdown(sockets)


def _server(app: FleetApp, host: str, port: int, **uvicorn_options: Any) -> _Server:
    options: dict[str, Any] = {
        "http": FleetH11Protocol,  # the SSE stream sees its connection's buffer (_transport.py)
        "lifespan": "on",
        "timeout_graceful_shutdown": _GRACEFUL_S,
        "proxy_headers": False,
    }
    options.update(uvicorn_options)
    return _Server(uvicorn.Config(app, host=host, port=port, **options), app)


def _config(config: ApiConfig | None, db: str | Path | None, token: str | None) -> ApiConfig:
    if config is None:
        return ApiConfig.from_env(db=db, token=token)
    updates: dict[str, Any] = {}
    if db is not None:
        updates["db"] = db
    if token is not None:
        updates["token"] = token
    return ApiConfig.model_validate({**config.model_dump(), **updates}) if updates else config


async def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str | Path | None = None,
    token: str | None = None,
    *,
    config: ApiConfig | None = None,
    ready: Callable[[str], None] | None = None,
    **uvicorn_options: Any,
) -> None:
    """Serve the API under uvicorn until Ctrl-C, SIGTERM or cancellation (a graceful stop).

    `db` and `token` default to `FLEET_DB` / `FLEET_TOKEN` (then `.fleet/fleet.db`,
    no token); with `config`, they override its fields. `ready(url)` is called
    once the server answers `/healthz`. Extra keyword arguments go to
    `uvicorn.Config` (e.g. `log_level`).

    Raises:
        InsecureServe: `host` is not loopback and there is no token (nothing is bound).
        WeakToken: ... or a token of fewer than 16 characters.
        ListenError: `host`:`port` cannot be listened on (in use, no such name).
        ApiError: the log cannot be written (a read-only file, folder or disk).
    """
    api_config = _config(config, db, token)
    host = _check_exposure(api_config, host)
    sockets = await bind_sockets(host, port)
    try:
        # After the listen: a refused address creates no log.
        await _check_writable(api_config.db)
    except BaseException:
        _close(sockets)
        raise
    app = create_app(api_config)
    server = _server(app, host, port, **uvicorn_options)
    task = asyncio.create_task(server.serve(sockets=sockets), name="fleet-uvicorn")
    try:
        if ready is not None:
            ready(await _started(server, task, host))
        # Shielded: a cancel of serve() becomes a graceful shutdown, not a torn-down server.
        await asyncio.shield(task)
    except BaseException:
        if not task.done():
            server.should_exit = True
            await task
        raise
    finally:
        _close(sockets)


def _close(sockets: list[socket.socket]) -> None:
    """Close the listening sockets `bind_sockets` made (uvicorn closes only its servers')."""
    for sock in sockets:
        sock.close()


async def _check_writable(db: str | Path) -> None:
    """Open the log for writing and close it: a read-only one is one clear line, not a
    traceback out of the server's startup. Raises `ApiError`."""
    from events import StoreUnavailable, open_store

    try:
        async with open_store(db):
            pass  # opening for writing is the check
    except StoreUnavailable as e:
        raise ApiError(
            f"cannot serve {db}: {e.reason}. The server writes to its log; to read a "
            "read-only log use `fleet events`, `fleet agents` or `fleet replay`"
        ) from None


async def _started(server: _Server, task: asyncio.Task[None], host: str) -> str:
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()  # re-raises a startup failure
                raise ApiError("the server stopped during startup; see its log")
            await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{bound[1]}"


@dataclass(frozen=True, slots=True)
class Serving:
    """A running server: its base URL (no trailing slash) and its app."""

    url: str
    app: FleetApp


@asynccontextmanager
async def serving(
    config: ApiConfig, *, host: str = "127.0.0.1", port: int = 0, **uvicorn_options: Any
) -> AsyncIterator[Serving]:
    """Run the app under uvicorn on this event loop for the `async with` block.

    `port=0` picks a free port (see `Serving.url`). Logging is left to the
    caller (`log_config=None`) unless given. Raises like `serve()`.
    """
    host = _check_exposure(config, host)
    sockets = await bind_sockets(host, port)
    app = create_app(config)
    options: dict[str, Any] = {"log_config": None, "access_log": False}
    options.update(uvicorn_options)
    server = _server(app, host, port, **options)
    task = asyncio.create_task(server.serve(sockets=sockets), name="fleet-uvicorn")
    try:
        url = await _started(server, task, host)
        yield Serving(url, app)
    finally:
        server.should_exit = True
        try:
            await task
        finally:
            _close(sockets)
