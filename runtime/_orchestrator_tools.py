"""The orchestrator's tools: CRUD for agents plus `wait_for_agents` (the sleep pattern).

These are ordinary `Tool`s whose work is done by the `Fleet` the orchestrator
belongs to (found in `ToolContext.extra["fleet"]`). Their results are short JSON
documents: statuses, summaries and artifact paths, never a worker's transcript,
so the orchestrator's own context stays small.

Notes (do not fix without reading this):
1. A tool that meets an unavailable log (`StoreUnavailable`) waits for it
   (`_outage.py`), as the agent's own appends do, then looks in the log for
   its effect (`effect`: an AgentCreated, AgentCommanded or AgentDeleted that
   committed before the connection was cut) and returns that, or runs again.
   Telling the model "the log is unavailable" for a create that had landed
   left an agent created and never given its task, and the model made another.
   `wait_for_agents` is the exception: it writes the orchestrator's own stream
   (AgentWaiting), which only the agent's step may retry, so an outage is the
   tool error the model reads (the waits' reads wait already, `_waits.py`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from events import EventFilter, RecordedEvent
from events.errors import FleetError

from ._outage import effect_waiting, read_waiting
from ._tools import Toolbox, ToolContext, ToolKind, ToolResult
from .errors import ToolError

if TYPE_CHECKING:
    from ._fleet import Fleet

__all__ = ["ORCHESTRATOR_TOOLS", "orchestrator_toolbox"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateAgentInput(_Input):
    name: str = Field(
        description="A short name, e.g. scout-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
    )
    role: str = Field(description="scout, planner, builder, reviewer, shipper, or another role")
    task: str = Field(description="The detailed task the agent starts on", min_length=1)
    model: str | None = Field(default=None, description="haiku, sonnet, opus, or a full model name")


class CommandAgentInput(_Input):
    agent_id: str
    task: str = Field(min_length=1)


class AgentIdInput(_Input):
    agent_id: str


class ListAgentsInput(_Input):
    status: Literal["created", "working", "waiting", "completed", "failed", "deleted"] | None = None


class WaitForAgentsInput(_Input):
    agent_ids: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=15.0, gt=0, le=3600)


class DeleteAllInput(_Input):
    """No arguments: the orchestrator deletes every agent it created in its run."""


def _fleet(ctx: ToolContext) -> Fleet:
    fleet = ctx.extra.get("fleet")
    if fleet is None:
        raise ToolError("this agent has no fleet to orchestrate")
    return fleet  # type: ignore[no-any-return]


def _ok(data: Any) -> ToolResult:
    return ToolResult(json.dumps(data, separators=(",", ":"), default=str))


class _FleetTool(ABC):
    name = ""
    description = ""
    input_model: type[BaseModel] = _Input
    kind: ToolKind = "command"  # creating, commanding, deleting agents: effects to keep

    waits_out_outages = True  # module note 1

    async def __call__(self, input: Any, ctx: ToolContext) -> ToolResult:
        try:
            fleet = _fleet(ctx)
            if not self.waits_out_outages:
                return _ok(await self.run(fleet, input, ctx))
            return _ok(await self._run_waiting(fleet, input, ctx))
        except ToolError:
            raise
        except FleetError as e:  # unknown agent, budget, ...: the model is told, the loop goes on
            raise ToolError(str(e)) from e

    async def _run_waiting(self, fleet: Fleet, input: Any, ctx: ToolContext) -> Any:
        """`run`, waiting out an unavailable log: then its effect found in the log stands
        for it, or it runs again (module note 1)."""
        who = f"agent {ctx.agent_id}"
        after = await read_waiting(fleet.store, fleet.store.head, who=who)
        return await effect_waiting(
            fleet.store,
            lambda: self.run(fleet, input, ctx),
            lambda: self.effect(fleet, input, ctx, after),
            who=who,
        )

    @abstractmethod
    async def run(self, fleet: Fleet, input: Any, ctx: ToolContext) -> Any:
        """Do the tool's work on the fleet; its JSON-able result is what the model reads."""

    async def recover(self, input: Any, ctx: ToolContext, requested_at: int) -> ToolResult | None:
        """A call cut short by a crash (`_interrupted.py`): its result if its effect is in the
        log after `requested_at`, or None when it had none (it is run again)."""
        fleet = _fleet(ctx)
        found = await self.effect(fleet, input, ctx, requested_at)
        return None if found is None else _ok(found)

    async def effect(self, fleet: Fleet, input: Any, ctx: ToolContext, after: int) -> Any:
        """The result this call's effect, found in the log after `after`, stands for; or None."""
        return None

    @staticmethod
    async def _found(
        fleet: Fleet, where: EventFilter, after: int, match: Callable[[Any], bool]
    ) -> RecordedEvent | None:
        async for event in fleet.store.iter_all(after=after, where=where):
            if match(event.data):
                return event
        return None


