"""The dashboard's per-run views in a real headless Chromium: tiles, approvals, drawer, trace.

One server and one browser serve the whole module (a page per test): the log
holds the scripted scout-plan-build run of `dash_support`, a second scripted
run with two tool calls on hold for a person, and a real plan-build-review-ship
run on the simulator. Each test compares what the page shows with the API's
JSON or the log's events, as a user would check it.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from dash_support import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    DOCS,
    RUN_ID,
    SCOUT_B,
    TIMEOUT_MS,
    append_steps,
    dashboard_server,
    find_chromium,
    fleet_script,
)
from test_dashboard import READ_TOTALS, TASK, get_json

from api import ApiConfig
from events import (
    AgentCommanded,
    AgentCreated,
    ApprovalRequested,
    EventModel,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    RunStarted,
    SQLiteEventStore,
    ToolCallRequested,
    Usage,
)
from runtime import (
    Budgets,
    RuntimeOptions,
    load_pattern,
    open_runtime,
    prepare_workspace,
    run_pattern,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

RUN_2 = "run-d3pl0y22"
ORCH_2 = "orchestrator-d3pl0y22"
SHIPPER = "ship-77aa01"
CLEANER = "clean-88bb02"
# Each agent spends $0.0031: 89% of its budget, and the run's two 89% of the run's. The
# fleet's counts every agent in the log (the other runs' too).
BUDGETS_2 = {"agent_usd": 0.0035, "run_usd": 0.007, "fleet_usd": 0.007}
REAL_BUDGETS = Budgets(agent_usd=100.0)  # far above what a simulated run spends
SIZES = {"wide": {"width": 1400, "height": 1000}, "narrow": {"width": 800, "height": 900}}


def second_run() -> list[tuple[str, list[NewEvent]]]:
    """A run whose two agents each hold a tool call for a person's approval."""
    steps: list[tuple[str, list[NewEvent]]] = []

    def add(stream: str, agent: str | None, *datas: EventModel) -> None:
        meta = Meta(run_id=RUN_2, agent_id=agent, parent_id=None if agent == ORCH_2 else ORCH_2)
        steps.append((stream, [NewEvent(d, meta) for d in datas]))  # type: ignore[arg-type]

    add(f"run-{RUN_2}", None, RunStarted(run_id=RUN_2, task="ship the release", model="haiku",
                                         simulated=True, workspace="/work/sample",
                                         config={"budgets": BUDGETS_2}))  # fmt: skip
    add(f"agent-{ORCH_2}", ORCH_2,
        AgentCreated(agent_id=ORCH_2, name="orchestrator", role="orchestrator",
                     model="claude-sonnet-4-5"),
        AgentCommanded(agent_id=ORCH_2, prompt="ship the release"))  # fmt: skip
    for agent, name, command, call in (
        (SHIPPER, "ship", "git push origin main", "toolu_ship"),
        (CLEANER, "clean", "rm -rf dist/", "toolu_clean"),
    ):
        add(f"agent-{agent}", agent,
            AgentCreated(agent_id=agent, name=name, role="shipper", model="claude-haiku-4-5",
                         parent_id=ORCH_2),
            AgentCommanded(agent_id=agent, prompt=f"run {command}", by=ORCH_2),
            ModelResponded(agent_id=agent, model="claude-haiku-4-5", stop_reason="tool_use",
                           usage=Usage(input_tokens=900, output_tokens=80), cost_usd=0.0031,
                           duration_ms=350.0, turn=1),
            ToolCallRequested(agent_id=agent, tool_use_id=call, name="Bash",
                              input={"command": command}),
            HookInvoked(point="PreToolUse", kind="command", hook="guard.sh", agent_id=agent,
                        tool_use_id=call, decision="ask", reason="needs a person"),
            ApprovalRequested(approval_id=f"appr-{name}", agent_id=agent, tool_use_id=call,
                              tool_name="Bash", tool_input={"command": command},
                              reason="needs a person", timeout_s=3600))  # fmt: skip
    return steps


