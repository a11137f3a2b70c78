"""Who an agent is and what it may spend (`AgentSpec`), what it ended with, what it cost.

The system prompt names the role on a `Role: <role>` line: that line is the
contract with the offline simulator, which picks its scripted policy by it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._conversation import AgentStatus
from ._tools import Toolbox
from .errors import BudgetExceeded, InvalidAgentSpec

__all__ = [
    "DEFAULT_APPROVAL_TIMEOUT_S",
    "ENGINES",
    "TRANSCRIPTS",
    "AgentOutcome",
    "AgentSpec",
    "AgentStats",
    "BudgetCheck",
    "Engine",
    "ToolboxFor",
    "system_prompt_for",
]

Engine = Literal["fleet", "claude-code"]
"""What runs an agent: fleet's own loop, or a Claude Code session (`_claude_code.py`)."""

ENGINES: tuple[Engine, ...] = ("fleet", "claude-code")

BudgetCheck = Callable[[str], Awaitable[BudgetExceeded | None]]
"""An outside budget (e.g. the fleet's): the limit an agent crossed, or None."""

DEFAULT_APPROVAL_TIMEOUT_S = 600.0
"""Seconds a tool call on hold waits for a person's answer before it is denied."""

TRANSCRIPTS = ".fleet/transcripts"
"""Where in its workspace an agent's transcript is written, unless its spec says."""

ToolboxFor = Callable[[str, list[str]], Toolbox]
"""Builds a resumed agent's toolbox from its role and the tool names AgentCreated lists."""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """Who an agent is and what it may spend.

    `system_prompt` is added to the runtime's own (which names the role on a
    `Role: <role>` line). `max_turns` counts model calls per command;
    `max_total_tokens` and `max_cost_usd` are for the agent's whole life.
    `compact_at` is the share of the context window above which the
    conversation is compacted; `context_window` overrides the model table's.
    `approval_timeout_s` is how long a tool call a hook put on hold ("ask")
    waits for a person's answer before it is denied. `transcript_dir` is where
    the agent's transcript is written (default: `.fleet/transcripts/` in its
    workspace); `transcript=False` writes none (hooks then get an empty
    `transcript_path`). `engine` runs it: "fleet" (fleet's loop) or
    "claude-code" (a Claude Code session whose id is `session_id`).
    """

    agent_id: str
    name: str
    role: str
    model: str
    workspace: str | Path
    parent_id: str | None = None
    run_id: str | None = None
    system_prompt: str = ""
    max_turns: int | None = 40
    max_tokens: int = 8192
    max_total_tokens: int | None = None
    max_cost_usd: float | None = None
    compact_at: float = 0.8
    context_window: int | None = None
    approval_timeout_s: float = DEFAULT_APPROVAL_TIMEOUT_S
    transcript_dir: str | Path | None = None
    transcript: bool = True
    engine: Engine = "fleet"
    session_id: str | None = None

    def check(self) -> None:
        """Raise `InvalidAgentSpec` for an id, role or limit that cannot be right."""
        if not _ID.match(self.agent_id):
            raise InvalidAgentSpec(
                "agent_id", f"{self.agent_id!r} must be 1-128 letters, digits, '_.:-'"
            )
        if not self.name.strip():
            raise InvalidAgentSpec("name", "must not be empty")
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", self.role):
            raise InvalidAgentSpec(
                "role", f"{self.role!r} must be 1-64 letters, digits, '_' or '-'"
            )
        if self.max_turns is not None and self.max_turns < 1:
            raise InvalidAgentSpec("max_turns", "must be at least 1")
        if self.max_tokens < 1:
            raise InvalidAgentSpec("max_tokens", "must be at least 1")
        if not 0 < self.compact_at <= 1:
            raise InvalidAgentSpec("compact_at", "must be in (0, 1]")
        if self.context_window is not None and self.context_window < 1:
            raise InvalidAgentSpec("context_window", "must be at least 1")
        if self.engine not in ENGINES:
            raise InvalidAgentSpec("engine", f"{self.engine!r} is not one of {list(ENGINES)}")
        if not self.approval_timeout_s > 0:
            raise InvalidAgentSpec("approval_timeout_s", "must be more than 0")


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """Where an agent stands after `run_until_idle()`."""

    agent_id: str
    status: AgentStatus
    summary: str = ""
    artifacts: tuple[str, ...] = ()
    error: str | None = None
    limit: str | None = None


@dataclass(slots=True)
class AgentStats:
    """Wall time this process spent on the agent, split by where it went (for benchmarks)."""

    steps: int = 0
    tool_calls: int = 0
    appends: int = 0
    model_s: float = 0.0
    tool_s: float = 0.0
    append_s: float = 0.0
    hook_s: float = 0.0
    busy_s: float = 0.0  # inside create(), command() and run_until_idle()

    @property
    def overhead_s(self) -> float:
        """Busy time not spent waiting on the model or inside tools: the runtime's own."""
        return self.busy_s - self.model_s - self.tool_s


def system_prompt_for(spec: AgentSpec, tools: Sequence[str]) -> str:
    """The system prompt the runtime gives an agent: who it is, its `Role:` line, its tools."""
    lines = [
        f"You are {spec.name}, an agent of a fleet run by an orchestrator.",
        f"Role: {spec.role}",
        "You work in a workspace folder; every path you give a tool is relative to it. "
        f"Your tools: {', '.join(tools) or 'none'}.",
        "When your task is done, answer with a short summary of what you did and the paths of "
        "the files you wrote: that summary is all the orchestrator reads.",
    ]
    if spec.system_prompt.strip():
        lines += ["", spec.system_prompt.strip()]
    return "\n".join(lines)
