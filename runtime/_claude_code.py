"""The claude-code engine: an agent whose loop is a Claude Code session (`claude-agent-sdk`).

    agent = ClaudeCodeAgent(store=store, client=client, hooks=dispatcher,
                            spec=AgentSpec(..., engine="claude-code", session_id=new_session_id()))
    await agent.create(task="rename `a` to `b` ...")   # the same events as a fleet agent
    outcome = await agent.run_until_idle()               # one query of the session, to its result
    await agent.command("now also ...")                  # the same session, resumed by its id

The lifecycle is `Agent`'s (create, command with UserPromptSubmit, delete
with SessionEnd, load); only the loop differs: each command is one query of
the Claude Code session, in the agent's workspace, with the agent's model,
tools, turn limit, cost budget and the system prompt fleet gives any agent.
What the session does becomes fleet's events, the same types the fleet engine
writes, so everything downstream is engine-blind:

    a model message (streamed)     -> ModelResponded (usage from its message_delta, fleet's
                                      price table for the cost), and a ToolCallRequested
                                      for each tool_use block
    a tool_result                  -> ToolCallCompleted (files read and written, blocked)
    a hook callback                -> fleet's HookDispatcher: HookInvoked, and its answer
                                      goes back to Claude Code (a deny blocks the call)
    a subagent (the Agent tool)    -> a child agent with its own events
                                      (`_claude_code_subagents.py`)
    the result                     -> AgentCompleted, or AgentFailed naming the limit

Offline by default: when fleet's model client is the simulator, Claude Code
is pointed at it (`ANTHROPIC_BASE_URL`, a dummy key, no other traffic).
The session's files live in `.fleet/claude-code/` of the workspace
(`CLAUDE_CONFIG_DIR`), so a resumed agent finds its session again, and so do
its temporary files (`CLAUDE_CODE_TMPDIR`, else `/tmp/claude-<uid>/`, outside
the workspace and shared by every Claude Code on the machine).

Notes (do not fix without reading this):
1. Claude Code runs a tool as soon as its block is complete, before the
   message ends, so a tool's hooks can fire before the message that asked for
   it is recorded. The hooks' events of a call whose message is not recorded
   yet are held and appended right after it: the log never shows a call
   before the message that made it.
2. The session's id is chosen by fleet at create (a UUID in AgentCreated)
   and given to Claude Code (`session_id`) on the first query; every later
   query resumes it (`resume`). A session file on disk decides which, so a
   process killed after Claude Code wrote the session, before any event,
   still resumes rather than starting a second session of the same id.
3. The project's own settings (`.claude/`) are not loaded by Claude Code
   (`setting_sources=[]`): fleet's dispatcher runs the same hooks already,
   and running them twice would record every decision twice.
4. After a crash, a working agent is resumed by sending the recorded prompt
   again to its resumed session: the conversation so far is Claude Code's,
   the prompt says what is still to do. Idempotent work repeats harmlessly
   (a search, a read); the log keeps one continuous agent.
5. A PreToolUse hook answering "ask" puts the call on hold as for a fleet
   agent (`_approvals.py`: PermissionRequest hooks, else ApprovalRequested
   and a person's answer, or the timeout's denial); the hook callback answers
   Claude Code only then, so its hook timeout is the approval's plus a minute.
6. Claude Code runs under fleet's reaper (`hooks.command_argv`, a child
   subreaper), started by a small script in the session's folder that the
   SDK runs as its CLI: when Claude Code dies (killed, crashed) the commands
   its Bash tool started die with it instead of living on under init.
7. An append that fails for an unavailable log (`_outage.py`) is waited out
   where it is, the session held meanwhile (Claude Code waits for its hook
   answers, its output waits in the pipe): the session cannot be taken up
   mid-query as a fleet agent's next step is. Once the log is back, events
   found at the end of the stream (the append committed before its connection
   was cut) are not appended again. So is the AgentFailed of a session that
   failed otherwise (Claude Code died while the log was down), and the read of
   the log before it; after an outage given up on, AgentFailed is tried once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from events import (
    AgentCompleted,
    AgentFailed,
    ModelResponded,
    NewEvent,
    ToolCallCompleted,
    ToolCallRequested,
)
from events.errors import StoreUnavailable
from hooks import CONTAINED, PAYLOAD_MODELS, TOOL_POINTS, HookOutcome, command_argv, hook_point

from ._agent import Agent
from ._agent_spec import AgentOutcome, system_prompt_for
from ._approvals import ApprovalGate
from ._claude_code_subagents import SUBAGENT_TOOLS, Subagents
from ._client import SIMULATOR_API_KEY, usage_from_dict
from ._outage import LogOutage, landed, read_waiting
from ._tool_calls import INTERRUPTIONS, unexpected_error
from .errors import AgentDrivenElsewhere, EngineUnavailable

__all__ = [
    "CLAUDE_CODE_HOOKS",
    "CLAUDE_CODE_TOOLS",
    "ClaudeCodeAgent",
    "new_session_id",
    "require_claude_code",
]

logger = logging.getLogger(__name__)

CLAUDE_CODE_TOOLS = ("Read", "Write", "Edit", "Bash", "Glob", "Grep")
"""The Claude Code tools a claude-code agent may be given (fleet's worker tools' names)."""

SUBAGENT_TOOL = "Agent"
"""Claude Code's subagent tool (2.1 and later), offered to every claude-code agent: its
subagents are child agents (`_claude_code_subagents.py`) and use only the agent's own tools."""

