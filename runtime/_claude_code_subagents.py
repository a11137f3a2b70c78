"""The subagents a Claude Code session starts, as child agents of the claude-code agent.

Claude Code's subagent tool (`Agent`; `Task` before 2.1) runs a second
conversation inside the session. Its messages reach the SDK with
`parent_tool_use_id`, the id of the call that started it. Each such call
becomes a child agent with a stream of its own, so the graph, the cards and
the costs show it as they show a fleet agent's child:

    the parent's Agent call recorded  -> AgentCreated (parent_id = the session's agent,
                                         role = the subagent type, name "<type>/<id>")
                                         and AgentCommanded (its prompt)
    a message with parent_tool_use_id -> the child's ModelResponded, ToolCallRequested
                                         and ToolCallCompleted
    the call's tool_result            -> the child's last messages (its report), then
                                         AgentCompleted, or AgentFailed (an error result)

Notes (do not fix without reading this):
1. The call's result, not the SubagentStop hook, ends the child: the hook's
   payload names Claude Code's own agent id but not the call, and a session
   without SubagentStop hooks has no callback at all. The hooks still go
   through fleet's dispatcher (the parent's HookInvoked).
2. A subagent's messages can arrive before the parent's message that started
   it is recorded (Claude Code runs a tool as soon as its block is complete):
   they are held and replayed once the child exists.
3. What the SDK passes on of a subagent is partial: each message with the
   usage of its start (one output token), some text blocks missing, and
   never its last message (the report, which is the call's result). The
   subagent's own transcript (`<session>/subagents/agent-<id>.jsonl` in
   Claude Code's files) has them whole: a message is recorded with the
   transcript's content and usage when it is there (it is by the time the
   message's tool results arrive), and the messages the SDK never passed on
   are recorded from it when the call returns.
4. The child's cost is its own: the parent's cost is the parent's messages
   only, as for a fleet agent's children; a run's cost adds both.
5. The transcripts are read and parsed in a worker thread, each file again
   only once its size or mtime changed: read on the event loop every 50 ms
   while a message is awaited, and again for every message, an 8 MB
   transcript stalled the loop 185 ms a read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentFailed,
    ModelResponded,
    NewEvent,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
)

from ._agent_log import AgentLog
from ._agent_spec import AgentStats

__all__ = ["SUBAGENT_TOOLS", "Subagents"]

TRANSCRIPT_WAIT_S = 5.0

_Messages = dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]
"""A transcript's assistant messages: message id -> (content blocks, final usage)."""
"""How long a subagent's message waits for its transcript entry (note 3) before it is
recorded as the SDK passed it on."""

SUBAGENT_TOOLS = frozenset({"Agent", "Task"})
"""Claude Code's subagent tool: `Agent` in 2.1 and later, `Task` before."""


@dataclass(slots=True)
class _Streamed:
    """A subagent's model message being streamed."""

    message_id: str
    started: float
    content: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None


@dataclass(slots=True)
class _Child:
    log: AgentLog
    message: _Streamed | None = None
    calls: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    recorded: set[str] = field(default_factory=set)  # message ids in its stream
    answered: bool = False  # its last message (no tool call) is recorded


