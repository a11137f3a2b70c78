"""The dashboard in a real headless Chromium against a real server (uvicorn on loopback).

Each test compares what the page shows with the JSON of the projection routes
at the same position, the way a user would check the page against the API.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from dash_support import (
    BUILDER,
    DOCS,
    ORCH,
    PLANNER,
    RUN_ID,
    SCOUT_A,
    SCOUT_B,
    TIMEOUT_MS,
    append_steps,
    count_events,
    dashboard_server,
    fleet_script,
)
from log_support import cut_short

from api import ApiConfig
from events import (
    AgentCreated,
    Meta,
    NewEvent,
    RunStarted,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    process_owner,
)
from runtime import RuntimeOptions, load_pattern, open_runtime, prepare_workspace, run_pattern

pytestmark = pytest.mark.browser

TASK = "rename `count_words` to `word_count` everywhere"

READ_CARDS = """() => [...document.querySelectorAll('#agents .agent-card')].map(card => {
  const q = (s) => card.querySelector(s);
  const files = (s) => [...card.querySelectorAll(s + ' li.file')].map(li => li.dataset.file);
  const last = q('.tools .last');
  const blocked = q('.tools .blocked');
  return {
    id: card.dataset.agentId, status: card.dataset.status,
    name: q('.name').textContent, role: q('.role').textContent, model: q('.model').textContent,
    used: Number(q('.ctx').dataset.used), limit: Number(q('.ctx').dataset.limit),
    cost: Number(q('.cost').dataset.value), tokens: Number(q('.tokens').dataset.value),
    consumed: files('.files-consumed'), produced: files('.files-produced'),
    tool_count: Number(q('.tool-count').dataset.value),
    last: last ? {name: last.dataset.name, status: last.dataset.status} : null,
    blocked: blocked ? Number(blocked.dataset.value) : 0,
    error: q('.error') ? q('.error').textContent : null,
  };
})"""

READ_BOARD = """() => Object.fromEntries(
  [...document.querySelectorAll('#board .board-column')].map(col => [
    col.dataset.column, [...col.querySelectorAll('.task-card')].map(t => t.dataset.taskId)]))"""

READ_GRAPH = """() => ({
  nodes: [...document.querySelectorAll('#graph-svg g.node')].map(n => n.dataset.agentId),
  statuses: Object.fromEntries([...document.querySelectorAll('#graph-svg g.node')].map(
    n => [n.dataset.agentId, n.dataset.status])),
  edges: [...document.querySelectorAll('#graph-svg path.edge')].map(
    e => [e.dataset.kind, e.dataset.from, e.dataset.to]),
  open: [...document.querySelectorAll('#graph-svg path.edge[data-open="true"]')].map(
    e => [e.dataset.from, e.dataset.to]),
  bottlenecks: [...document.querySelectorAll('#graph-svg g.node.bottleneck')].map(
    n => n.dataset.agentId),
})"""

READ_TOTALS = """() => Object.fromEntries([...document.querySelectorAll('#totals .tile')].map(
  t => [t.dataset.tile, Number(t.querySelector('.v').dataset.value)]))"""

READ_CHIPS = """() => Object.fromEntries([...document.querySelectorAll('#totals .chip')].map(
  c => [c.dataset.status, Number(c.dataset.count)]))"""

READ_RATE = """() => document.querySelector('#totals [data-tile="events"] .d').textContent"""

READ_TOKENS = """() => document.querySelector('#totals [data-tile="tokens"] .d').textContent"""

FEED_POSITIONS = """() => [...document.querySelectorAll('#feed .feed-row')].map(
  r => Number(r.dataset.position))"""


async def get_json(base: str, path: str, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.get(path, params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


async def open_page(browser: Any, url: str) -> Any:
    page = await browser.new_page(viewport={"width": 1500, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.requested = requested
    await page.goto(url)
    return page


async def settled(page: Any, position: int) -> None:
    """Wait until every panel shows the state as of `position` and nothing is loading."""
    await page.wait_for_function(
        """(p) => document.body.dataset.viewPosition === String(p)
                  && document.body.dataset.loading !== 'true'""",
        arg=position,
    )


async def feed_shows(page: Any, count: int) -> list[int]:
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#feed .feed-row').length >= n", arg=count
    )
    positions: list[int] = await page.evaluate(FEED_POSITIONS)
    return positions


def short_model(model: str) -> str:
    return model.removeprefix("claude-")


def shown_order(agents: list[dict[str, Any]]) -> list[str]:
    """The cards' order: newest first, the deleted ones (folded away) last, newest first too."""
    ids = [a["id"] for a in reversed(agents) if a["status"] != "deleted"]
    return ids + [a["id"] for a in reversed(agents) if a["status"] == "deleted"]


