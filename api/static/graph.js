/* fleet dashboard: the dependency graph, laid out by dagre (vendor/dagre.min.js), a band per run.
 *
 * Edges (GET /v1/graph): "created" (parent -> child), "waits_on" (waiter -> awaited,
 * open while it waits) and "consumes" (reader -> producer: drawn as the artifact
 * flowing from producer to reader). Each edge is its own <path> (data-kind, data-from,
 * data-to), but edges between the same two agents in the same direction share one
 * route: created and waited on is one line, solid and dashed, with one arrowhead.
 *
 * Notes (do not fix without reading this):
 * 1. dagre leaves room for each edge's label in the layout (a label is a dummy node),
 *    so labels sit on their edge, clear of nodes; routes end on the node's border and
 *    the arrowhead is drawn inside the route's last segment (refX at the tip), so an
 *    arrowhead never lies on a label.
 * 2. A task's hand-offs come from the board (each move's assignee, in order): plan ->
 *    build -> review -> build #2 is how a review sending work back shows. They are
 *    drawn as path.handoff (not path.edge: they are not the graph view's edges).
 * 3. Agents of a run with the same name (a builder sent back by a review is a new
 *    agent, also "build") are told apart by name() in lib.js ("build #2"), and a
 *    repeated role after the first is marked as a retry.
 */
