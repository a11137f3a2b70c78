"""A three-turn conversation with the orchestrator from the dashboard, in a real headless Chromium.

The server runs the runtime (the orchestrator answers through the simulator);
the page posts each message from its chat panel and shows the answers and the
conversation's agents as the log tells them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from dash_support import dashboard_server
from test_dashboard import get_json, open_page

from api import ApiConfig
from events import ChatMessagePosted, Meta, NewEvent, SQLiteEventStore
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


async def test_text_typed_while_a_message_is_on_its_way_stays_and_enter_sends_it_once(
    browser: Any, config: ApiConfig
) -> None:
    """A message on its way (a slow network): Enter again does not send it a second time, and
    what is typed meanwhile stays in the box once it is sent (the box was emptied)."""
    async with dashboard_server(config) as server:
        page = await open_page(browser, server.url + "/")
        await page.wait_for_function("document.getElementById('conn').dataset.state === 'live'")
        sent: list[str] = []
        release = asyncio.Event()

        async def held(route: Any) -> None:
            sent.append(route.request.post_data_json["text"])
            await release.wait()  # on its way until the test lets it through
            await route.continue_()

        await page.route("**/v1/orchestrator/messages", held)
        await page.locator("#chat-toggle").click()
        await page.locator("#chat-input").fill("/status")
        async with page.expect_request("**/v1/orchestrator/messages"):
            await page.keyboard.press("Enter")
        await page.keyboard.press("Enter")
        await page.keyboard.type(" /cost")
        release.set()
        await page.locator('#chat-log .chat-msg[data-role="orchestrator"]').first.wait_for()
        await page.wait_for_function("() => !document.getElementById('chat-send').disabled")
        assert sent == ["/status"]
        assert await page.locator("#chat-input").input_value() == "/cost"
        assert page.errors == []
        await page.close()


async def test_the_chat_button_waits_for_the_page_to_be_ready(
    browser: Any, config: ApiConfig
) -> None:
    """The panel's parts start once the page's history has loaded: a click on the button
    before that did nothing, and the panel stayed shut (seen on a loaded machine)."""
    asked, released = asyncio.Event(), asyncio.Event()

    async def held(route: Any) -> None:
        asked.set()
        await released.wait()  # the history answers when the test says so
        await route.continue_()

    async with dashboard_server(config) as server:
        page = await browser.new_page()
        page.set_default_timeout(30_000)
        await page.route("**/v1/events?*", held)
        await page.goto(server.url + "/")
        async with asyncio.timeout(60):
            await asked.wait()
        assert await page.locator("#chat-toggle").is_disabled()
        released.set()
        await page.locator("#chat-toggle").click()  # waits for it to be enabled
        await page.locator("#chat").wait_for(state="visible")
        await page.close()


async def test_the_conversation_stays_where_it_was_scrolled_to_as_messages_come(
    browser: Any, config: ApiConfig
) -> None:
    """Scrolled up to read, the panel stays there when a message comes (it jumped to the
    end); at the end, it follows the conversation."""
    cid = "c-scroll"

    async def answer(store: SQLiteEventStore, i: int) -> None:
        posted = ChatMessagePosted(
            conversation_id=cid, role="orchestrator", text=f"answer {i}", author="fleet"
        )
        await store.append(f"chat-{cid}", [NewEvent(posted, Meta(run_id=f"chat-{cid}"))])

    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        for i in range(30):
            await answer(store, i)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(15_000)
        await page.add_init_script(f"sessionStorage.setItem('fleet-conversation', '{cid}')")
        await page.goto(server.url + "/")
        await page.locator("#chat-toggle").click()
        messages = page.locator("#chat-log .chat-msg")
        log = page.locator("#chat-log")
        await page.wait_for_function(
            "() => document.querySelectorAll('#chat-log .chat-msg').length === 30"
        )
        # The panel laid out (a loaded machine may not have yet): the log overflows, so
        # there is somewhere to scroll to.
        await page.wait_for_function(
            "() => { const l = document.getElementById('chat-log');"
            " return l.scrollHeight > l.clientHeight + 100; }"
        )
        await page.wait_for_function("document.getElementById('conn').dataset.state === 'live'")

        await log.evaluate("l => { l.scrollTop = 40; }")  # reading an earlier answer
        await answer(store, 30)
        await page.wait_for_function(
            "() => document.querySelectorAll('#chat-log .chat-msg').length === 31"
        )
        assert await log.evaluate("l => l.scrollTop") == 40

        await log.evaluate("l => { l.scrollTop = l.scrollHeight; }")  # at the end again
        await answer(store, 31)
        await messages.nth(31).wait_for()
        assert await log.evaluate("l => l.scrollHeight - l.scrollTop - l.clientHeight < 2")
        await page.close()


async def test_new_conversation_pressed_while_the_last_one_loads_stays_empty(
    browser: Any, config: ApiConfig
) -> None:
    """The tab's conversation loads slowly and New is pressed meanwhile: the new conversation
    stays empty (the old one's messages were drawn into it when they came)."""
    cid = "c-old"
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        posted = ChatMessagePosted(conversation_id=cid, role="orchestrator", text="an old answer")
        await store.append(f"chat-{cid}", [NewEvent(posted, Meta(run_id=f"chat-{cid}"))])
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(15_000)
        release = asyncio.Event()

        async def held(route: Any) -> None:
            await release.wait()  # a slow answer, until the test lets it through
            await route.continue_()

        await page.route(f"**/v1/orchestrator/conversations/{cid}", held)
        await page.add_init_script(f"sessionStorage.setItem('fleet-conversation', '{cid}')")
        async with page.expect_request(f"**/v1/orchestrator/conversations/{cid}"):
            await page.goto(server.url + "/")
        await page.locator("#chat-toggle").click()
        await page.locator("#chat-new").click()
        async with page.expect_request_finished(lambda r: f"/conversations/{cid}" in r.url):
            release.set()
        await page.evaluate("() => fetch('healthz').then((r) => r.json())")
        assert await page.locator("#chat-log > *").count() == 0
        status = await page.locator("#chat-status").text_content() or ""
        assert status.startswith("A new conversation")
        await page.close()