@dataclass
class Served:
    url: str
    store: SQLiteEventStore
    real_run: str
    artifacts: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """The server on one log: the scripted run, the run with approvals, a real pattern run."""
    if find_chromium() is None:
        pytest.skip("no Chromium on PATH: the dashboard's browser tests need Debian's chromium")
    tmp = tmp_path_factory.mktemp("views")
    # No runtime in the server: the page reads the log and answers approvals, nothing more.
    config = ApiConfig(db=tmp / "fleet.db", store_poll_s=0.05, runtime=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    workspace = await prepare_workspace(tmp / "workspace")
    options = RuntimeOptions(
        db=config.db, workspace=workspace, env={}, simulator_latency_s=0.01, budgets=REAL_BUDGETS
    )
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        for phase in fleet_script():
            await append_steps(store, phase)
        await append_steps(store, second_run())
        async with open_runtime(options) as rt:
            result = await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), TASK)
        assert result.status == "completed", result.error
        yield Served(server.url, store, result.run_id, ARTIFACTS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(served: Served) -> AsyncIterator[Any]:
    """One headless Chromium for the module."""
    from playwright.async_api import async_playwright

    chromium = find_chromium()
    assert chromium is not None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Any, url: str, size: str = "wide") -> Any:
    page = await browser.new_page(viewport=SIZES[size])
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    await page.goto(url)
    return page


async def settled(page: Any, served: Served) -> int:
    """Wait until the page's views reflect the log's head; returns the head."""
    head: int = await served.store.head()
    await page.wait_for_function(
        """(p) => document.body.dataset.viewPosition === String(p)
                  && document.body.dataset.loading !== 'true'""",
        arg=head,
    )
    return head


async def pick_run(page: Any, run_id: str) -> None:
    """Pick `run_id` and wait until the tiles show that run's totals."""
    await page.locator("#run-picker").select_option(run_id)
    await page.wait_for_function(
        """(id) => document.getElementById('totals').dataset.run === id
                  && document.body.dataset.loading !== 'true'""",
        arg=run_id,
    )


async def shoot(page: Any, served: Served, view: str, locator: str | None = None) -> None:
    """Screenshots of a view at both sizes, for a person to look at (FLEET_SCREENSHOTS=0: none)."""
    if os.environ.get("FLEET_SCREENSHOTS") == "0":
        return
    for size, viewport in SIZES.items():
        await page.set_viewport_size(viewport)
        path = served.artifacts / f"{view}-{size}.png"
        if locator is None:
            await page.screenshot(path=path)  # the viewport: a full page costs seconds
        else:
            await page.locator(locator).screenshot(path=path)
    await page.set_viewport_size(SIZES["wide"])


def tiles_of(fleet: dict[str, Any]) -> dict[str, Any]:
    return {
        "agents": fleet["agents"]["active"],
        "tokens": fleet["tokens"]["total"],
        "cost": pytest.approx(fleet["cost_usd"]),
        "context": fleet["context_tokens_in_use"],
        "events": pytest.approx(fleet["events"]["per_second"]),
    }


