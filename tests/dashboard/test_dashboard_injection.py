"""Text from the log is shown as text: markup in events never runs in the dashboard.

Every text field a run's events carry (the run's task, agents' names and
roles, prompts, the model's words, tool inputs and results, file paths, hook
reasons, approvals, task titles, errors, a Claude Code hook payload) holds
HTML and script that would run if the page put it in as markup. A real
headless Chromium opens every panel that shows them; nothing may run, and the
text must be there, as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from dash_support import CHROMIUM_ARGS, TIMEOUT_MS, dashboard_server

from api import ApiConfig
from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentFailed,
    ApprovalRequested,
    EventModel,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    RunStarted,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
)

pytestmark = pytest.mark.browser

RUN = "xss0run001"
ORCH = "orchestrator-xss0run001"
AGENT = "build-xss001"
SESSION = "sess-xss-0001"
# Each marks the page if it ever runs as markup: an element's handler, a script after a
# closed one, an attribute broken out of, an SVG handler.
HOSTILE = [
    "<img src=x onerror=\"window.__pwned=(window.__pwned||[]).concat('img')\">",
    "</script><script>window.__pwned=(window.__pwned||[]).concat('script')</script>",
    '"><svg onload="window.__pwned=(window.__pwned||[]).concat(\'svg\')">',
    "<iframe srcdoc=\"<script>parent.__pwned=['iframe']</script>\"></iframe>",
]
TEXT = " ".join(HOSTILE)


def hostile_run() -> list[tuple[str, list[NewEvent]]]:
    steps: list[tuple[str, list[NewEvent]]] = []

    def add(stream: str, agent: str | None, *datas: EventModel) -> None:
        meta = Meta(run_id=RUN, agent_id=agent, parent_id=None if agent in (None, ORCH) else ORCH)
        steps.append((stream, [NewEvent(d, meta) for d in datas]))  # type: ignore[arg-type]

    add(f"run-{RUN}", None, RunStarted(run_id=RUN, task=TEXT, pattern=HOSTILE[0],
                                       workspace=HOSTILE[1], model="haiku"))  # fmt: skip
    add(f"agent-{ORCH}", ORCH,
        AgentCreated(agent_id=ORCH, name=HOSTILE[2], role=HOSTILE[3], model="claude-sonnet-4-5"),
        AgentCommanded(agent_id=ORCH, prompt=TEXT))  # fmt: skip
    add(f"task-{RUN}-t1", ORCH, TaskCreated(task_id=f"{RUN}-t1", title=TEXT, assignee=AGENT))
    add(f"agent-{AGENT}", AGENT,
        AgentCreated(agent_id=AGENT, name=HOSTILE[0], role=HOSTILE[1], model="claude-haiku-4-5",
                     parent_id=ORCH, workspace=HOSTILE[2], task=TEXT),
        AgentCommanded(agent_id=AGENT, prompt=TEXT, by=HOSTILE[3]),
        ModelResponded(agent_id=AGENT, model="claude-haiku-4-5", stop_reason="tool_use",
                       usage=Usage(input_tokens=900, output_tokens=80), cost_usd=0.003,
                       duration_ms=300.0, turn=1,
                       content=[{"type": "text", "text": TEXT},
                                {"type": "tool_use", "id": "toolu_x1", "name": HOSTILE[2],
                                 "input": {"command": TEXT}}]),
        ToolCallRequested(agent_id=AGENT, tool_use_id="toolu_x1", name=HOSTILE[2],
                          input={"command": TEXT, HOSTILE[0]: HOSTILE[1]}),
        HookInvoked(point="PreToolUse", kind="command", hook=HOSTILE[3], agent_id=AGENT,
                    tool_use_id="toolu_x1", decision="deny", reason=TEXT),
        ToolCallCompleted(agent_id=AGENT, tool_use_id="toolu_x1", name=HOSTILE[2], result=TEXT,
                          is_error=True, blocked=True),
        ToolCallRequested(agent_id=AGENT, tool_use_id="toolu_x2", name="Write",
                          input={"file_path": HOSTILE[0], "content": TEXT}),
        ToolCallCompleted(agent_id=AGENT, tool_use_id="toolu_x2", name="Write", result=TEXT,
                          files_read=[HOSTILE[1]], files_written=[HOSTILE[0], HOSTILE[2]]),
        ToolCallRequested(agent_id=AGENT, tool_use_id="toolu_x3", name="Bash",
                          input={"command": TEXT}),
        HookInvoked(point="PreToolUse", kind="command", hook="guard.sh", agent_id=AGENT,
                    tool_use_id="toolu_x3", decision="ask", reason=TEXT),
        ApprovalRequested(approval_id="appr-xss1", agent_id=AGENT, tool_use_id="toolu_x3",
                          tool_name=HOSTILE[3], tool_input={"command": TEXT}, reason=TEXT,
                          timeout_s=3600))  # fmt: skip
    add(f"task-{RUN}-t1", ORCH, TaskMoved(task_id=f"{RUN}-t1", column="REVIEW", assignee=AGENT,
                                          reason=TEXT, artifacts=[HOSTILE[0]]))  # fmt: skip
    done = "done-xss002"
    add(f"agent-{done}", done,
        AgentCreated(agent_id=done, name="reviewer", role="reviewer", model="claude-haiku-4-5",
                     parent_id=ORCH),
        AgentCompleted(agent_id=done, summary=TEXT, artifacts=[HOSTILE[0], HOSTILE[3]]))  # fmt: skip
    failed = "fail-xss003"
    add(f"agent-{failed}", failed,
        AgentCreated(agent_id=failed, name="docs", role="builder", model="claude-haiku-4-5",
                     parent_id=ORCH),
        AgentFailed(agent_id=failed, error=TEXT))  # fmt: skip
    return steps


PWNED = "() => window.__pwned || null"
# Elements our payloads would make if they were parsed as markup (the page has no img,
# iframe or SVG of its own with these; its one inline script is in the head).
INJECTED = """() => [...document.querySelectorAll(
    'img[src="x"], iframe[srcdoc], svg[onload], body script:not([src])')].length"""


async def test_markup_in_every_text_field_is_shown_as_text_and_never_runs(
    chromium: str, tmp_path: Path
) -> None:
    config = ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, runtime=False)
    from playwright.async_api import async_playwright

    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        for stream, events in hostile_run():
            await store.append(stream, events)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            payload = {
                "session_id": SESSION, "hook_event_name": "UserPromptSubmit", "prompt": TEXT,
                "cwd": HOSTILE[1], "transcript_path": HOSTILE[2],
            }  # fmt: skip
            assert (await http.post("/v1/hooks/ingest", json=payload)).status_code == 201
            tool = {
                "session_id": SESSION, "hook_event_name": "PreToolUse", "tool_name": HOSTILE[0],
                "tool_input": {"command": TEXT, "file_path": HOSTILE[3]}, "tool_use_id": "tu1",
            }  # fmt: skip
            assert (await http.post("/v1/hooks/ingest", json=tool)).status_code == 201
        head = await store.head()

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                errors: list[str] = []
                dialogs: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.on("dialog", lambda dialog: dialogs.append(dialog.message))
                await page.goto(server.url + "/")
                await page.wait_for_function(
                    """(p) => document.body.dataset.viewPosition === String(p)
                              && document.body.dataset.loading !== 'true'""",
                    arg=head,
                )
                # The agents' cards, the board, the graph, the feed, the approvals, all runs.
                await page.locator(f'.task-card[data-task-id="{RUN}-t1"]').wait_for()
                await page.locator('#approvals .approval[data-approval-id="appr-xss1"]').wait_for()
                shown = await texts(page)
                # The run picked: the trace and the run's own views.
                await page.locator("#run-picker").select_option(RUN)
                await page.wait_for_function(
                    "(id) => document.getElementById('totals').dataset.run === id "
                    "&& document.body.dataset.loading !== 'true'",
                    arg=RUN,
                )
                shown += await texts(page)
                # Each agent's drawer: prompts, answers, tool inputs and results, hooks.
                for agent in (AGENT, "done-xss002", "fail-xss003", f"ext-{SESSION}"):
                    card = page.locator(f'.agent-card[data-agent-id="{agent}"]')
                    if await card.count() == 0:
                        await page.locator("#run-picker").select_option("")
                    await card.click()
                    await page.locator("#drawer-body .entry").first.wait_for()
                    shown += await texts(page)
                    await page.keyboard.press("Escape")
                # The drawer's search lists what it finds, with the text around it.
                await page.locator(f'.agent-card[data-agent-id="{AGENT}"]').click()
                await page.locator("#search").fill("onerror")
                await page.locator("#search-results .result").first.wait_for()
                shown += await texts(page)

                assert await page.evaluate(PWNED) is None
                assert await page.evaluate(INJECTED) == 0
                assert dialogs == []
                assert errors == []
                # Shown, as written: each payload appears as text somewhere on the page.
                for text in HOSTILE:
                    assert text in shown, f"{text!r} is not shown as text"
            finally:
                await browser.close()


async def texts(page: Any) -> str:
    """Everything the page shows as text now, attributes that a person sees (title) too."""
    text: str = await page.evaluate(
        """() => document.body.innerText + '\\n' + [...document.querySelectorAll('[title]')]
                  .map(e => e.getAttribute('title')).join('\\n') + '\\n' +
                  [...document.querySelectorAll('svg text')].map(t => t.textContent).join('\\n')"""
    )
    return text