def assert_cards_match(cards: list[dict[str, Any]], agents: list[dict[str, Any]]) -> None:
    assert [c["id"] for c in cards] == shown_order(agents)
    by_id = {a["id"]: a for a in agents}
    for card in cards:
        agent = by_id[card["id"]]
        last = agent["tool_calls"]["last"]
        assert card == {
            "id": agent["id"],
            "status": agent["status"],
            "name": agent["name"],
            "role": agent["role"],
            "model": short_model(agent["model"]),
            "used": agent["context"]["used"],
            "limit": agent["context"]["limit"],
            "cost": pytest.approx(agent["cost_usd"]),
            "tokens": agent["tokens"]["total"],
            "consumed": agent["files_consumed"],
            "produced": agent["files_produced"],
            "tool_count": agent["tool_calls"]["count"],
            "last": None if last is None else {"name": last["name"], "status": last["status"]},
            "blocked": agent["blocked_calls"],
            "error": card["error"] if agent["error"] else None,
        }, agent["id"]
        if agent["error"]:
            assert agent["error"][:60] in card["error"]


def assert_graph_matches(graph_dom: dict[str, Any], graph: dict[str, Any]) -> None:
    assert graph_dom["nodes"] == [n["id"] for n in graph["nodes"]]
    assert graph_dom["statuses"] == {n["id"]: n["status"] for n in graph["nodes"]}
    assert sorted(map(tuple, graph_dom["edges"])) == sorted(
        (e["kind"], e["from"], e["to"]) for e in graph["edges"]
    )
    assert sorted(map(tuple, graph_dom["open"])) == sorted(
        (e["from"], e["to"]) for e in graph["edges"] if e["kind"] == "waits_on" and e["open"]
    )
    waited = [b for b in graph["bottlenecks"] if b["waited_on_ms"] > 0 or b["waiters_now"] > 0]
    if waited:
        assert waited[0]["agent_id"] in graph_dom["bottlenecks"]
    assert set(graph_dom["bottlenecks"]) <= {b["agent_id"] for b in waited}


async def assert_page_matches_api(page: Any, base: str, **at: Any) -> None:
    """Cards, board, graph and totals equal the projection routes' JSON (`at=` for the past)."""
    agents = await get_json(base, "/v1/agents", **at)
    assert_cards_match(await page.evaluate(READ_CARDS), agents["agents"])
    board = await get_json(base, "/v1/board", **at)
    assert await page.evaluate(READ_BOARD) == {
        column["name"]: [task["id"] for task in column["tasks"]] for column in board["columns"]
    }
    assert_graph_matches(await page.evaluate(READ_GRAPH), await get_json(base, "/v1/graph", **at))
    fleet = await get_json(base, "/v1/fleet", **at)
    assert await page.evaluate(READ_TOTALS) == {
        "agents": fleet["agents"]["active"],
        "tokens": fleet["tokens"]["total"],
        "cost": pytest.approx(fleet["cost_usd"]),
        "context": fleet["context_tokens_in_use"],
        "events": pytest.approx(fleet["events"]["per_second"]),
    }
    assert await page.evaluate(READ_CHIPS) == fleet["agents"]["by_status"]
    # The rate is the log's, up to its last event, not the wall clock's: the tile says so.
    rate = await page.evaluate(READ_RATE)
    assert f"{fleet['events']['last_minute']:,} in the minute to the last event" in rate
    # "in" is the uncached input alone (a feed row's "in" is the whole prompt): it says so.
    tokens = await page.evaluate(READ_TOKENS)
    assert tokens.startswith("in ") and " uncached · out " in tokens, tokens