async def test_tiles_board_graph_and_feed_are_scoped_to_the_picked_run(
    browser: Any, served: Served
) -> None:
    """All runs: the whole log's totals; a picked run: that run's totals, board, graph, feed."""
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    everything = await get_json(served.url, "/v1/fleet")
    assert await page.evaluate(READ_TOTALS) == tiles_of(everything)

    for run_id in (RUN_2, RUN_ID):
        await pick_run(page, run_id)
        scoped = await get_json(served.url, "/v1/fleet", run_id=run_id)
        assert scoped["cost_usd"] < everything["cost_usd"]  # the test can tell them apart
        assert await page.evaluate(READ_TOTALS) == tiles_of(scoped)
        chips = await page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('#totals .chip')].map(
                 c => [c.dataset.status, Number(c.dataset.count)]))"""
        )
        assert chips == scoped["agents"]["by_status"]
        graph = await get_json(served.url, "/v1/graph", run_id=run_id)
        nodes = await page.evaluate(
            "() => [...document.querySelectorAll('#graph-svg g.node')].map(n => n.dataset.agentId)"
        )
        assert sorted(nodes) == sorted(n["id"] for n in graph["nodes"])
        board = await get_json(served.url, "/v1/board", run_id=run_id)
        tasks = await page.evaluate(
            "() => [...document.querySelectorAll('#board .task-card')].map(t => t.dataset.taskId)"
        )
        assert sorted(tasks) == sorted(t["id"] for c in board["columns"] for t in c["tasks"])
        runs = await page.evaluate(
            "() => new Set([...document.querySelectorAll('#feed .feed-row')].map(r => r.dataset.run))"
            ".size"
        )
        assert runs == 1
    await shoot(page, served, "dashboard-run-picked")
    assert page.errors == []
    await page.close()


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


async def post_json(base: str, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        return await client.post(path, json=body)


async def test_approve_and_deny_a_pending_call_from_the_approvals_panel(
    browser: Any, served: Served
) -> None:
    """Both calls on hold are listed with their input; Approve and Deny are recorded in the log.

    One person types a reason for one call while another, on a second page, approves the
    other: the typing goes on in the same box, and the reason sent is the whole of it. While
    an answer is on its way, its card takes no other (it would be refused and say so).
    """
    page = await open_page(browser, served.url + "/")
    other = await open_page(browser, served.url + "/")
    for p in (page, other):
        await settled(p, served)
        await p.wait_for_function(
            "() => document.querySelectorAll('#approvals .approval[data-state=pending]').length === 2"
        )
    panel = page.locator("#approvals-panel")
    pending = await get_json(served.url, "/v1/approvals")
    assert sorted(a["id"] for a in pending["approvals"]) == ["appr-clean", "appr-ship"]
    ship = page.locator('.approval[data-approval-id="appr-ship"]')
    assert '"command": "git push origin main"' in (
        await ship.locator("pre.input").text_content() or ""
    )
    await shoot(page, served, "dashboard-approvals", "#approvals-panel")

    clean = page.locator('.approval[data-approval-id="appr-clean"]')
    await clean.locator(".reason").click()
    await page.keyboard.type("not ")
    release = asyncio.Event()

    async def held(route: Any) -> None:
        await release.wait()  # the answer is on its way until the test lets it through
        await route.continue_()

    await other.route("**/v1/approvals/appr-ship", held)
    await other.locator('.approval[data-approval-id="appr-ship"] .approve').click()
    await other.wait_for_function(
        "() => document.querySelector('.approval[data-approval-id=appr-ship] .deny').disabled"
    )
    release.set()
    # Each page notes the answer it gave (checked now: the note goes after 8 s).
    await other.locator('.approval.answered[data-approval-id="appr-ship"]').wait_for()
    # The first page renders the panel again without the approved call ...
    await page.wait_for_function(
        "() => !document.querySelector('#approvals .approval[data-approval-id=appr-ship][data-state=pending]')"
    )
    await page.keyboard.type("today")  # ... and the box being typed in keeps the focus
    await clean.locator(".deny").click()
    await page.wait_for_function(
        "() => !document.querySelector('#approvals .approval[data-state=pending]')"
    )
    await panel.locator('.approval.answered[data-approval-id="appr-clean"]').wait_for()
    shipped = await get_json(served.url, "/v1/approvals/appr-ship")
    cleaned = await get_json(served.url, "/v1/approvals/appr-clean")
    assert (shipped["status"], shipped["by"]) == ("allowed", "dashboard")
    assert (cleaned["status"], cleaned["by"], cleaned["decision_reason"]) == (
        "denied", "dashboard", "not today",
    )  # fmt: skip
    await page.wait_for_function(
        "() => document.querySelectorAll('#feed .feed-row[data-type=ApprovalDecided]').length === 2"
    )
    assert page.errors == [] and other.errors == []
    await page.close()
    await other.close()


READ_DRAWER_CALLS = """() => [...document.querySelectorAll('#drawer-body .entry-tool')].map(e => ({
  id: e.dataset.toolUseId, tool: e.dataset.tool,
  input: JSON.parse(e.querySelector('pre.tool-input').textContent),
  result: e.querySelector('pre.tool-result') ? e.querySelector('pre.tool-result').textContent : null,
}))"""


async def test_the_drawer_shows_each_tool_call_input_and_result_from_the_log(
    browser: Any, served: Served
) -> None:
    """A click on a card opens its drawer: prompts, tool inputs and results, cost over time."""
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    events = (await get_json(served.url, "/v1/events", agent_id=SCOUT_B, limit=1000))["events"]
    await page.locator(f'.agent-card[data-agent-id="{SCOUT_B}"]').click()
    last = events[-1]["position"]
    await page.wait_for_function(
        "(p) => document.getElementById('drawer-body').dataset.position === String(p)", arg=last
    )
    results = {
        e["data"]["tool_use_id"]: e["data"]["result"]
        for e in events
        if e["type"] == "ToolCallCompleted"
    }
    assert await page.evaluate(READ_DRAWER_CALLS) == [
        {
            "id": e["data"]["tool_use_id"],
            "tool": e["data"]["name"],
            "input": e["data"]["input"],
            "result": results.get(e["data"]["tool_use_id"]),
        }
        for e in events
        if e["type"] == "ToolCallRequested"
    ]
    prompts = await page.locator("#drawer-body .entry-prompt pre").all_text_contents()
    assert prompts == [e["data"]["prompt"] for e in events if e["type"] == "AgentCommanded"]
    chart = page.locator("#drawer-summary .cost-chart")
    responses = [e for e in events if e["type"] == "ModelResponded"]
    assert await chart.get_attribute("data-points") == str(len(responses))
    assert float(await chart.get_attribute("data-total") or 0) == pytest.approx(
        sum(e["data"]["cost_usd"] for e in responses)
    )

    # Search across the run's events: every event whose text holds the words, nothing else.
    await page.locator("#search").fill("relevant-files-2")
    run_events = (await get_json(served.url, "/v1/events", run_id=RUN_ID, limit=1000))["events"]
    expected = [e["position"] for e in run_events if "relevant-files-2" in str(e["data"])]
    await page.wait_for_function(
        "(n) => document.getElementById('search-results').dataset.count === String(n)",
        arg=len(expected),
    )
    found = await page.evaluate(
        "() => [...document.querySelectorAll('#search-results .result')].map("
        "r => Number(r.dataset.position))"
    )
    assert found == expected
    await shoot(page, served, "dashboard-drawer")
    await page.keyboard.press("Escape")
    assert await page.locator("#drawer").is_hidden()
    assert page.errors == []
    await page.close()


def log_ms(iso: str) -> int:
    """A timestamp in whole milliseconds, as the browser's Date.parse reads it."""
    at = datetime.fromisoformat(iso)
    return calendar.timegm(at.utctimetuple()) * 1000 + at.microsecond // 1000


