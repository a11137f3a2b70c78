/* fleet dashboard: live views of the event log, no build step, no dependencies.
 *
 * Data comes from the API of the server that serves this page:
 *   GET /v1/events/stream   SSE, id = global position; the browser resumes with
 *                           Last-Event-ID after a drop; we reopen it ourselves
 *                           (from the last position) when the browser gives up.
 *   GET /v1/events          history (the last HISTORY events at start).
 *   GET /v1/{fleet,agents,graph,board,runs}
 *                           the read models, `?min_position=` when live (read the
 *                           event that triggered the refresh), `?at=` in the past.
 *
 * Notes (do not fix without reading this):
 * 1. Every event is kept once: an event at or below the last position seen is
 *    a duplicate (a resume after a restart may repeat the seam) and is dropped.
 *    Positions are gap-free, so a jump is recorded in `stats.gaps` (never seen).
 * 2. Views refresh on the events that change them, at most once per
 *    THROTTLE_MS, one round in flight at a time; a round whose answer is stale
 *    (the slider moved meanwhile) is thrown away and asked again.
 * 3. Text from the log (prompts, tool results, hook reasons) is untrusted: the
 *    DOM is built with textContent and attributes, never innerHTML.
 * 4. The agents and runs views are the whole fleet's (the run picker and the
 *    feed's filters list every one): 11 MB and 0.8 MB at 8,565 agents in 1,404
 *    runs. Held as of P, each is brought to a later position with only the cards
 *    that changed after P (`?changed_after=P`: each card says the position that
 *    last changed it), merged by id. Moved back to P, the cards held that
 *    changed after P are those that differ: when there are at most BACK_CAP,
 *    only they are asked for, by id, as of P (`?agent_id=`, `?run_id=`
 *    repeated), and those the answer lacks were made after P; else, after a
 *    failed round, or after the stream reconnected (the server that answered
 *    as of P is gone: the one now may be another process, even on another log
 *    whose head is past ours), the list is asked for whole. The board of every run (no run
 *    picked; 1 MB at 1,404 runs) is brought forward the same way, with the
 *    tasks created or moved after P, each put in its column in the order the
 *    tasks were created; moved back, it is asked for whole.
 */