async def test_dashboard_shows_what_the_projections_say_as_events_arrive(
    browser: Any, config: ApiConfig, artifacts: Path
) -> None:
    """Cards, board, graph, totals and feed follow the log live and agree with the API."""
    phases = fleet_script()
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        # The run is live: this test holds its lease, as its conductor would. Without it the
        # run and its agents are "interrupted" now (test_a_run_whose_process_died_...).
        await store.leases.acquire_lease(f"run-{RUN_ID}", process_owner(), 600)
        first = await append_steps(store, phases[0])
        page = await open_page(browser, server.url + "/")
        await settled(page, first)
        assert await feed_shows(page, first) == list(range(first, 0, -1))
        await assert_page_matches_api(page, server.url)

        head = await append_steps(store, phases[1] + phases[2])
        await settled(page, head)
        positions = await feed_shows(page, head)
        assert sorted(positions) == list(range(1, head + 1))
        await assert_page_matches_api(page, server.url)
        # Live, the agents, the runs and the board were brought forward with the cards
        # changed since the lists the page held, not asked for whole again; what it holds is
        # each whole list (app.js, note 4).
        deltas = (await page.evaluate("window.fleetDashboard.stats"))["deltas"]
        assert deltas["agents"] >= 1 and deltas["runs"] >= 1 and deltas["board"] >= 1
        for name in ("agents", "runs", "board"):
            assert any(f"/v1/{name}?" in u and "changed_after=" in u for u in page.requested)
            held = await page.evaluate(f"window.fleetDashboard.views.{name}")
            at = await page.evaluate(f"window.fleetDashboard.positions.{name}")
            # Live, the runs were asked for now: whether a process conducts a run is not in
            # the log below the head (api/_routes_views.py, note 4), and the runs' position
            # lags the head when the last events were none of theirs.
            asked = {} if name == "runs" else {"at": at}
            assert held == await get_json(server.url, f"/v1/{name}", **asked)
        # With no run picked, the graph of the runs it draws only (graph.js's RUN_CAP).
        assert any("/v1/graph?" in url and "latest_runs=8" in url for url in page.requested)

        # What a user looks for, in plain sight.
        blocked = page.locator(f'.agent-card[data-agent-id="{SCOUT_B}"] .blocked')
        assert await blocked.text_content() == "1 blocked"
        running = page.locator(f'.agent-card[data-agent-id="{BUILDER}"] .tools .last')
        assert await running.text_content() == "Bash · running"
        failed = page.locator(f'.agent-card[data-agent-id="{DOCS}"] .error')
        assert "budget" in (await failed.text_content() or "")
        warm = page.locator(f'.agent-card[data-agent-id="{PLANNER}"] .ctx .fill')
        assert "warm" in (await warm.get_attribute("class") or "")
        assert await page.locator('.task-card[data-task-id="t-json"] .returns').count() == 1
        assert await page.locator('#feed .feed-row[data-cat="bad"]').count() >= 3
        assert await page.locator("#conn").get_attribute("data-state") == "live"
        await page.screenshot(path=artifacts / "dashboard-live.png", full_page=True)
        assert page.errors == []
        # Everything came from the server itself: no CDN, no font service (works offline).
        assert page.requested
        assert [url for url in page.requested if not url.startswith(server.url + "/")] == []
        await page.close()


# Every text the trace panel shows, from the page's first parse (before any script of its).
RECORD_TRACE = """document.addEventListener('DOMContentLoaded', () => {
  const box = document.getElementById('trace');
  window.traceTexts = [box.textContent];
  new MutationObserver(() => window.traceTexts.push(box.textContent))
    .observe(box, {childList: true, subtree: true, characterData: true});
});"""