def expected_bars(events: list[dict[str, Any]]) -> list[tuple[str, str, int, int, float, float]]:
    """The trace's bars, from the log: (kind, agent, from position, position, start, end)."""
    t0 = log_ms(events[0]["recorded_at"])
    bars = []
    opened: dict[str, tuple[int, int]] = {}
    for e in events:
        d, p, t = e["data"], e["position"], log_ms(e["recorded_at"]) - t0
        agent = e["meta"].get("agent_id") or d.get("agent_id")
        if not agent:
            continue
        kind, key = e["type"], ""
        if kind in ("ModelResponded", "HookInvoked"):
            bar = "model" if kind == "ModelResponded" else "hook"
            bars.append((bar, agent, p, p, t - d.get("duration_ms", 0.0), float(t)))
        elif kind == "ContextCompacted":
            bars.append(("compaction", agent, p, p, float(t), float(t)))
        elif kind in ("ToolCallRequested", "ToolCallCompleted"):
            key = "tool:" + d["tool_use_id"]
        elif kind in ("AgentWaiting", "AgentWoke"):
            key = "wait:" + agent
        elif kind in ("ApprovalRequested", "ApprovalDecided"):
            key = "approval:" + d["approval_id"]
        if key and kind in ("ToolCallRequested", "AgentWaiting", "ApprovalRequested"):
            opened[key] = (p, t)
        elif key and key in opened:
            first, start = opened.pop(key)
            bars.append(
                ("tool" if key[0] == "t" else "wait", agent, first, p, float(start), float(t))
            )
    return sorted(bars)


