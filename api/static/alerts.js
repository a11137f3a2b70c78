/* fleet dashboard: budget alerts, and the picked run's cost over time in the Cost tile.
 *
 * A run's budgets are in its RunStarted event (`config.budgets`: agent_usd,
 * agent_tokens, agent_context_percent, run_usd, run_tokens, fleet_usd, fleet_tokens;
 * the runtime records the limits in force). An alert shows when an agent, the run
 * (its own spending) or the fleet (every agent in the log) passes WARN of one, and
 * when a budget stopped an agent (AgentFailed with `limit`).
 * Scope: the picked run; with none picked, the runs still running.
 */
(function () {
  "use strict";

  const { $, h, s, fmtCost, fmtTokens, fmtClock, name, api, eventsOf } = window.fleetLib;
  const WARN = 0.8;

  let S = null;
  let budgets = new Map(); // run id -> its budgets (from RunStarted)
  let loaded = false;
  let costKey = "";

  function init(state) {
    S = state;
    loadBudgets();
  }

  async function loadBudgets() {
    try {
      const found = new Map();
      let after = 0;
      for (;;) {
        const { body } = await api("v1/events", { type: "RunStarted", after, limit: 1000 });
        for (const e of body.events) found.set(e.data.run_id, (e.data.config || {}).budgets || {});
        if (body.next == null) break;
        after = body.next;
      }
      budgets = found;
      loaded = true;
      render();
    } catch (e) {
      console.warn("fleet: budgets failed", e);
    }
  }

  function onEvent(event) {
    if (event.type === "RunStarted") {
      budgets.set(event.data.run_id, (event.data.config || {}).budgets || {});
    }
  }

  function reload() { render(); }

  function onViews() { render(); }

  function pct(value, limit) { return limit ? value / limit : 0; }

  function alertsFor(run, agents) {
    const b = budgets.get(run.id) || {};
    const out = [];
    const warn = (scope, id, budget, used, limit, text) => {
      const share = pct(used, limit);
      if (share >= WARN) out.push({ scope, id, budget, share, text: `${text}: ${Math.round(share * 100)}% of ${budgetText(budget, limit)}` });
    };
    for (const a of agents) {
      if (a.run_id !== run.id) continue;
      if (a.limit) {
        out.push({ scope: "agent", id: a.id, budget: a.limit, share: 1, stopped: true, text: `${name(a.id)} was stopped by its ${a.limit} budget` });
        continue;
      }
      if (a.status === "deleted") continue;
      warn("agent", a.id, "agent_usd", a.cost_usd, b.agent_usd, `${name(a.id)} has spent ${fmtCost(a.cost_usd)}`);
      warn("agent", a.id, "agent_tokens", a.tokens.total, b.agent_tokens, `${name(a.id)} has used ${fmtTokens(a.tokens.total)} tokens`);
      warn("agent", a.id, "agent_context_percent", a.context.percent, b.agent_context_percent, `${name(a.id)} fills ${Number(a.context.percent).toFixed(0)}% of its context`);
    }
    warn("run", run.id, "run_usd", run.cost_usd, b.run_usd, `the run ${run.id} has spent ${fmtCost(run.cost_usd)}`);
    warn("run", run.id, "run_tokens", run.tokens.total, b.run_tokens, `the run ${run.id} has used ${fmtTokens(run.tokens.total)} tokens`);
    if (b.fleet_usd || b.fleet_tokens) {
      const f = wholeLog(agents);
      warn("fleet", "fleet", "fleet_usd", f.cost, b.fleet_usd, `the fleet (every agent in the log) has spent ${fmtCost(f.cost)}`);
      warn("fleet", "fleet", "fleet_tokens", f.tokens, b.fleet_tokens, `the fleet (every agent in the log) has used ${fmtTokens(f.tokens)} tokens`);
    }
    return out;
  }

  // What every agent in the log has spent (the agents view is the whole fleet's, as of the
  // slider's position; the fleet view is the picked run's when one is picked).
  function wholeLog(agents) {
    let cost = 0, tokens = 0;
    for (const a of agents) { cost += Number(a.cost_usd || 0); tokens += Number(a.tokens.total || 0); }
    return { cost, tokens };
  }

  function budgetText(budget, limit) {
    if (budget.endsWith("usd")) return `its ${fmtCost(limit)} budget (${budget})`;
    if (budget.endsWith("tokens")) return `its ${fmtTokens(limit)}-token budget (${budget})`;
    return `its ${limit}% budget (${budget})`;
  }

  function render() {
    if (!S || !loaded) return;
    const runs = (S.views.runs || {}).runs || [];
    const agents = (S.views.agents || {}).agents || [];
    const scope = S.run ? runs.filter((r) => r.id === S.run) : runs.filter((r) => r.status === "running");
    const seen = new Set(); // the fleet's alert once, whichever runs recorded its budget
    const alerts = scope.flatMap((r) => alertsFor(r, agents)).filter((a) => {
      const key = `${a.scope} ${a.id} ${a.budget}`;
      return !seen.has(key) && seen.add(key);
    });
    const box = $("alerts");
    box.hidden = !alerts.length;
    box.dataset.count = String(alerts.length);
    box.replaceChildren(...alerts.map((a) => h("div", {
      class: a.stopped ? "alert stopped" : "alert", "data-scope": a.scope, "data-id": a.id,
      "data-budget": a.budget, "data-percent": Math.round(a.share * 100),
    }, h("span", { class: "icon", text: a.stopped ? "✕" : "⚠" }), a.text)));
    costOverTime();
  }

  // The picked run's cost, summed over its model calls, in the Cost tile.
  async function costOverTime() {
    const tileEl = document.querySelector('#totals [data-tile="cost"]');
    if (!tileEl || !S.run) { costKey = ""; return; }
    const run = S.run;
    const events = await eventsOf({ run_id: run });
    if (run !== S.run) return;
    const points = [];
    let total = 0;
    for (const e of events) {
      if (e.type !== "ModelResponded") continue;
      total += Number(e.data.cost_usd || 0);
      points.push([Date.parse(e.recorded_at), total]);
    }
    const key = `${run}|${points.length}`;
    const current = document.querySelector('#totals [data-tile="cost"] .cost-series');
    if (key === costKey && current) return;
    costKey = key;
    if (current) current.remove();
    if (!points.length) return;
    const W = 200, H = 26;
    const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
    const x = (t) => ((t - t0) / (t1 - t0)) * W;
    const y = (c) => H - 1 - (c / Math.max(total, 1e-9)) * (H - 3);
    let d = `M0,${H - 1}`;
    for (const [t, c] of points) d += ` H${x(t).toFixed(1)} V${y(c).toFixed(1)}`;
    tileEl.append(s("svg", {
      class: "spark cost-series", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
      "data-points": points.length, "data-total": total,
    }, s("title", { text: `cost over time: ${fmtCost(total)} in ${points.length} model calls, ${fmtClock(new Date(t0).toISOString())} to ${fmtClock(new Date(t1).toISOString())}` }),
    s("path", { d })));
  }

  window.fleetAlerts = { init, onEvent, reload, onViews };
})();
