"""The simulator accepts the request shapes the Messages API documents and refuses what it refuses.

Requests go through the official SDK's beta client where a program would send
them (so `?beta=true` and the `anthropic-beta` header are on the wire), and
through raw httpx where the exact body matters.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from runtime import Simulator

NEW = "claude-opus-5-5"  # accepts system messages, refuses temperature
OLD = "claude-sonnet-4-5"  # the reverse
KEY = {"x-api-key": "sim-offline", "anthropic-version": "2023-06-01"}
USER = {"role": "user", "content": "Hello"}


def sdk(sim: Simulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sim-offline", max_retries=0)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": NEW, "max_tokens": 1024, "messages": [USER], **extra}


async def post(
    sim: Simulator, payload: dict[str, Any], path: str = "/v1/messages", **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        return await http.post(path, json=payload, headers={**KEY, **headers})


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return str(error["message"])


async def test_claude_codes_request_shape_streams_an_answer(sim: Simulator) -> None:
    """A system message after the user turn, adaptive thinking, effort, context management."""
    system = [{"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}]
    environment = [{"type": "text", "text": "# Environment\ncwd: /w"}]
    async with (
        sdk(sim) as client,
        client.beta.messages.stream(
            model=NEW,
            max_tokens=128_000,
            system=system,
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "look around"}]},
                {"role": "system", "content": environment},
            ],
            thinking={"type": "adaptive", "display": "omitted"},
            output_config={"effort": "medium"},
            context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            metadata={"user_id": '{"session_id":"s1"}'},
            betas=["claude-code-20250219", "per-turn-control-2026-07-01"],
        ) as stream,
    ):
        message = await stream.get_final_message()
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert sim.stats.betas == {"claude-code-20250219": 1, "per-turn-control-2026-07-01": 1}


async def test_the_system_message_is_not_taken_for_the_prompt(sim: Simulator) -> None:
    messages = [USER, {"role": "system", "content": "# Environment\nsomething else"}]
    async with sdk(sim) as client:
        message = await client.beta.messages.create(**body(messages=messages))
    assert "Received: Hello" in message.content[0].text


async def test_an_older_model_refuses_a_system_message(sim: Simulator) -> None:
    messages = [USER, {"role": "system", "content": "be brief"}]
    response = await post(sim, body(model=OLD, messages=messages))
    assert refusal(response) == "messages.1.role: 'system' is not supported on this model"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "system", "content": "first"}, USER],
            "messages.0: a system message must immediately follow a user message",
        ),
        (
            [USER, {"role": "assistant", "content": "Hi"}, {"role": "system", "content": "x"}],
            "messages.2: a system message must immediately follow a user message",
        ),
        ([USER, {"role": "system", "content": []}], "messages.1: a system message needs content"),
        (
            [USER, {"role": "system", "content": [{"type": "image", "source": {}}]}],
            "messages.1.content.0.type: Input should be",
        ),
        (
            [USER, {"role": "system", "content": "x", "clear_at": "later"}],
            "messages.1.clear_at: Input should be 'next_user_message' or 'never'",
        ),
        (
            [{**USER, "clear_at": "never"}],
            "messages.0.clear_at: Extra inputs are not permitted",
        ),
        ([{"role": "tool", "content": "x"}], "messages.0.role: must be 'user', 'assistant' or"),
    ],
)
async def test_a_misplaced_or_malformed_system_message_is_refused(
    sim: Simulator, messages: list[dict[str, Any]], expected: str
) -> None:
    response = await post(sim, body(messages=messages))
    assert refusal(response).startswith(expected)


async def test_a_system_message_may_carry_its_own_effort_and_clear_at(sim: Simulator) -> None:
    system = {
        "role": "system",
        "content": "think harder",
        "clear_at": "next_user_message",
        "output_config": {"effort": "high"},
    }
    response = await post(sim, body(messages=[USER, system]))
    assert response.status_code == 200, response.text


async def test_a_tool_result_then_a_system_message_keeps_the_pairing(sim: Simulator) -> None:
    messages = [
        USER,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
        {"role": "system", "content": "a reminder"},
    ]
    tools = [{"name": "x", "input_schema": {"type": "object"}}]
    response = await post(sim, body(messages=messages, tools=tools))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type: Input should be"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 100}},
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "`max_tokens` must be greater than `thinking.budget_tokens`.",
        ),
        ({"thinking": {"type": "adaptive", "display": "loud"}}, "thinking.display: Input should"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort: Input should be"),
        ({"output_config": {"format": {"type": "xml"}}}, "output_config.format: Input should"),
        (
            {"context_management": {"edits": [{"type": "forget_everything"}]}},
            "context_management.edits.0.type: Input should be",
        ),
        ({"metadata": {"user_id": "u", "email": "a@b"}}, "metadata.email: Extra inputs"),
        ({"metadata": {"user_id": "u" * 257}}, "metadata.user_id: String should have at most 256"),
        ({"temperature": 0.5}, "`temperature` is deprecated for this model."),
        ({"max_tokens": 128_001}, "max_tokens: 128001 > 128000, which is the maximum allowed"),
        ({"max_tokens": -1}, "max_tokens: Field required"),
        ({"stream": "yes"}, "stream: Input should be a valid boolean"),
        ({"tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name: no tool named"),
        (
            {
                "thinking": {"type": "adaptive"},
                "tool_choice": {"type": "any"},
                "tools": [{"name": "x", "input_schema": {"type": "object"}}],
            },
            "Thinking may not be enabled when tool_choice forces tool use.",
        ),
        (
            {"tools": [{"name": "a b", "input_schema": {"type": "object"}}]},
            "tools.0.custom.name: String should match pattern",
        ),
        (
            {"tools": [{"name": "x", "input_schema": {"type": "object"}}] * 2},
            "tools: Tool names must be unique.",
        ),
        ({"tools": [{"name": "x"}]}, "tools.0.custom.input_schema: Field required"),
        ({"tools": [{"type": "teleport", "name": "t"}]}, "tools.0.type: unknown tool type"),
    ],
)
async def test_what_the_api_refuses_the_simulator_refuses(
    sim: Simulator, extra: dict[str, Any], expected: str
) -> None:
    response = await post(sim, body(**extra))
    assert refusal(response).startswith(expected)
    assert sim.stats.responses == 0


async def test_an_older_model_takes_temperature_in_range(sim: Simulator) -> None:
    assert (await post(sim, body(model=OLD, temperature=0.2, top_k=5))).status_code == 200
    response = await post(sim, body(model=OLD, temperature=1.5))
    assert refusal(response) == "temperature: Input should be a number between 0 and 1"


async def test_api_version_2026_10_21_refuses_sampling_for_every_model(sim: Simulator) -> None:
    response = await post(sim, body(model=OLD, top_p=0.9), **{"anthropic-version": "2026-10-21"})
    assert refusal(response) == "`top_p` is not supported in API version 2026-10-21"


async def test_server_tools_are_accepted_and_never_called(sim: Simulator) -> None:
    tools = [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"name": "Lookup", "input_schema": {"type": "object"}, "defer_loading": True,
         "strict": True, "eager_input_streaming": None, "input_examples": [{}]},
    ]  # fmt: skip
    async with sdk(sim) as client:
        message = await client.beta.messages.create(**body(tools=tools))
    assert message.stop_reason == "end_turn"
    assert all(block.type == "text" for block in message.content)


async def test_max_tokens_zero_warms_the_cache_and_says_nothing(sim: Simulator) -> None:
    system = [{"type": "text", "text": "x" * 8000, "cache_control": {"type": "ephemeral"}}]
    async with sdk(sim) as client:
        message = await client.messages.create(**body(max_tokens=0, system=system))
    assert message.content == []
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 0
    assert message.usage.cache_creation_input_tokens > 0


async def test_count_tokens_takes_system_messages_and_refuses_max_tokens(sim: Simulator) -> None:
    messages = [USER, {"role": "system", "content": "be brief"}]
    async with sdk(sim) as client:
        counted = await client.beta.messages.count_tokens(
            model=NEW,
            messages=messages,
            thinking={"type": "adaptive"},
        )
    assert counted.input_tokens > 0
    response = await post(sim, body(), path="/v1/messages/count_tokens")
    assert refusal(response) == "max_tokens: Extra inputs are not permitted"


async def test_models_are_listed_newest_first_and_paged(sim: Simulator) -> None:
    async with sdk(sim) as client:
        everything = [m async for m in client.models.list(limit=3)]
        first = await client.models.list(limit=2)
        second = await client.models.list(limit=2, after_id=first.data[-1].id)
        opus = await client.models.retrieve("opus")
        with pytest.raises(anthropic.NotFoundError):
            await client.models.retrieve("claude-nope")
    ids = [m.id for m in everything]
    assert sorted(ids) == sorted(m.id for m in sim.models)
    assert [m.id for m in first.data] + [m.id for m in second.data] == ids[:4]
    dates = [m.created_at for m in everything]
    assert dates == sorted(dates, reverse=True)
    assert opus.id == NEW
    assert opus.display_name == "Claude Opus 5.5"
    assert opus.max_input_tokens == 1_000_000
    assert opus.max_tokens == 128_000


async def test_models_need_a_key_too(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        response = await http.get("/v1/models")
    assert response.status_code == 401


async def test_tool_choice_none_gets_an_answer_without_tool_calls(sim: Simulator) -> None:
    tools = [{"name": n, "input_schema": {"type": "object"}} for n in ("Read", "Edit", "Bash")]
    prompt = [{"role": "user", "content": "rename `a` to `b`"}]
    async with sdk(sim) as client:
        free = await client.messages.create(**body(messages=prompt, tools=tools))
        told = await client.messages.create(
            **body(messages=prompt, tools=tools, tool_choice={"type": "none"})
        )
    assert free.stop_reason == "tool_use"
    assert told.stop_reason == "end_turn"
    assert [b.type for b in told.content] == ["text"]