READ_BARS = """() => [...document.querySelectorAll('#trace .bar')].map(b => [
  b.dataset.kind, b.dataset.agentId, Number(b.dataset.from), Number(b.dataset.position),
  Number(b.dataset.startMs), Number(b.dataset.endMs)])"""


async def test_the_trace_bars_of_a_real_run_match_the_logs_timestamps(
    browser: Any, served: Served
) -> None:
    """One lane per agent; every model call, tool call, hook and wait where the log puts it."""
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    run = served.real_run
    events = (await get_json(served.url, "/v1/events", run_id=run, limit=1000))["events"]
    await pick_run(page, run)
    await page.wait_for_function(
        """([run, p]) => { const t = document.getElementById('trace');
                           return t.dataset.run === run && t.dataset.position === String(p); }""",
        arg=[run, events[-1]["position"]],
    )
    bars = sorted(tuple(bar) for bar in await page.evaluate(READ_BARS))
    expected = expected_bars(events)
    assert {b[0] for b in expected} >= {"model", "tool", "wait"}  # the run has them all
    assert [b[:4] for b in bars] == [b[:4] for b in expected]
    assert [b[4:] for b in bars] == [pytest.approx(b[4:], abs=0.01) for b in expected]
    lanes = await page.evaluate(
        "() => [...document.querySelectorAll('#trace .lane')].map(l => l.dataset.agentId)"
    )
    created = [e["data"]["agent_id"] for e in events if e["type"] == "AgentCreated"]
    assert lanes == created
    graph = await get_json(served.url, "/v1/graph", run_id=run)
    path = next(p for p in graph["critical_paths"] if p["run_id"] == run)
    critical = await page.evaluate(
        "() => [...document.querySelectorAll('#trace .lane.critical')].map(l => l.dataset.agentId)"
    )
    assert set(critical) == {step["agent_id"] for step in path["path"]}

    tool = page.locator('#trace .bar[data-kind="tool"]').first
    position = int(await tool.get_attribute("data-from") or 0)
    # A tool call of 2 ms is a bar a few pixels wide, which the next model turn's bar
    # (drawn at its minimum width) can cover: the click goes to the bar itself.
    await tool.dispatch_event("click")
    requested = next(e for e in events if e["position"] == position)
    shown = page.locator(f'#trace-detail .detail-event[data-position="{position}"] pre')
    assert json.loads(await shown.text_content() or "") == requested["data"]
    await shoot(page, served, "dashboard-trace", ".trace-panel")
    assert page.errors == []
    await page.close()


GRAPH_GEOMETRY = """() => {
  const svg = document.getElementById('graph-svg');
  const box = (el) => { const r = el.getBoundingClientRect();
                        return [r.left, r.top, r.right, r.bottom]; };
  const tips = [...svg.querySelectorAll('path.edge[marker-end]')].map(p => {
    const q = p.getPointAtLength(p.getTotalLength()), m = p.getScreenCTM();
    const x = q.x * m.a + m.e, y = q.y * m.d + m.f;
    return [x - 7, y - 7, x + 7, y + 7];  // the arrowhead is 7 px
  });
  return {
    layout: svg.dataset.layout,
    labels: [...svg.querySelectorAll('g.node')].map(n => n.dataset.label),
    retries: [...svg.querySelectorAll('g.node.retry')].map(n => n.dataset.label),
    sentBack: [...svg.querySelectorAll('path.handoff.back')].map(p => [p.dataset.from, p.dataset.to].map(
      id => svg.querySelector(`g.node[data-agent-id="${id}"]`).dataset.label)),
    nodes: [...svg.querySelectorAll('g.node rect.box')].map(box),
    edgeLabels: [...svg.querySelectorAll('g.edge-label rect')].map(box),
    tips,
  };
}"""


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


