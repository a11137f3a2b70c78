"""Commanding the fleet over HTTP: create, command, read output, delete agents; start runs.

These routes drive `runtime.Fleet`, so they need the runtime the lifespan
opens (`Services.runtime`). Reading agents (`GET /v1/agents`, `/v1/agents/{id}`)
is in `_routes_views.py`, straight from the projections.

Notes (do not fix without reading this):
1. `POST /v1/runs` answers 202 as soon as the run's first event is in the log;
   the run goes on in a task owned by the fleet (cancelled when it closes, its
   agents left resumable in the log). Its progress is in `/v1/runs`,
   `/v1/events/stream` and the dashboard.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from events import AGENT_ID_PATTERN
from runtime import (
    BUILTIN_PATTERNS,
    WORKER_TOOLS,
    AgentNotFound,
    PatternError,
    Runtime,
    new_run_id,
    run_orchestrator,
    run_pattern,
)

from ._bodies import parse_body, parse_query, read_json
from ._models import ID_PATTERN, Actor, NoQuery
from ._openapi import Operation
from ._routes_views import check_id
from ._state import services
from ._view_models import AgentOutput, AgentStatus
from .errors import HTTPProblem

__all__ = ["operations", "routes", "runtime_of"]


WORKER_TOOL_NAMES = tuple(WORKER_TOOLS)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateAgent(_Body):
    """`POST /v1/agents`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
    role: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    task: str | None = Field(default=None, min_length=1, max_length=100_000)
    model: str | None = Field(default=None, max_length=100)
    tools: list[Literal[WORKER_TOOL_NAMES]] | None = None  # type: ignore[valid-type]
    parent_id: str | None = Field(default=None, pattern=AGENT_ID_PATTERN)
    engine: Literal["fleet", "claude-code"] | None = Field(
        default=None,
        description="what runs the agent: fleet's own loop, or a Claude Code session "
        "(claude-agent-sdk); unset: the server's default",
    )


class CommandAgent(_Body):
    """`POST /v1/agents/{agent_id}/commands`."""

    prompt: str = Field(min_length=1, max_length=100_000)
    by: Actor = "api"


class DeleteAllQuery(NoQuery):
    """`DELETE /v1/agents`: which agents."""

    run_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="only the agents of this run"
    )


class StartRun(_Body):
    """`POST /v1/runs`: a task for a built-in pattern, or for the orchestrator agent."""

    task: str = Field(min_length=1, max_length=100_000)
    pattern: str = Field(default="scout-plan-build", pattern=r"^[a-z][a-z0-9_-]{0,63}$")

    @field_validator("task")
    @classmethod
    def _not_blank(cls, task: str) -> str:
        if not task.strip():  # refused here: the run starts in the background (202)
            raise ValueError("must not be blank")
        return task

    mode: Literal["pattern", "orchestrator"] = "pattern"
    model: str | None = Field(default=None, max_length=100)
    workspace: str = Field(
        min_length=1,
        max_length=4096,
        description="the folder the run changes, named explicitly (never a default): it must "
        "exist and be the server's workspace (`fleet serve --workspace DIR`)",
    )


class Deleted(BaseModel):
    deleted: list[str]


class RunAccepted(BaseModel):
    run_id: str
    status: Literal["started"]


def runtime_of(request: Request) -> Runtime:
    """The app's runtime. Raises `HTTPProblem` 503 when the server has none."""
    runtime = services(request).runtime
    if runtime is None:
        raise HTTPProblem(
            503, "Runtime unavailable", "this server was started without a runtime to drive agents",
            slug="unavailable",
        )  # fmt: skip
    return runtime


def _status(value: dict[str, Any], status_code: int = 200, **headers: str) -> Response:
    body = AgentStatus.model_validate(value).model_dump(mode="json")
    return JSONResponse(body, status_code=status_code, headers=headers or None)


async def create_agent(request: Request) -> Response:
    rt = runtime_of(request)
    parse_query(NoQuery, request)
    body = parse_body(CreateAgent, await read_json(request))
    if body.parent_id is not None:
        await _check_parent(rt, body.parent_id)
    status = await rt.fleet.create_agent(
        name=body.name, role=body.role, task=body.task, model=body.model, tools=body.tools,
        parent_id=body.parent_id, engine=body.engine,
    )  # fmt: skip
    return _status(status, 201, Location=f"/v1/agents/{status['id']}")


