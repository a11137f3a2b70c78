"""Rich renderers of the read models and of events, for the terminal views and live views.

`render_agents`, `render_board`, `render_runs` and `render_fleet` take the
views' JSON (the projections' `view()`, as `GET /v1/...` serves it) and
return rich renderables; `event_line` is one readable line per event. They
never mutate their arguments. `fleet agents/board/runs/events` print them, and
a live view (e.g. `fleet run`) can redraw them from its own runner:

    with Live(render_fleet({n: runner.view(n) for n in ("fleet", "agents", "board")})) as live:
        ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from events import HookInvoked, RecordedEvent, TaskMoved, ToolCallCompleted

__all__ = [
    "STATUS_STYLES",
    "describe_event",
    "event_line",
    "render_agents",
    "render_board",
    "render_fleet",
    "render_runs",
]

STATUS_STYLES: dict[str, str] = {
    "created": "bright_black",
    "working": "cyan",
    "waiting": "magenta",
    "completed": "green",
    "running": "cyan",
    "interrupted": "bold yellow",
    "stale": "yellow",
    "failed": "bold red",
    "deleted": "dim",
}
"""The colour of each agent or run status in the terminal (the dashboard's, roughly)."""

_TYPE_STYLES: dict[str, str] = {
    "RunStarted": "bold magenta", "RunCompleted": "bold magenta", "RunFailed": "bold red",
    "AgentCreated": "green", "AgentCommanded": "green", "AgentCompleted": "green",
    "AgentDeleted": "green", "AgentFailed": "bold red", "ModelResponded": "blue",
    "ContextCompacted": "blue", "ToolCallRequested": "yellow", "ToolCallCompleted": "yellow",
    "AgentWaiting": "magenta", "AgentWoke": "magenta", "TaskCreated": "cyan", "TaskMoved": "cyan",
    "HookInvoked": "bright_blue", "ExternalHookReceived": "bright_blue",
    "ApprovalRequested": "magenta", "ApprovalDecided": "magenta",
    "ReplayDiverged": "bold red", "ChatMessagePosted": "bold green",
}  # fmt: skip
_BAD_DECISIONS = frozenset({"deny", "block", "error", "timeout"})


# -- formatting -------------------------------------------------------------------


def _tokens(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.2f}M"
    if n >= 1_000:
        return f"{n / 1_000:.1f}k"
    return str(int(n))


def _cost(usd: float) -> str:
    return f"${usd:.2f}" if usd >= 1 else f"${usd:.4f}"


def _ms(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def _clip(text: object, n: int = 100) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _model(model: str) -> str:
    return model.removeprefix("claude-")


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _context_bar(percent: float, used: int, width: int = 8) -> Text:
    filled = round(min(percent, 100.0) / 100 * width)
    if used and not filled:
        filled = 1
    style = "red" if percent >= 80 else "yellow" if percent >= 50 else "cyan"
    bar = Text("█" * filled, style=style)
    bar.append("░" * (width - filled), style="bright_black")
    bar.append(f" {percent:4.1f}%")
    return bar


def _clock(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")


# -- renderers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    keep: int  # when the table is too wide, the lowest `keep` goes first
    right: bool = False


def _fitted(
    title: str | None,
    columns: Sequence[_Column],
    rows: Sequence[Sequence[Text]],
    width: int | None,
    sections: Sequence[bool] = (),
) -> Table:
    """A table of `rows`, leaving out the least needed columns until it fits in `width`."""
    chosen = list(range(len(columns)))
    if width is not None:

        def natural(i: int) -> int:
            cells = [len(columns[i].name)] + [row[i].cell_len for row in rows]
            return max(cells) + 3  # padding and the rule between columns

        by_need = sorted(chosen, key=lambda i: columns[i].keep)
        while len(chosen) > 1 and sum(natural(i) for i in chosen) > width:
            chosen.remove(by_need.pop(0))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i in chosen:
        column = columns[i]
        table.add_column(column.name, justify="right" if column.right else "left", no_wrap=True,
                         overflow="ellipsis")  # fmt: skip
    for n, row in enumerate(rows):
        table.add_row(*(row[i] for i in chosen), end_section=n < len(sections) and sections[n])
    return table


_AGENT_COLUMNS = (
    _Column("agent", 11), _Column("id", 10), _Column("role", 3), _Column("model", 4),
    _Column("status", 9),
    _Column("context", 8), _Column("tokens", 5, right=True), _Column("cost", 7, right=True),
    _Column("tools", 6, right=True), _Column("last call", 6), _Column("read", 2, right=True),
    _Column("wrote", 2, right=True),
)  # fmt: skip


def render_agents(
    agents: Sequence[Mapping[str, Any]], *, title: str | None = "agents", width: int | None = None
) -> Table:
    """A table of agent cards (the agents view's `agents`); runs are separated by a rule.

    With `width`, the least needed columns (files, role, model...) are left
    out until the table fits. The argument is never mutated.
    """
    rows: list[list[Text]] = []
    sections: list[bool] = []
    for i, a in enumerate(agents):
        calls = a["tool_calls"]
        last = calls["last"]
        last_cell = Text("")
        if last is not None:
            bad = last["status"] in ("blocked", "error")
            last_cell = Text(f"{last['name']} {last['status']}", style="red" if bad else "")
        tools = Text(str(calls["count"]))
        if a.get("blocked_calls"):
            tools.append(f" ({a['blocked_calls']} blocked)", style="red")
        status = _status(a["status"])
        waiting = a["status"] == "waiting"  # not a wait cut short (judged "interrupted")
        if waiting and a.get("waiting_on"):
            status.append(f" on {len(a['waiting_on'])}", style="magenta")
        elif waiting and a.get("approval"):
            status.append(f" for approval {a['approval']['id']}", style="magenta")
        rows.append([
            Text(a["name"], style="bold"),
            Text(a["id"], style="bright_black"),
            Text(a["role"]),
            Text(_model(a["model"])),
            status,
            _context_bar(a["context"]["percent"], a["context"]["used"]),
            Text(_tokens(a["tokens"]["total"])),
            Text(_cost(a["cost_usd"])),
            tools,
            last_cell,
            Text(str(len(a["files_consumed"]))),
            Text(str(len(a["files_produced"]))),
        ])  # fmt: skip
        following = agents[i + 1] if i + 1 < len(agents) else None
        sections.append(following is not None and following.get("run_id") != a.get("run_id"))
    return _fitted(title, _AGENT_COLUMNS, rows, width, sections)


def render_board(board: Mapping[str, Any], *, run_id: str | None = None) -> Table:
    """The task board: one column per board column, each task with its agent and returns.

    `run_id` keeps only that run's tasks. The argument is never mutated.
    """
    table = Table(title="board", title_justify="left", box=box.ROUNDED)
    cells: list[Text] = []
    for column in board["columns"]:
        tasks = [t for t in column["tasks"] if run_id is None or t.get("run_id") == run_id]
        style = {"DONE": "green", "FAILED": "red"}.get(column["name"], "")
        table.add_column(f"{column['name']} ({len(tasks)})", header_style=f"bold {style}".strip(),
                         min_width=12, max_width=32)  # fmt: skip
        cell = Text()
        for task in tasks:
            if cell:
                cell.append("\n")
            cell.append(f"• {_clip(task['title'], 60)}\n", style="bold")
            extra = []
            if task.get("assignee"):
                extra.append(f"@{task['assignee']}")
            if task.get("returns"):
                extra.append(f"↺{task['returns']}")
            if task.get("artifacts"):
                extra.append(f"{len(task['artifacts'])} files")
            cell.append(f"  {' '.join(extra)}" if extra else "", style="bright_black")
        cells.append(cell)
    table.add_row(*cells)
    return table


_RUN_COLUMNS = (
    _Column("run", 10), _Column("pattern", 8), _Column("status", 9), _Column("started", 3),
    _Column("duration", 6), _Column("agents", 4, right=True), _Column("tokens", 2, right=True),
    _Column("cost", 7, right=True), _Column("task", 1),
)  # fmt: skip


def render_runs(runs: Sequence[Mapping[str, Any]], *, width: int | None = None) -> Table:
    """A table of runs (the runs view's `runs`), oldest first; `width` as in `render_agents`.

    The argument is never mutated.
    """
    rows = [
        [
            Text(r["id"]),
            Text((r.get("pattern") or "orchestrator") + (" (sim)" if r.get("simulated") else "")),
            _status(r["status"]),
            Text(_clock(r.get("started_at"))),
            Text(_ms(r.get("duration_ms") or 0.0)),
            Text(str(r.get("agent_count", 0))),
            Text(_tokens(r["tokens"]["total"])),
            Text(_cost(r["cost_usd"])),
            Text(_clip(r.get("task"), 60)),
        ]
        for r in runs
    ]
    return _fitted("runs", _RUN_COLUMNS, rows, width)


def _totals(fleet: Mapping[str, Any]) -> Text:
    from projections import STATUSES  # here: `fleet events` draws lines, not read models

    agents = fleet["agents"]
    line = Text()
    line.append("fleet ", style="bold")
    line.append(f"{agents['active']} active / {agents['total']} agents  ")
    for status in STATUSES:
        count = agents["by_status"].get(status, 0)
        if count:
            line.append(f"{count} {status}  ", style=STATUS_STYLES.get(status, ""))
    line.append(f"· {_tokens(fleet['tokens']['total'])} tokens · {_cost(fleet['cost_usd'])} · ")
    line.append(f"{fleet['events']['total']} events ({fleet['events']['per_second']:.1f}/s)")
    return line


def render_fleet(
    views: Mapping[str, Mapping[str, Any]], *, run_id: str | None = None
) -> RenderableType:
    """Fleet totals, the agents table and the board, from whichever of those views are given.

    `views` maps view names ("fleet", "agents", "board") to their JSON, e.g.
    `{name: runner.view(name) for name in ("fleet", "agents", "board")}`;
    `run_id` keeps that run's agents and tasks. Nothing is mutated.
    """
    parts: list[RenderableType] = []
    if "fleet" in views:
        parts.append(_totals(views["fleet"]))
    if "agents" in views:
        agents = [
            a for a in views["agents"]["agents"] if run_id is None or a.get("run_id") == run_id
        ]
        parts.append(render_agents(agents, title=None))
    board = views.get("board")
    if board is not None and any(
        run_id is None or t.get("run_id") == run_id for c in board["columns"] for t in c["tasks"]
    ):
        parts.append(render_board(board, run_id=run_id))
    return Group(*parts)


# -- one line per event ---------------------------------------------------------------


def _agent_of(event: RecordedEvent) -> str:
    agent = event.meta.agent_id or getattr(event.data, "agent_id", None)
    return str(agent or "")


def _args(tool_input: Any) -> str:
    """A tool call's input in a few words: `key=value` pairs, each value clipped."""
    if not isinstance(tool_input, dict):
        return ""
    args = " ".join(
        f"{k}={_clip(v if isinstance(v, str) else repr(v), 40)}" for k, v in tool_input.items()
    )
    return _clip(args, 90)


def _describe_external(d: dict[str, Any]) -> str:
    """An ingested hook payload: the tool call and its input, the prompt, the subagent..."""
    p = d.get("payload") or {}
    hook = str(d.get("hook_event_name"))
    if isinstance(p.get("tool_name"), str):
        failed = " FAILED" if hook == "PostToolUseFailure" else ""
        return f"{hook} {p['tool_name']}{failed} {_args(p.get('tool_input'))}".rstrip()
    if hook in ("SubagentStart", "SubagentStop") and isinstance(p.get("agent_id"), str):
        return f"{hook} {p.get('agent_type') or 'subagent'} {p['agent_id'][:8]}"
    if hook == "UserPromptSubmit":
        return f"{hook}: {_clip(p.get('prompt'), 90)}"
    if hook == "Stop" and p.get("last_assistant_message"):
        return f"{hook}: {_clip(p.get('last_assistant_message'), 90)}"
    if hook == "SessionEnd":
        return f"{hook} ({p.get('reason') or 'ended'})"
    return f"{d.get('source_app')} {hook} · session {_clip(d.get('session_id'), 14)}"


def describe_event(event: RecordedEvent) -> str:
    """What `event` says, in a few words (the dashboard's feed says the same)."""
    d: dict[str, Any] = event.to_json_dict()["data"]
    kind = event.type
    if kind == "RunStarted":
        sim = " (simulator)" if d.get("simulated") else ""
        return f"{d.get('pattern') or 'orchestrator'}{sim}: {_clip(d.get('task'))}"
    if kind == "RunCompleted":
        return f"{_ms(d.get('duration_ms', 0))} · {_clip(d.get('summary'))}"
    if kind == "RunFailed":
        return f"{_clip(d.get('error'))} ({_ms(d.get('duration_ms', 0))})"
    if kind == "AgentCreated":
        by = f" · by {d['parent_id']}" if d.get("parent_id") else ""
        return f"{d['name']}: {d['role']} on {_model(d['model'])}{by}"
    if kind == "AgentCommanded":
        return f"by {d.get('by')}: {_clip(d.get('prompt'), 90)}"
    if kind == "ModelResponded":
        u = d.get("usage", {})
        into = (
            u.get("input_tokens", 0)
            + u.get("cache_creation_input_tokens", 0)
            + u.get("cache_read_input_tokens", 0)
        )
        return (
            f"{_model(d['model'])} {d.get('stop_reason') or ''} · in {_tokens(into)} "
            f"out {_tokens(u.get('output_tokens', 0))} · {_cost(d.get('cost_usd', 0.0))}"
        )
    if kind == "ToolCallRequested":
        return f"{d['name']} {_args(d.get('input'))}".rstrip()
    if kind == "ToolCallCompleted":
        status = "BLOCKED" if d.get("blocked") else "error" if d.get("is_error") else "ok"
        text = f"{d['name']} {status} · {_ms(d.get('duration_ms', 0))}"
        if d.get("files_read"):
            text += " · read " + ", ".join(d["files_read"])
        if d.get("files_written"):
            text += " · wrote " + ", ".join(d["files_written"])
        if d.get("blocked") or d.get("is_error"):
            text += f": {_clip(d.get('result'), 100)}"
        return text
    if kind == "HookInvoked":
        hook = f" {_clip(d['hook'], 30)}" if d.get("hook") else ""
        how = " (async, not applied)" if d.get("detached") else ""
        reason = f": {_clip(d['reason'], 80)}" if d.get("reason") else ""
        said = f" · says: {_clip(d['system_message'], 80)}" if d.get("system_message") else ""
        return f"{d['point']} {d['kind']}{hook} → {d['decision']}{how}{reason}{said}"
    if kind == "ApprovalRequested":
        why = f" · {_clip(d['reason'], 60)}" if d.get("reason") else ""
        args = _clip(_args(d.get("tool_input")), 60)
        return f"waits for approval {d['approval_id']}: {d['tool_name']} {args}{why}"
    if kind == "ApprovalDecided":
        verb = "allowed" if d.get("decision") == "allow" else "denied"
        why = f": {_clip(d['reason'], 60)}" if d.get("reason") else ""
        return f"{d['approval_id']} {verb} by {d.get('by')}{why}"
    if kind == "AgentWaiting":
        timeout = f" (timeout {_ms(d['timeout_s'] * 1000)})" if d.get("timeout_s") else ""
        return f"waits on {', '.join(d.get('on', []))}{timeout}"
    if kind == "AgentWoke":
        changed = f": {', '.join(d['changed'])}" if d.get("changed") else ""
        return f"{d.get('reason')}{changed} after {_ms(d.get('waited_ms', 0))}"
    if kind == "ContextCompacted":
        before, after = _tokens(d["tokens_before"]), _tokens(d["tokens_after"])
        return f"{before} → {after} tokens ({d.get('trigger')})"
    if kind == "AgentCompleted":
        return _clip(d.get("summary"), 120) or str(d.get("stop_reason", ""))
    if kind == "AgentFailed":
        limit = f"[{d['limit']}] " if d.get("limit") else ""
        return f"{limit}{_clip(d.get('error'), 120)}"
    if kind == "AgentDeleted":
        return f"by {d.get('by')}" + (" while working" if d.get("was_working") else "")
    if kind == "TaskCreated":
        return f"{d['task_id']} {_clip(d.get('title'), 80)} → {d.get('column')}"
    if kind == "TaskMoved":
        who = f" @{d['assignee']}" if d.get("assignee") else ""
        reason = f": {_clip(d['reason'], 60)}" if d.get("reason") else ""
        return f"{d['task_id']} → {d['column']}{who}{reason}"
    if kind == "ExternalHookReceived":
        return _describe_external(d)
    if kind == "ReplayDiverged":
        return (
            f"step {d.get('step')} {d.get('kind')}: expected {_clip(d.get('expected'), 50)}, "
            f"got {_clip(d.get('actual'), 50)}"
        )
    if kind == "ChatMessagePosted":
        return f"{d['conversation_id']} {d['role']} ({d['author']}): {_clip(d['text'], 90)}"
    return _clip(d, 100)


def _is_bad(event: RecordedEvent) -> bool:
    """A blocked or failed tool call, a hook that said no, a task moved to FAILED."""
    data = event.data
    if isinstance(data, ToolCallCompleted):
        return data.blocked or data.is_error
    if isinstance(data, HookInvoked):
        return data.decision in _BAD_DECISIONS
    if isinstance(data, TaskMoved):
        return data.column == "FAILED"
    return False


def event_line(event: RecordedEvent) -> Text:
    """One readable line: position, local time, agent, type and what happened."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{event.position:>6} ", style="bright_black")
    line.append(
        event.recorded_at.astimezone().strftime("%H:%M:%S.%f")[:-3] + " ", style="bright_black"
    )
    agent = _agent_of(event)
    line.append(f"{agent[:24]:<24} ", style="blue")
    bad = _is_bad(event)
    line.append(
        f"{event.type:<20} ", style="bold red" if bad else _TYPE_STYLES.get(event.type, "bold")
    )
    line.append(describe_event(event), style="red" if bad else "")
    return line
