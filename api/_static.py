"""The dashboard's files: where they are and the route that serves them at `/`.

The dashboard is plain HTML, CSS and JavaScript in `api/static/` (no build
step, nothing fetched from a CDN: it works offline). `create_app` mounts
`dashboard_mount()` last, so `/v1/...` and `/healthz` win over a file name.

Notes (do not fix without reading this):
1. With a token configured, every request needs it (`_auth.py`). A browser
   loads `/?token=...`; `index.html`'s inline loader keeps the token for the
   tab (sessionStorage) and requests `app.css` and `app.js` with the same
   `?token=`, and `app.js` sends it as a Bearer header on fetch and as
   `?token=` on the EventSource. So the static files need no auth exemption.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "dashboard_mount"]

STATIC_DIR = Path(__file__).parent / "static"
"""The dashboard's files: `index.html`, `app.css`, `app.js`."""


def dashboard_mount(directory: Path = STATIC_DIR) -> Mount:
    """The route serving the dashboard at `/` (`index.html` for `/`), named "dashboard".

    Raises `RuntimeError` (from Starlette) if `directory` does not exist.
    """
    return Mount("/", StaticFiles(directory=directory, html=True), name="dashboard")