async def _check_parent(rt: Runtime, parent_id: str) -> None:
    """422 unless `parent_id` names an agent of this log (a typo must not make an orphan)."""
    try:
        await rt.fleet.get_agent_status(parent_id)
    except AgentNotFound:
        raise HTTPProblem(
            422, "Invalid body", f"parent_id: no agent {parent_id!r} in this log",
            slug="invalid-body",
            members={"errors": [{"loc": ["body", "parent_id"], "msg": "no such agent",
                                 "type": "agent_not_found"}]},
        ) from None  # fmt: skip


async def command_agent(request: Request) -> Response:
    rt = runtime_of(request)
    agent_id = check_id(request.path_params["agent_id"])
    parse_query(NoQuery, request)
    body = parse_body(CommandAgent, await read_json(request))
    status = await rt.fleet.command_agent(agent_id, body.prompt, by=body.by)
    return _status(status, 202)


async def get_status(request: Request) -> Response:
    rt = runtime_of(request)
    agent_id = check_id(request.path_params["agent_id"])
    parse_query(NoQuery, request)
    return _status(await rt.fleet.get_agent_status(agent_id))


async def get_output(request: Request) -> Response:
    rt = runtime_of(request)
    agent_id = check_id(request.path_params["agent_id"])
    parse_query(NoQuery, request)
    output = AgentOutput.model_validate(await rt.fleet.get_agent_output(agent_id))
    return JSONResponse(output.model_dump(mode="json"))


async def interrupt_agent(request: Request) -> Response:
    rt = runtime_of(request)
    agent_id = check_id(request.path_params["agent_id"])
    parse_query(NoQuery, request)
    return _status(await rt.fleet.interrupt_agent(agent_id, by="api"))


async def delete_agent(request: Request) -> Response:
    rt = runtime_of(request)
    agent_id = check_id(request.path_params["agent_id"])
    parse_query(NoQuery, request)
    await rt.fleet.delete_agent(agent_id, by="api")
    return Response(status_code=204)


async def delete_all(request: Request) -> Response:
    rt = runtime_of(request)
    run_id = parse_query(DeleteAllQuery, request).run_id
    deleted = await rt.fleet.delete_all_agents(run_id=run_id, by="api")
    return JSONResponse(Deleted(deleted=deleted).model_dump())


async def _check_workspace(rt: Runtime, given: str) -> None:
    """422 unless `given` is an existing folder and the one this server's agents work in.

    A run changes files: the client names the folder, so that a server started
    in the wrong place never edits it silently (issue 14).
    """
    path = await asyncio.to_thread(_folder, given)  # resolving it reads the disk
    if path is None:
        raise HTTPProblem(
            422, "Workspace missing",
            f"workspace {given!r} does not exist or is not a folder; nothing was started",
            slug="workspace-missing",
        )  # fmt: skip
    served = await asyncio.to_thread(rt.fleet.config.workspace.resolve)
    if path != served:
        raise HTTPProblem(
            422, "Workspace not served",
            f"workspace {given!r} is not this server's workspace ({served}); start "
            "`fleet serve --workspace DIR` for another folder; nothing was started",
            slug="workspace-not-served",
        )  # fmt: skip


def _folder(given: str) -> Path | None:
    """`given` as an absolute folder, symlinks resolved; None if it is not one (or cannot
    be: a NUL byte, an unknown `~user`)."""
    try:
        path = Path(given).expanduser().resolve()
        return path if path.is_dir() else None
    except (OSError, RuntimeError, ValueError):
        return None


