"""Fixtures of the dashboard tests: a headless Chromium (or a skip saying why), a config, a page.

The browser is Debian's Chromium driven by Playwright (never `playwright
install`). Without it every test here is skipped with the reason; the rest of
the suite runs as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dash_support import ARTIFACTS, CHROMIUM_ARGS, find_chromium

from api import ApiConfig


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable, or a skip with the reason."""
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium on PATH (looked for `chromium`): the dashboard's browser tests need "
            "Debian's chromium package (apt-get install chromium)"
        )
    return path


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[object]:
    """A headless Chromium, closed after the test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def config(tmp_path: Path) -> ApiConfig:
    """A server config on a fresh log, polling fast for the test's own appends."""
    return ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: test-artifacts/dashboard/ at the repository's root (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