async def trace_texts(browser: Any, url: str, until: str, *, slow_runs: bool = False) -> list[str]:
    """The texts the trace showed in a page of `url` until the JS condition `until` held;
    with `slow_runs`, the server's answers for the runs reach the page a second late."""
    page = await browser.new_page(viewport={"width": 1500, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    await page.add_init_script(RECORD_TRACE)
    if slow_runs:

        async def late(route: Any) -> None:
            response = await route.fetch()
            await asyncio.sleep(1.0)  # a slow network, not a wait for a condition
            await route.fulfill(response=response)

        await page.route("**/v1/runs*", late)
    await page.goto(url)
    await page.wait_for_function(until)
    texts: list[str] = await page.evaluate("window.traceTexts")
    await page.close()
    return texts


async def test_the_trace_says_no_runs_only_once_it_knows_there_are_none(
    browser: Any, config: ApiConfig
) -> None:
    """Loading, it says so: "No runs yet." is for a log without runs, never a flash before
    a run's trace."""
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        empty = await trace_texts(
            browser,
            server.url + "/",
            "document.getElementById('trace').textContent === 'No runs yet.'",
        )
        assert empty[0] == "Loading runs…"

        await append_steps(store, fleet_script()[0])
        drawn = "document.getElementById('trace').dataset.run !== undefined"
        for slow_runs in (False, True):
            texts = await trace_texts(browser, server.url + "/", drawn, slow_runs=slow_runs)
            assert texts[0] == "Loading runs…"
            assert "No runs yet." not in texts


async def test_dashboard_resumes_after_a_server_restart_without_lost_or_doubled_events(
    browser: Any, config: ApiConfig, artifacts: Path, reserved_port: int
) -> None:
    """Stop the server, append while it is down, restart it: the feed holds 1..N exactly once.

    The port is kept for the test (`reserved_port`): let go while the server is down,
    another process could take it (for a server of its own or as a connection's port), and
    the restart would fail with "address already in use"."""
    phases = fleet_script()
    async with SQLiteEventStore(config.db) as store:
        first = await append_steps(store, phases[0])
        async with dashboard_server(config, port=reserved_port) as server:
            page = await open_page(browser, server.url + "/")
            await settled(page, first)
            await append_steps(store, phases[1][:5])  # some arrive live
            await feed_shows(page, first + count_events(phases[1][:5]))
        await page.wait_for_function("document.getElementById('conn').dataset.state !== 'live'")
        await append_steps(store, phases[1][5:])  # written while the server is down

        async with dashboard_server(config, port=reserved_port) as server:
            head = await append_steps(store, phases[2])  # and after the restart
            await page.wait_for_function("document.getElementById('conn').dataset.state === 'live'")
            positions = await feed_shows(page, head)
            await settled(page, head)
            assert sorted(positions) == list(range(1, head + 1))  # none lost, none doubled
            stats = await page.evaluate("window.fleetDashboard.stats")
            assert stats["gaps"] == []
            assert stats["reconnects"] >= 1
            assert page.errors == []  # first: an error would explain a view left behind
            await page.screenshot(path=artifacts / "dashboard-after-restart.png", full_page=True)
            held = await page.evaluate(
                "({positions: window.fleetDashboard.positions, board: window.fleetDashboard"
                ".views.board, stats: window.fleetDashboard.stats})"
            )
            try:
                await assert_page_matches_api(page, server.url)
            except AssertionError as e:  # what the page held and asked for, to find out why
                raise AssertionError(
                    f"{e}\npage held: {held}\nasked: {page.requested[-60:]}"
                ) from e
            await page.close()


async def test_time_slider_shows_a_past_position_then_goes_live_again(
    browser: Any, config: ApiConfig, artifacts: Path
) -> None:
    """Moving the slider shows the projections `?at=` that position; Live returns to the head."""
    phases = fleet_script()
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        past = await append_steps(store, phases[0])
        before = await append_steps(store, phases[1])
        page = await open_page(browser, server.url + "/")
        await settled(page, before)

        await page.locator("#slider").fill(str(past))
        await settled(page, past)
        assert await page.locator("body").get_attribute("data-live") == "false"
        await assert_page_matches_api(page, server.url, at=past)
        # Back in time, the page asked for the cards changed since, by id, as of that
        # position, and holds each whole list as it was then (app.js, note 4).
        backs = (await page.evaluate("window.fleetDashboard.stats"))["backs"]
        assert backs["agents"] >= 1 and backs["runs"] >= 1
        asked = [u for u in page.requested if f"at={past}" in u]
        assert any("/v1/agents?" in u and "agent_id=" in u for u in asked)
        for name in ("agents", "runs"):
            held = await page.evaluate(f"window.fleetDashboard.views.{name}")
            assert held == await get_json(server.url, f"/v1/{name}", at=past)
        # At that position no scout had finished and the planner did not exist yet.
        assert await page.locator(f'.agent-card[data-agent-id="{PLANNER}"]').count() == 0
        orchestrator = page.locator(f'.agent-card[data-agent-id="{ORCH}"]')
        assert await orchestrator.get_attribute("data-status") == "waiting"
        assert await page.locator("#feed .feed-row.future").count() == before - past
        label = await page.locator("#position-label").text_content() or ""
        assert label.startswith(f"position {past} of {before}")
        await page.screenshot(path=artifacts / "dashboard-time-travel.png", full_page=True)

        # New events reach the feed but do not move a past view.
        head = await append_steps(store, phases[2])
        await feed_shows(page, head)
        assert await page.locator("body").get_attribute("data-view-position") == str(past)
        assert await page.locator(f'.agent-card[data-agent-id="{BUILDER}"]').count() == 0
        assert await page.locator("#slider").get_attribute("max") == str(head)

        await page.locator("#live-btn").click()
        await settled(page, head)
        assert await page.locator("body").get_attribute("data-live") == "true"
        assert await page.locator(f'.agent-card[data-agent-id="{BUILDER}"]').count() == 1
        await assert_page_matches_api(page, server.url)
        assert page.errors == []
        await page.close()


async def test_feed_filters_by_agent_and_type_and_pause_holds_new_events(
    browser: Any, config: ApiConfig
) -> None:
    """Filters narrow the feed to matching events; pause holds new rows until resume."""
    phases = fleet_script()
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        first = await append_steps(store, phases[0] + phases[1])
        page = await open_page(browser, server.url + "/")
        await settled(page, first)

        await page.locator("#filter-agent").select_option(SCOUT_B)
        rows = page.locator("#feed .feed-row")
        agents = await rows.evaluate_all("rows => rows.map(r => r.dataset.agent)")
        expected = await get_json(server.url, "/v1/events", agent_id=SCOUT_B, limit=1000)
        assert agents == [SCOUT_B] * len(expected["events"])
        assert sorted(await page.evaluate(FEED_POSITIONS)) == [
            e["position"] for e in expected["events"]
        ]

        await page.locator("#filter-agent").select_option("")
        await page.locator("#filter-type").select_option("ToolCallCompleted")
        types = set(await rows.evaluate_all("rows => rows.map(r => r.dataset.type)"))
        assert types == {"ToolCallCompleted"}
        blocked = page.locator('#feed .feed-row[data-cat="bad"]')
        assert "BLOCKED" in (await blocked.first.text_content() or "")
        await page.locator("#filter-type").select_option("")

        await page.locator("#pause").click()
        shown = await rows.count()
        head = await append_steps(store, phases[2])
        await page.wait_for_function("(n) => window.fleetDashboard.lastId === n", arg=head)
        assert await rows.count() == shown
        notice = await page.locator("#feed-paused").text_content() or ""
        assert notice.startswith(f"Paused: {head - first} new events")
        await page.locator("#pause").click()
        assert sorted(await feed_shows(page, head)) == list(range(1, head + 1))
        assert page.errors == []
        await page.close()


@pytest.mark.parametrize(("history", "loaded"), [("1.5", 1), ("-5", 500), ("abc", 500)])
async def test_a_history_that_is_no_whole_number_still_loads_the_page(
    browser: Any, config: ApiConfig, history: str, loaded: int
) -> None:
    """Regression: `/?history=1.5` asked for `after=519.5`, a 400 the page retried forever (it
    never showed anything); `-5` loaded no history, then streamed every event of the log."""
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        ticks = [
            NewEvent(TaskCreated(task_id=f"t{i}", title="tick"), Meta(run_id="r1"))
            for i in range(520)
        ]
        head = (await store.append("ticks", ticks))[-1].position
        page = await open_page(browser, f"{server.url}/?history={history}")
        await settled(page, head)
        await feed_shows(page, loaded)
        stats = await page.evaluate("() => window.fleetDashboard.stats")
        assert stats["received"] == loaded
        assert sorted(await page.evaluate(FEED_POSITIONS)) == list(
            range(head - loaded + 1, head + 1)
        )
        assert page.errors == []
        await page.close()


async def test_dashboard_with_a_token_authenticates_fetches_and_the_stream(
    browser: Any, tmp_path: Path
) -> None:
    """Opened as /?token=..., the page loads, its fetches and its EventSource carry the token."""
    token = "dash-s3cret"
    config = ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, token=token)
    phases = fleet_script()
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        first = await append_steps(store, phases[0])
        anonymous = await browser.new_page()
        response = await anonymous.goto(server.url + "/")
        assert response is not None
        assert response.status == 401
        await anonymous.close()

        page = await open_page(browser, f"{server.url}/?token={token}")
        await settled(page, first)
        head = await append_steps(store, phases[1])
        await settled(page, head)  # the live stream authenticated too
        assert sorted(await feed_shows(page, head)) == list(range(1, head + 1))
        assert await page.locator("#banner").is_hidden()
        assert page.errors == []
        await page.close()


async def test_a_real_pattern_run_shows_live_then_the_run_picker_scopes_and_replays_it(
    browser: Any, config: ApiConfig, artifacts: Path, tmp_path: Path
) -> None:
    """A plan-build-review-ship run (simulator), watched live, then picked and replayed."""
    workspace = await prepare_workspace(tmp_path / "workspace")
    options = RuntimeOptions(db=config.db, workspace=workspace, env={}, simulator_latency_s=0.01)
    async with open_runtime(options) as rt, dashboard_server(config) as server:
        page = await open_page(browser, server.url + "/")
        await page.wait_for_function("document.getElementById('conn').dataset.state === 'live'")
        result = await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), TASK)
        assert result.status == "completed", result.error
        head = await rt.store.head()
        await settled(page, head)
        assert sorted(await feed_shows(page, head)) == list(range(1, head + 1))
        await assert_page_matches_api(page, server.url)

        await page.locator("#run-picker").select_option(result.run_id)
        run_agents = await get_json(server.url, "/v1/agents", run_id=result.run_id)
        cards = await page.evaluate(READ_CARDS)
        assert [c["id"] for c in cards] == shown_order(run_agents["agents"])
        assert {c["role"] for c in cards} == {
            "orchestrator", "planner", "builder", "reviewer", "shipper",
        }  # fmt: skip
        assert await page.evaluate(READ_BOARD) == {
            "PLAN": [], "BUILD": [], "REVIEW": [], "SHIP": [],
            "DONE": [result.run_id], "FAILED": [],
        }  # fmt: skip
        graph = await page.evaluate(READ_GRAPH)
        assert sorted(graph["nodes"]) == sorted(a["id"] for a in run_agents["agents"])
        assert {kind for kind, _, _ in graph["edges"]} == {"created", "waits_on", "consumes"}
        # The summary is drawn once the run's range has been fetched: wait for it.
        await page.wait_for_function(
            "document.getElementById('run-summary').textContent.includes('completed')",
            timeout=TIMEOUT_MS,
        )
        summary = await page.locator("#run-summary").text_content() or ""
        assert "completed" in summary
        assert "plan-build-review-ship" in summary
        assert await page.locator("#filter-run").input_value() == result.run_id
        assert await page.evaluate(
            "[...document.querySelectorAll('#feed .feed-row')].every(r => r.dataset.run === "
            f"'{result.run_id}')"
        )
        slider = page.locator("#slider")
        assert await slider.get_attribute("min") == "0"  # the run starts at position 1
        assert await slider.get_attribute("max") == str(head)
        assert "#run=" in page.url
        await page.screenshot(path=artifacts / "dashboard-real-run.png", full_page=True)

        await page.locator("#play").click()  # replay from the run's start
        await page.wait_for_function(
            "() => Number(document.getElementById('slider').value) > 8"
            " && document.body.dataset.live === 'false'"
        )
        await page.locator("#play").click()  # stop where it is
        await page.wait_for_function("() => document.body.dataset.loading !== 'true'")
        position = int(await slider.input_value())
        await settled(page, position)
        assert 0 < position < head
        agents_then = await get_json(server.url, "/v1/agents", run_id=result.run_id, at=position)
        cards = await page.evaluate(READ_CARDS)
        assert [c["id"] for c in cards] == shown_order(agents_then["agents"])
        statuses = {a["id"]: a["status"] for a in agents_then["agents"]}
        assert {c["id"]: c["status"] for c in cards} == statuses
        await page.screenshot(path=artifacts / "dashboard-replay.png", full_page=True)
        assert page.errors == []
        await page.close()


