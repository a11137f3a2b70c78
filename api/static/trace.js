/* fleet dashboard: a run's trace, the waterfall of tracing tools. One lane per agent.
 *
 * Bars come straight from the run's events (GET /v1/events?run_id=...), on a time
 * axis from the run's first event:
 *   model        ModelResponded: recorded when the answer was in, so [at - duration_ms, at]
 *   tool         ToolCallRequested -> ToolCallCompleted of the same tool_use_id (open: running)
 *   hook         HookInvoked: [at - duration_ms, at]
 *   wait         AgentWaiting -> AgentWoke, ApprovalRequested -> ApprovalDecided
 *   compaction   ContextCompacted: an instant
 * The lanes of the agents on the run's critical path (GET /v1/graph?run_id=) are
 * highlighted. A click on a bar shows its event(s); the drawer opens from there.
 * With no run picked, the trace is the latest run's.
 */
(function () {
  "use strict";

  const { $, h, fmtMs, fmtClock, clip, name, api, eventsOf, summarize, agentOf, pretty } = window.fleetLib;
  const LANE_MAX = 60;

  let S = null;
  let timer = 0;
  let drawing = false;
  let again = false;
  let shownRun = "";
  let picked = null; // the bar whose events are shown below the trace
  let critical = { run: "", at: -1, path: null };

  function init(state) {
    S = state;
    soon();
  }

  function onEvent(event) {
    const run = event.meta && event.meta.run_id;
    if (run && (run === runId() || !S.run)) soon();
  }

  function reload() {
    picked = null;
    soon();
  }

  function soon() {
    if (!timer) timer = setTimeout(draw, 300);
  }

  function runId() {
    if (S.run) return S.run;
    const runs = (S.views.runs || {}).runs || [];
    return runs.length ? runs[runs.length - 1].id : "";
  }

  async function draw() {
    timer = 0;
    if (drawing) { again = true; return; }
    drawing = true;
    try {
      const run = runId();
      if (!run) {
        // Until the runs are in, the page does not know there are none (index.html says so too).
        const text = S.views.runs ? "No runs yet." : "Loading runs…";
        $("trace").replaceChildren(h("p", { class: "empty", text }));
        return;
      }
      const events = await eventsOf({ run_id: run });
      const path = await criticalPath(run, events);
      if (run !== runId()) { again = true; return; }
      if (run !== shownRun) picked = null;
      shownRun = run;
      render(run, events, path);
    } catch (e) {
      console.warn("fleet: trace failed", e);
    } finally {
      drawing = false;
      if (again) { again = false; soon(); }
    }
  }

  async function criticalPath(run, events) {
    const last = events.length ? events[events.length - 1].position : 0;
    if (critical.run !== run || critical.at !== last) {
      const { body } = await api("v1/graph", { run_id: run });
      critical = { run, at: last, path: (body.critical_paths || []).find((p) => p.run_id === run) || null };
    }
    return critical.path;
  }

  // -- from events to lanes and bars --------------------------------------------------

  function spans(events) {
    const t0 = events.length ? Date.parse(events[0].recorded_at) : 0;
    const off = (e) => Date.parse(e.recorded_at) - t0;
    const end = events.length ? off(events[events.length - 1]) : 0;
    const lanes = new Map(); // agent id -> { id, start, end, status, bars }
    const lane = (id, at) => {
      if (!lanes.has(id)) lanes.set(id, { id, start: at, end: null, status: "working", bars: [] });
      return lanes.get(id);
    };
    const open = new Map(); // key -> { lane, kind, from, start, label }
    for (const e of events) {
      const d = e.data || {};
      const agent = agentOf(e);
      const t = off(e);
      if (!agent) continue;
      const L = lane(agent, t);
      const bar = (kind, start, stop, label, from) => L.bars.push({
        kind, start, end: stop, label, position: e.position, from: from ?? e.position, open: false,
      });
      const begin = (key, kind, label) => open.set(key, { lane: L, kind, from: e.position, start: t, label });
      const finish = (key, label) => {
        const o = open.get(key);
        if (!o) return;
        open.delete(key);
        o.lane.bars.push({ kind: o.kind, start: o.start, end: t, label: label || o.label, position: e.position, from: o.from, open: false });
      };
      switch (e.type) {
        case "ModelResponded":
          bar("model", t - Number(d.duration_ms || 0), t, `model turn ${d.turn} (${d.stop_reason || "?"})`);
          break;
        case "ToolCallRequested": begin("tool:" + d.tool_use_id, "tool", `${d.name}`); break;
        case "ToolCallCompleted":
          finish("tool:" + d.tool_use_id, `${d.name} ${d.blocked ? "blocked" : d.is_error ? "error" : "ok"}`);
          break;
        case "HookInvoked":
          bar("hook", t - Number(d.duration_ms || 0), t, `${d.point} ${d.hook || d.kind} → ${d.decision}`);
          break;
        case "AgentWaiting": begin("wait:" + agent, "wait", `waits on ${(d.on || []).map(name).join(", ")}`); break;
        case "AgentWoke": finish("wait:" + agent); break;
        case "ApprovalRequested": begin("approval:" + d.approval_id, "wait", `waits for approval of ${d.tool_name}`); break;
        case "ApprovalDecided": finish("approval:" + d.approval_id); break;
        case "ContextCompacted": bar("compaction", t, t, `compacted ${d.tokens_before} → ${d.tokens_after} tokens`); break;
        case "AgentCompleted": case "AgentFailed": case "AgentDeleted":
          if (L.end == null) { L.end = t; L.status = e.type.slice(5).toLowerCase(); }
          break;
        default:
      }
    }
    for (const o of open.values()) {
      o.lane.bars.push({ kind: o.kind, start: o.start, end, label: o.label + " (still open)", position: o.from, from: o.from, open: true });
    }
    return { t0, end, lanes: [...lanes.values()] };
  }

  // -- drawing ---------------------------------------------------------------------------

  function ticks(span) {
    const raw = span / 8;
    const pow = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-3))));
    const step = [1, 2, 5, 10].map((m) => m * pow).find((v) => v >= raw) || pow * 10;
    const out = [];
    for (let v = 0; v <= span + 1e-9; v += step) out.push(v);
    return out;
  }

  function render(run, events, path) {
    const box = $("trace");
    const { t0, end, lanes } = spans(events);
    const span = Math.max(end, 1);
    const pct = (ms) => `${Math.max(0, Math.min(100, (ms / span) * 100)).toFixed(3)}%`;
    const onPath = new Set(path ? path.path.map((p) => p.agent_id) : []);
    const card = ((S.views.runs || {}).runs || []).find((r) => r.id === run);
    box.dataset.run = run;
    box.dataset.position = String(events.length ? events[events.length - 1].position : 0);
    box.dataset.t0 = events.length ? events[0].recorded_at : "";

    const head = h("div", { class: "trace-head" },
      h("span", null, h("b", { text: card ? (card.pattern || "orchestrator") : run }), ` · ${clip(card ? card.task : "", 60)} (${run})`),
      h("span", { text: `${fmtMs(end)} · ${lanes.length} agents · started ${fmtClock(box.dataset.t0)}` }),
      path && path.path.length
        ? h("span", { class: "critical-text", text: `critical path ${fmtMs(path.total_ms)}: ${dedupe(path.path.map((p) => name(p.agent_id))).join(" → ")}` })
        : null);

    const axis = h("div", { class: "trace-row axis" },
      h("div", { class: "lane-label" }),
      h("div", { class: "track" }, ticks(span).map((v) => h("span", { class: "tick", style: `left:${pct(v)}`, text: fmtMs(v) }))));

    const rows = lanes.slice(0, LANE_MAX).map((L) => {
      const crit = onPath.has(L.id);
      const stop = L.end == null ? end : L.end;
      return h("div", { class: crit ? "trace-row lane critical" : "trace-row lane", "data-agent-id": L.id, "data-status": L.status },
        h("div", { class: "lane-label", "data-agent-id": L.id, title: `${name(L.id)} (${L.id})${crit ? " · on the critical path" : ""}` },
          crit ? h("span", { class: "crit-mark", text: "◆ " }) : null, name(L.id)),
        h("div", { class: "track" },
          h("div", { class: "life", style: `left:${pct(L.start)};width:${pct(stop - L.start)}` }),
          L.bars.map((b) => {
            // Drawn within the agent's life: a model call recorded with a duration longer
            // than the agent had lived (a clock's skew, a scripted log) starts at its birth.
            const from = Math.min(Math.max(b.start, L.start), b.end);
            const el = h("div", {
              class: `bar bar-${b.kind}${b.open ? " open" : ""}${!S.live && b.position > S.at ? " future" : ""}`,
              style: `left:${pct(from)};width:${pct(b.end - from)}`,
              "data-kind": b.kind, "data-position": b.position, "data-from": b.from,
              "data-start-ms": b.start.toFixed(3), "data-end-ms": b.end.toFixed(3), "data-agent-id": L.id,
              title: `${b.label}\n${fmtMs(b.end - b.start)} from ${fmtMs(b.start)}`,
              onclick: () => { picked = b; showPicked(events); },
            });
            if (picked && picked.position === b.position && picked.kind === b.kind) el.classList.add("picked");
            return el;
          })));
    });
    const more = lanes.length > LANE_MAX ? h("p", { class: "muted", text: `${lanes.length - LANE_MAX} more agents not drawn` }) : null;
    const legend = h("div", { class: "legend trace-legend" },
      ["model", "tool", "hook", "wait", "compaction"].map((k) => h("span", { class: `lg lg-bar k-${k}`, text: k })),
      h("span", { class: "lg crit", text: "◆ critical path" }));
    box.replaceChildren(...[head, legend, h("div", { class: "trace-grid" }, axis, rows), more,
      h("div", { id: "trace-detail", class: "trace-detail" })].filter(Boolean));
    if (picked) showPicked(events);
  }

  function dedupe(list) {
    return list.filter((x, i) => i === 0 || list[i - 1] !== x);
  }

  function showPicked(events) {
    const box = $("trace-detail");
    if (!box || !picked) return;
    document.querySelectorAll("#trace .bar.picked").forEach((el) => el.classList.remove("picked"));
    const el = document.querySelector(`#trace .bar[data-kind="${picked.kind}"][data-position="${picked.position}"]`);
    if (el) el.classList.add("picked");
    const wanted = new Set([picked.from, picked.position]);
    const shown = events.filter((e) => wanted.has(e.position));
    const agent = shown.length ? agentOf(shown[0]) : "";
    box.dataset.position = String(picked.position);
    box.replaceChildren(
      h("div", { class: "detail-head" },
        h("b", { text: picked.label }),
        h("span", { class: "muted", text: `${fmtMs(picked.end - picked.start)} · from ${fmtMs(picked.start)} to ${fmtMs(picked.end)}` }),
        agent ? h("button", { class: "btn", onclick: () => window.fleetDrawer && window.fleetDrawer.show(agent, picked.position), text: `Open ${name(agent)}` }) : null),
      ...shown.map((e) => h("div", { class: "detail-event", "data-position": e.position },
        h("div", null, h("span", { class: "pos", text: `#${e.position} ` }), h("b", { text: e.type }), ` ${fmtClock(e.recorded_at, true)} · ${summarize(e)}`),
        h("pre", { text: pretty(e.data) }))));
  }

  // A round of views was drawn: a new run may be the latest, the slider may have moved.
  function onViews() { soon(); }

  window.fleetTrace = { init, onEvent, reload, onViews };
})();
