/* fleet dashboard: the agent drawer. Everything one agent did, from the log, and a search.
 *
 * Opened by a click on an agent's card, its node in the graph or its name in the feed
 * (or the trace's lane). It shows the agent's prompts, the model's answers, each tool
 * call's input and result (ToolCallRequested and ToolCallCompleted, or an ingested
 * Claude Code session's PreToolUse and PostToolUse), hooks, waits, compactions, its
 * files, and its cost over time; it follows new events while open. The search box
 * looks through every event of the agent's run (GET /v1/events?run_id=...).
 */
(function () {
  "use strict";

  const {
    $, h, s, fmtCost, fmtTokens, fmtMs, fmtClock, clip, shortModel, name, eventsOf, summarize,
    agentOf, pretty, patchChildren,
  } = window.fleetLib;
  const RESULTS_MAX = 200;

  let S = null;
  let current = null; // the agent id shown
  let mark = null; // a position to bring into view once drawn
  let marked = null; // the position shown marked (kept marked when the drawer is drawn again)
  let timer = 0;
  let searchTimer = 0;

  function init(state) {
    S = state;
    $("drawer-close").addEventListener("click", close);
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && current) close(); });
    document.addEventListener("click", (e) => {
      const target = e.target instanceof Element ? e.target : null;
      if (!target || target.closest("#drawer")) return;
      const card = target.closest(".agent-card, #graph-svg g.node, .feed-row .agent, .lane-label");
      const id = card && (card.dataset.agentId || card.getAttribute("title"));
      if (id && S.names.has(id)) show(id);
    });
    $("search").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(search, 200);
    });
  }

  function onEvent(event) {
    if (current && agentOf(event) === current && !timer) timer = setTimeout(draw, 250);
  }

  function reload() {}

  // The slider moved (or a round of views came in): what happened after it is dimmed.
  let drawnAt = "live";
  function onViews() {
    const at = S.live ? "live" : String(S.at);
    if (current && at !== drawnAt && !timer) timer = setTimeout(draw, 250);
  }

  function show(agentId, position) {
    current = agentId;
    mark = position ?? null;
    marked = mark;
    $("drawer").hidden = false;
    $("drawer").dataset.agentId = agentId;
    document.body.classList.add("drawer-open");
    draw();
    if ($("search").value.trim()) search();
  }

  function close() {
    current = null;
    $("drawer").hidden = true;
    delete $("drawer").dataset.agentId;
    document.body.classList.remove("drawer-open");
  }

  function card(agentId) {
    return ((S.views.agents || {}).agents || []).find((a) => a.id === agentId) || null;
  }

  async function draw() {
    timer = 0;
    const agentId = current;
    if (!agentId) return;
    const events = await eventsOf({ agent_id: agentId });
    if (agentId !== current) return;
    const a = card(agentId);
    $("drawer-title").replaceChildren(
      h("b", { text: name(agentId) }),
      a ? h("span", { class: "status", "data-status": a.status, text: a.status }) : null,
      h("span", { class: "sub", text: a ? `${a.role} · ${shortModel(a.model)} · ${agentId}` : agentId }));
    $("drawer-summary").replaceChildren(...summary(a, events).filter(Boolean));
    const body = $("drawer-body");
    drawnAt = S.live ? "live" : String(S.at);
    // An entry drawn the same as before is kept, not replaced: the text a person selected
    // in it, and where its result is scrolled to, stay while the agent works on.
    const before = new Map([...body.children].map((el) => [el.dataset.position, el]));
    patchChildren(body, transcript(events).map((el) => {
      const old = before.get(el.dataset.position);
      return old && old.isEqualNode(el) ? old : el;
    }));
    body.dataset.position = String(events.length ? events[events.length - 1].position : 0);
    if (mark != null) {
      const el = body.querySelector(`.entry[data-position="${mark}"]`);
      if (el) el.scrollIntoView({ block: "center" });
      mark = null;
    }
  }

  // -- the summary: numbers, files, cost over time ------------------------------------

  function summary(a, events) {
    if (!a) return [];
    const files = (label, cls, list) => h("div", { class: `drawer-files ${cls}` },
      h("div", { class: "label", text: `${label} (${list.length})` }),
      h("ul", null, list.map((f) => h("li", { class: "file", "data-file": f, text: f }))));
    return [
      h("div", { class: "numbers" },
        h("span", null, "cost ", h("b", { text: fmtCost(a.cost_usd) })),
        h("span", null, "tokens ", h("b", { text: fmtTokens(a.tokens.total) })),
        h("span", null, "turns ", h("b", { text: a.turns })),
        h("span", null, "tool calls ", h("b", { text: a.tool_calls.count })),
        h("span", null, "context ", h("b", { text: `${Number(a.context.percent || 0).toFixed(1)}%` }))),
      costChart(events),
      h("div", { class: "drawer-files-row" },
        files("read", "read", a.files_consumed || []), files("wrote", "wrote", a.files_produced || [])),
      a.error ? h("div", { class: "error", text: a.error }) : null,
    ];
  }

  function costChart(events) {
    const points = [];
    let total = 0;
    for (const e of events) {
      if (e.type !== "ModelResponded") continue;
      total += Number(e.data.cost_usd || 0);
      points.push([Date.parse(e.recorded_at), total]);
    }
    const W = 560, H = 86, PADX = 8, TOP = 8, BOTTOM = 18;
    if (!points.length) return h("div", { class: "cost-chart empty", "data-points": 0, text: "No model calls yet: no cost." });
    const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
    const x = (t) => PADX + ((t - t0) / (t1 - t0)) * (W - 2 * PADX);
    const y = (c) => TOP + (1 - c / Math.max(total, 1e-9)) * (H - TOP - BOTTOM);
    let d = `M${x(t0)},${y(0)}`;
    for (const [t, c] of points) d += ` H${x(t).toFixed(1)} V${y(c).toFixed(1)}`;
    return h("div", { class: "cost-chart", "data-points": points.length, "data-total": total },
      h("div", { class: "label", text: `Cost over time: ${fmtCost(total)} in ${points.length} model call${points.length === 1 ? "" : "s"} over ${fmtMs(t1 - t0)}` }),
      s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "cost over time" },
        s("path", { class: "line", d }),
        points.map(([t, c]) => s("circle", { cx: x(t).toFixed(1), cy: y(c).toFixed(1), r: 2.5 },
          s("title", { text: `${fmtClock(new Date(t).toISOString(), true)}: ${fmtCost(c)}` }))),
        s("text", { x: PADX, y: H - 4, text: fmtClock(new Date(t0).toISOString()) }),
        s("text", { x: W - PADX, y: H - 4, "text-anchor": "end", text: fmtClock(new Date(t1).toISOString()) })));
  }

  // -- the transcript -------------------------------------------------------------------

  function entry(kind, e, title, ...body) {
    const future = !S.live && e.position > S.at ? " future" : "";
    const here = e.position === marked ? " marked" : "";
    return h("div", { class: `entry entry-${kind}${future}${here}`, "data-position": e.position, "data-type": e.type },
      h("div", { class: "entry-head" },
        h("span", { class: "pos", text: `#${e.position}` }),
        h("span", { class: "time", title: e.recorded_at, text: fmtClock(e.recorded_at, true) }),
        h("b", { text: title })),
      ...body);
  }

  function pre(cls, text) {
    return h("pre", { class: cls, text });
  }

  function asText(value) {
    return typeof value === "string" ? value : pretty(value);
  }

  function transcript(events) {
    const out = [];
    const calls = new Map(); // tool_use_id -> the call's entry (its result lands in it)
    const toolEntry = (e, id, tool, input) => {
      const el = entry("tool", e, `Tool call ${tool}`,
        h("div", { class: "label", text: "input" }), pre("tool-input", pretty(input || {})),
        h("div", { class: "tool-outcome", "data-status": "running", text: "running…" }));
      el.dataset.toolUseId = id || "";
      el.dataset.tool = tool;
      if (id) calls.set(id, el);
      return el;
    };
    const land = (id, status, label, result) => {
      const el = calls.get(id);
      if (!el) return false;
      const outcome = el.querySelector(".tool-outcome");
      outcome.dataset.status = status;
      outcome.textContent = label;
      el.append(pre("tool-result", result));
      return true;
    };
    for (const e of events) {
      const d = e.data || {};
      switch (e.type) {
        case "AgentCreated":
          out.push(entry("life", e, `Created: ${d.role} on ${shortModel(d.model)}${d.parent_id ? " by " + name(d.parent_id) : ""}`,
            d.tools && d.tools.length ? h("div", { class: "muted", text: `tools: ${d.tools.join(", ")}` }) : null,
            d.system_prompt ? pre("prompt", d.system_prompt) : null));
          break;
        case "AgentCommanded":
          out.push(entry("prompt", e, `Prompt from ${name(d.by) || "user"}`, pre("prompt", d.prompt)));
          break;
        case "ModelResponded": {
          const texts = (d.content || []).filter((b) => b.type === "text").map((b) => b.text).join("\n\n");
          const asks = (d.content || []).filter((b) => b.type === "tool_use").map((b) => b.name);
          out.push(entry("model", e, `Model answered (turn ${d.turn}, ${d.stop_reason || "?"})`,
            h("div", { class: "muted", text: `${summarize(e)} · ${fmtMs(d.duration_ms)}${asks.length ? " · asks for " + asks.join(", ") : ""}` }),
            texts.trim() ? pre("answer", texts) : null));
          break;
        }
        case "ToolCallRequested":
          out.push(toolEntry(e, d.tool_use_id, d.name, d.input));
          break;
        case "ToolCallCompleted": {
          const status = d.blocked ? "blocked" : d.is_error ? "error" : "ok";
          const files = [...(d.files_read || []).map((f) => "read " + f), ...(d.files_written || []).map((f) => "wrote " + f)];
          const label = `${status} · ${fmtMs(d.duration_ms)}${files.length ? " · " + files.join(", ") : ""}`;
          if (!land(d.tool_use_id, status, label, d.result || "")) {
            out.push(entry("tool", e, `Tool result ${d.name}: ${label}`, pre("tool-result", d.result || "")));
          }
          break;
        }
        case "ExternalHookReceived": {
          const p = d.payload || {};
          if (d.hook_event_name === "PreToolUse" && typeof p.tool_name === "string") {
            out.push(toolEntry(e, p.tool_use_id, p.tool_name, p.tool_input));
          } else if ((d.hook_event_name === "PostToolUse" || d.hook_event_name === "PostToolUseFailure") && p.tool_use_id && calls.has(p.tool_use_id)) {
            const failed = d.hook_event_name === "PostToolUseFailure";
            land(p.tool_use_id, failed ? "error" : "ok", failed ? "failed" : "ok", asText(failed ? p.error : p.tool_response));
          } else if (d.hook_event_name === "UserPromptSubmit") {
            out.push(entry("prompt", e, "Prompt", pre("prompt", p.prompt || "")));
          } else {
            out.push(entry("hook", e, summarize(e)));
          }
          break;
        }
        case "ContextCompacted":
          out.push(entry("compaction", e, `Context compacted: ${summarize(e)}`, d.summary ? pre("answer", d.summary) : null));
          break;
        case "AgentCompleted":
          out.push(entry("life", e, "Completed", d.summary ? pre("answer", d.summary) : null));
          break;
        case "AgentFailed":
          out.push(entry("bad", e, `Failed${d.limit ? " (" + d.limit + ")" : ""}`, pre("answer", d.error || "")));
          break;
        default:
          out.push(entry(e.type === "HookInvoked" ? "hook" : "other", e, `${e.type}: ${summarize(e)}`));
      }
    }
    if (!out.length) out.push(h("p", { class: "empty", text: "No events for this agent yet." }));
    return out;
  }

  // -- search across the run --------------------------------------------------------

  async function search() {
    const box = $("search-results");
    const q = $("search").value.trim().toLowerCase();
    if (!q || !current) { box.replaceChildren(); box.dataset.count = "0"; return; }
    const a = card(current);
    const scope = a && a.run_id ? { run_id: a.run_id } : { agent_id: current };
    const agent = current;
    const events = await eventsOf(scope);
    if ($("search").value.trim().toLowerCase() !== q) return; // typed on meanwhile
    if (current !== agent) return; // another agent opened meanwhile: its own search shows
    const found = events.filter((e) => `${e.type} ${JSON.stringify(e.data)}`.toLowerCase().includes(q));
    box.dataset.count = String(found.length);
    const rows = found.slice(0, RESULTS_MAX).map((e) => {
      const text = JSON.stringify(e.data);
      const at = text.toLowerCase().indexOf(q);
      const around = at < 0 ? "" : text.slice(Math.max(0, at - 40), at + q.length + 60);
      const agent = agentOf(e);
      return h("li", { class: "result", "data-position": e.position, "data-agent": agent, onclick: () => agent && S.names.has(agent) ? show(agent, e.position) : null },
        h("span", { class: "pos", text: `#${e.position}` }),
        h("span", { class: "type", text: e.type }),
        agent ? h("span", { class: "agent", text: name(agent) }) : null,
        h("span", { class: "text", text: clip(around, 110) }));
    });
    box.replaceChildren(
      h("div", { class: "muted", text: `${found.length} of ${events.length} events of ${a && a.run_id ? "the run " + a.run_id : "this agent"} match${found.length > RESULTS_MAX ? ` (first ${RESULTS_MAX} shown)` : ""}` }),
      h("ol", null, rows));
  }

  window.fleetDrawer = { init, onEvent, reload, onViews, show, close };
})();