async def test_with_many_runs_the_graph_draws_the_latest_and_names_how_many_are_not(
    browser: Any, config: ApiConfig
) -> None:
    """Ten runs of two agents: the graph draws the eight whose agents came last (asked for
    alone, `latest_runs`), says two are not drawn, and draws any run picked."""
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        runs = [f"run-many{i:02d}" for i in range(10)]
        for run in runs:
            meta = Meta(run_id=run)
            await store.append(f"run-{run}", [NewEvent(RunStarted(run_id=run, task="t"), meta)])
            for role in ("scout", "builder"):
                agent = f"{run}-{role}"
                created = AgentCreated(agent_id=agent, name=role, role=role, model="sim")
                await store.append(f"agent-{agent}", [NewEvent(created, meta)])
        head = await store.head()
        page = await open_page(browser, server.url + "/")
        await settled(page, head)
        drawn = (
            "() => [...document.querySelectorAll('#graph-svg rect.band')].map(b => b.dataset.run)"
        )
        assert sorted(await page.evaluate(drawn)) == runs[2:]
        graph = await get_json(server.url, "/v1/graph", latest_runs=8)
        nodes = (await page.evaluate(READ_GRAPH))["nodes"]
        assert sorted(nodes) == sorted(n["id"] for n in graph["nodes"])
        note = page.locator("#graph-notes .hidden-runs")
        assert await note.text_content() == "2 older runs not drawn: pick one in the run picker."
        await page.select_option("#run-picker", runs[0])
        await page.wait_for_function(
            "(run) => [...document.querySelectorAll('#graph-svg rect.band')].map(b => b.dataset.run)"
            ".join() === run",
            arg=runs[0], timeout=TIMEOUT_MS,
        )  # fmt: skip
        assert page.errors == []
        await page.close()


