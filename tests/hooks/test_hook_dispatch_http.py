"""HTTP hooks: the payload POSTed as JSON to a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from hooks import HookDispatcher, build_payload, load_settings

Serve = Callable[[ASGIApp], AbstractAsyncContextManager[str]]


class Receiver:
    """A hook endpoint that records what it receives and answers per path."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.slow_answered = False
        self.release_slow = asyncio.Event()  # /slow answers once this is set
        self.app = Starlette(routes=[Route("/{mode}", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        self.bodies.append(json.loads(await request.body()))
        self.headers.append(dict(request.headers))
        mode = request.path_params["mode"]
        if mode == "deny":
            return JSONResponse(
                {
                    "hookSpecificOutput": {
                        "hookEventName": "PreToolUse",
                        "permissionDecision": "deny",
                        "permissionDecisionReason": "policy server says no",
                    }
                }
            )
        if mode == "fail":
            return PlainTextResponse("database down", status_code=500)
        if mode == "slow":
            await self.release_slow.wait()
            self.slow_answered = True
        if mode == "garbage":
            return PlainTextResponse("{oops")
        if mode == "huge":  # valid JSON, but over the 1 MiB read
            return JSONResponse({"systemMessage": "x" * 2_000_000})
        return Response(status_code=204)


@pytest.fixture
async def receiver(serve: Serve) -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    async with serve(rec.app) as url:
        try:
            yield rec, url
        finally:
            rec.release_slow.set()


def http_settings(point: str, *urls: str, timeout: float = 10, **extra: Any) -> Any:
    hooks = [{"type": "http", "url": u, "timeout": timeout, **extra} for u in urls]
    return load_settings({"hooks": {point: [{"hooks": hooks}]}})


def post_tool(i: int) -> dict[str, Any]:
    return build_payload(
        "PostToolUse",
        session_id="s1",
        agent_id="scout-1",
        run_id="r1",
        tool_name="Grep",
        tool_input={"pattern": f"needle {i}"},
        tool_use_id=f"toolu_{i}",
        tool_response={"matches": i},
        usage={"input_tokens": 100 * i, "cost_usd": 0.001 * i},
    )


def pre_tool() -> dict[str, Any]:
    return build_payload(
        "PreToolUse",
        session_id="s1",
        tool_name="Bash",
        tool_input={"command": "deploy"},
        tool_use_id="t",
    )


async def test_a_post_tool_use_http_hook_receives_every_call_in_order(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    payloads = [post_tool(i) for i in range(5)]
    async with HookDispatcher(http_settings("PostToolUse", f"{url}/record")) as hooks:
        outcomes = [await hooks.dispatch("PostToolUse", p) for p in payloads]
    assert rec.bodies == payloads
    assert rec.headers[0]["content-type"] == "application/json"
    for outcome in outcomes:
        [inv] = outcome.invocations
        assert (inv.kind, inv.hook, inv.decision) == ("http", f"{url}/record", "none")
        assert inv.agent_id == "scout-1"


async def test_an_http_hook_can_deny(receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    async with HookDispatcher(http_settings("PreToolUse", f"{url}/deny")) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert outcome.blocked
    assert outcome.reason == "policy server says no"
    assert outcome.invocations[0].decision == "deny"


@pytest.mark.parametrize(
    ("path", "decision", "words"),
    [
        ("fail", "error", "HTTP 500: database down"),
        ("garbage", "error", "not valid JSON"),
        ("huge", "error", "the answer is over 1048576 bytes and was read that far: output is"),
    ],
)
async def test_a_failing_http_hook_never_blocks(
    receiver: tuple[Receiver, str], path: str, decision: str, words: str
) -> None:
    _, url = receiver
    async with HookDispatcher(http_settings("PreToolUse", f"{url}/{path}")) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert not outcome.blocked
    assert outcome.invocations[0].decision == decision
    assert words in (outcome.invocations[0].reason or "")


async def test_a_slow_http_hook_times_out_without_waiting_for_the_answer(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    async with HookDispatcher(http_settings("PreToolUse", f"{url}/slow", timeout=0.2)) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
        assert not rec.slow_answered  # the endpoint still holds its answer (until the test ends)
    assert outcome.invocations[0].decision == "timeout"
    assert "0.2 s" in (outcome.invocations[0].reason or "")
    assert not outcome.blocked


async def test_a_server_that_is_down_is_an_error() -> None:
    config = http_settings("PreToolUse", "http://127.0.0.1:9/hook", timeout=30)
    async with HookDispatcher(config) as hooks:
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert not outcome.blocked
    assert outcome.invocations[0].decision == "error"
    assert "request failed" in (outcome.invocations[0].reason or "")


async def test_headers_expand_only_the_allowed_variables(
    receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec, url = receiver
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    monkeypatch.setenv("OTHER_SECRET", "leak")
    config = http_settings(
        "PreToolUse",
        f"{url}/record",
        headers={"Authorization": "Bearer $HOOK_TOKEN", "X-Other": "${OTHER_SECRET}!"},
        allowedEnvVars=["HOOK_TOKEN"],
    )
    async with HookDispatcher(config) as hooks:
        await hooks.dispatch("PreToolUse", pre_tool())
    assert rec.headers[0]["authorization"] == "Bearer s3cret"
    assert rec.headers[0]["x-other"] == "!"


async def test_command_and_http_hooks_run_side_by_side(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    config = load_settings(
        {
            "PreToolUse": [
                {
                    "matcher": "Bash",
                    "hooks": [
                        {"type": "command", "command": "cat >/dev/null; exit 0"},
                        {"type": "http", "url": f"{url}/deny"},
                    ],
                }
            ]
        }
    )
    async with HookDispatcher(config) as hooks:
        hooks.add_python("PreToolUse", lambda p: None, name="audit")
        outcome = await hooks.dispatch("PreToolUse", pre_tool())
    assert [(i.kind, i.decision) for i in outcome.invocations] == [
        ("command", "none"),
        ("http", "deny"),
        ("python", "none"),
    ]
    assert outcome.blocked
    assert len(rec.bodies) == 1
