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
 */
(function () {
  "use strict";

  const TOKEN = sessionStorage.getItem("fleet-token") || "";
  const THROTTLE_MS = 300;
  const HISTORY = 500;
  const FEED_MAX = 5000;
  const FEED_DOM_MAX = 1000;
  const VIEWS = ["fleet", "agents", "graph", "board", "runs"];
  const CARD_CAP = 120;
  const GRAPH_RUN_CAP = 8;
  const ACTIVE = new Set(["created", "working", "waiting"]);
  const STATUSES = ["created", "working", "waiting", "completed", "failed", "deleted"];
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
  const CATEGORY = {
    RunStarted: "run", RunCompleted: "run", RunFailed: "bad",
    AgentCreated: "life", AgentCommanded: "life", AgentCompleted: "life", AgentDeleted: "life",
    AgentFailed: "bad", ModelResponded: "model", ContextCompacted: "model",
    ToolCallRequested: "tool", ToolCallCompleted: "tool", AgentWaiting: "wait", AgentWoke: "wait",
    TaskCreated: "task", TaskMoved: "task", HookInvoked: "hook", ExternalHookReceived: "hook",
    ApprovalRequested: "wait", ApprovalDecided: "wait", ReplayDiverged: "bad",
  };

  const S = {
    lastId: 0, // last position received (note 1)
    head: 0,
    live: true,
    at: 0,
    run: "",
    runRange: null,
    views: {},
    positions: {},
    events: [],
    filters: { run: "", agent: "", type: "" },
    paused: false,
    missed: 0,
    showAll: false,
    names: new Map(),
    stats: { received: 0, duplicates: 0, reconnects: 0, gaps: [], refreshes: 0 },
  };
  window.fleetDashboard = S;

  const $ = (id) => document.getElementById(id);

  // -- DOM helpers (note 3) ----------------------------------------------------

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    for (const kid of kids.flat()) {
      if (kid != null && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    for (const kid of kids.flat()) {
      if (kid != null && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "class") el.setAttribute("class", v);
      else if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }

  // -- formatting ----------------------------------------------------------------

  function fmtInt(n) { return Number(n || 0).toLocaleString("en-US"); }
  function fmtTokens(n) {
    n = Number(n || 0);
    if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 1 : 2) + "M";
    if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
    return String(n);
  }
  function fmtCost(x) { x = Number(x || 0); return "$" + (x >= 1 ? x.toFixed(2) : x.toFixed(4)); }
  function fmtMs(ms) {
    ms = Number(ms || 0);
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }
  function fmtClock(iso, millis) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return "";
    const p = (n, w = 2) => String(n).padStart(w, "0");
    const t = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    return millis ? `${t}.${p(d.getMilliseconds(), 3)}` : t;
  }
  function clip(text, n = 100) {
    text = String(text ?? "").replace(/\s+/g, " ").trim();
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }
  function shortModel(m) { return String(m || "").replace(/^claude-/, ""); }
  function name(id) { return id ? (S.names.get(id) || id) : ""; }

  // -- the API ---------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, params) {
    const url = new URL(path, document.baseURI);
    for (const [k, v] of Object.entries(params || {})) {
      if (v == null || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
      else url.searchParams.set(k, String(v));
    }
    const headers = { Accept: "application/json" };
    if (TOKEN) headers.Authorization = "Bearer " + TOKEN;
    const res = await fetch(url, { headers, cache: "no-store" });
    if (res.status === 401) {
      setConn("unauthorized", "token needed");
      showBanner(TOKEN
        ? "The server refused the token. Open this page as /?token=YOUR_TOKEN with the right one."
        : "This server needs a token: open this page as /?token=YOUR_TOKEN.");
      throw new ApiError(401, "unauthorized");
    }
    if (!res.ok) {
      let detail = "";
      try { detail = (await res.json()).detail || ""; } catch (e) { /* not JSON */ }
      throw new ApiError(res.status, `${path}: ${res.status} ${detail}`);
    }
    const position = res.headers.get("Fleet-Position");
    return { body: await res.json(), position: position == null ? null : Number(position) };
  }

  function showBanner(text) {
    const b = $("banner");
    b.textContent = text;
    b.hidden = !text;
  }

  function setConn(state, label) {
    const c = $("conn");
    c.dataset.state = state;
    c.querySelector(".label").textContent = label || state;
  }

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
    if (event.type === "AgentCreated" && d.agent_id) S.names.set(d.agent_id, d.name);
    return true;
  }

  function onEvent(event) {
    if (!accept(event)) return;
    queueRow(event);
    updateSlider();
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
    const params = live ? { min_position: S.lastId || null } : { at };
    let failed = false;
    try {
      const calls = names.map((n) => api("v1/" + n, params));
      const cursor = live ? null : api("v1/events", { after: Math.max(0, at - 1), until: at, limit: 1 });
      const results = await Promise.all(calls);
      const at_event = cursor ? (await cursor).body.events[0] : null;
      if (live !== S.live || (!live && at !== S.at)) {
        names.forEach((n) => dirty.add(n)); // stale: ask again for where the user is now
      } else {
        names.forEach((n, i) => {
          S.views[n] = results[i].body;
          S.positions[n] = results[i].position;
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
      if (!(e instanceof ApiError && e.status === 401)) console.warn("fleet: refresh failed", e);
    } finally {
      inflight = false;
      document.body.dataset.loading = "false";
      // A round that took long to draw (a large fleet) spaces the next ones out.
      lastRound = Date.now() + (failed ? 1500 : Math.min(3000, 2 * (S.stats.renderMs || 0)));
      schedule();
    }
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
  }

  function rememberNames() {
    for (const a of (S.views.agents || {}).agents || []) S.names.set(a.id, a.name);
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
    const chips = h("div", { class: "chips" },
      STATUSES.map((st) => h("span", {
        class: "chip", "data-status": st, "data-count": f.agents.by_status[st] || 0,
        text: `${f.agents.by_status[st] || 0} ${st}`,
      })));
    const t = f.tokens;
    const ev = f.events;
    $("totals").replaceChildren(
      tile("agents", "Active agents", fmtInt(f.agents.active), f.agents.active,
        `${fmtInt(f.agents.total)} total · ${fmtInt(f.agents_created)} created · ${fmtInt(f.agents_deleted)} deleted`,
        chips),
      tile("tokens", "Tokens", fmtTokens(t.total), t.total,
        `in ${fmtTokens(t.input)} · out ${fmtTokens(t.output)} · cache ${fmtTokens(t.cache_write)} w / ${fmtTokens(t.cache_read)} r`),
      tile("cost", "Cost", fmtCost(f.cost_usd), f.cost_usd,
        `${runs.length} run${runs.length === 1 ? "" : "s"}${runs.some((r) => r.simulated) ? " · simulator token counts" : ""}`),
      tile("context", "Context in use", fmtTokens(f.context_tokens_in_use), f.context_tokens_in_use,
        "tokens held by agents not deleted"),
      tile("events", "Events / s", Number(ev.per_second || 0).toFixed(1), ev.per_second,
        `${fmtInt(ev.total)} events · ${fmtInt(ev.last_minute)} in the last minute`,
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
    const runs = ((S.views.runs || {}).runs || []).slice().reverse();
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
      try {
        const first = await api("v1/events", { run_id: id, limit: 1 });
        const end = await api("v1/events", { run_id: id, type: ["RunCompleted", "RunFailed"], limit: 1 });
        const f = first.body.events[0];
        const e = end.body.events[0];
        S.runRange = { first: f ? f.position : 0, last: e ? e.position : null };
      } catch (err) {
        S.runRange = null;
      }
    }
    updateSlider();
    renderRunSummary();
    renderAgents();
    renderBoard();
    renderGraph();
    renderFeed();
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
      a.waiting_on && a.waiting_on.length
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
    const els = agents.map((a) => {
      seen.add(a.id);
      const key = JSON.stringify(a) + "|" + name(a.parent_id);
      let cached = cardCache.get(a.id);
      if (!cached || cached.key !== key) {
        cached = { key, el: agentCard(a) };
        cardCache.set(a.id, cached);
      }
      return cached.el;
    });
    for (const id of [...cardCache.keys()]) if (!seen.has(id)) cardCache.delete(id);
    if (agents.length < all.length) {
      els.push(h("button", {
        class: "btn more-agents", onclick: () => { S.showAll = true; renderAgents(); },
        text: `Show all ${all.length} agents (${all.length - agents.length} older ones hidden)`,
      }));
    }
    patchChildren(box, els);
  }

  function patchChildren(box, els) {
    // Move, add and remove only what changed, so an unchanged card keeps its layout.
    const keep = new Set(els);
    for (const child of [...box.children]) if (!keep.has(child)) child.remove();
    els.forEach((el, i) => {
      const current = box.children[i];
      if (current !== el) box.insertBefore(el, current || null);
    });
  }

  function renderAgentFilter() {
    const agents = (S.views.agents || {}).agents || [];
    fillSelect($("filter-agent"), agents.map((a) => [a.id, clip(`${a.name} (${a.id})`, 34)]), S.filters.agent);
  }

  // -- board ----------------------------------------------------------------------

  function renderBoard() {
    const board = S.views.board;
    if (!board) return;
    let count = 0;
    const columns = board.columns.map((col) => {
      const tasks = S.run ? col.tasks.filter((t) => t.run_id === S.run) : col.tasks;
      count += tasks.length;
      return h("div", { class: "board-column", "data-column": col.name },
        h("h3", null, h("span", { text: col.name }), h("span", { class: "n", text: tasks.length })),
        tasks.map((t) => {
          const last = t.history && t.history.length ? t.history[t.history.length - 1] : null;
          return h("div", { class: "task-card", "data-task-id": t.id, "data-column": t.column, title: t.id },
            h("div", { class: "title", text: clip(t.title, 120) }),
            h("div", { class: "meta" },
              t.assignee ? h("span", { class: "assignee", "data-agent-id": t.assignee, text: `@${name(t.assignee)}` }) : null,
              t.artifacts.length ? h("span", { title: t.artifacts.join("\n"), text: `${t.artifacts.length} artifact${t.artifacts.length === 1 ? "" : "s"}` }) : null,
              t.returns ? h("span", { class: "returns", text: `↺ ${t.returns} sent back` }) : null,
              last && last.reason ? h("span", { title: last.reason, text: clip(last.reason, 40) }) : null));
        }));
    });
    $("board-count").textContent = count ? String(count) : "";
    $("board").replaceChildren(...columns);
  }

  // -- graph ----------------------------------------------------------------------

  const NODE_W = 168, NODE_H = 46, COL_W = 232, ROW_H = 74, PAD = 26, BAND_GAP = 18;
  const LABEL_H = 24, ARC_ROOM = 34;

  function layout(nodes, edges) {
    // Longest-path layers over "created" (parent -> child) and artifact flow
    // (producer -> consumer); waits are drawn but do not place nodes (they loop back).
    const index = new Map(nodes.map((n, i) => [n.id, i]));
    const flow = edges
      .filter((e) => e.kind === "created" || e.kind === "consumes")
      .map((e) => (e.kind === "created" ? [e.from, e.to] : [e.to, e.from]))
      .filter(([u, v]) => index.has(u) && index.has(v) && u !== v);
    const layer = new Map(nodes.map((n) => [n.id, 0]));
    for (let round = 0; round < nodes.length; round++) {
      let changed = false;
      for (const [u, v] of flow) {
        const want = layer.get(u) + 1;
        if (layer.get(v) < want && want < nodes.length) { layer.set(v, want); changed = true; }
      }
      if (!changed) break;
    }
    const columns = [];
    for (const n of nodes) {
      const l = layer.get(n.id);
      (columns[l] = columns[l] || []).push(n);
    }
    const preds = new Map();
    for (const [u, v] of flow) {
      if (!preds.has(v)) preds.set(v, []);
      preds.get(v).push(u);
    }
    const row = new Map();
    columns.forEach((col, l) => {
      if (!col) return;
      if (l > 0) {
        // Barycentre of the rows of what flows into the node, so edges cross less.
        const keys = new Map(col.map((n) => {
          const rows = (preds.get(n.id) || []).map((u) => row.get(u)).filter((r) => r != null);
          return [n.id, rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Infinity];
        }));
        col.sort((a, b) => keys.get(a.id) - keys.get(b.id) || index.get(a.id) - index.get(b.id));
      }
      col.forEach((n, i) => row.set(n.id, i));
    });
    return { layer, row, columns: columns.length, rows: Math.max(1, ...columns.map((c) => (c ? c.length : 0))) };
  }

  function edgePath(a, b, kind) {
    const ay = a.y + NODE_H / 2, by = b.y + NODE_H / 2;
    if (b.x > a.x) {
      const ax = a.x + NODE_W, bx = b.x, dx = (bx - ax) / 2;
      if (bx - ax > COL_W) {
        // Spans more than one column: arch over the band's first row instead of
        // crossing the nodes in between.
        const c = a.top - ARC_ROOM - (kind === "waits_on" ? 8 : kind === "consumes" ? 4 : 0);
        return `M${ax},${ay} C${ax + dx * 0.5},${c} ${bx - dx * 0.5},${c} ${bx},${by}`;
      }
      const bend = kind === "waits_on" ? -22 : kind === "consumes" ? 12 : 0;
      return `M${ax},${ay} C${ax + dx},${ay + bend} ${bx - dx},${by + bend} ${bx},${by}`;
    }
    if (b.x === a.x) {
      const x = a.x + NODE_W, bulge = 46 + Math.abs(by - ay) / 6;
      return `M${x},${ay} C${x + bulge},${ay} ${x + bulge},${by} ${x},${by}`;
    }
    const lift = 30 + Math.abs(by - ay) / 4;
    return `M${a.x},${ay} C${a.x - 60},${ay - lift} ${b.x + NODE_W + 60},${by - lift} ${b.x + NODE_W},${by}`;
  }

  function marker(id, colour) {
    return s("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
  }

  let graphKey = "";

  function renderGraph() {
    const graph = S.views.graph;
    const box = $("graph");
    const notes = $("graph-notes");
    if (!graph) return;
    const labels = ((S.views.runs || {}).runs || []).map((r) => `${r.id}:${r.pattern}:${r.task}`).join("|");
    const key = `${S.run}|${S.names.size}|${labels}|${JSON.stringify(graph)}`;
    if (key === graphKey) return;
    graphKey = key;
    let nodes = S.run ? graph.nodes.filter((n) => n.run_id === S.run) : graph.nodes;
    let hiddenRuns = 0;
    if (!S.run) {
      // Many runs: draw the most recent ones; the run picker shows any other.
      const runIds = [...new Set(nodes.map((n) => n.run_id || ""))];
      if (runIds.length > GRAPH_RUN_CAP) {
        const shown = new Set(runIds.slice(-GRAPH_RUN_CAP));
        hiddenRuns = runIds.length - GRAPH_RUN_CAP;
        nodes = nodes.filter((n) => shown.has(n.run_id || ""));
      }
    }
    if (!nodes.length) {
      box.replaceChildren(h("p", { class: "empty", text: "No agents yet." }));
      notes.replaceChildren();
      return;
    }
    const ids = new Set(nodes.map((n) => n.id));
    const edges = graph.edges.filter((e) => ids.has(e.from) && ids.has(e.to));
    const runs = new Map(((S.views.runs || {}).runs || []).map((r) => [r.id, r]));

    // One band per run, in the order runs first appear.
    const bands = new Map();
    for (const n of nodes) {
      const key = n.run_id || "";
      if (!bands.has(key)) bands.set(key, []);
      bands.get(key).push(n);
    }
    const bottlenecks = (graph.bottlenecks || []).filter((b) => ids.has(b.agent_id) && (b.waited_on_ms > 0 || b.waiters_now > 0));
    const top = bottlenecks.length ? bottlenecks[0].waited_on_ms : 0;
    const marked = new Map(bottlenecks
      .filter((b, i) => i < 3 && (b.waited_on_ms >= top * 0.5 || b.waiters_now > 0))
      .map((b) => [b.agent_id, b]));

    const pos = new Map();
    const bandEls = [];
    let y = PAD;
    let width = 0;
    const bandOf = new Map(nodes.map((n) => [n.id, n.run_id || ""]));
    const bandEdges = new Map();
    for (const e of edges) {
      const key = bandOf.get(e.from);
      if (key !== bandOf.get(e.to)) continue;
      if (!bandEdges.has(key)) bandEdges.set(key, []);
      bandEdges.get(key).push(e);
    }
    for (const [runId, members] of bands) {
      const L = layout(members, bandEdges.get(runId) || []);
      const rowsTop = y + LABEL_H + ARC_ROOM;
      for (const n of members) {
        pos.set(n.id, { x: PAD + L.layer.get(n.id) * COL_W, y: rowsTop + L.row.get(n.id) * ROW_H, top: rowsTop });
      }
      const bandW = L.columns * COL_W - (COL_W - NODE_W) + 2 * 12;
      const bandH = LABEL_H + ARC_ROOM + L.rows * ROW_H - (ROW_H - NODE_H) + 14;
      width = Math.max(width, PAD + bandW + PAD);
      const run = runs.get(runId);
      const label = runId
        ? `${run ? (run.pattern || "orchestrator") + " · " + clip(run.task, 70) : runId}  (${runId})`
        : "agents outside any run";
      const labelW = label.length * 6.8 + 24; // about 6.8 px a character at 12 px
      const boxW = Math.max(bandW, labelW);
      width = Math.max(width, PAD + boxW + PAD);
      bandEls.push(s("rect", { class: "band", x: PAD - 12, y: y, width: boxW, height: bandH, rx: 10 }));
      bandEls.push(s("text", { class: "band-label", x: PAD - 2, y: y + 17, text: label }));
      y += bandH + BAND_GAP;
    }
    const height = y + PAD - BAND_GAP;
    width = Math.max(width, 560);

    const edgeEls = [];
    const order = { created: 0, consumes: 1, waits_on: 2 };
    for (const e of edges.slice().sort((a, b) => order[a.kind] - order[b.kind])) {
      // "consumes" points at the producer; draw the artifact flowing to its reader.
      const [from, to] = e.kind === "consumes" ? [e.to, e.from] : [e.from, e.to];
      const a = pos.get(from), b = pos.get(to);
      if (!a || !b) continue;
      const title = e.kind === "created" ? `${name(e.from)} created ${name(e.to)}`
        : e.kind === "waits_on" ? `${name(e.from)} waited on ${name(e.to)}: ${e.count}× ${fmtMs(e.total_ms)}${e.open ? " (waiting now)" : ""}`
        : `${name(e.to)} → ${name(e.from)}: ${(e.files || []).join(", ")}`;
      const strokeWidth = e.kind === "waits_on" && !e.open ? Math.min(4.5, 1.4 + Math.log10(1 + (e.total_ms || 0)) / 1.5) : null;
      edgeEls.push(s("path", {
        class: "edge", d: edgePath(a, b, e.kind), "data-kind": e.kind, "data-from": e.from, "data-to": e.to,
        "data-open": e.kind === "waits_on" ? String(!!e.open) : null,
        "stroke-width": strokeWidth ? strokeWidth.toFixed(2) : null,
        "marker-end": `url(#arrow-${e.kind})`,
      }, s("title", { text: title })));
    }

    const cards = new Map(((S.views.agents || {}).agents || []).map((a) => [a.id, a]));
    const nodeEls = nodes.map((n) => {
      const p = pos.get(n.id);
      const b = marked.get(n.id);
      const agent = cards.get(n.id);
      const detail = agent ? `${n.role} · ${shortModel(agent.model)}` : n.role;
      return s("g", {
        class: b ? "node bottleneck" : "node", transform: `translate(${p.x},${p.y})`,
        "data-agent-id": n.id, "data-status": n.status,
      },
        s("title", { text: `${n.name} (${n.id})\n${n.role} · ${n.status}${b ? `\nbottleneck: others waited on it ${fmtMs(b.waited_on_ms)} (${b.waits} waits)` : ""}` }),
        b ? s("rect", { class: "ring", x: -4, y: -4, width: NODE_W + 8, height: NODE_H + 8, rx: 11 }) : null,
        b ? s("text", { class: "badge", x: 2, y: -9, text: `▲ bottleneck · ${fmtMs(b.waited_on_ms)}${b.waiters_now ? " · awaited now" : ""}` }) : null,
        s("rect", { class: "box", width: NODE_W, height: NODE_H, rx: 8 }),
        s("circle", { cx: NODE_W - 12, cy: 12, r: 4.5, fill: `var(--s-${n.status}, var(--faint))` }),
        s("text", { x: 10, y: 19, "font-weight": 650, text: clip(n.name, 20) }),
        s("text", { class: "role", x: 10, y: 35, text: clip(detail, 28) }));
    });

    box.replaceChildren(s("svg", { id: "graph-svg", width, height, viewBox: `0 0 ${width} ${height}` },
      s("defs", null,
        marker("arrow-created", "#64748b"), marker("arrow-waits_on", "#f5a524"), marker("arrow-consumes", "#2dd4bf")),
      bandEls, edgeEls, nodeEls));

    const lines = [];
    if (hiddenRuns) {
      lines.push(h("div", { class: "hidden-runs", text: `${hiddenRuns} older run${hiddenRuns === 1 ? "" : "s"} not drawn: pick one in the run picker.` }));
    }
    if (marked.size) {
      lines.push(h("div", { class: "bottlenecks" }, h("b", { text: "Bottlenecks: " }),
        [...marked.values()].map((b) => `${name(b.agent_id)} (waited on ${fmtMs(b.waited_on_ms)}, ${b.waits} wait${b.waits === 1 ? "" : "s"}${b.waiters_now ? `, ${b.waiters_now} waiting now` : ""})`).join(" · ")));
    }
    for (const path of graph.critical_paths || []) {
      if (!bands.has(path.run_id)) continue; // only the runs drawn
      if (!path.path.length) continue;
      const steps = [];
      for (const step of path.path) {
        const label = name(step.agent_id);
        if (steps[steps.length - 1] !== label) steps.push(label);
      }
      lines.push(h("div", { class: "path" }, "Critical path ",
        h("b", { text: fmtMs(path.total_ms) }), ` (${path.run_id}): ${steps.join(" → ")}`));
    }
    notes.replaceChildren(...lines);
  }

  // -- the feed ---------------------------------------------------------------------

  // A tool call's input in a few words: key=value pairs, each value clipped.
  function toolArgs(input) {
    const args = Object.entries(input || {}).map(([k, v]) => `${k}=${clip(typeof v === "string" ? v : JSON.stringify(v), 40)}`).join(" ");
    return clip(args, 90);
  }

  // An ingested hook payload (a Claude Code session): the tool call and its input, the prompt...
  function externalHook(d) {
    const p = d.payload || {};
    const hook = d.hook_event_name;
    if (typeof p.tool_name === "string") {
      return `${hook} ${p.tool_name}${hook === "PostToolUseFailure" ? " FAILED" : ""} ${toolArgs(p.tool_input)}`.trim();
    }
    if ((hook === "SubagentStart" || hook === "SubagentStop") && typeof p.agent_id === "string") {
      return `${hook} ${p.agent_type || "subagent"} ${p.agent_id.slice(0, 8)}`;
    }
    if (hook === "UserPromptSubmit") return `${hook}: ${clip(p.prompt, 90)}`;
    if (hook === "Stop" && p.last_assistant_message) return `${hook}: ${clip(p.last_assistant_message, 90)}`;
    if (hook === "SessionEnd") return `${hook} (${p.reason || "ended"})`;
    return `${d.source_app} ${hook} · session ${clip(d.session_id, 14)}`;
  }

  function summarize(event) {
    const d = event.data || {};
    const files = (list) => (list || []).map((f) => f.split("/").pop()).join(", ");
    switch (event.type) {
      case "RunStarted": return `${d.pattern || "orchestrator"}${d.simulated ? " (simulator)" : ""}: ${clip(d.task)}`;
      case "RunCompleted": return `${fmtMs(d.duration_ms)} · ${clip(d.summary)}`;
      case "RunFailed": return `${clip(d.error)} (${fmtMs(d.duration_ms)})`;
      case "AgentCreated": return `${d.name}: ${d.role} on ${shortModel(d.model)}${d.parent_id ? " · by " + name(d.parent_id) : ""}`;
      case "AgentCommanded": return `by ${name(d.by)}: ${clip(d.prompt, 90)}`;
      case "ModelResponded": {
        const u = d.usage || {};
        const input = (u.input_tokens || 0) + (u.cache_creation_input_tokens || 0) + (u.cache_read_input_tokens || 0);
        return `${shortModel(d.model)} ${d.stop_reason || ""} · in ${fmtTokens(input)} out ${fmtTokens(u.output_tokens)} · ${fmtCost(d.cost_usd)}`;
      }
      case "ToolCallRequested": return `${d.name} ${toolArgs(d.input)}`;
      case "ToolCallCompleted": {
        const status = d.blocked ? "BLOCKED" : d.is_error ? "error" : "ok";
        let text = `${d.name} ${status} · ${fmtMs(d.duration_ms)}`;
        if ((d.files_read || []).length) text += ` · read ${files(d.files_read)}`;
        if ((d.files_written || []).length) text += ` · wrote ${files(d.files_written)}`;
        if (d.blocked || d.is_error) text += `: ${clip(d.result, 100)}`;
        return text;
      }
      case "HookInvoked": return `${d.point} ${d.kind}${d.hook ? " " + clip(d.hook, 30) : ""} → ${d.decision}${d.detached ? " (async, not applied)" : ""}${d.reason ? ": " + clip(d.reason, 80) : ""}${d.system_message ? " · says: " + clip(d.system_message, 80) : ""}`;
      case "ApprovalRequested": return `waits for approval ${d.approval_id}: ${d.tool_name} ${clip(toolArgs(d.tool_input), 60)}${d.reason ? " · " + clip(d.reason, 60) : ""}`;
      case "ApprovalDecided": return `${d.approval_id} ${d.decision === "allow" ? "allowed" : "denied"} by ${d.by}${d.reason ? ": " + clip(d.reason, 60) : ""}`;
      case "AgentWaiting": return `waits on ${(d.on || []).map(name).join(", ")}${d.timeout_s ? ` (timeout ${fmtMs(d.timeout_s * 1000)})` : ""}`;
      case "AgentWoke": return `${d.reason}${(d.changed || []).length ? ": " + d.changed.map(name).join(", ") : ""} after ${fmtMs(d.waited_ms)}`;
      case "ContextCompacted": return `${fmtTokens(d.tokens_before)} → ${fmtTokens(d.tokens_after)} tokens (${d.trigger})`;
      case "AgentCompleted": return clip(d.summary, 120) || d.stop_reason;
      case "AgentFailed": return `${d.limit ? "[" + d.limit + "] " : ""}${clip(d.error, 120)}`;
      case "AgentDeleted": return `by ${name(d.by)}${d.was_working ? " while working" : ""}`;
      case "TaskCreated": return `${clip(d.title, 80)} → ${d.column}`;
      case "TaskMoved": return `→ ${d.column}${d.assignee ? " @" + name(d.assignee) : ""}${d.reason ? ": " + clip(d.reason, 60) : ""}`;
      case "ExternalHookReceived": return externalHook(d);
      case "ReplayDiverged": return `step ${d.step} ${d.kind}: expected ${clip(d.expected, 50)}, got ${clip(d.actual, 50)}`;
      default: return "";
    }
  }

  function category(event) {
    const d = event.data || {};
    if (event.type === "ToolCallCompleted" && (d.blocked || d.is_error)) return "bad";
    if (event.type === "HookInvoked" && ["deny", "block", "error", "timeout"].includes(d.decision)) return "bad";
    if (event.type === "TaskMoved" && d.column === "FAILED") return "bad";
    return CATEGORY[event.type] || "other";
  }

  function agentOf(event) {
    return (event.meta && event.meta.agent_id) || (event.data && event.data.agent_id) || "";
  }

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
    const rows = queued.filter(matches).map(feedRow).reverse();
    queued = [];
    if (!rows.length) return;
    const feed = $("feed");
    feed.prepend(...rows);
    while (feed.childElementCount > FEED_DOM_MAX) feed.lastElementChild.remove();
    updateFeedCount();
  }

  function renderFeed() {
    queued = [];
    const shown = S.events.filter(matches);
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
    markFeedCursor();
    invalidate(VIEWS);
  }

  function goLive() {
    stopReplay();
    S.live = true;
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
    invalidate(VIEWS);
    if (wanted) selectRun(wanted);
  }

  start();
})();