class CreateAgent(_FleetTool):
    name = "create_agent"
    description = "Create a specialised agent and start it on a task. Returns its agent_id."
    input_model = CreateAgentInput

    async def run(self, fleet: Fleet, input: CreateAgentInput, ctx: ToolContext) -> Any:
        status = await fleet.create_agent(
            name=input.name,
            role=input.role,
            task=input.task,
            model=input.model,
            parent_id=ctx.agent_id,
            run_id=ctx.run_id,
            workspace=str(ctx.workspace.root),
        )
        return {"agent_id": status["id"], "status": status["status"]}

    async def effect(
        self, fleet: Fleet, input: CreateAgentInput, ctx: ToolContext, after: int
    ) -> Any:
        created = await self._found(
            fleet,
            EventFilter.of(types=["AgentCreated"], run_id=ctx.run_id),
            after,
            lambda d: d.parent_id == ctx.agent_id and d.name == input.name,
        )
        if created is None:
            return None
        agent_id = str(getattr(created.data, "agent_id", ""))
        status = await fleet.get_agent_status(agent_id)
        if status["status"] == "created" and input.task:  # stopped before it was commanded
            status = await fleet.command_agent(agent_id, input.task, by=ctx.agent_id)
        return {"agent_id": status["id"], "status": status["status"]}


class CommandAgent(_FleetTool):
    name = "command_agent"
    description = "Send a new task to an existing agent (continues its conversation)."
    input_model = CommandAgentInput

    async def run(self, fleet: Fleet, input: CommandAgentInput, ctx: ToolContext) -> Any:
        await fleet.command_agent(input.agent_id, input.task, by=ctx.agent_id)
        return {"agent_id": input.agent_id, "status": "commanded"}

    async def effect(
        self, fleet: Fleet, input: CommandAgentInput, ctx: ToolContext, after: int
    ) -> Any:
        commanded = await self._found(
            fleet,
            EventFilter.of(types=["AgentCommanded"], stream_ids=[f"agent-{input.agent_id}"]),
            after,
            lambda d: d.by == ctx.agent_id,
        )
        return None if commanded is None else {"agent_id": input.agent_id, "status": "commanded"}


class GetAgentStatus(_FleetTool):
    name = "get_agent_status"
    kind: ToolKind = "read"
    description = "An agent's status, context use and cost (short)."
    input_model = AgentIdInput

    async def run(self, fleet: Fleet, input: AgentIdInput, ctx: ToolContext) -> Any:
        return await fleet.get_agent_status(input.agent_id)


class GetAgentOutput(_FleetTool):
    name = "get_agent_output"
    kind: ToolKind = "read"
    description = (
        "An agent's result: summary, files consumed and produced, artifacts (not its transcript)."
    )
    input_model = AgentIdInput

    async def run(self, fleet: Fleet, input: AgentIdInput, ctx: ToolContext) -> Any:
        return await fleet.get_agent_output(input.agent_id)