async def test_the_graph_is_laid_out_with_retries_distinct_labels_and_clear_arrowheads(
    browser: Any, served: Served
) -> None:
    """The real run's graph: build, review, build #2 (a retry); no label under a node or arrow."""
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    run = served.real_run
    await pick_run(page, run)
    graph = await get_json(served.url, "/v1/graph", run_id=run)
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#graph-svg g.node').length === n",
        arg=len(graph["nodes"]),
    )
    shape = await page.evaluate(GRAPH_GEOMETRY)
    assert shape["layout"] == "dagre"
    assert len(set(shape["labels"])) == len(shape["labels"])  # every agent told apart
    assert {"build", "build #2", "review", "review #2"} <= set(shape["labels"])
    assert shape["retries"] == ["build #2", "review #2"]
    assert shape["sentBack"] == [["review", "build #2"]]  # the retry: build -> review -> build
    assert shape["edgeLabels"]  # the waits and the files that flowed are written on the edges
    for label in shape["edgeLabels"]:
        assert not any(overlap(label, node) for node in shape["nodes"]), label
        assert not any(overlap(label, tip) for tip in shape["tips"]), label
    for i, a in enumerate(shape["nodes"]):
        assert not any(overlap(a, b) for b in shape["nodes"][i + 1 :])
    await shoot(page, served, "dashboard-graph", "#graph")
    assert page.errors == []
    await page.close()


READ_ALERTS = """() => [...document.querySelectorAll('#alerts .alert')].map(a => [
  a.dataset.scope, a.dataset.id, a.dataset.budget, Number(a.dataset.percent)])"""


async def test_budget_alerts_past_80_percent_and_the_runs_cost_over_time(
    browser: Any, served: Served
) -> None:
    """Agents and a run past 80% of a budget recorded in RunStarted are flagged; others are not."""
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    await pick_run(page, RUN_2)
    await page.wait_for_function("() => document.getElementById('alerts').dataset.count === '4'")
    every_agent = (await get_json(served.url, "/v1/agents"))["agents"]
    fleet_cost = sum(a["cost_usd"] for a in every_agent)
    assert sorted(await page.evaluate(READ_ALERTS)) == [
        ["agent", CLEANER, "agent_usd", 89],
        ["agent", SHIPPER, "agent_usd", 89],
        ["fleet", "fleet", "fleet_usd", round(100 * fleet_cost / BUDGETS_2["fleet_usd"])],
        ["run", RUN_2, "run_usd", 89],
    ]
    assert fleet_cost > 2 * 0.0031  # the other runs count for the fleet, not for the run
    await shoot(page, served, "dashboard-alerts", "#alerts")

    # The scripted run has no budgets recorded, but a budget stopped its docs agent.
    await pick_run(page, RUN_ID)
    await page.wait_for_function("() => document.getElementById('alerts').dataset.count === '1'")
    assert await page.evaluate(READ_ALERTS) == [["agent", DOCS, "agent_usd", 100]]

    # The real run recorded its budgets (far from reached) and its cost over time.
    run = served.real_run
    started = await get_json(served.url, "/v1/events", run_id=run, type="RunStarted")
    assert started["events"][0]["data"]["config"]["budgets"] == {"agent_usd": 100.0}
    await pick_run(page, run)
    await page.wait_for_function("() => document.getElementById('alerts').dataset.count === '0'")
    events = (await get_json(served.url, "/v1/events", run_id=run, limit=1000))["events"]
    responses = [e for e in events if e["type"] == "ModelResponded"]
    series = page.locator('#totals [data-tile="cost"] svg.cost-series')
    await series.wait_for()
    assert await series.get_attribute("data-points") == str(len(responses))
    assert float(await series.get_attribute("data-total") or 0) == pytest.approx(
        sum(e["data"]["cost_usd"] for e in responses)
    )
    assert page.errors == []
    await page.close()


