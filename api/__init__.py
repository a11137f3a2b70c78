"""The edge: the Starlette app (HTTP JSON API under /v1, Server-Sent Events, hook ingest).

`create_app(config)` builds the ASGI app; its lifespan opens the log, the
projection runner and the live-stream broadcaster. `serve()` runs it under
uvicorn (what `fleet serve` calls); `serving()` does so inside an
`async with`, on a free loopback port, for tests and embedding. The `fleet`
command line is `api.cli`.

Notes (do not fix without reading this):
1. The names below are imported on first use (PEP 562), not with the package:
   `fleet` (`api.cli`) imports this package on every start, and `fleet
   hook-forward` must not pay for the server, the runtime or the anthropic SDK
   (see `api/cli/__init__.py`). `from api import create_app` and `api.serve`
   work as before; `_EXPORTS` says which module holds each name.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (note 1)
if TYPE_CHECKING:
    from ._app import FleetApp, create_app
    from ._config import DEFAULT_DB, ApiConfig
    from ._serve import Serving, is_loopback, serve, serving
    from ._state import Services
    from .errors import ApiError, BodyTooLarge, HTTPProblem, InsecureServe

__all__ = [
    "DEFAULT_DB",
    "ApiConfig",
    "ApiError",
    "BodyTooLarge",
    "FleetApp",
    "HTTPProblem",
    "InsecureServe",
    "Services",
    "Serving",
    "create_app",
    "is_loopback",
    "serve",
    "serving",
]

_EXPORTS = {
    "DEFAULT_DB": "._config",
    "ApiConfig": "._config",
    "ApiError": ".errors",
    "BodyTooLarge": ".errors",
    "FleetApp": "._app",
    "HTTPProblem": ".errors",
    "InsecureServe": ".errors",
    "Services": "._state",
    "Serving": "._serve",
    "create_app": "._app",
    "is_loopback": "._serve",
    "serve": "._serve",
    "serving": "._serve",
}


def __getattr__(name: str) -> object:
    """Import a public name's module on first use and keep the name here (note 1)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
