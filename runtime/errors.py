"""Errors of the runtime: agents, tools, models, budgets. All descend from `FleetError`.

FleetError
├── ModelError              the model could not be reached, refused, or is unknown
│   ├── UnknownModel        a model name not in the model table (raised before any call)
│   ├── ModelCallFailed     the API answered an error (after the SDK's retries) or was unreachable
│   ├── ModelTableInvalid   a user's model/price file is unreadable or invalid
│   └── ClientClosed        a model client (or simulator) used after aclose()
├── ToolError               a tool call failed (the model sees it as a tool error)
│   ├── ToolInputInvalid    the input does not match the tool's schema
│   ├── WorkspaceEscape     a path that leaves the agent's workspace
│   └── WriteRefused        a write to fleet's control files, .git, the log, or a foreign hard link
├── WorkspaceMissing        the agent's workspace folder does not exist
├── EngineUnavailable       an agent's engine cannot run here (claude-agent-sdk not installed)
├── AgentNotFound           no agent with that id
├── InvalidAgentSpec        an agent's id, role, limits or prompt cannot be used (nothing written)
├── AgentGone               the agent was deleted: it takes no more commands
├── AgentBusy               the agent is working: wait or delete it first
├── AgentNotWorking         the agent has no turn to interrupt
├── ConversationNotFound    no conversation with the orchestrator has that id
├── ChatCommandInvalid      a slash command that is unknown or malformed (nothing posted)
├── AgentDrivenElsewhere    another live process drives the agent (its lease, or a VersionConflict)
├── PromptBlocked           a UserPromptSubmit hook refused the prompt
├── ApprovalNotFound        no tool call was put on hold for approval with that id
├── ApprovalClosed          the approval was answered already, or its agent stopped waiting
├── BudgetExceeded          a token, cost or context limit would be or was crossed
├── FleetLimitReached       too many agents
├── PatternError            a pattern cannot run: its file is invalid (unknown step, cycle, ...)
│   └── StepFailed          a step's agents failed or left out its outputs (the run fails)
└── RunNotResumable         a run that ended, or is unknown, or whose log cannot be followed
"""

from __future__ import annotations

from typing import Literal

from events.errors import FleetError

__all__ = [
    "AgentBusy",
    "AgentDrivenElsewhere",
    "AgentGone",
    "AgentNotFound",
    "AgentNotWorking",
    "ApprovalClosed",
    "ApprovalNotFound",
    "BudgetExceeded",
    "ChatCommandInvalid",
    "ClientClosed",
    "ConversationNotFound",
    "EngineUnavailable",
    "FleetLimitReached",
    "InvalidAgentSpec",
    "ModelCallFailed",
    "ModelError",
    "ModelTableInvalid",
    "PatternError",
    "PromptBlocked",
    "RunNotResumable",
    "StepFailed",
    "ToolError",
    "ToolInputInvalid",
    "UnknownModel",
    "WorkspaceEscape",
    "WorkspaceMissing",
    "WriteRefused",
]


class ModelError(FleetError):
    """The model could not be reached or refused the request."""


class UnknownModel(ModelError):
    """A model name that is not in the model table."""

    def __init__(self, model: str, known: list[str]) -> None:
        self.model = model
        self.known = known
        super().__init__(f"unknown model {model!r}; known models: {', '.join(sorted(known))}")


class ModelCallFailed(ModelError):
    """The Messages API answered an error after the SDK's retries, or could not be reached.

    `status` is the HTTP status (None when no response came), `error_type` the
    API's error type (`overloaded_error`, `rate_limit_error`, ... or `connection_error`).
    """

    def __init__(self, model: str, status: int | None, error_type: str, detail: str) -> None:
        self.model = model
        self.status = status
        self.error_type = error_type
        self.detail = detail
        where = f"HTTP {status} " if status is not None else ""
        super().__init__(f"model {model!r} call failed: {where}{error_type}: {detail}")


class ModelTableInvalid(ModelError):
    """A user's model or price file cannot be read or does not validate."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"invalid model/price file {path}: {problem}")


class ClientClosed(ModelError):
    """A model client or simulator was used after `aclose()`."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"the {what} is closed")


MAX_SHOWN_PATH = 300
"""The most of a path an error message shows (`shown_path`)."""


def shown_path(path: str) -> str:
    """`path` as an error message shows it: one over `MAX_SHOWN_PATH` characters is cut in
    the middle (its start and its file name kept), with its length. A path is the model's
    text: a 100 KB one came back whole in every error about it."""
    if len(path) <= MAX_SHOWN_PATH:
        return path
    half = MAX_SHOWN_PATH // 2
    return f"{path[:half]}…{path[-half:]} ({len(path)} characters)"


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
        super().__init__(f"path {shown_path(repr(path))} is outside the workspace {workspace}")


