"""An ingested Claude Code session on the dashboard: its cards, its subagent, its tool calls' inputs.

The session is the one recorded from the real Claude Code 2.1.332
(tests/runtime/fixtures/claude-code-2.1.332/), posted to the ingest endpoint of
a served app while the page watches.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from dash_support import dashboard_server
from test_dashboard import READ_CARDS, assert_cards_match, get_json, open_page

from api import ApiConfig
from projections import PROCESS_HEADER, process_start, this_host

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).resolve().parents[1] / "runtime" / "fixtures" / "claude-code-2.1.332"
FEED_TEXTS = "() => [...document.querySelectorAll('#feed .feed-row .text')].map(t => t.textContent)"


def recorded_hooks() -> list[dict[str, Any]]:
    hooks = [json.loads(line) for line in (FIXTURES / "hooks.jsonl").read_text().splitlines()]
    for hook in hooks:  # the transcripts are where the fixtures keep them now
        hook["transcript_path"] = str(FIXTURES / "transcript.jsonl")
        if "agent_transcript_path" in hook:
            hook["agent_transcript_path"] = str(FIXTURES / "transcript-subagent.jsonl")
    return hooks


async def test_an_ingested_session_shows_its_subagent_tool_inputs_and_cost(
    browser: Any, config: ApiConfig, artifacts: Path
) -> None:
    hooks = recorded_hooks()
    session = f"ext-{hooks[0]['session_id']}"
    async with dashboard_server(config) as server:
        page = await open_page(browser, server.url + "/")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            for hook in hooks:
                assert (await http.post("/v1/hooks/ingest", json=hook)).status_code == 201
            async with asyncio.timeout(30):  # the transcripts are read after the hooks
                while (await http.get(f"/v1/agents/{session}")).json()["turns"] < 6:
                    await asyncio.sleep(0.1)
        head = (await get_json(server.url, "/healthz"))["head"]
        await page.wait_for_function(
            "(n) => document.querySelectorAll('#feed .feed-row').length >= n", arg=head
        )
        await page.wait_for_function(
            """(id) => { const c = document.querySelector(`.agent-card[data-agent-id="${id}"]`);
                         return c && Number(c.querySelector('.cost').dataset.value) > 0; }""",
            arg=session,
        )

        texts: list[str] = await page.evaluate(FEED_TEXTS)
        assert any(
            t.startswith("PreToolUse Edit file_path=/") and "old_string=" in t for t in texts
        )
        assert any(t.startswith("PreToolUse Bash command=grep ") for t in texts)
        assert any(t.startswith("SubagentStart Explore ") for t in texts)
        assert any(t.startswith("UserPromptSubmit: rename `count_words`") for t in texts)
        # The server reads the transcripts after the hooks and the page refreshes its cards on
        # its own time: wait until the cards show what the API says (the last mismatch fails).
        for attempt in range(150):  # 30 s
            agents = (await get_json(server.url, "/v1/agents"))["agents"]
            try:
                assert_cards_match(await page.evaluate(READ_CARDS), agents)
                break
            except AssertionError:
                if attempt == 149:
                    raise
                await asyncio.sleep(0.2)
        assert [a["parent_id"] for a in agents] == [None, session]
        await page.screenshot(path=artifacts / "dashboard-claude-code.png", full_page=True)

        # The session's drawer: each tool call's input as its PreToolUse hook posted it.
        await page.locator(f'.agent-card[data-agent-id="{session}"]').click()
        hooks_in_log = await get_json(
            server.url, "/v1/events", agent_id=session, type="ExternalHookReceived", limit=1000
        )
        await page.wait_for_function(
            "(p) => Number(document.getElementById('drawer-body').dataset.position) >= p",
            arg=hooks_in_log["events"][-1]["position"],
        )
        calls = await page.evaluate(
            """() => [...document.querySelectorAll('#drawer-body .entry-tool')].map(e => [
                 e.dataset.toolUseId, e.dataset.tool,
                 JSON.parse(e.querySelector('pre.tool-input').textContent)])"""
        )
        assert calls == [
            [e["data"]["payload"]["tool_use_id"], e["data"]["payload"]["tool_name"],
             e["data"]["payload"]["tool_input"]]
            for e in hooks_in_log["events"]
            if e["data"]["hook_event_name"] == "PreToolUse"
        ]  # fmt: skip
        assert calls
        assert page.errors == []
        await page.close()


async def test_a_session_whose_process_died_turns_interrupted_on_the_page_without_an_event(
    browser: Any, config: ApiConfig, artifacts: Path
) -> None:
    """No event marks the moment a killed Claude Code is gone: the page asks now and then."""
    host = this_host()
    if host is None:
        pytest.skip("no /proc here: only the time-based judgement applies")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(600)"
    )
    try:
        start = process_start(child.pid)
        value = (f"pid={child.pid};start={start};boot_id={host.boot_id};"
                 f"machine_id={host.machine_id};pid_ns={host.pid_ns}")  # fmt: skip
        session = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
        hook = {"session_id": session, "hook_event_name": "UserPromptSubmit", "prompt": "go"}
        async with dashboard_server(config) as server:
            page = await open_page(browser, server.url + "/")
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                start_hook = {**hook, "hook_event_name": "SessionStart"}
                headers = {PROCESS_HEADER: value}
                posted = await http.post("/v1/hooks/ingest", json=start_hook, headers=headers)
                assert posted.status_code == 201
                assert (await http.post("/v1/hooks/ingest", json=hook)).status_code == 201
            card = f'.agent-card[data-agent-id="ext-{session}"]'
            await page.wait_for_selector(f'{card}[data-status="working"]', timeout=30_000)

            child.kill()
            await child.wait()

            await page.wait_for_selector(f'{card}[data-status="interrupted"]', timeout=30_000)
            chip = '.chip[data-status="interrupted"][data-count="1"]'
            await page.wait_for_selector(chip, timeout=30_000)
            assert await page.query_selector('.chip[data-status="working"][data-count="0"]')
            node = f'#graph [data-agent-id="ext-{session}"][data-status="interrupted"]'
            await page.wait_for_selector(node, timeout=30_000)
            await page.screenshot(path=artifacts / "dashboard-interrupted.png", full_page=True)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
