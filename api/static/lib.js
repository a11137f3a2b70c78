/* fleet dashboard: what every part of the page shares (loaded first, no dependencies).
 *
 * DOM builders, number and time formats, the API client, and how an event is told
 * in one line. Text from the log is untrusted: the DOM is built with textContent
 * and attributes, never innerHTML.
 */
(function () {
  "use strict";

  const TOKEN = sessionStorage.getItem("fleet-token") || "";
  const names = new Map(); // agent id -> name, as AgentCreated and the agents view say

  const CATEGORY = {
    RunStarted: "run", RunCompleted: "run", RunFailed: "bad",
    AgentCreated: "life", AgentCommanded: "life", AgentCompleted: "life", AgentDeleted: "life",
    AgentFailed: "bad", ModelResponded: "model", ContextCompacted: "model",
    ToolCallRequested: "tool", ToolCallCompleted: "tool", AgentWaiting: "wait", AgentWoke: "wait",
    TaskCreated: "task", TaskMoved: "task", HookInvoked: "hook", ExternalHookReceived: "hook",
    ApprovalRequested: "wait", ApprovalDecided: "wait", ReplayDiverged: "bad",
  };

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

  const INT = new Intl.NumberFormat("en-US"); // toLocaleString makes one per call: 20x slower
  function fmtInt(n) { return INT.format(Number(n || 0)); }
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
  function name(id) { return id ? (names.get(id) || id) : ""; }

  // Agents of a run that share a name (a builder sent back by a review is a new agent,
  // also "build") are told apart everywhere: "build", "build #2". `agents` in the order
  // they were created; the whole map is redone, so the numbers never depend on what
  // arrived first.
  // `namesVersion()` changes when a name does (added names also change the map's size).
  let renamed = 0;
  function nameAgents(agents) {
    const seen = new Map();
    let changed = false;
    for (const a of agents) {
      const key = `${a.run_id || ""}|${a.name}`;
      const n = (seen.get(key) || 0) + 1;
      seen.set(key, n);
      const shown = n > 1 ? `${a.name} #${n}` : a.name;
      if (names.get(a.id) !== shown) { names.set(a.id, shown); changed = true; }
    }
    if (names.size > agents.length) { // names of agents the view does not list (yet)
      const listed = new Set(agents.map((a) => a.id));
      for (const id of [...names.keys()]) if (!listed.has(id)) { names.delete(id); changed = true; }
    }
    if (changed) renamed += 1;
  }
  function namesVersion() { return renamed; }

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

  // The events matching `filter` (e.g. {run_id}), read page by page and kept: a later call
  // asks only for what came after the last one read. At most `cap` events are kept.
  const logs = new Map(); // JSON of the filter -> { events, after, busy }
  async function eventsOf(filter, cap = 20000) {
    const key = JSON.stringify(filter);
    let log = logs.get(key);
    if (!log) logs.set(key, (log = { events: [], after: 0, busy: null }));
    if (log.busy) return log.busy;
    log.busy = (async () => {
      try {
        for (;;) {
          const { body } = await api("v1/events", { ...filter, after: log.after, limit: 1000 });
          log.events.push(...body.events);
          if (body.events.length) log.after = body.events[body.events.length - 1].position;
          if (log.events.length > cap) log.events.splice(0, log.events.length - cap);
          if (body.next == null) break;
        }
        return log.events;
      } finally {
        log.busy = null;
      }
    })();
    return log.busy;
  }

  // A state-changing call: JSON in, JSON out; the answer's status is the caller's to judge
  // (409 and 422 carry a problem+json `detail` a person can read).
  async function apiPost(path, payload) {
    const headers = { Accept: "application/json", "Content-Type": "application/json" };
    if (TOKEN) headers.Authorization = "Bearer " + TOKEN;
    const res = await fetch(new URL(path, document.baseURI), {
      method: "POST", headers, body: JSON.stringify(payload), cache: "no-store",
    });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    return { status: res.status, ok: res.ok, body };
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


  // JSON for a person: indented, long strings kept whole (the drawer and event details).
  function pretty(value) { return JSON.stringify(value, null, 2); }

  // Make box's children exactly els, moving, adding and removing only what changed: an
  // unchanged card keeps its layout, and an input in it keeps its focus and what is typed.
  function patchChildren(box, els) {
    const keep = new Set(els);
    for (const child of [...box.children]) if (!keep.has(child)) child.remove();
    els.forEach((el, i) => {
      const current = box.children[i];
      if (current !== el) box.insertBefore(el, current || null);
    });
  }

  window.fleetLib = {
    TOKEN, names, $, h, s, setAttrs, fmtInt, fmtTokens, fmtCost, fmtMs, fmtClock, clip, shortModel,
    name, nameAgents, namesVersion, ApiError, api, apiPost, eventsOf, showBanner, setConn, toolArgs, externalHook, summarize, category, agentOf,
    pretty, patchChildren,
  };
})();