async def test_a_board_column_of_many_runs_shows_its_latest_tasks_and_how_many_are_not(
    browser: Any, config: ApiConfig
) -> None:
    """130 runs of one task each: with no run picked the column shows the latest 120 tasks and
    says ten are not shown; a run picked shows its own."""
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        for i in range(130):
            run, meta = f"run-task{i:03d}", Meta(run_id=f"run-task{i:03d}")
            await store.append(f"run-{run}", [NewEvent(RunStarted(run_id=run, task="t"), meta)])
            created = TaskCreated(task_id=f"t{i:03d}", title=f"task {i}")
            await store.append(f"task-t{i:03d}", [NewEvent(created, meta)])
        head = await store.head()
        page = await open_page(browser, server.url + "/")
        await settled(page, head)
        board = await get_json(server.url, "/v1/board")
        (column,) = [c for c in board["columns"] if len(c["tasks"]) == 130]
        shown = (await page.evaluate(READ_BOARD))[column["name"]]
        assert shown == [t["id"] for t in column["tasks"]][-120:]
        older = page.locator(f'.board-column[data-column="{column["name"]}"] .older-tasks')
        assert await older.text_content() == "10 older tasks not shown: pick a run"
        # Tasks moved live, out of creation order, and a new one: the page brings the board
        # it holds forward with those tasks only, each in its column in creation order.
        for i in (129, 5, 3):
            meta = Meta(run_id=f"run-task{i:03d}")
            await store.append(
                f"task-t{i:03d}", [NewEvent(TaskMoved(task_id=f"t{i:03d}", column="BUILD"), meta)]
            )
        await store.append(
            "task-t130",
            [NewEvent(TaskCreated(task_id="t130", title="late"), Meta(run_id="run-task000"))],
        )
        head = await store.head()
        await settled(page, head)
        assert (await page.evaluate(READ_BOARD))["BUILD"] == ["t003", "t005", "t129"]
        assert any("/v1/board?" in u and "changed_after=" in u for u in page.requested)
        held = await page.evaluate("window.fleetDashboard.views.board")
        assert held == await get_json(
            server.url, "/v1/board", at=await page.evaluate("window.fleetDashboard.positions.board")
        )
        await page.select_option("#run-picker", "run-task000")
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#board .task-card')].map(t => t.dataset.taskId)"
            ".join() === 't000,t130'",
            timeout=TIMEOUT_MS,
        )  # fmt: skip
        assert await page.locator("#board .older-tasks").count() == 0
        assert page.errors == []
        await page.close()


