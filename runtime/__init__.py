"""The runtime: agents, their tools, the model client and the offline simulator.

    async with Simulator() as sim, open_store(path) as store:
        client = ModelClient.from_env(simulator_base_url=sim.base_url)
        agent = Agent(store=store, client=client, spec=AgentSpec(...))
        await agent.create(task="...")
        outcome = await agent.run_until_idle()

Without `ANTHROPIC_API_KEY` the model is the offline simulator: its answers
are scripted per role, not written by a model. This package wires `hooks`
and `events`; `api` is built on it.
"""

from __future__ import annotations

from ._agent import MAX_STOP_CONTINUATIONS, Agent
from ._agent_spec import AgentOutcome, AgentSpec, AgentStats, BudgetCheck, ToolboxFor
from ._client import SIMULATOR_API_KEY, ModelClient, ModelReply
from ._conversation import (
    AgentState,
    AgentStatus,
    PendingCall,
    find_unfinished_agents,
    stream_id_of,
)
from ._fleet import TERMINAL, Budgets, Fleet, FleetConfig, Recorder, WakeResult
from ._models import ModelInfo, ModelTable, PriceEntry, PriceTable, Rates
from ._orchestrator_policy import SCOUT_MODELS, orchestrator_policy
from ._orchestrator_tools import ORCHESTRATOR_TOOLS, orchestrator_toolbox
from ._pattern_spec import BUILTIN_PATTERNS, PatternSpec, ReviewLoop, StepSpec, load_pattern
from ._patterns import RunResult, new_run_id, run_orchestrator, run_pattern
from ._replay import (
    ReplayImpossible,
    RerunOptions,
    RerunResult,
    WorkspaceUnavailable,
    copy_workspace,
    rerun,
)
from ._replay_diff import REPLAY_MASKS, REPLAY_UNCHECKED_TOOLS, Divergence
from ._replay_model import ReplayMiss, ReplayModel, ReplayScript
from ._replay_timeline import Timeline, TimelineEntry, load_timeline, run_events
from ._roles import ROLES, RoleSpec, role_purpose, role_spec
from ._runtime import Runtime, RuntimeOptions, open_runtime
from ._simulator import (
    CHARS_PER_TOKEN,
    MIN_CACHEABLE_TOKENS,
    Simulator,
    SimulatorStats,
    count_request_tokens,
    estimate_tokens,
)
from ._simulator_policy import (
    COMPACTED_PREFIX,
    COMPACTION_PROMPT,
    Call,
    Observation,
    Policy,
    PolicyRegistry,
    Situation,
    Turn,
    register_policy,
)
from ._simulator_roles import TEST_COMMAND, Directive, find_directives, parse_plan_edits
from ._tools import (
    WORKER_TOOLS,
    Tool,
    Toolbox,
    ToolContext,
    ToolResult,
    worker_toolbox,
)
from ._workspace import GIT_IDENTITY, Workspace, prepare_workspace, sample_repo_path
from .errors import (
    AgentBusy,
    AgentDrivenElsewhere,
    AgentGone,
    AgentNotFound,
    BudgetExceeded,
    ClientClosed,
    FleetLimitReached,
    InvalidAgentSpec,
    ModelCallFailed,
    ModelError,
    ModelTableInvalid,
    PatternError,
    PromptBlocked,
    ToolError,
    ToolInputInvalid,
    UnknownModel,
    WorkspaceEscape,
    WorkspaceMissing,
)

__all__ = [
    "BUILTIN_PATTERNS",
    "CHARS_PER_TOKEN",
    "COMPACTED_PREFIX",
    "COMPACTION_PROMPT",
    "GIT_IDENTITY",
    "MAX_STOP_CONTINUATIONS",
    "MIN_CACHEABLE_TOKENS",
    "ORCHESTRATOR_TOOLS",
    "REPLAY_MASKS",
    "REPLAY_UNCHECKED_TOOLS",
    "ROLES",
    "SCOUT_MODELS",
    "SIMULATOR_API_KEY",
    "TERMINAL",
    "TEST_COMMAND",
    "WORKER_TOOLS",
    "Agent",
    "AgentBusy",
    "AgentDrivenElsewhere",
    "AgentGone",
    "AgentNotFound",
    "AgentOutcome",
    "AgentSpec",
    "AgentState",
    "AgentStats",
    "AgentStatus",
    "BudgetCheck",
    "BudgetExceeded",
    "Budgets",
    "Call",
    "ClientClosed",
    "Directive",
    "Divergence",
    "Fleet",
    "FleetConfig",
    "FleetLimitReached",
    "InvalidAgentSpec",
    "ModelCallFailed",
    "ModelClient",
    "ModelError",
    "ModelInfo",
    "ModelReply",
    "ModelTable",
    "ModelTableInvalid",
    "Observation",
    "PatternError",
    "PatternSpec",
    "PendingCall",
    "Policy",
    "PolicyRegistry",
    "PriceEntry",
    "PriceTable",
    "PromptBlocked",
    "Rates",
    "Recorder",
    "ReplayImpossible",
    "ReplayMiss",
    "ReplayModel",
    "ReplayScript",
    "RerunOptions",
    "RerunResult",
    "ReviewLoop",
    "RoleSpec",
    "RunResult",
    "Runtime",
    "RuntimeOptions",
    "Simulator",
    "SimulatorStats",
    "Situation",
    "StepSpec",
    "Timeline",
    "TimelineEntry",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolInputInvalid",
    "ToolResult",
    "Toolbox",
    "ToolboxFor",
    "Turn",
    "UnknownModel",
    "WakeResult",
    "Workspace",
    "WorkspaceEscape",
    "WorkspaceMissing",
    "WorkspaceUnavailable",
    "copy_workspace",
    "count_request_tokens",
    "estimate_tokens",
    "find_directives",
    "find_unfinished_agents",
    "load_pattern",
    "load_timeline",
    "new_run_id",
    "open_runtime",
    "orchestrator_policy",
    "orchestrator_toolbox",
    "parse_plan_edits",
    "prepare_workspace",
    "register_policy",
    "rerun",
    "role_purpose",
    "role_spec",
    "run_events",
    "run_orchestrator",
    "run_pattern",
    "sample_repo_path",
    "stream_id_of",
    "worker_toolbox",
]
