"""Errors of the runtime: agents, tools, models, budgets. All descend from `FleetError`.

    FleetError
    ├── ModelError              the model could not be reached, refused, or is unknown
    │   └── UnknownModel        a model name not in the model table (raised before any call)
    ├── ToolError               a tool call failed (the model sees it as a tool error)
    │   ├── ToolInputInvalid    the input does not match the tool's schema
    │   └── WorkspaceEscape     a path that leaves the agent's workspace
    ├── WorkspaceMissing        the agent's workspace folder does not exist
    ├── AgentNotFound           no agent with that id
    ├── AgentGone               the agent was deleted: it takes no more commands
    ├── AgentBusy               the agent is working: wait or delete it first
    ├── BudgetExceeded          a token, cost or context limit would be or was crossed
    ├── FleetLimitReached       too many agents
    └── PatternError            a pattern file is invalid (unknown step, cycle, ...)
"""

from __future__ import annotations

from events.errors import FleetError

__all__ = [
    "AgentBusy",
    "AgentGone",
    "AgentNotFound",
    "BudgetExceeded",
    "FleetLimitReached",
    "ModelError",
    "PatternError",
    "ToolError",
    "ToolInputInvalid",
    "UnknownModel",
    "WorkspaceEscape",
    "WorkspaceMissing",
]


class ModelError(FleetError):
    """The model could not be reached or refused the request."""


class UnknownModel(ModelError):
    """A model name that is not in the model table."""

    def __init__(self, model: str, known: list[str]) -> None:
        self.model = model
        self.known = known
        super().__init__(f"unknown model {model!r}; known models: {', '.join(sorted(known))}")


class ToolError(FleetError):
    """A tool call failed; the message is what the model is shown."""


class ToolInputInvalid(ToolError):
    """A tool call's input does not match the tool's schema."""

    def __init__(self, tool: str, detail: str) -> None:
        self.tool = tool
        self.detail = detail
        super().__init__(f"invalid input for {tool}: {detail}")


class WorkspaceEscape(ToolError):
    """A path that resolves outside the agent's workspace."""

    def __init__(self, path: str, workspace: str) -> None:
        self.path = path
        self.workspace = workspace
        super().__init__(f"path {path!r} is outside the workspace {workspace}")


class WorkspaceMissing(FleetError):
    """The agent's workspace folder does not exist."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace
        super().__init__(f"workspace {workspace} does not exist or is not a folder")


class AgentNotFound(FleetError):
    """No agent with that id exists in the log."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"no agent with id {agent_id!r}")


class AgentGone(FleetError):
    """The agent was deleted and takes no more commands."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id!r} was deleted")


class AgentBusy(FleetError):
    """The agent is working on a task already."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id!r} is working; wait for it or delete it")


class BudgetExceeded(FleetError):
    """A limit on tokens, cost or context would be (or was) crossed."""

    def __init__(self, limit: str, value: float, maximum: float, scope: str) -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        self.scope = scope
        super().__init__(f"{scope} {limit} budget exceeded: {value:g} of {maximum:g}")


class FleetLimitReached(FleetError):
    """Creating another agent would pass the fleet's limit on agents."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        super().__init__(f"the fleet already has its limit of {maximum} live agents")


class PatternError(FleetError):
    """A pattern (workflow) definition is invalid."""