(function () {
  "use strict";

  const { $, h, s, clip, fmtMs, shortModel, name, namesVersion } = window.fleetLib;
  const RUN_CAP = 8; // runs drawn when none is picked
  const BAND_CAP = 120; // agents laid out per run: dagre's time grows fast beyond (the rest are listed)
  const NODE_W = 176, NODE_H = 48, PAD = 24, BAND_GAP = 22, LABEL_H = 28;
  const MARKERS = { created: "#64748b", waits_on: "#f5a524", consumes: "#2dd4bf", handoff: "#e879f9" };
  const COLUMNS = ["PLAN", "BUILD", "REVIEW", "SHIP", "DONE", "FAILED"];

  let S = null; // the page's state, as app.js hands it over
  let graphKey = []; // what the graph was last drawn from

  function textWidth(text, px = 11) { return Math.ceil(String(text).length * px * 0.6) + 12; }

  function basename(path) { return String(path).split("/").pop(); }

  // The label of a route: how long the waits took, which files flowed.
  function routeLabel(edges) {
    const parts = [];
    for (const e of edges) {
      if (e.kind === "waits_on") {
        parts.push(e.open ? `waiting now ${fmtMs(e.open_ms)}` : `waited ${fmtMs(e.total_ms)}${e.count > 1 ? ` ×${e.count}` : ""}`);
      } else if (e.kind === "handoff") {
        parts.push(e.back ? `sent back${e.reason ? ": " + clip(e.reason, 28) : ""}` : `→ ${e.column}`);
      } else if (e.kind === "consumes") {
        const files = (e.files || []).map(basename);
        parts.push(files.length ? `${clip(files[0], 22)}${files.length > 1 ? ` +${files.length - 1}` : ""}` : `${e.reads} reads`);
      }
    }
    return parts.join(" · ");
  }

  // Left to right when it fits the panel, else top to bottom (a long pipeline on a narrow
  // screen): a page scrolls down more readily than sideways.
  function layoutBand(members, edges, room) {
    const wide = layoutIn("LR", members, edges);
    return wide.width <= room ? wide : layoutIn("TB", members, edges);
  }

  function layoutIn(rankdir, members, edges) {
    const g = new window.dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir, nodesep: rankdir === "LR" ? 22 : 30, ranksep: rankdir === "LR" ? 64 : 46, edgesep: 16, marginx: 10, marginy: 10 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of members) g.setNode(n.id, { width: NODE_W, height: NODE_H });
    // One route per ordered pair and family: created+waits (parent -> child), flow (producer -> reader).
    const routes = new Map();
    for (const e of edges) {
      const [from, to] = e.kind === "consumes" ? [e.to, e.from] : [e.from, e.to];
      if (from === to) continue;
      const family = e.kind === "consumes" ? "flow" : e.kind === "handoff" ? "handoff" : "control";
      const key = `${from}>${to}>${family}`;
      if (!routes.has(key)) routes.set(key, { key, from, to, edges: [] });
      routes.get(key).edges.push(e);
    }
    for (const r of routes.values()) {
      r.label = routeLabel(r.edges);
      const weight = r.key.endsWith("handoff") ? 4 : r.key.endsWith("flow") ? 2 : 1;
      g.setEdge(r.from, r.to, {
        width: r.label ? textWidth(r.label, 10.5) : 0, height: r.label ? 16 : 0, labelpos: "c",
        minlen: 1, weight,
      }, r.key);
    }
    window.dagre.layout(g);
    const pos = new Map(members.map((n) => {
      const p = g.node(n.id);
      return [n.id, { x: p.x - NODE_W / 2, y: p.y - NODE_H / 2 }];
    }));
    for (const r of routes.values()) {
      const e = g.edge(r.from, r.to, r.key);
      r.points = e.points;
      r.lx = e.x;
      r.ly = e.y;
    }
    const gg = g.graph();
    return { rankdir, pos, routes: [...routes.values()], width: gg.width || NODE_W, height: gg.height || NODE_H };
  }

  function routePath(points, dx, dy) {
    const p = points.map((q) => [q.x + dx, q.y + dy]);
    let d = `M${p[0][0].toFixed(1)},${p[0][1].toFixed(1)}`;
    for (let i = 1; i < p.length - 1; i++) {
      const mx = (p[i][0] + p[i + 1][0]) / 2, my = (p[i][1] + p[i + 1][1]) / 2;
      d += ` Q${p[i][0].toFixed(1)},${p[i][1].toFixed(1)} ${mx.toFixed(1)},${my.toFixed(1)}`;
    }
    const last = p[p.length - 1];
    return d + ` L${last[0].toFixed(1)},${last[1].toFixed(1)}`;
  }

  function marker(id, colour) {
    return s("marker", { id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
  }

  // Who handed each task to whom, from the board's history (note 2).
  function handoffs(ids) {
    const out = new Map();
    for (const col of (S.views.board || {}).columns || []) {
      for (const t of col.tasks) {
        let holder = null, at = -1, back = null;
        for (const move of t.history || []) {
          const column = COLUMNS.indexOf(move.to);
          // A move back (REVIEW -> BUILD) may keep its assignee; the next hand-off carries it.
          if (column < at) back = { reason: move.reason };
          const next = move.assignee || holder;
          if (holder && next && next !== holder && ids.has(holder) && ids.has(next)) {
            const key = `${holder}>${next}`;
            if (!out.has(key)) {
              out.set(key, { kind: "handoff", from: holder, to: next, column: move.to, back: !!back, reason: back ? back.reason : move.reason, task: t.title });
            }
            back = null;
          }
          holder = next;
          at = column;
        }
      }
    }
    return [...out.values()];
  }

  function renderGraph() {
    const graph = S.views.graph;
    const box = $("graph");
    const notes = $("graph-notes");
    if (!graph || !window.dagre) return;
    // Drawn again only when what it is drawn from changed: each view is a new object when
    // refreshed; names change in count or by lib.js's version of them. (Comparing their
    // text cost 95 ms a refresh at 8,565 agents and 1,404 runs.)
    const key = [S.run, S.names.size, namesVersion(), graph, S.views.board, S.views.runs];
    if (key.every((x, i) => x === graphKey[i])) return;
    graphKey = key;
    let nodes = S.run ? graph.nodes.filter((n) => n.run_id === S.run) : graph.nodes;
    let hiddenRuns = 0;
    if (!S.run) {
      // Many runs: the most recent ones are drawn (app.js asks for those only, `latest_runs`;
      // a server whose graph read model is not fleet's answers whole); the run picker shows
      // any other.
      let runIds = [...new Set(nodes.map((n) => n.run_id || ""))];
      if (runIds.length > RUN_CAP) {
        runIds = runIds.slice(-RUN_CAP);
        const shown = new Set(runIds);
        nodes = nodes.filter((n) => shown.has(n.run_id || ""));
      }
      const runs = (S.views.runs || {}).runs || [];
      const drawn = new Set(runIds);
      if (runs.length > RUN_CAP) hiddenRuns = runs.filter((r) => !drawn.has(r.id)).length;
    }
    if (!nodes.length) {
      box.replaceChildren(h("p", { class: "empty", text: "No agents yet." }));
      notes.replaceChildren();
      return;
    }
    const ids = new Set(nodes.map((n) => n.id));
    const runs = new Map(((S.views.runs || {}).runs || []).map((r) => [r.id, r]));
    const cards = new Map(((S.views.agents || {}).agents || []).map((a) => [a.id, a]));

    // Newest run first (note: the run picker lists them the same way).
    const bands = new Map();
    for (const n of nodes.slice().reverse()) {
      const k = n.run_id || "";
      if (!bands.has(k)) bands.set(k, []);
      bands.get(k).unshift(n);
    }
    // A run of very many agents: its live ones and its newest are drawn.
    let hiddenAgents = 0;
    for (const [k, members] of bands) {
      if (members.length <= BAND_CAP) continue;
      const live = members.filter((n) => ["created", "working", "waiting"].includes(n.status));
      const keep = new Set(live.slice(-BAND_CAP).map((n) => n.id));
      for (const n of members.slice().reverse()) if (keep.size < BAND_CAP) keep.add(n.id);
      hiddenAgents += members.length - keep.size;
      bands.set(k, members.filter((n) => keep.has(n.id)));
    }
    if (hiddenAgents) {
      const drawn = new Set([...bands.values()].flat().map((n) => n.id));
      nodes = nodes.filter((n) => drawn.has(n.id));
      for (const id of [...ids]) if (!drawn.has(id)) ids.delete(id);
    }
    const edges = graph.edges.filter((e) => ids.has(e.from) && ids.has(e.to)).concat(handoffs(ids));
    const bottlenecks = (graph.bottlenecks || []).filter((b) => ids.has(b.agent_id) && (b.waited_on_ms > 0 || b.waiters_now > 0));
    const top = bottlenecks.length ? bottlenecks[0].waited_on_ms : 0;
    const marked = new Map(bottlenecks
      .filter((b, i) => i < 3 && (b.waited_on_ms >= top * 0.5 || b.waiters_now > 0))
      .map((b) => [b.agent_id, b]));
    const onPath = new Set((graph.critical_paths || []).flatMap((p) => p.path.map((step) => step.agent_id)));

    const bandEls = [], edgeEls = [], labelEls = [], nodeEls = [];
    let y = PAD, width = 560;
    for (const [runId, members] of bands) {
      const memberIds = new Set(members.map((n) => n.id));
      const room = Math.max(NODE_W * 3, box.clientWidth - 2 * PAD - 24);
      const L = layoutBand(members, edges.filter((e) => memberIds.has(e.from) && memberIds.has(e.to)), room);
      const run = runs.get(runId);
      const label = runId
        ? `${run ? (run.pattern || "orchestrator") + " · " + clip(run.task, 70) : runId}  (${runId})`
        : "agents outside any run";
      const bandW = Math.max(L.width, textWidth(label, 12)) + 16;
      const bandH = LABEL_H + L.height + 8;
      bandEls.push(s("rect", { class: "band", x: PAD - 12, y, width: bandW, height: bandH, rx: 10, "data-run": runId, "data-rankdir": L.rankdir }));
      bandEls.push(s("text", { class: "band-label", x: PAD - 2, y: y + 18, text: label }));
      const dx = PAD - 4, dy = y + LABEL_H;
      width = Math.max(width, PAD + bandW + PAD);

      // A repeated role in a run, after its first agent, is a retry (a builder sent back).
      const roleSeen = new Map();
      for (const n of members) {
        const p = L.pos.get(n.id);
        const b = marked.get(n.id);
        const agent = cards.get(n.id);
        const nth = (roleSeen.get(n.role) || 0) + 1;
        roleSeen.set(n.role, nth);
        const retry = nth > 1 && n.role !== "orchestrator";
        const detail = `${n.role}${agent ? " · " + shortModel(agent.model) : ""}`;
        const cls = ["node", b ? "bottleneck" : "", onPath.has(n.id) ? "critical" : "", retry ? "retry" : ""].filter(Boolean).join(" ");
        nodeEls.push(s("g", {
          class: cls, transform: `translate(${(p.x + dx).toFixed(1)},${(p.y + dy).toFixed(1)})`,
          "data-agent-id": n.id, "data-status": n.status, "data-label": name(n.id),
        },
          s("title", { text: `${name(n.id)} (${n.id})\n${n.role} · ${n.status}${retry ? `\nretry: ${n.role} #${nth} of this run` : ""}${b ? `\nbottleneck: others waited on it ${fmtMs(b.waited_on_ms)} (${b.waits} waits)` : ""}` }),
          b ? s("rect", { class: "ring", x: -4, y: -4, width: NODE_W + 8, height: NODE_H + 8, rx: 11 }) : null,
          s("rect", { class: "box", width: NODE_W, height: NODE_H, rx: 8 }),
          s("circle", { cx: NODE_W - 12, cy: 12, r: 4.5, fill: `var(--s-${n.status}, var(--faint))` }),
          s("text", { class: "label", x: 10, y: 19, "font-weight": 650, text: clip(name(n.id), 19) }),
          s("text", { class: "role", x: 10, y: 36, text: clip(detail, 24) }),
          retry ? s("text", { class: "retry-badge", x: NODE_W - 10, y: 37, "text-anchor": "end", text: `↺ ${nth}` }) : null,
          b ? s("text", { class: "badge", x: 2, y: -9, text: `▲ bottleneck · ${fmtMs(b.waited_on_ms)}${b.waiters_now ? " · awaited now" : ""}` }) : null));
      }

      const order = { created: 0, consumes: 1, waits_on: 2, handoff: 3 };
      for (const r of L.routes) {
        const d = routePath(r.points, dx, dy);
        const sorted = r.edges.slice().sort((a, b) => order[a.kind] - order[b.kind]);
        sorted.forEach((e, i) => {
          const title = e.kind === "handoff" ? `${name(e.from)} handed "${e.task}" to ${name(e.to)} (→ ${e.column})${e.reason ? ": " + e.reason : ""}`
            : e.kind === "created" ? `${name(e.from)} created ${name(e.to)}`
            : e.kind === "waits_on" ? `${name(e.from)} waited on ${name(e.to)}: ${e.count}× ${fmtMs(e.total_ms)}${e.open ? " (waiting now)" : ""}`
            : `${name(e.to)} → ${name(e.from)}: ${(e.files || []).join(", ")}`;
          const strokeWidth = e.kind === "waits_on" && !e.open ? Math.min(4, 1.4 + Math.log10(1 + (e.total_ms || 0)) / 1.6) : null;
          edgeEls.push(s("path", {
            class: e.kind === "handoff" ? (e.back ? "handoff back" : "handoff") : "edge", d, "data-kind": e.kind, "data-from": e.from, "data-to": e.to,
            "data-open": e.kind === "waits_on" ? String(!!e.open) : null,
            "stroke-width": strokeWidth ? strokeWidth.toFixed(2) : null,
            // One arrowhead per route: the top line's (note 1).
            "marker-end": i === sorted.length - 1 ? `url(#arrow-${e.kind})` : null,
          }, s("title", { text: title })));
        });
        if (r.label) {
          const w = textWidth(r.label, 10.5);
          const family = r.key.slice(r.key.lastIndexOf(">") + 1);
          labelEls.push(s("g", { class: `edge-label ${family}`, transform: `translate(${(r.lx + dx - w / 2).toFixed(1)},${(r.ly + dy - 8).toFixed(1)})`, "data-route": r.key },
            s("rect", { width: w, height: 16, rx: 4 }),
            s("text", { x: w / 2, y: 11.5, "text-anchor": "middle", text: r.label })));
        }
      }
      y += bandH + BAND_GAP;
    }
    const height = y + PAD - BAND_GAP;

    box.replaceChildren(s("svg", { id: "graph-svg", width, height, viewBox: `0 0 ${width} ${height}`, "data-layout": "dagre" },
      s("defs", null, Object.entries(MARKERS).map(([k, c]) => marker(`arrow-${k}`, c))),
      bandEls, edgeEls, nodeEls, labelEls));

    const lines = [];
    if (hiddenAgents) {
      lines.push(h("div", { class: "hidden-runs", text: `${hiddenAgents} older agent${hiddenAgents === 1 ? "" : "s"} not drawn (a run draws its live ones and its newest ${BAND_CAP}): open them from the cards or the feed.` }));
    }
    if (hiddenRuns) {
      lines.push(h("div", { class: "hidden-runs", text: `${hiddenRuns} older run${hiddenRuns === 1 ? "" : "s"} not drawn: pick one in the run picker.` }));
    }
    if (marked.size) {
      lines.push(h("div", { class: "bottlenecks" }, h("b", { text: "Bottlenecks: " }),
        [...marked.values()].map((b) => `${name(b.agent_id)} (waited on ${fmtMs(b.waited_on_ms)}, ${b.waits} wait${b.waits === 1 ? "" : "s"}${b.waiters_now ? `, ${b.waiters_now} waiting now` : ""})`).join(" · ")));
    }
    for (const path of graph.critical_paths || []) {
      if (!bands.has(path.run_id) || !path.path.length) continue; // only the runs drawn
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

  window.fleetGraph = { RUN_CAP, render(state) { S = state; renderGraph(); } };
})();
