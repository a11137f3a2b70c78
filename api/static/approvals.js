/* fleet dashboard: tool calls on hold for a person (a hook answered "ask"), with Approve / Deny.
 *
 *   GET  /v1/approvals?status=pending[&run_id=]   what waits for an answer
 *   POST /v1/approvals/{id} {decision, who, reason}   the answer (409: answered already)
 *
 * The panel shows the calls pending now (an answer is always given live, even while
 * the time slider shows the past), of the picked run when one is picked. It reloads
 * on the events that open or close an approval.
 */
(function () {
  "use strict";

  const { $, h, fmtClock, clip, name, api, apiPost, pretty, patchChildren } = window.fleetLib;
  const RELOAD_ON = new Set([
    "ApprovalRequested", "ApprovalDecided", "AgentCompleted", "AgentFailed", "AgentDeleted",
  ]);
  const WHO = "dashboard";

  let S = null;
  let timer = 0;
  let loading = false;
  let again = false;
  const notes = new Map(); // approval id -> what the last answer said (kept across reloads)
  const cards = new Map(); // approval id -> its card, kept while it is pending (focus and typing survive a render)
  let shownKey = "";

  function init(state) {
    S = state;
    reload();
  }

  function onEvent(event) {
    if (RELOAD_ON.has(event.type)) soon();
  }

  function soon() {
    if (!timer) timer = setTimeout(reload, 150);
  }

  async function reload() {
    timer = 0;
    if (loading) { again = true; return; }
    loading = true;
    const run = S.run;
    try {
      const { body } = await api("v1/approvals", { status: "pending", run_id: run });
      if (run === S.run) render(body.approvals);
      else again = true;
    } catch (e) {
      console.warn("fleet: approvals failed", e);
    } finally {
      loading = false;
      if (again) { again = false; soon(); }
    }
  }

  function render(approvals) {
    // Unchanged: leave the cards be.
    const key = JSON.stringify([approvals.map((a) => a.id), [...notes.entries()]]);
    if (key === shownKey) return;
    shownKey = key;
    const panel = $("approvals-panel");
    const box = $("approvals");
    panel.hidden = !approvals.length && !notes.size;
    panel.dataset.count = String(approvals.length);
    $("approvals-count").textContent = approvals.length ? String(approvals.length) : "";
    // A pending call keeps its card (one is only added or removed), so a person typing a
    // reason in one card keeps the focus and the text while another call is answered.
    const pending = new Set(approvals.map((a) => a.id));
    for (const id of [...cards.keys()]) if (!pending.has(id)) cards.delete(id);
    const els = approvals.map((a) => {
      if (!cards.has(a.id)) cards.set(a.id, card(a));
      const el = cards.get(a.id);
      el.querySelector(".verdict").textContent = notes.has(a.id) ? notes.get(a.id).text : "";
      return el;
    });
    for (const [id, note] of notes) {
      if (pending.has(id)) continue;
      els.push(h("div", { class: "approval answered", "data-approval-id": id, "data-state": note.state },
        h("span", { class: "verdict", text: note.text })));
    }
    if (!els.length) els.push(h("p", { class: "empty", text: "Nothing waits for a person." }));
    patchChildren(box, els);
  }

  function card(a) {
    const reason = h("input", { class: "reason", type: "text", placeholder: "reason (optional)", "aria-label": "reason" });
    const answer = async (decision, button) => {
      // Both buttons: a second answer while the first is recorded would be refused (409)
      // and its "Not recorded" would hide that the first one was.
      const buttons = [...button.parentElement.querySelectorAll("button")];
      buttons.forEach((b) => { b.disabled = true; });
      const res = await apiPost("v1/approvals/" + encodeURIComponent(a.id), {
        decision, who: WHO, reason: reason.value.trim() || null,
      });
      if (res.ok) {
        notes.set(a.id, { state: decision, text: `${a.tool_name} ${decision === "allow" ? "approved" : "denied"} for ${a.agent_name}` });
      } else {
        const detail = (res.body && (res.body.detail || res.body.title)) || `HTTP ${res.status}`;
        notes.set(a.id, { state: "error", text: `Not recorded: ${detail}` });
        buttons.forEach((b) => { b.disabled = false; }); // still pending if the answer was refused: it can be given again
      }
      setTimeout(() => { notes.delete(a.id); soon(); }, 8000);
      soon();
    };
    const expires = new Date(a.expires_at);
    return h("div", { class: "approval", "data-approval-id": a.id, "data-agent-id": a.agent_id, "data-state": "pending" },
      h("div", { class: "head" },
        h("b", { class: "agent", title: a.agent_id, text: a.agent_name || name(a.agent_id) }),
        h("span", { class: "tool", text: a.tool_name }),
        h("span", { class: "when", title: `asked ${a.requested_at}; no answer by ${a.expires_at} denies it`,
          text: `asked ${fmtClock(a.requested_at)} · denied at ${isNaN(expires) ? "?" : fmtClock(a.expires_at)} if unanswered` })),
      a.reason ? h("div", { class: "why", text: `hook: ${clip(a.reason, 200)}` }) : null,
      h("pre", { class: "input", text: pretty(a.tool_input) }),
      h("div", { class: "actions" },
        reason,
        h("button", { class: "btn approve", onclick: (e) => answer("allow", e.currentTarget), text: "✓ Approve" }),
        h("button", { class: "btn deny", onclick: (e) => answer("deny", e.currentTarget), text: "✕ Deny" }),
        h("span", { class: "verdict" })));
  }

  window.fleetApprovals = { init, onEvent, reload: soon };
})();