async def test_a_board_column_scrolled_down_stays_there_while_the_fleet_works(
    browser: Any, config: ApiConfig
) -> None:
    """A long column scrolled to its end stays there when the page draws the board again
    (on each refresh of the agents: it went back to the top)."""
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        meta = Meta(run_id="run-long")
        await store.append("run-long", [NewEvent(RunStarted(run_id="run-long", task="t"), meta)])
        for i in range(40):
            created = TaskCreated(task_id=f"t{i:02d}", title=f"task {i}")
            await store.append(f"task-t{i:02d}", [NewEvent(created, meta)])
        page = await open_page(browser, server.url + "/")
        await settled(page, await store.head())
        column = page.locator(".board-column", has=page.locator(".task-card"))
        scrolled = await column.evaluate(
            "c => { c.scrollTop = c.scrollHeight; return c.scrollTop; }"
        )
        assert scrolled > 0
        agent = AgentCreated(agent_id="scout-9", name="scout", role="scout", model="sim")
        await store.append("agent-scout-9", [NewEvent(agent, meta)])
        await settled(page, await store.head())
        assert await page.locator('.agent-card[data-agent-id="scout-9"]').count() == 1
        assert await column.evaluate("c => c.scrollTop") == scrolled
        assert page.errors == []
        await page.close()