async def start_run(request: Request) -> Response:
    rt = runtime_of(request)
    parse_query(NoQuery, request)
    body = parse_body(StartRun, await read_json(request))
    await _check_workspace(rt, body.workspace)
    run_id = new_run_id()
    # UnknownModel (422) here, not from inside the run's task (a failed run in the log).
    rt.fleet.models.resolve(body.model or rt.fleet.config.default_model)
    if body.mode == "pattern":
        # A built-in only: a name is also a file in the server's folder to load_pattern.
        if body.pattern not in BUILTIN_PATTERNS:
            known = ", ".join(sorted(BUILTIN_PATTERNS))
            raise PatternError(f"no pattern named {body.pattern!r} (built in: {known})")
        spec = BUILTIN_PATTERNS[body.pattern]
        job = run_pattern(rt.fleet, spec, body.task, model=body.model, run_id=run_id)
    else:
        job = run_orchestrator(rt.fleet, body.task, model=body.model, run_id=run_id)
    task = rt.fleet.start_run(job, name=f"run-{run_id}")
    # 202 once the run is in the log (its RunStarted is its first append), so that
    # `GET /v1/runs` shows it at once; an error before that is this request's error.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while await rt.store.stream_version(f"run-{run_id}") == 0 and loop.time() < deadline:
        if task.done():
            task.result()  # raises what ended the run before it started
            break
        await asyncio.sleep(0.005)
    await rt.runner.wait_for(await rt.store.head(), timeout=5.0)
    return JSONResponse(RunAccepted(run_id=run_id, status="started").model_dump(), status_code=202)


routes: list[BaseRoute] = [
    Route("/agents", create_agent, methods=["POST"]),
    Route("/agents", delete_all, methods=["DELETE"]),
    Route("/agents/{agent_id}/commands", command_agent, methods=["POST"]),
    Route("/agents/{agent_id}/interrupt", interrupt_agent, methods=["POST"]),
    Route("/agents/{agent_id}/status", get_status, methods=["GET"]),
    Route("/agents/{agent_id}/output", get_output, methods=["GET"]),
    Route("/agents/{agent_id}", delete_agent, methods=["DELETE"]),
    Route("/runs", start_run, methods=["POST"]),
]

_AGENT = {"agent_id": "the agent's id"}

operations: list[Operation] = [
    Operation("POST", "/v1/agents", "Create an agent",
              "Creates an agent of a role and, given a task, starts it working.",
              query=NoQuery, body=CreateAgent, response=AgentStatus, status=201,
              errors=(400, 409, 413, 422),
              tag="agents"),
    Operation("DELETE", "/v1/agents", "Delete all agents",
              "Deletes every live agent (of `?run_id=` when given); their events stay in the log.",
              query=DeleteAllQuery, response=Deleted, errors=(400,), tag="agents"),
    Operation("POST", "/v1/agents/{agent_id}/commands", "Command an agent",
              "A new task for an agent; it continues its conversation. 409 if it is working, "
              "deleted, or past a budget.",
              query=NoQuery, body=CommandAgent, response=AgentStatus, status=202,
              errors=(400, 404, 409, 413, 422),
              path_params=_AGENT, tag="agents"),
    Operation("POST", "/v1/agents/{agent_id}/interrupt", "Interrupt an agent",
              "Stops the agent's current turn and keeps the agent (status failed, error "
              "'interrupted by api'); it takes a new command. 409 if it is not working.",
              query=NoQuery, response=AgentStatus, errors=(400, 404, 409), path_params=_AGENT,
              tag="orchestrator"),  # the agents tag is full: Redoc's sidebar folds an 8th
    Operation("GET", "/v1/agents/{agent_id}/status", "An agent's status",
              "Status, context use, tokens, cost and tool calls.",
              query=NoQuery, response=AgentStatus, errors=(400, 404), path_params=_AGENT,
              tag="agents"),
    Operation("GET", "/v1/agents/{agent_id}/output", "An agent's output",
              "Summary, artifacts, files consumed and produced: never the transcript.",
              query=NoQuery, response=AgentOutput, errors=(400, 404), path_params=_AGENT,
              tag="agents"),
    Operation("DELETE", "/v1/agents/{agent_id}", "Delete an agent",
              "Cancels it if working and deletes it; its events stay in the log.",
              query=NoQuery, status=204, errors=(400, 404, 409), path_params=_AGENT, tag="agents"),
    Operation("POST", "/v1/runs", "Start a run",
              "Runs a task with a built-in pattern or the orchestrator agent, in the background. "
              "`workspace` is required: the folder the run changes, which must exist and be the "
              "server's workspace (422 otherwise, nothing started).",
              query=NoQuery, body=StartRun, response=RunAccepted, status=202,
              errors=(400, 413, 422),
              tag="runs"),
]  # fmt: skip
