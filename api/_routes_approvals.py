"""Approvals over HTTP: tool calls on hold for a person, and a person's answer.

    GET  /v1/approvals[?status=pending|allowed|denied|cancelled|all][&agent_id=][&run_id=]
    GET  /v1/approvals/{approval_id}
    POST /v1/approvals/{approval_id}   {"decision": "allow" | "deny", "reason": "...", "who": "..."}

A hook that answers "ask" at PreToolUse puts the call on hold (ApprovalRequested);
the agent sleeps until someone answers here (or `fleet approve` / `fleet deny`),
or its approval timeout denies the call. The answer is `ApprovalDecided` with
`by` = `who` (default "api"); the first answer is the only one (409 after).
These routes need only the log and the projections, not a runtime: the agent
may run in another process on the same log.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runtime import decide_approval
from runtime.errors import ApprovalNotFound

from ._bodies import parse_body, parse_query, read_json
from ._models import Actor, FilterText, NoQuery, Reason
from ._openapi import Operation
from ._routes_views import check_id
from ._state import services
from ._view_models import Approval

__all__ = ["operations", "routes"]


class ApprovalsQuery(BaseModel):
    """`GET /v1/approvals`: which approvals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["pending", "allowed", "denied", "cancelled", "all"] = Field(
        default="pending", description="only approvals in this state (default: pending)"
    )
    agent_id: FilterText | None = Field(default=None, description="only this agent's")
    run_id: FilterText | None = Field(default=None, description="only this run's")


class Decide(BaseModel):
    """`POST /v1/approvals/{approval_id}`: a person's answer."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["allow", "deny"]
    reason: Reason | None = None
    who: Actor = "api"


class Approvals(BaseModel):
    count: int
    approvals: list[Approval]


class Decided(BaseModel):
    approval_id: str
    decision: Literal["allow", "deny"]
    by: str
    position: int


def _agents(request: Request) -> tuple[Any, Any]:
    runner = services(request).runner
    return runner.projection("agents"), runner.state("agents")


async def list_approvals(request: Request) -> Response:
    app = services(request)
    query = parse_query(ApprovalsQuery, request)
    await app.runner.wait_for(await app.store.head())
    projection, state = _agents(request)
    status = None if query.status == "all" else query.status
    found = [
        Approval.model_validate(a)
        for a in projection.approvals_view(state, status)["approvals"]
        if (query.agent_id is None or a["agent_id"] == query.agent_id)
        and (query.run_id is None or a["run_id"] == query.run_id)
    ]
    return JSONResponse(Approvals(count=len(found), approvals=found).model_dump())


async def get_approval(request: Request) -> Response:
    app = services(request)
    parse_query(NoQuery, request)
    approval_id = check_id(request.path_params["approval_id"], "approval id")
    await app.runner.wait_for(await app.store.head())
    projection, state = _agents(request)
    found = projection.approval_view(state, approval_id)
    if found is None:
        raise ApprovalNotFound(approval_id)
    return JSONResponse(Approval.model_validate(found).model_dump())


async def decide(request: Request) -> Response:
    app = services(request)
    parse_query(NoQuery, request)
    approval_id = check_id(request.path_params["approval_id"], "approval id")
    body = parse_body(Decide, await read_json(request))
    recorded = await decide_approval(
        app.store, app.runner, approval_id, decision=body.decision, by=body.who, reason=body.reason
    )
    answer = Decided(
        approval_id=approval_id, decision=body.decision, by=body.who, position=recorded.position
    )
    return JSONResponse(answer.model_dump())


routes: list[BaseRoute] = [
    Route("/approvals", list_approvals, methods=["GET"]),
    Route("/approvals/{approval_id}", get_approval, methods=["GET"]),
    Route("/approvals/{approval_id}", decide, methods=["POST"]),
]

_ID = {"approval_id": "the approval's id (ApprovalRequested.approval_id)"}

operations: list[Operation] = [
    Operation("GET", "/v1/approvals", "Approvals",
              "Tool calls put on hold for a person by a hook answering ask (pending by default).",
              query=ApprovalsQuery, response=Approvals, errors=(400,), tag="approvals"),
    Operation("GET", "/v1/approvals/{approval_id}", "An approval",
              "One approval and, once answered, who answered and how.",
              response=Approval, errors=(400, 404), path_params=_ID, tag="approvals"),
    Operation("POST", "/v1/approvals/{approval_id}", "Answer an approval",
              "Allow or deny a call on hold; `who` is recorded as who answered. 409 when it "
              "was answered already or its agent stopped waiting.",
              body=Decide, response=Decided, errors=(400, 404, 409, 413, 422),
              path_params=_ID, tag="approvals"),
]  # fmt: skip
