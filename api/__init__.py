"""The edge: the Starlette app (HTTP JSON API under /v1, Server-Sent Events, hook ingest).

`create_app(config)` builds the ASGI app; its lifespan opens the log, the
projection runner and the live-stream broadcaster. `serve()` runs it under
uvicorn (what `fleet serve` calls); `serving()` does so inside an
`async with`, on a free loopback port, for tests and embedding.
"""

from __future__ import annotations

from ._app import FleetApp, create_app
from ._config import DEFAULT_DB, ApiConfig
from ._serve import Serving, is_loopback, serve, serving
from ._state import Services
from .errors import ApiError, BodyTooLarge, HTTPProblem, InsecureServe, ListenError, WeakToken

__all__ = [
    "DEFAULT_DB",
    "ApiConfig",
    "ApiError",
    "BodyTooLarge",
    "FleetApp",
    "HTTPProblem",
    "InsecureServe",
    "ListenError",
    "Services",
    "Serving",
    "WeakToken",
    "create_app",
    "is_loopback",
    "serve",
    "serving",
]
