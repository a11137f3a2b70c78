"""A three-turn conversation with the orchestrator from the dashboard, in a real headless Chromium.

The server runs the runtime (the orchestrator answers through the simulator);
the page posts each message from its chat panel and shows the answers and the
conversation's agents as the log tells them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dash_support import dashboard_server
from test_dashboard import get_json, open_page

from api import ApiConfig
from runtime import prepare_workspace

pytestmark = pytest.mark.browser

RENAME = "rename `count_words` to `word_count`"
TURN_MS = 90_000  # a turn runs agents on the simulator; the machine may be loaded

READ_CHAT = """() => [...document.querySelectorAll('#chat-log > *')].map(el => ({
  position: Number(el.dataset.position), role: el.dataset.role || 'progress',
  text: el.classList.contains('chat-msg') ? el.querySelector('.text').textContent : el.textContent,
}))"""


async def say(page: Any, text: str, answers: int) -> str:
    """Send `text` from the panel; wait for the orchestrator's `answers`-th answer and return it."""
    await page.locator("#chat-input").fill(text)
    await page.locator("#chat-send").click()
    selector = '#chat-log .chat-msg[data-role="orchestrator"]'
    await page.wait_for_function(
        "([s, n]) => document.querySelectorAll(s).length >= n",
        arg=[selector, answers],
        timeout=TURN_MS,
    )
    return await page.locator(selector).nth(answers - 1).locator(".text").text_content() or ""


async def test_a_three_turn_conversation_from_the_chat_panel_with_its_agents_live(
    browser: Any, tmp_path: Path, artifacts: Path
) -> None:
    """Work, a question, a deletion: each answer in the panel, the run's agents shown as they come."""
    workspace = await prepare_workspace(tmp_path / "repo")
    config = ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, workspace=workspace)
    async with dashboard_server(config) as server:
        page = await open_page(browser, server.url + "/")
        await page.wait_for_function("document.getElementById('conn').dataset.state === 'live'")
        await page.locator("#chat-toggle").click()

        first = await say(page, RENAME, 1)
        assert first.startswith("DONE: 4 scouts"), first
        cid = await page.evaluate("() => sessionStorage.getItem('fleet-conversation')")
        run = f"chat-{cid}"
        agents = (await get_json(server.url, "/v1/agents", run_id=run))["agents"]
        # Each agent of the conversation's run appeared in the panel before the answer came.
        chat = await page.evaluate(READ_CHAT)
        answer = next(m["position"] for m in chat if m["role"] == "orchestrator")
        created = [m for m in chat if m["role"] == "progress" and "created" in m["text"]]
        assert len(created) == len(agents)
        assert all(m["position"] < answer for m in created)
        await page.wait_for_function(
            "(n) => document.querySelectorAll('#agents .agent-card').length >= n", arg=len(agents)
        )

        second = await say(page, "What did the builder decide?", 2)
        assert second.startswith("builder (completed, "), second
        third = await say(page, "Delete the scouts", 3)
        assert third.startswith("Deleted 4: scout-1, scout-2, scout-3, scout-4"), third

        conversation = await get_json(server.url, f"/v1/orchestrator/conversations/{cid}")
        assert {m["author"] for m in conversation["messages"] if m["role"] == "user"} == {
            "dashboard"
        }
        chat = await page.evaluate(READ_CHAT)
        assert [(m["position"], m["role"], m["text"]) for m in chat if m["role"] != "progress"] == [
            (m["position"], m["role"], m["text"]) for m in conversation["messages"]
        ]
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#chat-log .chat-progress')]"
            ".filter(p => p.textContent.endsWith('deleted')).length === 4"
        )
        for size, viewport in (("wide", (1400, 1000)), ("narrow", (800, 900))):
            await page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
            await page.screenshot(path=artifacts / f"dashboard-chat-conversation-{size}.png")
        assert page.errors == []
        await page.close()