(function () {
  "use strict";

  const {
    TOKEN, $, h, s, fmtInt, fmtTokens, fmtCost, fmtMs, fmtClock, clip, shortModel, name, ApiError, api,
    showBanner, setConn, toolArgs, summarize, category, agentOf, patchChildren,
  } = window.fleetLib;

  const THROTTLE_MS = 300;
  // How many past events the feed loads at start: /?history=N (tests use a small N to scrub
  // beyond it); older ones are fetched around the slider's position when it goes there.
  // A whole number of at least 1, else 500: a fraction asked for `after=3137.5` (a 400 the
  // page retried forever) and a negative number loaded no history, then streamed all of it.
  const HISTORY = ((n) => (n >= 1 ? n : 500))(
    Math.floor(Number(new URLSearchParams(location.search).get("history"))));
  const WINDOW = 150; // events either side of a past position the feed shows
  const FEED_MAX = 5000;
  const FEED_DOM_MAX = 1000;
  const VIEWS = ["fleet", "agents", "graph", "board", "runs"];
  // The page's other parts (each its own file), told of every new event and run pick.
  const PARTS = () => [
    window.fleetApprovals, window.fleetDrawer, window.fleetTrace, window.fleetAlerts, window.fleetChat,
  ].filter(Boolean);
  const SCOPED = new Set(["fleet", "graph", "board"]); // asked with ?run_id= when a run is picked
  const CHANGES = ["agents", "runs"]; // held, and brought forward with what changed (note 4)
  const BACK_CAP = 100; // cards asked for by id when the slider goes back (note 4)
  const CARD_CAP = 120;
  const ACTIVE = new Set(["created", "working", "waiting"]);
  const STATUSES = ["created", "working", "waiting", "completed", "failed", "deleted"];
  // An agent's status judged now by the API (an external session's process gone, or no
  // hook for long; its run cut short), never in the log: a chip only when some agent is in it.
  const JUDGED = ["interrupted", "stale"];
  const EVENT_TYPES = [
    "RunStarted", "RunCompleted", "RunFailed", "AgentCreated", "AgentCommanded",
    "ModelResponded", "ToolCallRequested", "ToolCallCompleted", "HookInvoked",
    "AgentWaiting", "AgentWoke", "ContextCompacted", "AgentCompleted", "AgentFailed",
    "AgentDeleted", "TaskCreated", "TaskMoved", "ExternalHookReceived", "ReplayDiverged",
  ];
  const AGENT_TYPES = new Set([
    "AgentCreated", "AgentCommanded", "ModelResponded", "ToolCallRequested",
    "ToolCallCompleted", "HookInvoked", "AgentWaiting", "AgentWoke", "ContextCompacted",
    "AgentCompleted", "AgentFailed", "AgentDeleted", "ExternalHookReceived",
  ]);
  const GRAPH_TYPES = new Set([
    "AgentCreated", "AgentCommanded", "AgentWaiting", "AgentWoke", "AgentCompleted",
    "AgentFailed", "AgentDeleted", "ToolCallCompleted", "ExternalHookReceived",
  ]);
  const BOARD_TYPES = new Set(["TaskCreated", "TaskMoved"]);
  const RUN_TYPES = new Set([
    "RunStarted", "RunCompleted", "RunFailed", "AgentCreated", "ModelResponded",
    "ExternalHookReceived",
  ]);

  const S = {
    lastId: 0, // last position received (note 1)
    head: 0,
    live: true,
    at: 0,
    run: "",
    runRange: null,
    views: {},
    positions: {},
    scopes: {}, // view name -> the run it was asked for ("" for the whole log)
    events: [],
    filters: { run: "", agent: "", type: "" },
    paused: false,
    window: null, // events around a past position older than the feed keeps (while scrubbing)
    runEvents: null, // the picked run's events older than the feed keeps, fetched on picking
    missed: 0,
    showAll: false,
    names: window.fleetLib.names,
    stats: { received: 0, duplicates: 0, reconnects: 0, gaps: [], refreshes: 0,
      deltas: { agents: 0, runs: 0, board: 0 }, backs: { agents: 0, runs: 0 } },
  };
  window.fleetDashboard = S;


  // -- the live stream ---------------------------------------------------------------

  let source = null;
  let retryDelay = 1000;
  let opened = false;

  function connect() {
    const url = new URL("v1/events/stream", document.baseURI);
    url.searchParams.set("from", String(S.lastId));
    if (TOKEN) url.searchParams.set("token", TOKEN);
    source = new EventSource(url);
    source.onopen = () => {
      setConn("live", "live");
      showBanner("");
      retryDelay = 1000;
      if (opened) {
        S.stats.reconnects += 1;
        for (const n of [...CHANGES, "board"]) delete S.positions[n]; // whole, once (note 4)
        invalidate(VIEWS);
      }
      opened = true;
    };
    source.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      onEvent(event);
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error during a restart, or a refused token):
        // reopen from the last position ourselves.
        source.close();
        setConn("reconnecting", "reconnecting…");
        setTimeout(reopen, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 5000);
      } else {
        setConn("reconnecting", "reconnecting…");
      }
    };
  }

  async function reopen() {
    try {
      const { body } = await api("v1/events", { after: 0, limit: 1 });
      if (body.head < S.lastId) {
        // Another log behind the same address: start over rather than wait for positions
        // that will never come.
        resetFeed();
        await loadHistory();
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      setTimeout(reopen, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 5000);
      return;
    }
    connect();
  }

  function resetFeed() {
    S.lastId = 0;
    S.head = 0;
    S.events = [];
    $("feed").replaceChildren();
  }

  function accept(event) {
    const position = Number(event.position);
    if (!(position > S.lastId)) {
      S.stats.duplicates += 1; // note 1
      return false;
    }
    if (S.lastId && position !== S.lastId + 1) S.stats.gaps.push([S.lastId, position]);
    S.lastId = position;
    S.head = Math.max(S.head, position);
    S.stats.received += 1;
    S.stats.receivedAt = performance.now();
    S.events.push(event);
    if (S.events.length > FEED_MAX) S.events.splice(0, S.events.length - FEED_MAX);
    const d = event.data || {};
    if (event.type === "AgentCreated" && d.agent_id && !S.names.has(d.agent_id)) S.names.set(d.agent_id, d.name);
    return true;
  }

  function onEvent(event) {
    if (!accept(event)) return;
    queueRow(event);
    updateSlider();
    for (const part of PARTS()) part.onEvent(event);
    if (S.live) invalidate(affected(event.type));
  }

  function affected(type) {
    if (!EVENT_TYPES.includes(type)) return VIEWS;
    const names = ["fleet"];
    if (AGENT_TYPES.has(type)) names.push("agents");
    if (GRAPH_TYPES.has(type)) names.push("graph");
    if (BOARD_TYPES.has(type)) names.push("board");
    if (RUN_TYPES.has(type)) names.push("runs");
    return names;
  }

  // Up to `count` events from the first page on: a page also ends at a size (large events,
  // a file read whole in a tool's result), so `next` is followed until there are enough.
  async function eventsUpTo(params, count) {
    const events = [];
    let after = params.after;
    while (events.length < count) {
      const { body } = await api("v1/events", { ...params, after, limit: Math.min(1000, count - events.length) });
      events.push(...body.events);
      if (body.next == null) break;
      after = body.next;
    }
    return events;
  }

  async function loadHistory() {
    const first = await api("v1/events", { after: 0, limit: 1 });
    const head = first.body.head;
    let after = Math.max(S.lastId, head - HISTORY);
    while (after < head) {
      const { body } = await api("v1/events", { after, until: head, limit: 500 });
      body.events.forEach(accept);
      if (body.next == null) break;
      after = body.next;
    }
    S.head = Math.max(S.head, head);
    renderFeed();
    updateSlider();
  }

  // -- view refreshes (note 2) ------------------------------------------------------

  const dirty = new Set();
  let timer = 0;
  let inflight = false;
  let lastRound = 0;

  function invalidate(names) {
    names.forEach((n) => dirty.add(n));
    schedule();
  }

  function schedule() {
    if (timer || inflight || !dirty.size) return;
    const wait = Math.max(0, lastRound + THROTTLE_MS - Date.now());
    timer = setTimeout(refresh, wait);
  }

  async function refresh() {
    timer = 0;
    inflight = true;
    document.body.dataset.loading = "true";
    const names = [...dirty];
    dirty.clear();
    const live = S.live;
    const at = S.at;
    const run = S.run;
    const params = live ? { min_position: S.lastId || null } : { at };
    let failed = false;
    try {
      // The totals, the graph and the board of the picked run only (the agents and the runs
      // are the whole fleet's: the run picker and the feed's filters list every one).
      // The agents and runs held as of P, brought forward with the cards changed since (note 4).
      // Back in time, the cards changed since the position asked for are those it asks for
      // (by id, as of that position), when they are few.
      const since = {}, back = {};
      for (const n of CHANGES) {
        const held = S.views[n] && S.positions[n];
        since[n] = held && (live || at >= held) ? held : null;
        const stale = held && !since[n] ? S.views[n][n].filter((c) => c.position > at) : null;
        back[n] = stale && stale.length <= BACK_CAP ? stale.map((c) => c.id) : null;
      }
      // The board of every run, brought forward with the tasks moved since (note 4).
      const heldBoard = !run && S.views.board && S.scopes.board === "" && S.positions.board;
      since.board = heldBoard && (live || at >= heldBoard) ? heldBoard : null;
      const calls = names.map((n) => back[n] && !back[n].length
        ? Promise.resolve({ body: { [n]: [] }, position: at }) // nothing changed since `at`
        : api("v1/" + n, query(n, params, run, since, back)));
      const cursor = live ? null : api("v1/events", { after: Math.max(0, at - 1), until: at, limit: 1 });
      const results = await Promise.all(calls);
      const at_event = cursor ? (await cursor).body.events[0] : null;
      if (live !== S.live || (!live && at !== S.at) || run !== S.run) {
        names.forEach((n) => dirty.add(n)); // stale: ask again for where the user is now
      } else {
        names.forEach((n, i) => {
          S.views[n] = merged(n, S.views[n], results[i].body, since, back);
          S.positions[n] = results[i].position;
          S.scopes[n] = SCOPED.has(n) ? run : "";
        });
        S.stats.refreshes += 1;
        render(names);
        const round = live ? Math.min(...results.map((r) => r.position)) : at;
        if (!dirty.size) document.body.dataset.viewPosition = String(round);
        updatePositionLabel(at_event);
      }
    } catch (e) {
      failed = true;
      names.forEach((n) => dirty.add(n));
      for (const n of [...CHANGES, "board"]) if (names.includes(n)) delete S.positions[n]; // whole next time (note 4)
      if (!(e instanceof ApiError && e.status === 401)) console.warn("fleet: refresh failed", e);
    } finally {
      inflight = false;
      document.body.dataset.loading = "false";
      // A round that took long to draw (a large fleet) spaces the next ones out.
      lastRound = Date.now() + (failed ? 1500 : Math.min(3000, 2 * (S.stats.renderMs || 0)));
      schedule();
    }
  }

  // A run whose process died stays "running" in the log; the API says "interrupted" once
  // its lease lapses, and no event marks that moment, so no delta brings it (note 4). While
  // live, the runs the page holds as running are asked for by id now and then.
  const LAPSED_EVERY_MS = 5000;

  async function checkLapsed() {
    const held = S.live && S.views.runs;
    const running = held ? held.runs.filter((r) => r.status === "running").map((r) => r.id) : [];
    if (!running.length) return;
    try {
      const { body } = await api("v1/runs", { run_id: running.slice(-BACK_CAP), status: "interrupted" });
      const lapsed = new Map(body.runs.map((r) => [r.id, r]));
      if (!lapsed.size || !S.live || !S.views.runs) return;
      // Into the runs held now (a round may have brought them forward meanwhile).
      const runs = S.views.runs.runs.map((r) => (r.status === "running" && lapsed.get(r.id)) || r);
      S.views.runs = { ...S.views.runs, runs };
      render(["runs"]);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) console.warn("fleet: runs check failed", e);
    }
  }

  // So does an external session whose process died (or that went silent for long), and an
  // agent of a run cut short: the API says "interrupted" (or "stale") now, and no event
  // marks that moment. While live, the sessions the page holds as active, and the active
  // agents of the runs it holds as interrupted, are asked for by id now and then.
  async function checkGone() {
    const held = S.live && S.views.agents;
    const runs = S.views.runs ? S.views.runs.runs : [];
    const cut = new Set(runs.filter((r) => r.status === "interrupted").map((r) => r.id));
    const active = held ? held.agents
      .filter((a) => ACTIVE.has(a.status) && (a.external || cut.has(a.run_id)))
      .map((a) => a.id) : [];
    if (!active.length) return;
    try {
      const { body } = await api("v1/agents", { agent_id: active.slice(-BACK_CAP), status: JUDGED });
      const gone = new Map(body.agents.map((a) => [a.id, a]));
      if (!gone.size || !S.live || !S.views.agents) return;
      const agents = S.views.agents.agents.map((a) => (ACTIVE.has(a.status) && gone.get(a.id)) || a);
      S.views.agents = { ...S.views.agents, agents };
      render(["agents"]);
      invalidate(["fleet", "graph"]); // the totals count them so too, the graph draws them so
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) console.warn("fleet: sessions check failed", e);
    }
  }

  // What a round asks of view `n`: with `since[n]`, what changed after it; with `back[n]`,
  // those cards as of the position (note 4).
  function query(n, params, run, since, back) {
    if (n === "graph" && !run) return { ...params, latest_runs: window.fleetGraph.RUN_CAP }; // graph.js
    if (SCOPED.has(n)) return { ...params, run_id: run, changed_after: n === "board" ? since.board : null };
    if (since[n]) return { ...params, changed_after: since[n] };
    if (back[n]) return { ...params, [n === "agents" ? "agent_id" : "run_id"]: back[n] };
    return params;
  }

  // View `n` after a round: the answer `body` merged into what was held, or the answer itself.
  function merged(n, held, body, since, back) {
    if (since[n]) return n === "board" ? withMoved(held, body) : withChanged(n, held, body);
    if (back[n]) return withBack(n, held, back[n], body);
    return body;
  }

  // The list `name` held, with the cards of `changed` in place of theirs and new ones after
  // (agents are listed in the order they were created, runs as they started: a new one is later).
  function withChanged(name, heldView, changed) {
    S.stats.deltas[name] += 1;
    const cards = new Map(heldView[name].map((a) => [a.id, a]));
    for (const a of changed[name]) cards.set(a.id, a);
    const list = [...cards.values()];
    return { count: list.length, [name]: list, next: null };
  }

  // The board held, with the tasks of `moved` (created or moved since) out of the column they
  // were in and into theirs, each column in the order its tasks were created (note 4).
  function withMoved(heldBoard, moved) {
    S.stats.deltas.board += 1;
    const ids = new Set(moved.columns.flatMap((c) => c.tasks.map((t) => t.id)));
    const created = (t) => t.history[0].position;
    const columns = heldBoard.columns.map((col, i) => ({
      name: col.name,
      tasks: [...col.tasks.filter((t) => !ids.has(t.id)), ...moved.columns[i].tasks]
        .sort((a, b) => created(a) - created(b)),
    }));
    return { count: columns.reduce((n, c) => n + c.tasks.length, 0), columns };
  }

  // The list `name` held, taken back to an earlier position: of the cards `stale` names
  // (changed since it), those `earlier` holds in their place, the others gone (made later).
  function withBack(name, heldView, stale, earlier) {
    S.stats.backs[name] += 1;
    const gone = new Set(stale);
    const then = new Map(earlier[name].map((a) => [a.id, a]));
    const list = heldView[name].filter((a) => !gone.has(a.id) || then.has(a.id))
      .map((a) => then.get(a.id) || a);
    return { count: list.length, [name]: list, next: null };
  }

  function render(names) {
    const started = performance.now();
    renderViews(new Set(names));
    void document.body.offsetHeight; // count the layout the new DOM needs, too
    S.stats.renderMs = Math.round(performance.now() - started);
  }

  function renderViews(changed) {
    if (changed.has("fleet") || changed.has("runs")) renderTotals();
    if (changed.has("runs")) { renderRunPicker(); renderRunSummary(); }
    if (changed.has("agents")) { rememberNames(); renderAgents(); renderAgentFilter(); }
    if (changed.has("board") || changed.has("agents")) renderBoard();
    if (changed.has("graph") || changed.has("agents") || changed.has("runs")) renderGraph();
    for (const part of PARTS()) if (part.onViews) part.onViews(changed);
  }

  function rememberNames() {
    window.fleetLib.nameAgents((S.views.agents || {}).agents || []);
  }

  // -- totals ---------------------------------------------------------------------

  function tile(key, label, value, raw, detail, extra) {
    return h("div", { class: "tile", "data-tile": key },
      h("div", { class: "k", text: label }),
      h("div", { class: "v", "data-value": raw, text: value }),
      detail ? h("div", { class: "d", text: detail }) : null,
      extra || null);
  }

  function renderTotals() {
    const f = S.views.fleet;
    if (!f) return;
    const runs = (S.views.runs || {}).runs || [];
    const shown = [...STATUSES, ...JUDGED.filter((st) => f.agents.by_status[st])];
    const chips = h("div", { class: "chips" },
      shown.map((st) => h("span", {
        class: "chip", "data-status": st, "data-count": f.agents.by_status[st] || 0,
        text: `${f.agents.by_status[st] || 0} ${st}`,
      })));
    const t = f.tokens;
    const ev = f.events;
    const run = selectedRun();
    const costDetail = run
      ? `this run · ${run.status} · ${fmtMs(run.duration_ms)}${run.simulated ? " · simulator token counts" : ""}`
      : `${runs.length} run${runs.length === 1 ? "" : "s"}${runs.some((r) => r.simulated) ? " · simulator token counts" : ""}`;
    $("totals").dataset.run = S.scopes.fleet || "";
    $("totals").replaceChildren(
      tile("agents", "Active agents", fmtInt(f.agents.active), f.agents.active,
        `${fmtInt(f.agents.total)} total · ${fmtInt(f.agents_created)} created · ${fmtInt(f.agents_deleted)} deleted`,
        chips),
      tile("tokens", "Tokens", fmtTokens(t.total), t.total,
        `in ${fmtTokens(t.input)} uncached · out ${fmtTokens(t.output)} · cache ${fmtTokens(t.cache_write)} w / ${fmtTokens(t.cache_read)} r`),
      tile("cost", "Cost", fmtCost(f.cost_usd), f.cost_usd, costDetail),
      tile("context", "Context in use", fmtTokens(f.context_tokens_in_use), f.context_tokens_in_use,
        "tokens held by agents not deleted"),
      tile("events", "Events / s", Number(ev.per_second || 0).toFixed(1), ev.per_second,
        // The rate is over the minute up to the last event (a function of the log, the same in
        // a replay), not the wall clock's: an idle log keeps its last rate, so say when that was.
        `${fmtInt(ev.total)} events${S.run ? " in the whole log" : ""} · ${fmtInt(ev.last_minute)} in the minute to the last event${ev.last_at ? ", " + fmtClock(ev.last_at) : ""}`,
        sparkline(ev.series || [])),
    );
  }

  function sparkline(series) {
    const w = 200, hgt = 26;
    const max = Math.max(1, ...series);
    const n = Math.max(1, series.length - 1);
    const pts = series.map((v, i) => [(i / n) * w, hgt - 1 - (v / max) * (hgt - 3)]);
    const line = pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ");
    return s("svg", { class: "spark", viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: "none" },
      pts.length ? s("path", { class: "area", d: `${line} L${w},${hgt} L0,${hgt} Z` }) : null,
      pts.length ? s("path", { d: line }) : null);
  }

  // -- runs -------------------------------------------------------------------------

  function runLabel(r) {
    return `${r.pattern || "orchestrator"} · ${clip(r.task, 42)} · ${r.status}`;
  }

  function fillSelect(select, options, keep) {
    const current = keep ?? select.value;
    const first = select.options[0];
    select.replaceChildren(first, ...options.map(([value, label]) => h("option", { value, text: label })));
    select.value = options.some(([v]) => v === current) ? current : "";
  }

  function renderRunPicker() {
    // Unfinished runs first (at work, or interrupted: `fleet resume` takes them up), then
    // the newest.
    const open = (r) => r.status === "running" || r.status === "interrupted";
    const runs = ((S.views.runs || {}).runs || []).slice().reverse()
      .sort((x, y) => open(y) - open(x));
    const options = runs.map((r) => [r.id, runLabel(r)]);
    fillSelect($("run-picker"), options, S.run);
    fillSelect($("filter-run"), runs.map((r) => [r.id, clip(`${r.pattern || "orchestrator"} ${r.id}`, 34)]), S.filters.run);
  }

  function selectedRun() {
    return ((S.views.runs || {}).runs || []).find((r) => r.id === S.run) || null;
  }

  function renderRunSummary() {
    const r = selectedRun();
    const box = $("run-summary");
    if (!r) { box.replaceChildren(); return; }
    box.replaceChildren(
      h("span", { class: "status", "data-status": r.status, text: r.status }),
      h("span", null, h("b", { text: r.pattern || "orchestrator" }), r.simulated ? " (simulator)" : ""),
      h("span", { class: "task", title: r.task, text: r.task }),
      h("span", { text: fmtMs(r.duration_ms) }),
      h("span", { text: fmtCost(r.cost_usd) }),
      h("span", { text: `${fmtTokens(r.tokens.total)} tokens` }),
      h("span", { text: `${r.agent_count} agents` }),
    );
  }

  async function selectRun(id) {
    S.run = id;
    S.filters.run = id;
    $("run-picker").value = id;
    $("filter-run").value = id;
    history.replaceState(null, "", id ? "#run=" + encodeURIComponent(id) : location.pathname + location.search);
    S.runRange = null;
    if (id) {
      let range = null;
      try {
        const first = await api("v1/events", { run_id: id, limit: 1 });
        const end = await api("v1/events", { run_id: id, type: ["RunCompleted", "RunFailed"], limit: 1 });
        const f = first.body.events[0];
        const e = end.body.events[0];
        range = { first: f ? f.position : 0, last: e ? e.position : null };
      } catch (err) {
        range = null;
      }
      // Another run picked while this one's range was asked for: that pick draws the page
      // (this late answer would put this run's range and feed under the other's name).
      if (S.run !== id) return;
      S.runRange = range;
    }
    await loadRunEvents(id);
    if (S.run !== id) return;
    updateSlider();
    renderRunSummary();
    renderAgents();
    renderBoard();
    renderGraph();
    renderFeed();
    invalidate([...SCOPED]);
    for (const part of PARTS()) part.reload();
  }

  // -- agents ---------------------------------------------------------------------

  function visibleAgents() {
    const agents = (S.views.agents || {}).agents || [];
    return S.run ? agents.filter((a) => a.run_id === S.run) : agents;
  }

  function fileList(cls, label, files) {
    const shown = 4;
    return h("div", { class: cls, "data-count": files.length },
      h("div", { class: "label", text: `${label} (${files.length})` }),
      h("ul", { title: files.join("\n") },
        files.map((f, i) => h("li", { class: "file", "data-file": f, text: f, hidden: i >= shown })),
        files.length > shown ? h("li", { class: "more", text: `+${files.length - shown} more` }) : null));
  }

  function agentCard(a) {
    const ctx = a.context || { used: 0, limit: 0, percent: 0 };
    const pct = Math.min(100, Number(ctx.percent || 0));
    const tc = a.tool_calls || { count: 0, errors: 0, by_tool: {}, last: null };
    const last = tc.last;
    const byTool = Object.entries(tc.by_tool || {}).map(([k, v]) => `${k} ×${v}`).join(", ");
    return h("article", { class: "agent-card", "data-agent-id": a.id, "data-status": a.status },
      h("div", { class: "head" },
        h("span", { class: "name", title: a.id, text: a.name }),
        name(a.id) !== a.name ? h("span", { class: "nth", title: "another agent of this run has the same name", text: name(a.id).slice(a.name.length).trim() }) : null,
        h("span", { class: "status", "data-status": a.status, text: a.status })),
      h("div", { class: "sub", title: a.task || "" },
        h("span", { class: "role", text: a.role }), " · ",
        h("span", { class: "model", text: shortModel(a.model) }),
        a.parent_id ? ` · by ${name(a.parent_id)}` : "",
        a.external ? ` · ${a.source_app || "external"}` : ""),
      h("div", { class: "ctx", "data-used": ctx.used, "data-limit": ctx.limit, title: `${pct.toFixed(1)}% of the context window` },
        h("div", { class: "row" },
          h("span", { text: "context" }),
          h("span", null, h("b", { text: fmtTokens(ctx.used) }), ` / ${fmtTokens(ctx.limit)} · ${pct.toFixed(1)}%`)),
        h("div", { class: "bar" },
          h("div", { class: pct >= 80 ? "fill hot" : pct >= 50 ? "fill warm" : "fill", style: `width:${Math.max(pct, ctx.used ? 0.8 : 0)}%` }))),
      h("div", { class: "row" },
        h("span", null, "cost ", h("b", { class: "cost", "data-value": a.cost_usd, text: fmtCost(a.cost_usd) })),
        h("span", null, "tokens ", h("b", { class: "tokens", "data-value": a.tokens.total, text: fmtTokens(a.tokens.total) })),
        h("span", null, "turns ", h("b", { text: a.turns }))),
      h("div", { class: "files" },
        fileList("files-consumed", "read", a.files_consumed || []),
        fileList("files-produced", "wrote", a.files_produced || [])),
      h("div", { class: "tools", title: byTool },
        h("span", null, "tool calls ", h("b", { class: "tool-count", "data-value": tc.count, text: tc.count })),
        tc.errors ? h("span", { class: "errors", text: `${tc.errors} failed` }) : null,
        a.blocked_calls ? h("span", { class: "blocked", "data-value": a.blocked_calls, text: `${a.blocked_calls} blocked` }) : null,
        last ? h("span", { class: "last", "data-status": last.status, "data-name": last.name, title: `${last.tool_use_id} at ${last.at}`, text: `${last.name} · ${last.status}` }) : null),
      // Only while it waits: a wait cut short (an interrupted run's) waits on nothing.
      a.status === "waiting" && a.waiting_on && a.waiting_on.length
        ? h("div", { class: "waiting", text: `waiting on ${a.waiting_on.map(name).join(", ")}` }) : null,
      a.approval
        ? h("div", { class: "waiting approval", "data-approval-id": a.approval.id, title: a.approval.reason || "",
            text: `waiting for approval: ${a.approval.tool_name} ${clip(toolArgs(a.approval.tool_input), 60)}` }) : null,
      (a.system_messages || []).length
        ? h("div", { class: "said", title: a.system_messages.map((m) => `${m.point}: ${m.text}`).join("\n"),
            text: `hook says: ${clip(a.system_messages[a.system_messages.length - 1].text, 100)}` }) : null,
      a.error ? h("div", { class: "error", title: a.error, text: `${a.limit ? "[" + a.limit + "] " : ""}${clip(a.error, 140)}` }) : null);
  }

  const cardCache = new Map(); // agent id -> { key, el }: unchanged cards are not rebuilt
  const deletedBox = h("details", { id: "deleted-agents", class: "deleted-agents" },
    h("summary", null), h("div", { class: "agents" }));

  function renderAgents() {
    const all = visibleAgents();
    // A large fleet: the active agents and the most recent ones, unless asked for all.
    let agents = all;
    if (!S.showAll && all.length > CARD_CAP) {
      const active = new Set(all.filter((a) => ACTIVE.has(a.status)).map((a) => a.id));
      const room = Math.max(0, CARD_CAP - active.size);
      const recent = new Set(all.slice(-room || all.length).map((a) => a.id));
      agents = all.filter((a) => active.has(a.id) || (room && recent.has(a.id)));
    }
    $("agents-count").textContent = all.length ? String(all.length) : "";
    const box = $("agents");
    if (!all.length) {
      cardCache.clear();
      box.replaceChildren(h("p", { class: "empty", text: S.run ? "No agents in this run at this position." : "No agents yet." }));
      return;
    }
    const seen = new Set();
    const cardOf = (a) => {
      seen.add(a.id);
      const key = JSON.stringify(a) + "|" + name(a.id) + "|" + name(a.parent_id);
      let cached = cardCache.get(a.id);
      if (!cached || cached.key !== key) {
        cached = { key, el: agentCard(a) };
        cardCache.set(a.id, cached);
      }
      return cached.el;
    };
    // Newest first; the deleted ones folded away at the end (the box keeps its open state).
    const els = agents.filter((a) => a.status !== "deleted").reverse().map(cardOf);
    const deleted = agents.filter((a) => a.status === "deleted").reverse().map(cardOf);
    for (const id of [...cardCache.keys()]) if (!seen.has(id)) cardCache.delete(id);
    if (deleted.length) {
      deletedBox.querySelector("summary").textContent = `${deleted.length} deleted agent${deleted.length === 1 ? "" : "s"}`;
      deletedBox.dataset.count = String(deleted.length);
      patchChildren(deletedBox.querySelector(".agents"), deleted);
      els.push(deletedBox);
    }
    if (agents.length < all.length) {
      els.push(h("button", {
        class: "btn more-agents", onclick: () => { S.showAll = true; renderAgents(); },
        text: `Show all ${all.length} agents (${all.length - agents.length} older ones hidden)`,
      }));
    }
    patchChildren(box, els);
  }

  function renderAgentFilter() {
    const agents = (S.views.agents || {}).agents || [];
    fillSelect($("filter-agent"), agents.map((a) => [a.id, clip(`${a.name} (${a.id})`, 34)]), S.filters.agent);
  }

  // -- board ----------------------------------------------------------------------

  // The columns and their cards are kept across renders (a card is built again only when
  // its task changed): a column scrolled down stays where it is while the fleet works.
  const boardColumns = new Map(); // column name -> its element
  const taskCache = new Map(); // task id -> { key, el }

  function taskCard(t) {
    const key = JSON.stringify(t) + "|" + name(t.assignee);
    const cached = taskCache.get(t.id);
    if (cached && cached.key === key) return cached.el;
    const last = t.history && t.history.length ? t.history[t.history.length - 1] : null;
    const el = h("div", { class: "task-card", "data-task-id": t.id, "data-column": t.column, title: t.id },
      h("div", { class: "title", text: clip(t.title, 120) }),
      h("div", { class: "meta" },
        t.assignee ? h("span", { class: "assignee", "data-agent-id": t.assignee, text: `@${name(t.assignee)}` }) : null,
        t.artifacts.length ? h("span", { title: t.artifacts.join("\n"), text: `${t.artifacts.length} artifact${t.artifacts.length === 1 ? "" : "s"}` }) : null,
        t.returns ? h("span", { class: "returns", text: `↺ ${t.returns} sent back` }) : null,
        last && last.reason ? h("span", { title: last.reason, text: clip(last.reason, 40) }) : null));
    taskCache.set(t.id, { key, el });
    return el;
  }

  function renderBoard() {
    const board = S.views.board;
    if (!board) return;
    let count = 0;
    const seen = new Set();
    const columns = board.columns.map((col) => {
      const all = S.run ? col.tasks.filter((t) => t.run_id === S.run) : col.tasks;
      count += all.length;
      // A column of many runs' tasks: the latest CARD_CAP are drawn (a run picked shows its own).
      const tasks = !S.run && all.length > CARD_CAP ? all.slice(-CARD_CAP) : all;
      const older = all.length - tasks.length;
      tasks.forEach((t) => seen.add(t.id));
      if (!boardColumns.has(col.name)) boardColumns.set(col.name, h("div", { class: "board-column", "data-column": col.name }));
      const el = boardColumns.get(col.name);
      patchChildren(el, [
        h("h3", null, h("span", { text: col.name }), h("span", { class: "n", text: all.length })),
        older ? h("div", { class: "older-tasks", "data-count": older, text: `${older} older task${older === 1 ? "" : "s"} not shown: pick a run` }) : null,
        ...tasks.map(taskCard),
      ].filter(Boolean));
      return el;
    });
    for (const id of [...taskCache.keys()]) if (!seen.has(id)) taskCache.delete(id);
    $("board-count").textContent = count ? String(count) : "";
    patchChildren($("board"), columns);
  }

  // -- graph (graph.js) and feed ---------------------------------------------------

  function renderGraph() { window.fleetGraph.render(S); }

  function matches(event) {
    const f = S.filters;
    return (!f.run || (event.meta && event.meta.run_id) === f.run)
      && (!f.agent || agentOf(event) === f.agent)
      && (!f.type || event.type === f.type);
  }

  function feedRow(event) {
    const agent = agentOf(event);
    const cls = ["feed-row"];
    if (!S.live && event.position > S.at) cls.push("future");
    if (!S.live && event.position === S.at) cls.push("cursor");
    return h("li", {
      class: cls.join(" "), "data-position": event.position, "data-type": event.type,
      "data-agent": agent, "data-run": (event.meta && event.meta.run_id) || "", "data-cat": category(event),
    },
      h("span", { class: "pos", text: event.position }),
      h("span", { class: "time", title: event.recorded_at, text: fmtClock(event.recorded_at) }),
      h("div", { class: "what" },
        h("span", { class: "type", text: event.type }),
        agent ? h("span", { class: "agent", title: agent, text: name(agent) }) : null,
        h("span", { class: "text", text: summarize(event) })));
  }

  let queued = [];
  let flushTimer = 0;

  function queueRow(event) {
    if (S.paused) {
      if (matches(event)) S.missed += 1;
      updatePaused();
      return;
    }
    queued.push(event);
    if (!flushTimer) flushTimer = setTimeout(flushRows, 40);
  }

  function flushRows() {
    flushTimer = 0;
    if (S.window) { queued = []; return; } // shown when the slider comes back (goLive)
    const rows = queued.filter(matches).map(feedRow).reverse();
    queued = [];
    if (!rows.length) return;
    const feed = $("feed");
    feed.prepend(...rows);
    while (feed.childElementCount > FEED_DOM_MAX) feed.lastElementChild.remove();
    updateFeedCount();
  }

  // A picked run's events from its start, when it began before the last events the feed
  // keeps: the feed shows that run's, not only those of it among the log's latest.
  async function loadRunEvents(id) {
    S.runEvents = null;
    const range = S.runRange;
    const oldest = S.events.length ? S.events[0].position : 1;
    if (!id || !range || !range.first || range.first >= oldest) return;
    try {
      const events = await eventsUpTo({ run_id: id, after: range.first - 1 }, 1000);
      if (S.run === id) S.runEvents = events;
    } catch (e) {
      console.warn("fleet: the run's events failed", e);
    }
  }

  function feedEvents() {
    if (!S.runEvents || !S.run) return S.events;
    const last = S.runEvents.length ? S.runEvents[S.runEvents.length - 1].position : 0;
    return S.runEvents.concat(S.events.filter((e) => e.position > last));
  }

  function renderFeed() {
    queued = [];
    const shown = (S.window && !S.live ? S.window : feedEvents()).filter(matches);
    $("feed-window").hidden = !(S.window && !S.live);
    if (S.window && !S.live) {
      const w = S.window;
      $("feed-window").textContent = w.length
        ? `Positions ${fmtInt(w[0].position)} to ${fmtInt(w[w.length - 1].position)}, around the slider (older than the ${fmtInt(S.events.length)} events the feed keeps).`
        : "No events around the slider's position.";
    }
    const rows = shown.slice(-FEED_DOM_MAX).reverse().map(feedRow);
    $("feed").replaceChildren(...rows);
    updateFeedCount();
    if (!S.live) markFeedCursor();
  }

  function updateFeedCount() {
    $("feed-count").textContent = String($("feed").childElementCount);
  }

  function updatePaused() {
    const el = $("feed-paused");
    el.hidden = !S.paused;
    el.textContent = S.paused ? `Paused: ${S.missed} new event${S.missed === 1 ? "" : "s"} not shown.` : "";
  }

  function markFeedCursor() {
    const feed = $("feed");
    let cursor = null;
    for (const row of feed.children) {
      const p = Number(row.dataset.position);
      row.classList.toggle("future", !S.live && p > S.at);
      const here = !S.live && p === S.at;
      row.classList.toggle("cursor", here);
      if (here) cursor = row;
    }
    if (cursor) {
      // Keep the event at the slider's position in view (within the feed only, not the page).
      const top = cursor.offsetTop; // the feed is the rows' offset parent (position: relative)
      if (top < feed.scrollTop || top > feed.scrollTop + feed.clientHeight - cursor.offsetHeight) {
        feed.scrollTop = Math.max(0, top - feed.clientHeight / 3);
      }
    } else if (S.live) {
      feed.scrollTop = 0;
    }
  }

  // -- time travel ------------------------------------------------------------------

  function sliderBounds() {
    const r = S.runRange;
    const min = r ? Math.max(0, r.first - 1) : 0;
    const max = r && r.last != null ? r.last : S.head;
    return [min, Math.max(min, max)];
  }

  function updateSlider() {
    const slider = $("slider");
    const [min, max] = sliderBounds();
    slider.min = String(min);
    slider.max = String(max);
    if (S.live) slider.value = String(max);
    updatePositionLabel();
  }

  function updatePositionLabel(atEvent) {
    const label = $("position-label");
    if (S.live) {
      label.textContent = `live · position ${fmtInt(S.head)}`;
    } else if (atEvent !== undefined) {
      const when = atEvent ? ` · ${fmtClock(atEvent.recorded_at, true)} ${atEvent.type}` : "";
      label.textContent = `position ${fmtInt(S.at)} of ${fmtInt(S.head)}${when}`;
    } else if (!label.textContent.startsWith(`position ${fmtInt(S.at)} `)) {
      label.textContent = `position ${fmtInt(S.at)} of ${fmtInt(S.head)}`;
    }
    label.dataset.position = String(S.live ? S.head : S.at);
  }

  function travel(position) {
    S.live = false;
    S.at = position;
    document.body.dataset.live = "false";
    $("live-btn").dataset.live = "false";
    updatePositionLabel();
    feedAround(position);
    markFeedCursor();
    invalidate(VIEWS);
  }

  // The feed keeps the last FEED_MAX events; a slider moved before them shows the events
  // around its position, fetched (at most one request in flight, the last position wins).
  let windowTimer = 0;
  let windowBusy = false;
  function feedAround(position) {
    const oldest = S.events.length ? S.events[0].position : 1;
    const inside = position >= oldest - 1;
    const held = S.window && S.window.length
      && position >= S.window[0].position && position <= S.window[S.window.length - 1].position;
    if (inside) {
      if (S.window) { S.window = null; renderFeed(); }
      return;
    }
    if (held) return;
    clearTimeout(windowTimer);
    windowTimer = setTimeout(async () => {
      if (windowBusy) { feedAround(S.at); return; }
      windowBusy = true;
      const at = S.at;
      try {
        const events = await eventsUpTo({
          after: Math.max(0, at - WINDOW - 1), until: at + WINDOW, run_id: S.filters.run || null,
        }, 2 * WINDOW + 1);
        if (!S.live && S.at === at) {
          S.window = events;
          renderFeed();
        }
      } catch (e) {
        console.warn("fleet: feed window failed", e);
      } finally {
        windowBusy = false;
        if (!S.live && S.at !== at) feedAround(S.at);
      }
    }, 120);
  }

  function goLive() {
    stopReplay();
    S.live = true;
    if (S.window) { S.window = null; renderFeed(); }
    document.body.dataset.live = "true";
    $("live-btn").dataset.live = "true";
    updateSlider();
    markFeedCursor();
    invalidate(VIEWS);
  }

  let replayTimer = 0;

  function startReplay() {
    const slider = $("slider");
    const [min, max] = sliderBounds();
    let p = S.live || Number(slider.value) >= max ? min : Number(slider.value);
    const step = Math.max(1, Math.round((max - min) / 150));
    $("play").textContent = "❚❚ Stop";
    travel(p);
    slider.value = String(p);
    replayTimer = setInterval(() => {
      if (inflight || timer) return; // the last frame is not drawn yet
      p = Math.min(max, p + step);
      slider.value = String(p);
      if (p >= S.head) { goLive(); return; }
      travel(p);
      if (p >= max) stopReplay();
    }, 90);
  }

  function stopReplay() {
    if (replayTimer) clearInterval(replayTimer);
    replayTimer = 0;
    $("play").textContent = "▶ Replay";
  }

  // -- controls -----------------------------------------------------------------------

  function bind() {
    $("slider").addEventListener("input", (e) => {
      stopReplay();
      const p = Number(e.target.value);
      if (p >= S.head) goLive();
      else travel(p);
    });
    $("live-btn").addEventListener("click", goLive);
    $("play").addEventListener("click", () => (replayTimer ? stopReplay() : startReplay()));
    $("run-picker").addEventListener("change", (e) => selectRun(e.target.value));
    for (const [id, key] of [["filter-run", "run"], ["filter-agent", "agent"], ["filter-type", "type"]]) {
      $(id).addEventListener("change", (e) => { S.filters[key] = e.target.value; renderFeed(); });
    }
    fillSelect($("filter-type"), EVENT_TYPES.map((t) => [t, t]), "");
    $("pause").addEventListener("click", () => {
      S.paused = !S.paused;
      const b = $("pause");
      b.dataset.paused = String(S.paused);
      b.textContent = S.paused ? "▶ Resume" : "❚❚ Pause";
      if (!S.paused) { S.missed = 0; renderFeed(); }
      updatePaused();
    });
  }

  async function start() {
    bind();
    document.body.dataset.live = "true";
    const wanted = new URLSearchParams(location.hash.slice(1)).get("run") || "";
    for (;;) {
      try {
        await loadHistory();
        break;
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return;
        setConn("reconnecting", "server unreachable");
        await new Promise((r) => setTimeout(r, 1500));
      }
    }
    connect();
    for (const part of PARTS()) part.init(S);
    invalidate(VIEWS);
    setInterval(checkLapsed, LAPSED_EVERY_MS);
    setInterval(checkGone, LAPSED_EVERY_MS);
    if (wanted) selectRun(wanted);
  }

  start();
})();
