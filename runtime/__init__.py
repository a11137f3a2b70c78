"""The runtime: the fleet of agents, their tools, the model client and the offline simulator.

    async with open_runtime(RuntimeOptions(db=Path(".fleet/fleet.db"), workspace=repo)) as rt:
        status = await rt.fleet.create_agent(name="scout-1", role="scout", task="...")
        await rt.fleet.wait_for_agents([status["id"]], timeout_s=300)
        result = await run_pattern(rt.fleet, load_pattern("scout-plan-build"), "...")

`open_runtime` opens everything a fleet needs (the log, the projections, the
hooks, the model client and, without `ANTHROPIC_API_KEY`, the offline
simulator) and `Fleet` is CRUD for agents on it. An `Agent` can also be driven
alone. The simulator's scripted roles are in `runtime.simulator`, re-execution
of recorded runs in `runtime.replay`. This package wires `hooks`, `projections`
and `events`; `api` is built on it.
"""

from __future__ import annotations

from ._agent import Agent
from ._agent_spec import ENGINES, AgentOutcome, AgentSpec, AgentStats, Engine
from ._approvals import approval_stream, decide_approval, wait_for_decision
from ._chat import CONVERSATION_ID_PATTERN, Chat, ChatMessage, Conversation, Posted
from ._claude_code import ClaudeCodeAgent
from ._client import ModelClient, ModelReply
from ._fleet import Budgets, Fleet, FleetConfig, ScriptedWake, WakeResult, WakeScript
from ._leases import Leaseholder
from ._models import ModelInfo, ModelTable, PriceTable
from ._pattern_spec import BUILTIN_PATTERNS, PATTERN_MAX_BYTES, PatternSpec, load_pattern
from ._patterns import RunResult, check_runnable, new_run_id, run_orchestrator, run_pattern
from ._run_damage import RunDamage, TestRun, run_damage
from ._run_resume import abandon_run, check_resumable, interrupted_runs, resume_run
from ._runtime import Runtime, RuntimeOptions, open_runtime
from ._sandbox import Sandbox
from ._slash import SLASH_COMMANDS
from ._tools import Tool, Toolbox, ToolContext, ToolKind, ToolResult
from ._transcripts import TranscriptReader, TranscriptResponse
from ._worker import Worker
from ._worker_tools import LEGACY_TOOL_NAMES, WORKER_TOOLS, worker_toolbox
from ._workspace import Workspace, git_root, prepare_workspace
from .errors import (
    AgentBusy,
    AgentDrivenElsewhere,
    AgentGone,
    AgentNotFound,
    AgentNotWorking,
    ApprovalClosed,
    ApprovalNotFound,
    BudgetExceeded,
    ChatCommandInvalid,
    ClientClosed,
    ConversationNotFound,
    EngineUnavailable,
    FleetLimitReached,
    InvalidAgentSpec,
    ModelCallFailed,
    ModelError,
    ModelTableInvalid,
    PatternError,
    PromptBlocked,
    RunNotResumable,
    ToolError,
    ToolInputInvalid,
    UnknownModel,
    WorkspaceEscape,
    WorkspaceMissing,
    WriteRefused,
)
from .simulator import Simulator

__all__ = [
    "BUILTIN_PATTERNS",
    "CONVERSATION_ID_PATTERN",
    "ENGINES",
    "LEGACY_TOOL_NAMES",
    "PATTERN_MAX_BYTES",
    "SLASH_COMMANDS",
    "WORKER_TOOLS",
    "Agent",
    "AgentBusy",
    "AgentDrivenElsewhere",
    "AgentGone",
    "AgentNotFound",
    "AgentNotWorking",
    "AgentOutcome",
    "AgentSpec",
    "AgentStats",
    "ApprovalClosed",
    "ApprovalNotFound",
    "BudgetExceeded",
    "Budgets",
    "Chat",
    "ChatCommandInvalid",
    "ChatMessage",
    "ClaudeCodeAgent",
    "ClientClosed",
    "Conversation",
    "ConversationNotFound",
    "Engine",
    "EngineUnavailable",
    "Fleet",
    "FleetConfig",
    "FleetLimitReached",
    "InvalidAgentSpec",
    "Leaseholder",
    "ModelCallFailed",
    "ModelClient",
    "ModelError",
    "ModelInfo",
    "ModelReply",
    "ModelTable",
    "ModelTableInvalid",
    "PatternError",
    "PatternSpec",
    "Posted",
    "PriceTable",
    "PromptBlocked",
    "RunDamage",
    "RunNotResumable",
    "RunResult",
    "Runtime",
    "RuntimeOptions",
    "Sandbox",
    "ScriptedWake",
    "Simulator",
    "TestRun",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolInputInvalid",
    "ToolKind",
    "ToolResult",
    "Toolbox",
    "TranscriptReader",
    "TranscriptResponse",
    "UnknownModel",
    "WakeResult",
    "WakeScript",
    "Worker",
    "Workspace",
    "WorkspaceEscape",
    "WorkspaceMissing",
    "WriteRefused",
    "abandon_run",
    "approval_stream",
    "check_resumable",
    "check_runnable",
    "decide_approval",
    "git_root",
    "interrupted_runs",
    "load_pattern",
    "new_run_id",
    "open_runtime",
    "prepare_workspace",
    "resume_run",
    "run_damage",
    "run_orchestrator",
    "run_pattern",
    "wait_for_decision",
    "worker_toolbox",
]