class ListAgents(_FleetTool):
    name = "list_agents"
    kind: ToolKind = "read"
    description = "The agents of this run with their status."
    input_model = ListAgentsInput

    async def run(self, fleet: Fleet, input: ListAgentsInput, ctx: ToolContext) -> Any:
        agents = await fleet.list_agents(status=input.status, run_id=ctx.run_id)
        return [
            {"id": a["id"], "name": a["name"], "role": a["role"], "status": a["status"]}
            for a in agents
        ]


class InterruptAgent(_FleetTool):
    name = "interrupt_agent"
    description = (
        "Stop an agent's current turn and keep the agent (its context stays; command it again "
        "to go on)."
    )
    input_model = AgentIdInput

    async def run(self, fleet: Fleet, input: AgentIdInput, ctx: ToolContext) -> Any:
        status = await fleet.interrupt_agent(input.agent_id, by=ctx.agent_id)
        return {"agent_id": input.agent_id, "status": status["status"]}


class DeleteAgent(_FleetTool):
    name = "delete_agent"
    description = "Delete an agent (cancels it if working). Its events stay in the log."
    input_model = AgentIdInput

    async def run(self, fleet: Fleet, input: AgentIdInput, ctx: ToolContext) -> Any:
        await fleet.delete_agent(input.agent_id, by=ctx.agent_id)
        return {"agent_id": input.agent_id, "status": "deleted"}

    async def effect(self, fleet: Fleet, input: AgentIdInput, ctx: ToolContext, after: int) -> Any:
        deleted = await self._found(
            fleet,
            EventFilter.of(types=["AgentDeleted"], stream_ids=[f"agent-{input.agent_id}"]),
            after,
            lambda d: True,
        )
        return None if deleted is None else {"agent_id": input.agent_id, "status": "deleted"}


class DeleteAllAgents(_FleetTool):
    name = "delete_all_agents"
    idempotent = True  # run again, it deletes what is left
    description = "Delete every agent you created in this run."
    input_model = DeleteAllInput

    async def run(self, fleet: Fleet, input: DeleteAllInput, ctx: ToolContext) -> Any:
        deleted = await fleet.delete_all_agents(
            run_id=ctx.run_id, by=ctx.agent_id, parent_id=ctx.agent_id
        )
        return {"deleted": deleted}


class WaitForAgents(_FleetTool):
    name = "wait_for_agents"
    kind: ToolKind = "read"
    waits_out_outages = False  # it appends to the orchestrator's stream (module note 1)
    description = (
        "Sleep until one of the given agents finishes (or fails, or is deleted), or the "
        "timeout passes. Spends no tokens while asleep. Returns each agent's status."
    )
    input_model = WaitForAgentsInput

    async def run(self, fleet: Fleet, input: WaitForAgentsInput, ctx: ToolContext) -> Any:
        wake = await fleet.wait_for_agents(
            input.agent_ids, input.timeout_s, waiter_id=ctx.agent_id, record=ctx.emit
        )
        return {"woke_because": wake.reason, "changed": wake.changed, "statuses": wake.statuses}


ORCHESTRATOR_TOOLS = (
    "create_agent",
    "command_agent",
    "interrupt_agent",
    "get_agent_status",
    "get_agent_output",
    "list_agents",
    "delete_agent",
    "delete_all_agents",
    "wait_for_agents",
)


def orchestrator_toolbox() -> Toolbox:
    """The orchestrator's toolbox: CRUD for agents, `interrupt_agent`, `wait_for_agents`."""
    return Toolbox(
        [
            CreateAgent(),
            CommandAgent(),
            InterruptAgent(),
            GetAgentStatus(),
            GetAgentOutput(),
            ListAgents(),
            DeleteAgent(),
            DeleteAllAgents(),
            WaitForAgents(),
        ]
    )