CLAUDE_CODE_HOOKS = (
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "Notification",
)
"""The hook points Claude Code calls back through the SDK (SessionStart, UserPromptSubmit
and SessionEnd are fired by fleet itself, as for a fleet agent)."""

STDERR_LINES = 20
STDERR_CHARS = 1_000
"""How much of what Claude Code last said on stderr a failure of its session quotes."""

SESSIONS = ".fleet/claude-code"
"""Where in its workspace a claude-code agent's session files are kept (`CLAUDE_CONFIG_DIR`)."""

_RESULT_CHARS = 16_000
_WRITES = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
_READS = frozenset({"Read", "Edit", "MultiEdit"})
_LIMITS = {"error_max_turns": "turns", "error_max_budget_usd": "cost"}
# The parent's settings that would send Claude Code elsewhere than the simulator.
_NOT_OFFLINE = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY", "CLAUDE_CODE_USE_BEDROCK",
                "CLAUDE_CODE_USE_VERTEX", "ANTHROPIC_CUSTOM_HEADERS")  # fmt: skip


def new_session_id() -> str:
    """A new Claude Code session id (Claude Code wants a UUID)."""
    return str(uuid.uuid4())


def require_claude_code() -> None:
    """Raise `EngineUnavailable` unless claude-agent-sdk can be imported."""
    _sdk()


def _sdk() -> Any:
    try:
        import claude_agent_sdk
    except ImportError as e:
        raise EngineUnavailable(
            "claude-code",
            "the claude-agent-sdk package is not installed: pip install 'fleet[claude-code]'",
        ) from e
    return claude_agent_sdk


def _block(block: Any) -> dict[str, Any]:
    """An SDK content block as the API's dict (the `type` the SDK's class stands for)."""
    data = asdict(block) if is_dataclass(block) and not isinstance(block, type) else dict(block)
    name = type(block).__name__
    kind = {"TextBlock": "text", "ToolUseBlock": "tool_use", "ThinkingBlock": "thinking"}.get(name)
    if kind is None:
        return {"type": name, **{k: v for k, v in data.items() if _jsonable(v)}}
    return {"type": kind, **data}


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict) or value is None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
    return "" if content is None else str(content)


def _result(block: Any) -> tuple[str, bool]:
    """A tool_result block's text (capped) and whether it is an error."""
    return _cap(_text(block.content)), bool(block.is_error)


def _cap(text: str) -> str:
    return text if len(text) <= _RESULT_CHARS else text[: _RESULT_CHARS - 1] + "…"


@dataclass(slots=True)
class _Message:
    """A model message being streamed: its blocks so far, its final usage and stop reason."""

    message_id: str
    model: str
    started: float
    content: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None