async def test_the_feed_keeps_showing_events_while_the_slider_is_scrubbed(
    browser: Any, served: Served
) -> None:
    """Scrubbed before the events the feed loaded, it shows those around the slider's position."""
    page = await open_page(browser, served.url + "/?history=40")
    head = await settled(page, served)
    loaded = await page.evaluate("() => window.fleetDashboard.events.length")
    assert loaded == 40
    for position in (head - 20, 30, 5, 120):  # inside what was loaded, then before it
        await page.locator("#slider").fill(str(position))
        await page.wait_for_function(
            """(p) => { const c = document.querySelector('#feed .feed-row.cursor');
                        return c && c.dataset.position === String(p); }""",
            arg=position,
        )
        shown = await page.evaluate(
            "() => [...document.querySelectorAll('#feed .feed-row:not(.future)')].map("
            "r => Number(r.dataset.position))"
        )
        assert position in shown
        assert len(shown) >= min(position, 20)  # the events before it are there to read
    assert await page.locator("#feed-window").is_visible()
    await shoot(page, served, "dashboard-scrubbing", ".col-feed")
    await page.locator("#live-btn").click()
    await page.wait_for_function(
        "(n) => Number(document.querySelector('#feed .feed-row').dataset.position) === n", arg=head
    )
    assert await page.locator("#feed-window").is_hidden()
    assert page.errors == []
    await page.close()


async def test_newest_agents_and_live_runs_first_and_deleted_agents_folded(
    browser: Any, served: Served
) -> None:
    """The run picker lists running runs first; cards newest first; deleted ones folded away."""
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    runs = (await get_json(served.url, "/v1/runs"))["runs"]
    listed = await page.evaluate(
        "() => [...document.querySelectorAll('#run-picker option')].map(o => o.value).slice(1)"
    )
    newest = [r["id"] for r in reversed(runs)]
    assert listed == [r for r in newest if r in (RUN_ID, RUN_2)] + [served.real_run]
    await pick_run(page, RUN_ID)
    agents = (await get_json(served.url, "/v1/agents", run_id=RUN_ID))["agents"]
    folded = page.locator("#deleted-agents")
    assert await folded.get_attribute("open") is None
    deleted = [a["id"] for a in agents if a["status"] == "deleted"]
    assert (
        await folded.locator(".agent-card").evaluate_all(
            "cards => cards.map(c => c.dataset.agentId)"
        )
        == deleted
    )
    assert not await folded.locator(".agent-card").first.is_visible()
    shown = await page.evaluate(
        "() => [...document.querySelectorAll('#agents > .agent-card')].map(c => c.dataset.agentId)"
    )
    assert shown == [a["id"] for a in reversed(agents) if a["status"] != "deleted"]
    await folded.locator("summary").click()
    assert await folded.locator(".agent-card").first.is_visible()
    assert page.errors == []
    await page.close()


async def test_the_chat_panel_opens_and_says_when_the_server_takes_no_messages(
    browser: Any, served: Served
) -> None:
    """The orchestrator's panel opens from its button; a server that takes no messages is said so.

    This server has no runtime (and, until the chat API is merged, no route): the
    message is refused and kept in the box.
    """
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    assert await page.locator("#chat").is_hidden()
    await page.locator("#chat-toggle").click()
    assert await page.locator("#chat").is_visible()
    await page.locator("#chat-input").fill("/status")
    await page.locator("#chat-send").click()
    status = page.locator('#chat-status[data-error="true"]')
    await status.wait_for()
    said = await status.text_content() or ""
    assert "/v1/orchestrator/messages" in said or "runtime" in said
    assert await page.locator("#chat-input").input_value() == "/status"  # nothing lost
    await shoot(page, served, "dashboard-chat")
    assert page.errors == []
    await page.close()


