"""Another site's page, in the real headless Chromium, cannot make a tokenless fleet server act.

The attacker is a page on a second loopback server (another port: another
origin). It tries what any page may do without asking: `fetch` in `no-cors`
mode and form posts (text/plain shaped into JSON, and urlencoded), plus a
CORS fetch with a JSON body (which needs a preflight). The server's access log
shows that each request arrived and what it was answered; the log of events
shows that nothing was created. DNS rebinding is tried too: a name that
resolves to 127.0.0.1 (`--host-resolver-rules`) gets 421 for the page and for
its same-origin fetches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from dash_support import CHROMIUM_ARGS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from api import ApiConfig, Serving, serving

pytestmark = pytest.mark.browser

TIMEOUT_S = 20

ATTACK = """<!doctype html><html><body>
<iframe name="sink"></iframe><iframe name="sink2"></iframe>
<form id="plain" method="post" enctype="text/plain" target="sink" action="API/v1/runs">
  <input name='{"task": "pwned by a form", "x": "' value='"}'>
</form>
<form id="urlencoded" method="post" target="sink2" action="API/v1/agents">
  <input name="name" value="pwned"><input name="role" value="scout">
</form>
<script>
(async () => {
  const tries = [];
  const attempt = async (what, promise) => {
    try { await promise; tries.push(what + ": sent"); }
    catch (e) { tries.push(what + ": " + e.name); }
  };
  await attempt("runs", fetch("API/v1/runs", {method: "POST", mode: "no-cors",
    body: JSON.stringify({task: "pwned by fetch"})}));
  await attempt("ingest", fetch("API/v1/hooks/ingest", {method: "POST", mode: "no-cors",
    body: JSON.stringify({hook_event_name: "Stop", session_id: "pwned"})}));
  await attempt("agents", fetch("API/v1/agents", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({name: "pwned", role: "scout"})}));
  await attempt("cors", fetch("API/v1/agents", {method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({name: "pwned", role: "scout"})}));
  // A frame each: a second navigation of one frame cancels the first if its request has
  // not gone out yet (200 ms apart, as they were, is not always enough on a loaded machine).
  document.getElementById("plain").submit();
  document.getElementById("urlencoded").submit();
  window.tries = tries;
})();
</script></body></html>"""


@asynccontextmanager
async def attacker_site(api: str) -> AsyncIterator[str]:
    """A second loopback server (another origin) whose page attacks `api`."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(ATTACK.replace("API", api))

    app = Starlette(routes=[Route("/", page)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class AccessLog(logging.Handler):
    """uvicorn's access log lines as (method, path, status)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            self.lines.append((str(args[1]), str(args[2]), int(args[4])))  # type: ignore[call-overload]


@asynccontextmanager
async def fleet_server(tmp_path: Path) -> AsyncIterator[tuple[Serving, AccessLog]]:
    """A tokenless fleet server with its runtime (so POST /v1/runs would start agents)."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    config = ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, workspace=workspace)
    log = AccessLog()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(log)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        async with serving(config, access_log=True) as server:
            yield server, log
    finally:
        access.removeHandler(log)
        access.setLevel(level)


async def wait_for(predicate: Any, what: str) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not predicate():
            await asyncio.sleep(0.05)
    assert predicate(), what


async def test_a_page_of_another_origin_creates_nothing(browser: Any, tmp_path: Path) -> None:
    async with fleet_server(tmp_path) as (server, log), attacker_site(server.url) as evil:
        page = await browser.new_page()
        await page.goto(evil + "/")
        await page.wait_for_function("() => window.tries !== undefined", timeout=TIMEOUT_S * 1000)
        tries = await page.evaluate("() => window.tries")
        posts = lambda: [line for line in log.lines if line[0] == "POST"]  # noqa: E731
        await wait_for(lambda: len(posts()) == 5, "the five POSTs reached the server")
        await page.close()

        assert tries == ["runs: sent", "ingest: sent", "agents: sent", "cors: TypeError"]
        assert sorted(posts()) == [
            ("POST", "/v1/agents", 403), ("POST", "/v1/agents", 403),
            ("POST", "/v1/hooks/ingest", 403), ("POST", "/v1/runs", 403),
            ("POST", "/v1/runs", 403),
        ]  # fmt: skip
        # The CORS fetch stopped at its preflight: no CORS answer, so the POST was never sent.
        assert ("OPTIONS", "/v1/agents", 405) in log.lines
        assert server.app.services is not None
        assert await server.app.services.store.head() == 0, "nothing was written to the log"


async def test_the_servers_own_page_may_post(browser: Any, tmp_path: Path) -> None:
    """The control: the same fetch from a page the server serves itself is accepted."""
    async with fleet_server(tmp_path) as (server, _):
        page = await browser.new_page()
        await page.goto(server.url + "/")
        status = await page.evaluate(
            """async () => (await fetch("/v1/hooks/ingest", {method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({hook_event_name: "Stop", session_id: "mine"})})).status"""
        )
        await page.close()
        assert status == 201
        assert server.app.services is not None
        assert await server.app.services.store.head() == 1


async def test_a_rebound_name_gets_421_for_the_page_and_its_fetches(
    chromium: str, tmp_path: Path
) -> None:
    """DNS rebinding: the attacker's name now resolves to 127.0.0.1; the server refuses it."""
    from playwright.async_api import async_playwright

    rules = "--host-resolver-rules=MAP rebound.example 127.0.0.1"
    async with fleet_server(tmp_path) as (server, _), async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=[*CHROMIUM_ARGS, rules]
        )
        try:
            port = server.url.rsplit(":", 1)[1]
            page = await browser.new_page()
            response = await page.goto(f"http://rebound.example:{port}/")
            assert response is not None
            assert response.status == 421
            statuses = await page.evaluate(
                """async () => [
                  (await fetch("/v1/events")).status,
                  (await fetch("/v1/events/stream")).status,
                  (await fetch("/app.js")).status,
                  (await fetch("/v1/hooks/ingest", {method: "POST",
                    headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({hook_event_name: "Stop", session_id: "rebound"})})).status,
                ]"""
            )
            assert statuses == [421, 421, 421, 421]
        finally:
            await browser.close()
        assert server.app.services is not None
        assert await server.app.services.store.head() == 0