class ClaudeCodeAgent(Agent):
    """An agent run by Claude Code (see the module docstring). `Agent`'s lifecycle, its own loop.

    Args: those of `Agent`; `spec.engine` must be "claude-code" with a `session_id`.
    `cli_path` is the Claude Code binary (default: the one the SDK's wheel bundles,
    or `FLEET_CLAUDE_BIN`); `env` is added to Claude Code's environment.
    """

    def __init__(
        self,
        *args: Any,
        cli_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.spec.session_id is None:
            self.spec = _with_session(self.spec)
            self._log.spec = self.spec
        self.cli_path = cli_path or os.environ.get("FLEET_CLAUDE_BIN") or None
        self.extra_env = dict(env or {})
        self._client: Any = None
        self._message: _Message | None = None
        self._recorded: set[str] = set()  # tool_use ids whose message is in the log
        self._recorded_now: dict[str, asyncio.Event] = {}  # set when that message is appended
        self._gate = ApprovalGate(self._log, self._hooks, timeout_s=self.spec.approval_timeout_s)
        self._held: dict[str, list[NewEvent]] = {}  # note 1
        self._calls: dict[str, tuple[str, dict[str, Any]]] = {}
        self._denied: set[str] = set()
        self._session_s = 0.0
        self._ending = False  # delete: the rest of the session is not the agent's work
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._subagents = Subagents(self, block=_block, usage=usage_from_dict, result=_result)

    @property
    def session_id(self) -> str:
        """The Claude Code session's id (chosen by fleet, recorded in AgentCreated)."""
        assert self.spec.session_id is not None
        return self.spec.session_id

    @property
    def config_dir(self) -> Path:
        """Claude Code's configuration and session files for this agent (`CLAUDE_CONFIG_DIR`)."""
        return self.workspace.root / SESSIONS

    @property
    def temp_dir(self) -> Path:
        """Claude Code's temporary files for this agent (`CLAUDE_CODE_TMPDIR`)."""
        return self.config_dir / "tmp"

    def _session_exists(self) -> bool:
        """Whether Claude Code has written this session (note 2)."""
        projects = self.config_dir / "projects"
        return projects.is_dir() and any(projects.glob(f"*/{self.session_id}.jsonl"))

    # -- the loop ---------------------------------------------------------------------------

    async def run_until_idle(self) -> AgentOutcome:
        """Run the current prompt as one query of the Claude Code session, to its result.

        Every error ends the agent with AgentFailed; only an interruption passes
        through (the log stays resumable), and `AgentDrivenElsewhere`.
        """
        async with self._lock:
            with self._busy():
                await self._log.sync()
                if self.state.status == "working":
                    try:
                        await self._query()
                    except (*INTERRUPTIONS, AgentDrivenElsewhere):
                        raise
                    except BaseException as e:
                        logger.warning("claude-code agent %s failed", self.agent_id, exc_info=e)
                        # One that gave up on an outage (OUTAGE_LIMIT_S) tries once, as
                        # fleet's engine does; any other failure waits for the log (note 7).
                        wait = not isinstance(e, StoreUnavailable)
                        who = f"agent {self.agent_id}"
                        if wait:
                            await read_waiting(self._log.store, self._log.sync, who=who)
                        else:
                            await self._log.sync()
                        if self.state.status == "working":
                            why = f"the Claude Code session failed: {self._error(e)}"
                            await self._session_failed(why, wait=wait)
            return self.outcome()

    def _options(self) -> Any:
        sdk = _sdk()
        spec, tools = self.spec, [t for t in self.toolbox.names if t in CLAUDE_CODE_TOOLS]
        budget = None
        if spec.max_cost_usd is not None:
            budget = max(spec.max_cost_usd - self.state.cost_usd, 0.0)
        resume = self._session_exists()
        hooks = None
        if self.hooks is not None:
            points = [p for p in CLAUDE_CODE_HOOKS if self.hooks.has_hooks(p)]
            # A PreToolUse "ask" waits for a person: Claude Code waits as long (note 5).
            wait = self.spec.approval_timeout_s + 60
            hooks = {
                p: [
                    sdk.HookMatcher(hooks=[self._hook], timeout=wait if p == "PreToolUse" else None)
                ]
                for p in points
            } or None
        return sdk.ClaudeAgentOptions(
            cwd=str(self.workspace.root),
            cli_path=self._reaped_cli(),
            model=self.model_info.id,
            system_prompt=system_prompt_for(spec, tools),
            tools=[*tools, SUBAGENT_TOOL],
            allowed_tools=[*tools, SUBAGENT_TOOL],
            permission_mode="acceptEdits",
            setting_sources=[],  # note 3
            max_turns=spec.max_turns,
            max_budget_usd=budget,
            resume=self.session_id if resume else None,
            session_id=None if resume else self.session_id,
            include_partial_messages=True,
            hooks=hooks,
            env=self._env(),
            stderr=self._on_stderr,
        )

    def _reaped_cli(self) -> str | Path | None:
        """A script that runs Claude Code under fleet's reaper (note 6), else the CLI as is."""
        claude = self.cli_path or _bundled_cli()
        if not CONTAINED or claude is None:
            return self.cli_path
        script = self.config_dir / "claude-reaped"
        text = f'#!/bin/sh\nexec {shlex.join(command_argv([str(claude)]))} "$@"\n'
        self.config_dir.mkdir(parents=True, exist_ok=True)
        if not script.is_file() or script.read_text() != text:
            # Whole or not at all: the agents of one workspace share the folder.
            partial = script.with_name(f".{script.name}.{os.getpid()}.{self.agent_id}")
            partial.write_text(text)
            partial.chmod(0o755)
            os.replace(partial, script)
        return str(script)

    def _on_stderr(self, line: str) -> None:
        self._stderr.append(line)
        logger.debug("claude-code %s: %s", self.agent_id, line)

    def _error(self, error: BaseException) -> str:
        """What stopped the session, in one line, with the last of what Claude Code said.

        The SDK's error for a Claude Code that exits says "Check stderr output for
        details", which the user cannot: its stderr is ours (the `stderr` callback).
        """
        said = " | ".join(line.strip() for line in self._stderr if line.strip())[-STDERR_CHARS:]
        if type(error).__name__ == "ProcessError":
            code = getattr(error, "exit_code", None)
            if isinstance(code, int) and code < 0:
                try:
                    text = f"Claude Code was killed by {signal.Signals(-code).name}"
                except ValueError:
                    text = f"Claude Code was killed by signal {-code}"
            else:
                text = f"Claude Code exited with code {code}"
            return f"{text}: {said}" if said else f"{text} (it said nothing on stderr)"
        text = unexpected_error(error)
        return f"{text}; Claude Code said: {said}" if said else text

    def _env(self) -> dict[str, str]:
        """Claude Code's environment: the simulator when fleet's client is, its files in ours."""
        env = {
            "CLAUDE_CONFIG_DIR": str(self.config_dir),
            "CLAUDE_CODE_TMPDIR": str(self.temp_dir),
            # Its Bash tool runs `python ...`: this interpreter first, as for fleet's Bash.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DISABLE_AUTOUPDATER": "1",
        }
        if self.client.simulated:
            env |= {name: "" for name in _NOT_OFFLINE}
            env |= {
                "ANTHROPIC_BASE_URL": self.client.base_url,
                "ANTHROPIC_API_KEY": SIMULATOR_API_KEY,
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_ERROR_REPORTING": "1",
                "CLAUDE_CODE_ENABLE_TELEMETRY": "0",
            }
        return env | self.extra_env

    async def _query(self) -> None:
        sdk = _sdk()
        self._ending = False
        self._stderr.clear()
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        options = self._options()
        started = time.perf_counter()
        try:
            async with sdk.ClaudeSDKClient(options) as client:
                self._client = client
                await client.query(self._prompt())
                # Read to the result even after a failure (interrupted): a generator left
                # open would leave the SDK's streams to the garbage collector.
                async for message in client.receive_response():
                    if self.state.status == "working" and not self._ending:
                        await self._on_message(message)
        finally:
            self._client = None
            self._session_s += time.perf_counter() - started
            # A subagent still open when the session stops (interrupted, deleted, failed).
            with contextlib.suppress(Exception):
                await self._subagents.abandon("the Claude Code session stopped before it returned")
        if self._ending:
            return
        await self._flush()
        if self.state.status == "working":  # no result: the session ended on its own
            await self._session_failed("the Claude Code session ended without a result")

    def _prompt(self) -> str:
        """The prompt with the hook context held for it (SessionStart's, a detached hook's),
        as the fleet engine sends it: the text blocks of the conversation's last user message.
        """
        prompt = self.state.prompt
        last = self.state.messages[-1] if self.state.messages else None
        if last is None or last["role"] != "user" or isinstance(last["content"], str):
            return prompt
        texts = [b["text"] for b in last["content"] if b.get("type") == "text"]
        return "\n\n".join(texts) if prompt in texts else prompt

    async def _interrupt_session(self) -> None:
        """Ask the running session to stop its turn (Claude Code's interrupt), if one runs."""
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await client.interrupt()

    async def end_session(self, task: asyncio.Task[Any], *, timeout_s: float = 20.0) -> None:
        """Interrupt the session that `task` runs and let it close (cancel it after `timeout_s`).

        What the session does after this is not recorded: the agent is being deleted.
        """
        self._ending = True
        await self._interrupt_session()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), timeout=timeout_s)

    async def interrupt(self, *, by: str = "user") -> bool:
        """Interrupt the session if it works, then stop the turn as `Agent.interrupt` does."""
        await self._interrupt_session()
        return await super().interrupt(by=by)

    async def delete(self, *, by: str = "user", was_working: bool | None = None) -> None:
        """Interrupt the session if it works, end it, then delete the agent (`Agent.delete`)."""
        if was_working is None and self._task is not None and not self._task.done():
            was_working = True
        await self._interrupt_session()
        await super().delete(by=by, was_working=was_working)

    # -- messages to events -----------------------------------------------------------------

    async def _on_message(self, message: Any) -> None:
        kind = type(message).__name__
        if getattr(message, "parent_tool_use_id", None) is not None:
            await self._subagents.on_message(message)  # a child agent's
            return
        if kind == "StreamEvent":
            await self._on_stream(message.event)
        elif kind == "AssistantMessage":
            if self._message is None or self._message.message_id != message.message_id:
                await self._flush()
                self._message = _Message(
                    message.message_id or "", message.model, time.perf_counter()
                )
            self._message.content += [_block(b) for b in message.content]
            if message.usage and not self._message.usage:
                self._message.usage = dict(message.usage)
        elif kind == "UserMessage":
            await self._flush()
            if isinstance(message.content, list):
                results = [b for b in message.content if type(b).__name__ == "ToolResultBlock"]
                if results:
                    await self._append([self._completed(b) for b in results])
                for block in results:
                    if self._calls.get(str(block.tool_use_id), ("",))[0] in SUBAGENT_TOOLS:
                        await self._subagents.ended(
                            str(block.tool_use_id), block, message.tool_use_result
                        )
        elif kind == "ResultMessage":
            await self._flush()
            await self._result(message)

    async def _on_stream(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            await self._flush()
            start = event.get("message") or {}
            self._message = _Message(
                str(start.get("id", "")), str(start.get("model", "")), time.perf_counter()
            )
            self._message.usage = dict(start.get("usage") or {})
        elif kind == "message_delta" and self._message is not None:
            self._message.usage |= dict(event.get("usage") or {})
            self._message.stop_reason = (event.get("delta") or {}).get("stop_reason")
        elif kind == "message_stop":
            await self._flush()

    async def _flush(self) -> None:
        """Record the message being streamed (ModelResponded, its ToolCallRequested, note 1)."""
        message, self._message = self._message, None
        if message is None or not message.content:
            return
        usage = usage_from_dict(message.usage)  # the API's usage, as Claude Code streams it
        uses = [b for b in message.content if b.get("type") == "tool_use"]
        stop = message.stop_reason or ("tool_use" if uses else "end_turn")
        responded = ModelResponded(
            agent_id=self.agent_id,
            message_id=message.message_id,
            model=self.model_info.id,
            stop_reason=stop,
            content=message.content,
            usage=usage,
            cost_usd=self.client.prices.cost(self.model_info.id, usage),
            duration_ms=round((time.perf_counter() - message.started) * 1000, 3),
            turn=self.state.turns + 1,
        )
        cause = self.state.last_position
        events = [self._log.event(responded, cause)]
        for use in uses:
            tool_use_id, name = str(use["id"]), str(use["name"])
            self._calls[tool_use_id] = (name, dict(use.get("input") or {}))
            self._recorded.add(tool_use_id)
            requested = ToolCallRequested(
                agent_id=self.agent_id, tool_use_id=tool_use_id, name=name, input=use["input"]
            )
            # Caused by the response, k places earlier in this same append.
            events.append(self._log.event(requested, -len(events)))
            events += self._held.pop(tool_use_id, [])
        self.stats.steps += 1
        await self._append(events)
        for use in uses:
            self._recorded_now.setdefault(str(use["id"]), asyncio.Event()).set()
            if use["name"] in SUBAGENT_TOOLS:
                await self._subagents.started(str(use["id"]), dict(use.get("input") or {}))
        if stop == "tool_use" and (crossed := await self._budget.crossed(self.state)):
            # As the fleet engine checks before its next model call.
            await self._session_failed(crossed.reason, limit=crossed.limit)
            await self._interrupt_session()

    def _completed(self, block: Any) -> NewEvent:
        tool_use_id = str(block.tool_use_id)
        name, tool_input = self._calls.get(tool_use_id, ("", {}))
        is_error = bool(block.is_error)
        read, written = self.files_of(name, tool_input, is_error)
        completed = ToolCallCompleted(
            agent_id=self.agent_id,
            tool_use_id=tool_use_id,
            name=name,
            result=_cap(_text(block.content)),
            is_error=is_error,
            blocked=tool_use_id in self._denied,
            files_read=read,
            files_written=written,
        )
        self.stats.tool_calls += 1
        return self._log.event(completed, self.state.last_position)

    def files_of(
        self, name: str, tool_input: Mapping[str, Any], is_error: bool
    ) -> tuple[list[str], list[str]]:
        """The files a finished call of tool `name` read and wrote (none when it failed)."""
        path = tool_input.get("file_path") or tool_input.get("notebook_path")
        if not path or is_error:
            return [], []
        read = [self._relative(path)] if name in _READS else []
        return read, [self._relative(path)] if name in _WRITES else []

    def _relative(self, path: str) -> str:
        """A path as fleet's tools give it: relative to the workspace when inside it."""
        root = self.workspace.root
        full = Path(path) if Path(path).is_absolute() else root / path
        try:
            return full.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return str(full)

    async def _result(self, result: Any) -> None:
        state = self.state
        if state.status != "working":
            return
        if (reason := self._hooks.stop_reason) is not None:  # as a fleet agent's loop does
            self._hooks.stop_reason = None
            await self._session_failed(f"stopped by a hook: {reason}", limit="hook")
            return
        if result.subtype == "success" and not result.is_error:
            completed = AgentCompleted(
                agent_id=self.agent_id,
                summary=(result.result or state.last_text or "").strip(),
                artifacts=list(state.files_written),
                stop_reason=result.stop_reason or "end_turn",
            )
            await self._append([self._log.event(completed, state.last_position)])
            return
        limit = _LIMITS.get(result.subtype)
        errors = "; ".join(result.errors or []) or result.result or result.subtype
        await self._session_failed(f"Claude Code stopped: {errors}", limit=limit)

    async def _session_failed(
        self, error: str, *, limit: str | None = None, wait: bool = True
    ) -> None:
        """The session's AgentFailed, waiting out an unavailable log (note 7) unless `wait`
        is False: its end cannot be taken again at a next step, as a fleet agent's is. (An
        interrupt's, `Agent._fail`, is a caller's request: it fails at once, as fleet's.)"""
        if not wait:
            return await self._fail(error, limit=limit)
        failed = AgentFailed(agent_id=self.agent_id, error=error, limit=limit)
        await self._append([self._log.event(failed, self.state.last_position)])

    async def _append(self, events: Sequence[NewEvent]) -> None:
        """Append the session's `events`, waiting out an unavailable log (note 7). Raises
        `StoreUnavailable` after `OUTAGE_LIMIT_S`, as the append's other errors."""
        if not events:
            return
        outage = LogOutage(self._log.store, f"agent {self.agent_id}")
        while True:
            try:
                await self._log.append(list(events))
                return
            except StoreUnavailable as e:
                if not await outage.wait(e, self._log.sync):
                    raise
                if await landed(self._log.store, self._log.stream_id, events):
                    return

    # -- hooks ------------------------------------------------------------------------------

    async def _hook(self, data: Mapping[str, Any], tool_use_id: str | None, _: Any) -> Any:
        """A hook callback of Claude Code: fleet's dispatcher decides, and it is recorded."""
        point = str(data.get("hook_event_name", ""))
        fields = self._fields(point, data)
        try:
            outcome = await self._hooks.dispatch(point, **fields)
        except Exception:
            logger.warning("hook %s of %s could not run", point, self.agent_id, exc_info=True)
            return {}
        if outcome is None:
            return {}
        if point in ("Stop", "SubagentStop"):
            self._hooks.stop_reason = None  # `continue: false` there: it stops, as it would
        call_id = str(data.get("tool_use_id") or "") if hook_point(point) in TOOL_POINTS else ""
        events = self._hooks.events(outcome, self.state.last_position)
        if point == "PreToolUse" and outcome.permission == "ask" and call_id:
            return await self._ask(call_id, data, outcome, events)
        if call_id and call_id not in self._recorded and not data.get("agent_id"):
            self._held.setdefault(call_id, []).extend(events)  # note 1 (a subagent's: not held)
        else:
            await self._append(events)
        if point == "PreToolUse" and outcome.blocked and call_id:
            self._denied.add(call_id)
        return _answer(point, outcome)

    async def _ask(
        self, call_id: str, data: Mapping[str, Any], outcome: HookOutcome, events: list[NewEvent]
    ) -> dict[str, Any]:
        """A PreToolUse "ask": fleet's approval (note 5); Claude Code is told allow or deny."""
        # The request follows the message that made the call (note 1); a subagent's call
        # is in the child's stream, recorded before its tool runs.
        if not data.get("agent_id"):
            await self._recorded_now.setdefault(call_id, asyncio.Event()).wait()
        tool_input = dict(outcome.updated_input or data.get("tool_input") or {})
        answer = await self._gate.ask(
            call_id,
            str(data.get("tool_name", "")),
            tool_input,
            reason=outcome.reason,
            events=events,
            cause=self.state.last_position,
            usage={"usage": self.state.usage(), "cost_usd": self.state.cost_usd},
        )
        specific: dict[str, Any] = {"hookEventName": "PreToolUse"}
        if answer.allowed:
            specific["permissionDecision"] = "allow"
            if answer.updated_input is not None or outcome.updated_input is not None:
                specific["updatedInput"] = answer.updated_input or tool_input
        else:
            self._denied.add(call_id)
            specific["permissionDecision"] = "deny"
            specific["permissionDecisionReason"] = f"denied by {answer.by}" + (
                f": {answer.reason}" if answer.reason else ""
            )
        return {"hookSpecificOutput": specific}

    def _fields(self, point: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Claude Code's hook input as `build_payload` fields (the agent's own ids are fleet's)."""
        accepted = PAYLOAD_MODELS[hook_point(point)].model_fields
        fields = {k: v for k, v in data.items() if k in accepted}
        for own in ("hook_event_name", "session_id", "cwd", "agent_id", "fleet_usage"):
            fields.pop(own, None)
        if point in ("SubagentStart", "SubagentStop") and data.get("agent_id"):
            fields["subagent_id"] = data["agent_id"]
        if hook_point(point) in TOOL_POINTS:
            fields["usage"] = self.state.usage()
            fields["cost_usd"] = self.state.cost_usd
        return fields


def _answer(point: str, outcome: HookOutcome) -> dict[str, Any]:
    """The hooks' joint decision as Claude Code's hook output."""
    answer: dict[str, Any] = {}
    if outcome.stop:
        answer["continue_"] = False
        if outcome.stop_reason:
            answer["stopReason"] = outcome.stop_reason
    if outcome.system_messages:
        answer["systemMessage"] = "\n".join(outcome.system_messages)
    specific: dict[str, Any] = {"hookEventName": point}
    if point == "PreToolUse":
        if outcome.permission in ("allow", "deny", "ask"):
            specific["permissionDecision"] = outcome.permission
            if outcome.reason:
                specific["permissionDecisionReason"] = outcome.reason
        if outcome.updated_input is not None:
            specific["updatedInput"] = outcome.updated_input
    elif outcome.blocked:
        answer["decision"] = "block"
        if outcome.reason:
            answer["reason"] = outcome.reason
    elif point == "Stop" and outcome.additional_context and not outcome.stop:
        # Stop context is feedback that keeps the agent going, its next prompt (as for a
        # fleet agent); Claude Code's Stop output has no additionalContext: said as a block.
        answer["decision"] = "block"
        answer["reason"] = outcome.additional_context
    if outcome.additional_context and point != "Stop":
        specific["additionalContext"] = outcome.additional_context
    if len(specific) > 1:
        answer["hookSpecificOutput"] = specific
    return answer


def _bundled_cli() -> Path | None:
    """The Claude Code CLI the SDK's wheel bundles, if it has one."""
    bundled = Path(_sdk().__file__).parent / "_bundled" / "claude"
    return bundled if bundled.is_file() else None


def _with_session(spec: Any) -> Any:
    from dataclasses import replace

    return replace(spec, session_id=new_session_id())
