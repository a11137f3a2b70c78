/* fleet dashboard: a conversation with the orchestrator, docked at the bottom right.
 *
 *   POST /v1/orchestrator/messages {text, conversation_id?}  -> 202 {conversation_id, position}
 *   GET  /v1/orchestrator/conversations/{id}                 the conversation so far
 *   ChatMessagePosted {conversation_id, role, text, author}  each message, on the live stream
 *
 * Every message is drawn from the log (the ChatMessagePosted events), the person's own
 * too, so two tabs, a terminal (`fleet chat`) and this panel show the same conversation.
 * The conversation's id is kept for the tab; "New" starts another. The agents of the
 * conversation's run appear between the messages as they are created and finish.
 */
(function () {
  "use strict";

  const { $, h, fmtClock, name, api, apiPost, ApiError } = window.fleetLib;
  const KEY = "fleet-conversation";
  const PROGRESS = new Set(["AgentCreated", "AgentCompleted", "AgentFailed", "AgentDeleted"]);

  let S = null;
  let conversation = sessionStorage.getItem(KEY) || "";
  let runId = ""; // the run the conversation's orchestrator works in
  let shown = new Set(); // positions drawn
  let waiting = 0; // the position of the last message of the person not answered yet
  let sending = false; // a message on its way: Enter again does not send it twice

  function init(state) {
    S = state;
    $("chat-toggle").addEventListener("click", () => toggle());
    // Disabled in the page until now (the page's history loads first): a click before
    // this did nothing, and the panel stayed shut.
    $("chat-toggle").disabled = false;
    $("chat-close").addEventListener("click", () => toggle(false));
    $("chat-new").addEventListener("click", () => start(""));
    $("chat-form").addEventListener("submit", (e) => { e.preventDefault(); send(); });
    $("chat-input").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
    });
    if (conversation) load();
    status();
  }

  function toggle(open) {
    const dock = $("chat");
    dock.hidden = open === undefined ? !dock.hidden : !open;
    $("chat-toggle").setAttribute("aria-expanded", String(!dock.hidden));
    if (!dock.hidden) $("chat-input").focus();
  }

  function start(id) {
    conversation = id;
    runId = "";
    waiting = 0;
    shown = new Set();
    if (id) sessionStorage.setItem(KEY, id);
    else sessionStorage.removeItem(KEY);
    $("chat-log").replaceChildren();
    status();
  }

  async function load() {
    const id = conversation;
    try {
      const { body } = await api("v1/orchestrator/conversations/" + encodeURIComponent(id));
      if (id !== conversation) return; // "New" was pressed meanwhile: not this one's messages
      runId = body.run_id || "";
      for (const m of body.messages) message(m.position, m.role, m.author, m.text, m.recorded_at, m.reply_to);
      if (body.pending) waiting = Math.max(waiting, ...body.messages.filter((m) => m.role === "user").map((m) => m.position));
      // The run's agents so far (those created before this page knew the run, too).
      if (runId) {
        const { body: found } = await api("v1/events", { run_id: runId, type: [...PROGRESS], limit: 1000 });
        if (id !== conversation) return;
        found.events.forEach(progress);
      }
      status();
    } catch (e) {
      if (id !== conversation) return;
      if (e instanceof ApiError && e.status === 404) start("");
      else status(`Could not load the conversation: ${e.message}`);
    }
  }

  function onEvent(event) {
    const d = event.data || {};
    if (event.type === "ChatMessagePosted" && d.conversation_id === conversation) {
      if (!runId && event.meta && event.meta.run_id) runId = event.meta.run_id;
      message(event.position, d.role, d.author, d.text, event.recorded_at, d.reply_to);
      status();
    } else if (PROGRESS.has(event.type) && runId && event.meta && event.meta.run_id === runId) {
      progress(event);
    }
  }

  function reload() {}

  function message(position, role, author, text, at, replyTo) {
    if (shown.has(position)) return;
    shown.add(position);
    if (role === "orchestrator" && replyTo != null && replyTo >= waiting) waiting = 0;
    append(h("div", { class: `chat-msg ${role}`, "data-position": position, "data-role": role },
      h("div", { class: "who", text: `${role === "user" ? author : "orchestrator"} · ${fmtClock(at)}` }),
      h("div", { class: "text", text })));
  }

  function progress(event) {
    if (shown.has(event.position)) return;
    shown.add(event.position);
    const d = event.data || {};
    const what = { AgentCreated: `＋ ${d.name} (${d.role}) created`, AgentCompleted: `✓ ${name(d.agent_id)} completed`,
      AgentFailed: `✕ ${name(d.agent_id)} failed`, AgentDeleted: `− ${name(d.agent_id)} deleted` }[event.type];
    append(h("div", { class: "chat-progress", "data-position": event.position, "data-agent-id": d.agent_id, text: what }));
  }

  // In position order, whatever order they arrive in (the conversation's GET and the stream).
  function append(el) {
    const log = $("chat-log");
    const p = Number(el.dataset.position);
    const after = [...log.children].find((c) => Number(c.dataset.position) > p);
    // Follow the conversation only when at its end: a person scrolled up to read stays there.
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    log.insertBefore(el, after || null);
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  async function send() {
    const input = $("chat-input");
    const typed = input.value;
    const text = typed.trim();
    if (!text || sending) return;
    sending = true;
    $("chat-send").disabled = true;
    try {
      const payload = { text, author: "dashboard" }; // the log says who wrote it
      if (conversation) payload.conversation_id = conversation;
      const res = await apiPost("v1/orchestrator/messages", payload);
      if (res.status === 202) {
        // Only what was sent leaves the box: what was typed while it was on its way stays.
        if (input.value.startsWith(typed)) input.value = input.value.slice(typed.length).trimStart();
        $("chat-log").scrollTop = $("chat-log").scrollHeight; // the answer to follow shows
        if (res.body.conversation_id !== conversation) start(res.body.conversation_id);
        waiting = res.body.position;
        status();
        if (!runId) load(); // learns the conversation's run (its agents show as they come)
      } else if (res.status === 404 || res.status === 405) {
        status("This server does not take messages for the orchestrator (no /v1/orchestrator/messages).", true);
      } else {
        const detail = (res.body && (res.body.detail || res.body.title)) || `HTTP ${res.status}`;
        status(`Not sent: ${detail}`, true);
      }
    } catch (e) {
      status(`Not sent: ${e.message}`, true);
    } finally {
      sending = false;
      $("chat-send").disabled = false;
    }
  }

  function status(text, error) {
    const el = $("chat-status");
    el.dataset.error = error ? "true" : "false";
    el.textContent = text
      || (waiting ? "The orchestrator is working on it…"
        : conversation ? `Conversation ${conversation}${runId ? " · run " + runId : ""}` : "A new conversation: say what the fleet should do.");
  }

  window.fleetChat = { init, onEvent, reload };
})();
