"""Read models over HTTP: agents, fleet, graph, board and runs, now or at a past position.

Each view is the projection runner's view, unchanged (`?at=POSITION` folds
the log up to that position instead). `?min_position=P` first waits until the
projections have applied position P: after an append at P, it reads your write.
The position a view reflects is in the `Fleet-Position` header.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runtime.errors import AgentNotFound

from ._bodies import parse_query
from ._models import ID_PATTERN, AgentsQuery, ViewQuery
from ._openapi import Operation
from ._state import Services, services
from .errors import HTTPProblem

__all__ = ["VIEWS", "check_id", "operations", "routes"]

VIEWS = ("fleet", "graph", "board", "runs")
"""The views served as `GET /v1/<name>` (agents has its own routes)."""

_ID = re.compile(ID_PATTERN)


def check_id(value: str, what: str = "agent id") -> str:
    """`value` if it has the shape of an id; else `HTTPProblem` 400 (no lookup happens)."""
    if not _ID.fullmatch(value):
        raise HTTPProblem(
            400, f"Invalid {what}",
            f"{what} {value[:80]!r} is not 1-128 letters, digits or ._:@- starting with a "
            "letter or digit",
            slug="invalid-id",
        )  # fmt: skip
    return value


async def _view(app: Services, name: str, query: ViewQuery) -> tuple[dict[str, Any], int]:
    """The view `name` and the position it reflects."""
    runner = app.runner
    if query.at is not None:
        return await runner.view_at(name, query.at), query.at
    if query.min_position is not None:
        head = await app.store.head()
        if query.min_position > head:
            raise HTTPProblem(
                400, "Invalid position",
                f"min_position {query.min_position} is beyond the head of the log ({head})",
                slug="invalid-position",
            )  # fmt: skip
        await runner.wait_for(query.min_position, timeout=app.config.wait_timeout_s)
    return runner.view(name), runner.position


def _json(body: Any, position: int) -> Response:
    return JSONResponse(body, headers={"Fleet-Position": str(position)})


async def get_view(request: Request) -> Response:
    """`GET /v1/{fleet,graph,board,runs}`: one read model."""
    app = services(request)
    name = request.url.path.rstrip("/").rsplit("/", 1)[1]
    query = parse_query(ViewQuery, request)
    view, position = await _view(app, name, query)
    return _json(view, position)


async def list_agents(request: Request) -> Response:
    """`GET /v1/agents`: every agent card, filtered."""
    app = services(request)
    query = parse_query(AgentsQuery, request, lists=("status",))
    view, position = await _view(app, "agents", query)
    agents = [agent for agent in view.get("agents", []) if _matches(agent, query)]
    if len(agents) != len(view.get("agents", [])):
        view = {**view, "count": len(agents), "agents": agents}
    return _json(view, position)


def _matches(agent: dict[str, Any], q: AgentsQuery) -> bool:
    return (
        (not q.status or agent.get("status") in q.status)
        and (q.role is None or agent.get("role") == q.role)
        and (q.model is None or agent.get("model") == q.model)
        and (q.parent_id is None or agent.get("parent_id") == q.parent_id)
        and (q.run_id is None or agent.get("run_id") == q.run_id)
        and (q.external is None or bool(agent.get("external")) == q.external)
    )


async def get_agent(request: Request) -> Response:
    """`GET /v1/agents/{agent_id}`: one agent card."""
    app = services(request)
    agent_id = check_id(request.path_params["agent_id"])
    query = parse_query(ViewQuery, request)
    if query.at is None and query.min_position is None:
        card = app.runner.agent(agent_id)
        position = app.runner.position
    else:
        view, position = await _view(app, "agents", query)
        card = next((a for a in view.get("agents", []) if a.get("id") == agent_id), None)
    if card is None:
        raise AgentNotFound(agent_id)
    return _json(card, position)


routes: list[BaseRoute] = [
    Route("/agents", list_agents, methods=["GET"]),
    Route("/agents/{agent_id}", get_agent, methods=["GET"]),
    *(Route(f"/{name}", get_view, methods=["GET"], name=f"view_{name}") for name in VIEWS),
]

_OBJECT = {"type": "object"}

_AT = (
    "With `?at=POSITION` the view is folded from the log up to that position (time travel); "
    "with `?min_position=P` it waits until the projections have applied P."
)

operations: list[Operation] = [
    Operation(
        "GET", "/v1/agents", "List agents",
        "Every agent card (status, role, model, context, tokens, cost, files, tool calls), "
        "filtered. " + _AT,
        query=AgentsQuery, errors=(400,), tag="agents", response_schema=_OBJECT,
    ),
    Operation(
        "GET", "/v1/agents/{agent_id}", "Get one agent", "One agent card. " + _AT,
        query=ViewQuery, errors=(400, 404), path_params={"agent_id": "the agent's id"},
        tag="agents", response_schema=_OBJECT,
    ),
    Operation("GET", "/v1/fleet", "Fleet totals",
              "Agents by status, tokens, cost, created and deleted. " + _AT,
              query=ViewQuery, errors=(400,), tag="views", response_schema=_OBJECT),
    Operation("GET", "/v1/graph", "Dependency graph",
              "Who created whom, who waits on whom, which artifacts flow between agents, and "
              "the bottlenecks. " + _AT,
              query=ViewQuery, errors=(400,), tag="views", response_schema=_OBJECT),
    Operation("GET", "/v1/board", "Task board",
              "Tasks by column: PLAN, BUILD, REVIEW, SHIP, DONE, FAILED. " + _AT,
              query=ViewQuery, errors=(400,), tag="views", response_schema=_OBJECT),
    Operation("GET", "/v1/runs", "Runs",
              "Every run: pattern, status, duration, cost. " + _AT,
              query=ViewQuery, errors=(400,), tag="views", response_schema=_OBJECT),
]  # fmt: skip
