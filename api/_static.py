"""The dashboard's files: where they are and the route that serves them at `/`.

The dashboard is plain HTML, CSS and JavaScript in `api/static/` (no build
step, nothing fetched from a CDN: it works offline). `create_app` mounts
`dashboard_mount()` last, so `/v1/...` and `/healthz` win over a file name. The API
reference is `docs/` in the same folder, served at `/docs` (`docs_route()`) and `/docs/`.

Notes (do not fix without reading this):
1. With a token configured, every request needs it (`_auth.py`). A browser
   loads `/?token=...`; `index.html`'s inline loader keeps the token for the
   tab (sessionStorage) and requests `app.css` and `app.js` with the same
   `?token=`, and `app.js` sends it as a Bearer header on fetch and as
   `?token=` on the EventSource. So the static files need no auth exemption.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["DOCS_DIR", "STATIC_DIR", "dashboard_mount", "docs_route"]

STATIC_DIR = Path(__file__).parent / "static"
"""The dashboard's files: `index.html`, `app.css`, `app.js`."""

DOCS_DIR = STATIC_DIR / "docs"
"""The API reference page (`/docs`): `index.html` and the vendored Redoc (see its README)."""


def dashboard_mount(directory: Path = STATIC_DIR) -> Mount:
    """The route serving the dashboard at `/` (`index.html` for `/`), named "dashboard".

    Raises `RuntimeError` (from Starlette) if `directory` does not exist.
    """
    return Mount("/", StaticFiles(directory=directory, html=True), name="dashboard")


def docs_route(directory: Path = DOCS_DIR) -> Route:
    """`GET /docs`: the API reference page itself, not a redirect to `/docs/`.

    The auth middleware takes `?token=` off the request (`_auth.py`), so a
    redirect would lose it; the page finds its files relative to either URL.
    """

    async def docs(request: Request) -> Response:
        return FileResponse(directory / "index.html", media_type="text/html")

    return Route("/docs", docs, methods=["GET", "HEAD"], name="docs")
