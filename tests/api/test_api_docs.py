"""The API reference at `/docs`, in a real headless Chromium against a real server (uvicorn).

The page renders the server's own OpenAPI document with the vendored Redoc:
every operation is listed, a view's response schema can be read field by
field, nothing is fetched from anywhere but the server, and it works behind
a token as the dashboard does. Debian's Chromium is driven by Playwright, as
in tests/dashboard (skipped with the reason when there is none).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import ApiConfig, serving

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "docs"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]  # fmt: skip


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's), or a skip saying why."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on PATH: /docs is checked in Debian's chromium package")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


Opened = tuple[Any, list[str], list[tuple[str, str | None]], list[str]]


async def _open_docs(browser: Any, url: str) -> Opened:
    """The docs page, rendered: with the URLs it requested, those that failed, its errors."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    requested: list[str] = []
    blocked: list[tuple[str, str | None]] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", lambda request: blocked.append((request.url, request.failure)))
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    await page.wait_for_selector("body[data-loaded]", timeout=TIMEOUT_MS)
    await page.get_by_role("heading", name="fleet").first.wait_for(timeout=TIMEOUT_MS)
    return page, requested, blocked, errors


async def test_docs_render_every_operation_offline(browser: Any, tmp_path: Path) -> None:
    config = ApiConfig(db=tmp_path / "fleet.db", runtime=False, store_poll_s=0.05)
    async with serving(config) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            document = (await http.get("/v1/openapi.json")).json()
        page, requested, blocked, errors = await _open_docs(browser, server.url + "/docs")
        try:
            assert page.url == server.url + "/docs"
            # Redoc renders the operations after the heading, and a part of a long page only
            # while it is near the viewport: scroll down a screen at a time (from the top again
            # at the end) and keep each operation as it is seen, until every one has been.
            pairs = [[m.upper(), p] for p, item in document["paths"].items() for m in item]
            await page.wait_for_function(
                """pairs => {
                    const seen = window.__seenOperations = window.__seenOperations || new Set();
                    const text = document.body.innerText;
                    for (const [m, p] of pairs) {
                        if (text.includes(m + "\\n" + p) || text.includes(m + " " + p)) {
                            seen.add(m + " " + p);
                        }
                    }
                    const bottom = window.scrollY + window.innerHeight >= document.body.scrollHeight;
                    window.scrollTo(0, bottom ? 0 : window.scrollY + window.innerHeight);
                    return pairs.every(([m, p]) => seen.has(m + " " + p));
                }""",
                arg=pairs,
                timeout=TIMEOUT_MS * 3,
                polling=100,
            )
            text = " ".join(await page.evaluate("[...window.__seenOperations]"))
            for path, item in document["paths"].items():
                for method in item:
                    assert f"{method.upper()} {path}" in text, path
            # A view's page: its scoping and polling parameters, headers, and response fields.
            await page.goto(server.url + "/docs/#/views/get_v1_graph")
            await page.get_by_role("heading", name="Dependency graph").first.wait_for()
            await page.get_by_text("critical_paths").first.wait_for(timeout=TIMEOUT_MS)
            view = await page.inner_text("main") if await page.locator("main").count() else ""
            view = view or await page.inner_text("body")
            for field in ("run_id", "agent_id", "status", "role", "at", "min_position", "wait",
                          "If-None-Match", "nodes", "edges", "bottlenecks", "critical_paths"):  # fmt: skip
                assert field in view, field
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "docs-graph.png"))
        finally:
            await page.close()
    assert not errors
    # Nothing left the machine: the only requests elsewhere are those the page's own
    # Content-Security-Policy blocked in the browser (Redoc's CDN logo).
    gone_out = [u for u in requested if not u.startswith((server.url, "data:", "blob:"))]
    refused = {u for u, failure in blocked if failure == "csp"}
    assert set(gone_out) <= refused, f"the page fetched from elsewhere: {gone_out}"
    assert any(u.endswith("/docs/redoc.standalone.js") for u in requested)


async def test_docs_behind_a_token(browser: Any, tmp_path: Path) -> None:
    """`/docs?token=...` loads the renderer and the document with the token, like the dashboard."""
    token = "docs-s3cret"
    config = ApiConfig(db=tmp_path / "fleet.db", runtime=False, store_poll_s=0.05, token=token)
    async with serving(config) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/docs/")).status_code == 401
        page, requested, _, errors = await _open_docs(browser, f"{server.url}/docs?token={token}")
        await page.close()
    assert not errors
    assert any("/docs/redoc.standalone.js?token=" in u for u in requested)