class Subagents:
    """The children of one claude-code agent, keyed by the subagent call's tool_use id.

    Args: the parent `agent` (a `ClaudeCodeAgent`); `block` turns an SDK content
    block into the API's dict, `usage` an API usage into fleet's, `result` a
    tool_result block into (text, is_error): the parent's own helpers.
    """

    def __init__(
        self,
        agent: Any,
        *,
        block: Callable[[Any], dict[str, Any]],
        usage: Callable[[Mapping[str, Any]], Usage],
        result: Callable[[Any], tuple[str, bool]],
    ) -> None:
        self._agent = agent
        self._block, self._usage, self._result = block, usage, result
        self._children: dict[str, _Child] = {}
        self._early: dict[str, list[Any]] = {}  # note 2
        # Each transcript's messages as last parsed, by file, with its (size, mtime) (note 5).
        self._parsed: dict[Path, tuple[tuple[int, int], _Messages]] = {}

    def child_id(self, tool_use_id: str) -> str:
        """The child agent's id for the subagent call `tool_use_id` (stable across resumes)."""
        return f"{self._agent.agent_id}-sub-{tool_use_id[-12:]}"

    async def started(self, tool_use_id: str, tool_input: Mapping[str, Any]) -> None:
        """The parent's subagent call is recorded: create its child, replay what came early."""
        parent = self._agent
        kind = str(tool_input.get("subagent_type") or "general-purpose")
        child_id = self.child_id(tool_use_id)
        spec = replace(
            parent.spec,
            agent_id=child_id,
            name=f"{kind}/{child_id[-8:]}",
            role=kind,
            parent_id=parent.agent_id,
        )
        log = AgentLog(parent.store, spec, AgentStats())
        await log.sync()
        prompt = str(tool_input.get("prompt") or tool_input.get("description") or "")
        if log.state.status == "new":
            created = AgentCreated(
                agent_id=child_id,
                name=spec.name,
                role=kind,
                model=parent.model_info.id,
                parent_id=parent.agent_id,
                workspace=str(parent.workspace.root),
                task=prompt,
                context_limit=parent.context_window,
                engine="claude-code",
                session_id=parent.session_id,
            )
            commanded = AgentCommanded(agent_id=child_id, prompt=prompt, by=parent.agent_id)
            await log.append([log.event(created, None), log.event(commanded, None)], create=True)
        self._children[tool_use_id] = _Child(log)
        for message in self._early.pop(tool_use_id, []):
            await self.on_message(message)

    async def on_message(self, message: Any) -> None:
        """A message of a subagent (it carries `parent_tool_use_id`)."""
        child = self._children.get(message.parent_tool_use_id)
        if child is None:
            self._early.setdefault(message.parent_tool_use_id, []).append(message)
            return
        if child.log.state.status != "working":
            return
        kind = type(message).__name__
        if kind == "StreamEvent":
            event = message.event
            if event.get("type") == "message_start":
                await self._flush(child)
                start = event.get("message") or {}
                child.message = _Streamed(str(start.get("id", "")), time.perf_counter())
                child.message.usage = dict(start.get("usage") or {})
            elif event.get("type") == "message_delta" and child.message is not None:
                child.message.usage |= dict(event.get("usage") or {})
                child.message.stop_reason = (event.get("delta") or {}).get("stop_reason")
            elif event.get("type") == "message_stop":
                await self._flush(child)
        elif kind == "AssistantMessage":
            if child.message is None or child.message.message_id != message.message_id:
                await self._flush(child)
                child.message = _Streamed(message.message_id or "", time.perf_counter())
            child.message.content += [self._block(b) for b in message.content]
            if message.usage and not child.message.usage:
                child.message.usage = dict(message.usage)
        elif kind == "UserMessage" and isinstance(message.content, list):
            await self._flush(child)
            events = [
                self._completed(child, b)
                for b in message.content
                if type(b).__name__ == "ToolResultBlock"
            ]
            if events:
                await child.log.append(events)

    async def ended(
        self, tool_use_id: str, block: Any, details: Mapping[str, Any] | None = None
    ) -> None:
        """The parent got the subagent call's result: the child ends with it (notes 1, 3).

        `details` is Claude Code's structured result of the call (`agentId` names
        the subagent's transcript).
        """
        child = self._children.pop(tool_use_id, None)
        self._early.pop(tool_use_id, None)
        if child is None:
            return
        await self._flush(child)
        state = child.log.state
        if state.status != "working":
            return
        sub = (details or {}).get("agentId")
        if isinstance(sub, str) and sub:
            found = await asyncio.to_thread(self._transcript, sub)  # note 5
            for message_id, (content, usage) in found.items():
                if message_id not in child.recorded:
                    child.message = _Streamed(message_id, time.perf_counter(), content, usage)
                    await self._flush(child)
        if not child.answered and details:
            # Its report, not in the transcript yet: as the call's result gives it (note 3).
            notes = details.get("harnessNoteCount")
            report = details.get("content")
            if isinstance(report, list) and isinstance(details.get("usage"), dict):
                blocks = [b for b in report[notes if isinstance(notes, int) else 0 :]
                          if isinstance(b, dict)]  # fmt: skip
                child.message = _Streamed("", time.perf_counter(), blocks, details["usage"])
                await self._flush(child)
        state = child.log.state
        text, is_error = self._result(block)
        ended: AgentCompleted | AgentFailed
        if is_error:
            ended = AgentFailed(agent_id=state.agent_id, error=text or "the subagent failed")
        else:
            ended = AgentCompleted(
                agent_id=state.agent_id,
                # Its own report; the result adds Claude Code's frame around it.
                summary=(state.last_text or "").strip() or text.strip(),
                artifacts=list(state.files_written),
            )
        await child.log.append([child.log.event(ended, state.last_position)])

    async def abandon(self, reason: str) -> None:
        """End every child still open with AgentFailed: its session stopped under it."""
        children, self._children = self._children, {}
        self._early.clear()
        for child in children.values():
            state = child.log.state
            if state.status == "working":
                failed = AgentFailed(agent_id=state.agent_id, error=reason)
                await child.log.append([child.log.event(failed, state.last_position)])

    async def _flush(self, child: _Child) -> None:
        message, child.message = child.message, None
        if message is None or not message.content:
            return
        whole = await self._written(message.message_id)  # note 3
        if whole is not None:
            message.content, message.usage = whole
        parent, log = self._agent, child.log
        child.recorded.add(message.message_id)
        child.answered = not any(b.get("type") == "tool_use" for b in message.content)
        usage = self._usage(message.usage)
        uses = [b for b in message.content if b.get("type") == "tool_use"]
        responded = ModelResponded(
            agent_id=log.spec.agent_id,
            message_id=message.message_id,
            model=parent.model_info.id,
            stop_reason=message.stop_reason or ("tool_use" if uses else "end_turn"),
            content=message.content,
            usage=usage,
            cost_usd=parent.client.prices.cost(parent.model_info.id, usage),
            duration_ms=round((time.perf_counter() - message.started) * 1000, 3),
            turn=log.state.turns + 1,
        )
        cause = log.state.last_position
        events: list[NewEvent] = [log.event(responded, cause)]
        for use in uses:
            child.calls[str(use["id"])] = (str(use["name"]), dict(use.get("input") or {}))
            requested = ToolCallRequested(
                agent_id=log.spec.agent_id,
                tool_use_id=str(use["id"]),
                name=str(use["name"]),
                input=use.get("input") or {},
            )
            events.append(log.event(requested, cause))
        await log.append(events)

    def _completed(self, child: _Child, block: Any) -> NewEvent:
        text, is_error = self._result(block)
        tool_use_id = str(block.tool_use_id)
        name, tool_input = child.calls.get(tool_use_id, ("", {}))
        read, written = self._agent.files_of(name, tool_input, is_error)
        completed = ToolCallCompleted(
            agent_id=child.log.spec.agent_id,
            tool_use_id=tool_use_id,
            name=name,
            result=text,
            is_error=is_error,
            files_read=read,
            files_written=written,
        )
        return child.log.event(completed, child.log.state.last_position)

    async def _written(self, message_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
        """The message as the transcript has it, once Claude Code has written it there (it
        writes its transcripts in batches); None if it is not there in `TRANSCRIPT_WAIT_S`."""
        if not message_id:
            return None
        deadline = time.monotonic() + TRANSCRIPT_WAIT_S
        while (whole := (await asyncio.to_thread(self._transcript)).get(message_id)) is None:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)
        return whole

    def _transcript(self, sub: str = "*") -> _Messages:
        """The assistant messages of subagent `sub`'s transcript (any subagent's for "*"):
        message id -> (content blocks, final usage), in order (note 3). Blocking: it reads
        the files (note 5)."""
        parent = self._agent
        found: _Messages = {}
        pattern = f"projects/*/{parent.session_id}/subagents/agent-{sub}.jsonl"
        for path in sorted(Path(parent.config_dir).glob(pattern)):
            for message_id, (blocks, usage) in self._messages_of(path).items():
                content, _ = found.get(message_id, ([], {}))
                found[message_id] = (content + blocks, usage)
        return found

    def _messages_of(self, path: Path) -> _Messages:
        """The assistant messages of one transcript, parsed again only once it changed."""
        try:
            info = path.stat()
        except OSError:
            return {}
        key = (info.st_size, info.st_mtime_ns)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        found: _Messages = {}
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return {}
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line being written
            message = entry.get("message") if isinstance(entry, dict) else None
            if entry.get("type") != "assistant" or not isinstance(message, dict):
                continue
            message_id = str(message.get("id") or "")
            content, _ = found.get(message_id, ([], {}))
            blocks = message.get("content")
            if isinstance(blocks, list):
                content = content + [b for b in blocks if isinstance(b, dict)]
            found[message_id] = (content, dict(message.get("usage") or {}))
        self._parsed[path] = (key, found)
        return found