async def test_the_drawer_keeps_a_selection_and_its_mark_while_the_agent_works(
    browser: Any, config: ApiConfig
) -> None:
    """Opened from a search result, the drawer marks that event; text selected in it stays
    selected, and the mark stays, as the agent's next events come (the drawer was drawn
    anew on each: the selection went, and the mark with it)."""
    phases = fleet_script()
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        first = await append_steps(store, phases[0])
        page = await open_page(browser, server.url + "/")
        await settled(page, first)
        events = (await get_json(server.url, "/v1/events", agent_id=SCOUT_A, limit=1000))["events"]
        grep = next(e for e in events if e["type"] == "ToolCallRequested")
        await page.locator(f'.agent-card[data-agent-id="{SCOUT_A}"]').click()
        await page.locator("#search").fill("def report")
        await page.locator(f'#search-results .result[data-position="{grep["position"]}"]').click()
        marked = page.locator("#drawer-body .entry.marked")
        assert await marked.get_attribute("data-position") == str(grep["position"])
        prompt = page.locator("#drawer-body .entry-prompt pre").first
        said = await prompt.evaluate(
            "pre => { getSelection().selectAllChildren(pre); return pre.textContent; }"
        )
        assert said == "Find where the report is printed."

        await append_steps(store, phases[1])
        events = (await get_json(server.url, "/v1/events", agent_id=SCOUT_A, limit=1000))["events"]
        await page.wait_for_function(
            "(p) => document.getElementById('drawer-body').dataset.position === String(p)",
            arg=events[-1]["position"],
        )
        assert await page.locator("#drawer-body .entry[data-type=AgentCompleted]").count() == 1
        assert await page.evaluate("() => getSelection().toString()") == said
        assert await marked.get_attribute("data-position") == str(grep["position"])
        assert page.errors == []
        await page.close()


async def test_a_run_whose_process_died_turns_interrupted_without_a_reload(
    browser: Any, config: ApiConfig
) -> None:
    """A run's conductor dies: no event says so, its lease lapses, and the API says
    "interrupted". The open page says so too, in the run picker and the run's summary,
    and of the agent that was working in it, on its card and in the status chips (it
    kept "running" and "working" until reloaded: no event, so no refresh brought it)."""
    async with SQLiteEventStore(config.db) as store, dashboard_server(config) as server:
        lease = await store.leases.acquire_lease("run-r-lapse", process_owner(), 600)
        await cut_short(store, "r-lapse")  # the builder working, the orchestrator waiting
        page = await open_page(browser, server.url + "/#run=r-lapse")
        await settled(page, await store.head())
        summary = page.locator("#run-summary .status")
        await page.wait_for_function(
            "() => document.querySelector('#run-summary .status')?.dataset.status === 'running'"
        )
        card = '.agent-card[data-agent-id="r-lapse-b"]'
        await page.wait_for_selector(f'{card}[data-status="working"]', timeout=30_000)
        assert await page.locator(f"{card} .last").text_content() == "Bash · running"
        waiting = '.agent-card[data-agent-id="r-lapse-o"]'
        await page.wait_for_selector(f'{waiting}[data-status="waiting"] .waiting', timeout=30_000)
        await store.leases.release_leases([lease.key], lease.owner)  # as a lapse would
        await page.wait_for_function(
            "() => document.querySelector('#run-summary .status')?.dataset.status === 'interrupted'"
        )
        option = page.locator('#run-picker option[value="r-lapse"]')
        assert (await option.text_content() or "").endswith("· interrupted")
        assert await summary.text_content() == "interrupted"
        await page.wait_for_selector(f'{card}[data-status="interrupted"]', timeout=30_000)
        # Its Bash call never ended: the card no longer says it runs.
        last = page.locator(f"{card} .last")
        assert await last.get_attribute("data-status") == "interrupted"
        assert await last.text_content() == "Bash · interrupted"
        await page.wait_for_selector(f'{waiting}[data-status="interrupted"]', timeout=30_000)
        chip = '.chip[data-status="interrupted"][data-count="2"]'
        await page.wait_for_selector(chip, timeout=30_000)
        assert await page.locator(f"{waiting} .waiting").count() == 0  # a wait cut short
        assert page.errors == []
        await page.close()