async def test_a_picked_runs_feed_holds_its_events_older_than_the_feed_keeps(
    browser: Any, served: Served
) -> None:
    """With the log's last 20 events loaded (`?history=20`), picking the first run showed
    none of its events in the feed (it filtered the last 20 only)."""
    page = await open_page(browser, served.url + "/?history=20")
    await settled(page, served)
    await pick_run(page, RUN_ID)
    expected = [e["position"] for e in (await get_json(served.url, "/v1/events", run_id=RUN_ID,
                                                        limit=1000))["events"]]  # fmt: skip
    assert len(expected) > 20
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#feed .feed-row').length >= n", arg=len(expected)
    )
    shown = await page.evaluate(
        "() => [...document.querySelectorAll('#feed .feed-row')].map(r => Number(r.dataset.position))"
    )
    assert sorted(shown) == expected
    assert page.errors == []
    await page.close()


def held_requests(url_part: str) -> tuple[asyncio.Event, Any]:
    """A route handler holding every request whose URL holds `url_part` until the event is set."""
    release = asyncio.Event()

    async def handler(route: Any) -> None:
        if url_part in route.request.url:
            await release.wait()  # a slow answer, until the test lets it through
        await route.continue_()

    return release, handler


async def test_a_run_picked_while_another_runs_range_is_loading_keeps_the_page(
    browser: Any, served: Served
) -> None:
    """Pick a run, then another before the first's range came: the page shows the second's
    slider and feed, not the first's when its answers come late."""
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    release, handler = held_requests(f"run_id={RUN_ID}")
    await page.route(lambda url: "/v1/events?" in url, handler)
    await page.locator("#run-picker").select_option(RUN_ID)
    await pick_run(page, RUN_2)
    first = (await get_json(served.url, "/v1/events", run_id=RUN_2, limit=1))["events"][0]
    await page.wait_for_function(
        "(min) => document.getElementById('slider').min === String(min)",
        arg=first["position"] - 1,
    )
    # The first run's answers come now; the page's own next round trip comes after them.
    last = f"run_id={RUN_ID}&type=RunCompleted"
    async with page.expect_request_finished(lambda r: last in r.url):
        release.set()
    await page.evaluate("() => fetch('healthz').then((r) => r.json())")
    assert await page.locator("#slider").get_attribute("min") == str(first["position"] - 1)
    assert await page.locator("#run-picker").input_value() == RUN_2
    runs = await page.evaluate(
        "() => [...new Set([...document.querySelectorAll('#feed .feed-row')].map(r => r.dataset.run))]"
    )
    assert runs == [RUN_2]
    assert page.errors == []
    await page.close()


async def test_a_search_answered_late_does_not_show_in_another_agents_drawer(
    browser: Any, served: Served
) -> None:
    """Search in one agent's drawer, open another's before the first run's events came: the
    drawer shows the search through the second agent's run, not the first's when it lands."""
    page = await open_page(browser, served.url + "/")
    await settled(page, served)
    release, handler = held_requests(f"run_id={RUN_ID}")
    await page.route(lambda url: "/v1/events?" in url, handler)
    await page.locator(f'.agent-card[data-agent-id="{SCOUT_B}"]').click()
    async with page.expect_request(lambda r: f"run_id={RUN_ID}" in r.url):
        await page.locator("#search").fill("bash")
    await page.locator("#drawer-close").click()  # (Escape would empty the search box too)
    await page.locator(f'.agent-card[data-agent-id="{SHIPPER}"]').click()
    results = page.locator("#search-results > .muted")
    await page.wait_for_function(
        "(run) => document.querySelector('#search-results > .muted')?.textContent.includes(run)",
        arg=RUN_2,
    )
    async with page.expect_request_finished(lambda r: f"run_id={RUN_ID}" in r.url):
        release.set()
    await page.evaluate("() => fetch('healthz').then((r) => r.json())")
    assert f"of the run {RUN_2} match" in (await results.text_content() or "")
    events = (await get_json(served.url, "/v1/events", run_id=RUN_2, limit=1000))["events"]
    expected = [e["position"] for e in events if "bash" in f"{e['type']} {e['data']}".lower()]
    found = await page.evaluate(
        "() => [...document.querySelectorAll('#search-results .result')].map("
        "r => Number(r.dataset.position))"
    )
    assert found == expected
    assert page.errors == []
    await page.close()
