"""Talking to the orchestrator over HTTP.

    POST /v1/orchestrator/messages            {"text": ..., "conversation_id": null} -> 202
    GET  /v1/orchestrator/conversations/{id}  the conversation so far (from the log)

A message is accepted (202) once it is in the log; the orchestrator's answer
comes later as a `ChatMessagePosted` event of role "orchestrator" in the
stream `chat-<conversation_id>`, so every SSE observer sees it
(`/v1/events/stream?type=ChatMessagePosted`). `runtime._chat` has the rest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runtime import CONVERSATION_ID_PATTERN

from ._bodies import parse_body, parse_query, read_json
from ._models import Actor, NoQuery
from ._openapi import Operation
from ._routes_agents import runtime_of
from ._routes_views import check_id
from .errors import HTTPProblem

__all__ = ["operations", "routes"]

_CONVERSATION = {"conversation_id": "the conversation's id"}


class PostMessage(BaseModel):
    """`POST /v1/orchestrator/messages`: prose for the orchestrator, or a slash command."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=100_000)
    conversation_id: str | None = Field(
        default=None, pattern=CONVERSATION_ID_PATTERN,
        description="the conversation to continue; a new id (or null) starts one",
    )  # fmt: skip
    author: Actor = "api"


class MessageAccepted(BaseModel):
    conversation_id: str
    position: int


class Message(BaseModel):
    position: int
    conversation_id: str
    role: Literal["user", "orchestrator"]
    text: str
    author: str
    reply_to: int | None
    agent_id: str | None
    recorded_at: str


class ConversationView(BaseModel):
    conversation_id: str
    run_id: str
    orchestrator_id: str | None
    pending: int = Field(description="prose messages the orchestrator has not answered yet")
    messages: list[Message]


async def post_message(request: Request) -> Response:
    rt = runtime_of(request)
    parse_query(NoQuery, request)
    body = parse_body(PostMessage, await read_json(request))
    if not body.text.strip():
        raise HTTPProblem(
            422, "Invalid body", "text: must not be blank", slug="invalid-body",
            members={"errors": [{"loc": ["body", "text"], "msg": "must not be blank",
                                 "type": "blank"}]},
        )  # fmt: skip
    posted = await rt.fleet.chat.post(body.text, body.conversation_id, author=body.author)
    # Read your writes: a GET of the conversation right after this sees the message.
    await rt.runner.wait_for(posted.position, timeout=5.0)
    accepted = MessageAccepted(conversation_id=posted.conversation_id, position=posted.position)
    return JSONResponse(
        accepted.model_dump(),
        status_code=202,
        headers={"Location": f"/v1/orchestrator/conversations/{posted.conversation_id}"},
    )


async def get_conversation(request: Request) -> Response:
    rt = runtime_of(request)
    conversation_id = check_id(request.path_params["conversation_id"])
    parse_query(NoQuery, request)
    conversation = await rt.fleet.chat.conversation(conversation_id)
    view = ConversationView.model_validate(conversation.to_dict())
    return JSONResponse(view.model_dump(mode="json"))


routes: list[BaseRoute] = [
    Route("/orchestrator/messages", post_message, methods=["POST"]),
    Route("/orchestrator/conversations/{conversation_id}", get_conversation, methods=["GET"]),
]

operations: list[Operation] = [
    Operation("POST", "/v1/orchestrator/messages", "Talk to the orchestrator",
              "Posts a message (prose, or a slash command such as `/status`) to a conversation "
              "with the orchestrator; 202 once it is in the log. The answer is a "
              "`ChatMessagePosted` event of role `orchestrator` (SSE, or the conversation).",
              query=NoQuery, body=PostMessage, response=MessageAccepted, status=202,
              errors=(400, 413, 422), tag="orchestrator"),
    Operation("GET", "/v1/orchestrator/conversations/{conversation_id}", "A conversation",
              "The conversation's messages so far, in order, and how many await an answer.",
              query=NoQuery, response=ConversationView, errors=(400, 404),
              path_params=_CONVERSATION, tag="orchestrator"),
]  # fmt: skip