class WriteRefused(ToolError):
    """A file tool may not write this file (fleet's control files, `.git`, the log, a hard link)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"refused to write {shown_path(path)}: {reason}")


class WorkspaceMissing(FleetError):
    """The agent's workspace folder does not exist."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace
        super().__init__(f"workspace {workspace} does not exist or is not a folder")


class EngineUnavailable(FleetError):
    """An agent's engine cannot run here: `engine` and what is missing."""

    def __init__(self, engine: str, missing: str) -> None:
        self.engine = engine
        self.missing = missing
        super().__init__(f"the {engine} engine cannot run: {missing}")


class AgentNotFound(FleetError):
    """No agent with that id exists in the log."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"no agent with id {agent_id!r}")


class InvalidAgentSpec(FleetError):
    """An agent's spec (or a prompt given to it) cannot be used; nothing was written."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid agent {field}: {problem}")


class AgentGone(FleetError):
    """The agent was deleted and takes no more commands."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id!r} was deleted")


class ApprovalNotFound(FleetError):
    """No tool call was put on hold for approval with this id."""

    def __init__(self, approval_id: str) -> None:
        self.approval_id = approval_id
        super().__init__(f"no approval {approval_id!r}")


class ApprovalClosed(FleetError):
    """The approval cannot be answered: it was answered already, or its agent stopped."""

    def __init__(self, approval_id: str, status: str, by: str | None = None) -> None:
        self.approval_id = approval_id
        self.status = status
        self.by = by
        how = f"{status} by {by}" if by else status
        super().__init__(f"approval {approval_id!r} is {how}: it takes no more answers")


class AgentBusy(FleetError):
    """The agent is working on a task already."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id!r} is working; wait for it or delete it")


class AgentNotWorking(FleetError):
    """The agent is not working: there is no turn to interrupt."""

    def __init__(self, agent_id: str, status: str) -> None:
        self.agent_id = agent_id
        self.status = status
        super().__init__(f"agent {agent_id!r} is {status}, not working: nothing to interrupt")


class ConversationNotFound(FleetError):
    """No conversation with the orchestrator has this id."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        super().__init__(f"no conversation {conversation_id!r} in this log")


class ChatCommandInvalid(FleetError):
    """A slash command that is unknown or malformed; `usage` says how to write it."""

    def __init__(self, command: str, problem: str, usage: str) -> None:
        self.command = command
        self.problem = problem
        self.usage = usage
        # The command is the person's (or a client's) text: a long one is cut, not echoed whole.
        shown = command if len(command) <= 40 else command[:40] + "…"
        super().__init__(f"{shown}: {problem}; usage: {usage}")


class AgentDrivenElsewhere(FleetError):
    """Another process drives the agent: it holds the agent's lease (`owner`), or it
    appended to the agent's stream behind this process's back (`expected`, `actual`)."""

    def __init__(
        self,
        agent_id: str,
        expected: int | None = None,
        actual: int | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.expected = expected
        self.actual = actual
        self.owner = owner
        if owner is not None:
            message = (
                f"agent {agent_id!r} is being driven by another process ({owner}), which holds "
                "its lease; nothing was written (it can be taken over once that process ends)"
            )
        else:
            message = (
                f"agent {agent_id!r} is being driven by another process: its stream is at "
                f"version {actual}, this process expected {expected}; nothing was written"
            )
        super().__init__(message)


class PromptBlocked(FleetError):
    """A UserPromptSubmit hook refused a prompt; the agent was not commanded."""

    def __init__(self, agent_id: str, reason: str | None) -> None:
        self.agent_id = agent_id
        self.reason = reason
        super().__init__(
            f"a UserPromptSubmit hook refused the prompt for agent {agent_id!r}: "
            f"{reason or 'no reason given'}"
        )


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
    """A pattern (workflow) cannot run as written: its definition is invalid, or a step failed."""


class StepFailed(PatternError):
    """A step of a pattern run failed: `run_pattern` ends the run with RunFailed naming it."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"step {step!r} failed: {reason}")


class RunNotResumable(FleetError):
    """A run cannot be resumed or abandoned (`action`): it is unknown, it has ended, or
    its log does not say how to go on (`reason`). Nothing was written."""

    def __init__(
        self, run_id: str, reason: str, *, action: Literal["resumed", "abandoned"] = "resumed"
    ) -> None:
        self.run_id = run_id
        self.reason = reason
        self.action = action
        super().__init__(f"run {run_id!r} cannot be {action}: {reason}")
