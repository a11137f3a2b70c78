/* fleet dashboard: the dependency graph (created, waits on, artifact flow), one band per run. */
(function () {
  "use strict";

  const { $, h, s, clip, fmtMs, shortModel, name } = window.fleetLib;
  const GRAPH_RUN_CAP = 8;
  let S = null; // the page's state, as app.js hands it over

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

  window.fleetGraph = { render(state) { S = state; renderGraph(); } };
})();
