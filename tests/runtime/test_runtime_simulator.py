"""The offline simulator speaks the Messages API: streaming, JSON, count_tokens, errors, retries.

Every request goes over loopback HTTP, through the official SDK where a user's
code would use it, and through raw httpx where the wire format itself is checked.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Generator
from typing import Any

import anthropic
import httpx
import pytest

from runtime import Simulator, worker_toolbox
from runtime._compaction import COMPACTION_PROMPT
from runtime.simulator import Call, ErrorReply, Observation, Situation, Turn, count_request_tokens

TOOLS = worker_toolbox().definitions()
SCOUT = "Role: scout"
TASK = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."


def sdk(sim: Simulator, **options: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sim-offline", **options)


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 1024,
        "system": SCOUT,
        "messages": [{"role": "user", "content": TASK}],
        "tools": TOOLS,
        **extra,
    }


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_a_stream_has_the_api_event_sequence(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"x-api-key": "k"}) as http:
        response = await http.post("/v1/messages", json=body(stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 2
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert {"text_delta", "input_json_delta"} <= set(deltas)
    start = events[0][1]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens"] > 1


async def test_the_sdk_assembles_the_stream_into_a_tool_call(sim: Simulator) -> None:
    async with sdk(sim) as client, client.messages.stream(**body()) as stream:
        message = await stream.get_final_message()
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "text"
    call = message.content[1]
    assert call.type == "tool_use"
    assert call.name == "Grep"
    assert call.input == {
        "pattern": r"\bcount_words\b",
        "output_mode": "content",
        "-n": True,
        "glob": "*.py",
    }
    assert call.id.startswith("toolu_sim_")


async def test_streamed_and_plain_answers_are_the_same_message(sim: Simulator) -> None:
    async with sdk(sim) as client:
        plain = await client.messages.create(**body())
        async with client.messages.stream(**body()) as stream:
            streamed = await stream.get_final_message()
    assert plain.model_dump() == streamed.model_dump()


async def test_the_answer_is_a_pure_function_of_the_request(sim: Simulator) -> None:
    async with sdk(sim) as client:
        first = await client.messages.create(**body())
        second = await client.messages.create(**body())
        other = await client.messages.create(**body(system="Role: planner"))
    assert first.id == second.id
    assert first.content == second.content
    assert other.id != first.id


async def test_count_tokens_agrees_with_the_usage_of_the_answer(sim: Simulator) -> None:
    long_task = TASK + "\n" + "context " * 2000
    request = body(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": long_task, "cache_control": {"type": "ephemeral"}}
                ],
            }
        ]
    )
    async with sdk(sim) as client:
        counted = await client.messages.count_tokens(
            model=request["model"],
            system=request["system"],
            messages=request["messages"],
            tools=request["tools"],
        )
        message = await client.messages.create(**request)
    usage = message.usage
    total = (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    assert counted.input_tokens == total == count_request_tokens(request)
    assert usage.cache_creation_input_tokens == total  # all of it up to the breakpoint is written
    assert usage.cache_creation.ephemeral_5m_input_tokens == total
    assert sim.stats.count_tokens == 1


async def test_a_later_turn_reads_the_earlier_prefix_from_the_cache(sim: Simulator) -> None:
    mark = {"type": "ephemeral"}
    task = TASK + "\n" + "context " * 2000
    messages = [
        {"role": "user", "content": task},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "Grep", "input": {"pattern": "x"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": "no matches",
                    "cache_control": mark,
                }
            ],
        },
    ]
    async with sdk(sim) as client:
        message = await client.messages.create(**body(messages=messages))
    usage = message.usage
    assert usage.cache_read_input_tokens > 2000
    assert usage.cache_creation_input_tokens > 0
    assert usage.input_tokens == 0


async def test_a_missing_key_gets_the_api_authentication_error(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        response = await http.post("/v1/messages", json=body())
    assert response.status_code == 401
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "authentication_error"


async def test_an_unknown_model_is_not_found(sim: Simulator) -> None:
    async with sdk(sim, max_retries=0) as client:
        with pytest.raises(anthropic.NotFoundError) as info:
            await client.messages.create(**body(model="claude-nope"))
    assert info.value.body["error"] == {"type": "not_found_error", "message": "model: claude-nope"}


async def test_a_tool_use_without_its_result_is_an_invalid_request(sim: Simulator) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Grep", "input": {}}],
        },
        {"role": "user", "content": "and?"},
    ]
    async with sdk(sim, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(**body(messages=messages))
    assert "`tool_use` ids were found without `tool_result` blocks immediately after: t1" in str(
        info.value
    )


async def test_a_prompt_over_the_context_window_is_too_long(sim: Simulator) -> None:
    huge = "x" * (4 * 210_000)
    async with sdk(sim, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
            await client.messages.create(**body(messages=[{"role": "user", "content": huge}]))


async def test_a_429_is_retried_by_the_sdk_after_retry_after(sim: Simulator) -> None:
    sim.inject_faults(status=429, count=1, retry_after=0)
    async with sdk(sim, max_retries=2) as client, client.messages.stream(**body()) as stream:
        message = await stream.get_final_message()
    assert message.stop_reason == "tool_use"
    assert (sim.stats.requests, sim.stats.faults, sim.stats.responses) == (2, 1, 1)


async def test_529_until_the_retries_run_out_raises_overloaded(sim: Simulator) -> None:
    sim.inject_faults(status=529, count=5, retry_after=0)
    async with sdk(sim, max_retries=2) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(**body())
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"
    assert sim.stats.requests == 3
    sim.clear_faults()


async def test_a_fault_sends_retry_after_headers(sim: Simulator) -> None:
    sim.inject_faults(status=429, retry_after=2.5)
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"x-api-key": "k"}) as http:
        response = await http.post("/v1/messages", json=body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["retry-after-ms"] == "2500"
    assert response.json()["error"]["type"] == "rate_limit_error"


async def test_a_compaction_request_gets_a_summary_that_carries_the_progress(
    sim: Simulator,
) -> None:
    messages = [
        {"role": "user", "content": TASK},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "Grep", "input": {"pattern": "x"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "a.py:1:count_words"},
                {"type": "text", "text": COMPACTION_PROMPT},
            ],
        },
    ]
    async with sdk(sim) as client:
        message = await client.messages.create(**body(messages=messages))
    assert message.stop_reason == "end_turn"
    text = message.content[0].text
    assert "offline simulator" in text
    assert "<simulator-state>" in text
    assert "a.py:1:count_words" in text


def _echo(situation: Situation) -> Generator[Turn, list[Observation], str]:
    seen = yield Turn("Listing.", [Call("Glob", {"pattern": "*.md"})])
    return f"{situation.role} saw: {seen[0].content}"


async def test_a_registered_policy_plays_its_role(sim: Simulator) -> None:
    sim.register_policy("echo", _echo)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    async with sdk(sim) as client:
        first = await client.messages.create(**body(system="Role: echo", messages=messages))
        call = first.content[1]
        messages += [
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in first.content],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "README.md"}
                ],
            },
        ]
        second = await client.messages.create(**body(system="Role: echo", messages=messages))
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "echo saw: README.md"


async def test_a_role_without_a_script_gets_the_generic_policy(sim: Simulator) -> None:
    async with sdk(sim) as client:
        message = await client.messages.create(**body(system="Role: poet", tools=[]))
    assert message.stop_reason == "end_turn"
    assert message.content[0].text.startswith("(offline simulator, role poet)")


async def test_the_simulator_refuses_use_when_not_running() -> None:
    sim = Simulator()
    with pytest.raises(Exception, match="not running"):
        _ = sim.base_url
    await sim.start()
    await sim.aclose()
    await sim.aclose()
    with pytest.raises(Exception, match="not running"):
        _ = sim.base_url


async def test_closing_ends_an_answer_in_flight_at_once_and_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A host that stops (Ctrl-C) closes its simulator with answers in their pause: they
    end with a 503 there and then, instead of being cancelled later (uvicorn logs each
    cancelled one with its traceback)."""
    sim = Simulator(latency_s=600.0)
    await sim.start()
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"x-api-key": "k"}) as http:
        asking = asyncio.create_task(http.post("/v1/messages", json=body()))
        async with asyncio.timeout(60):
            while sim.stats.requests == 0:
                await asyncio.sleep(0.01)
        async with asyncio.timeout(60):  # not the 600 s pause
            await sim.aclose()
            response = await asking
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "the simulator is closing"
    assert response.headers["x-should-retry"] == "false"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def _broken(situation: Situation) -> Generator[Turn, list[Observation], str]:
    raise ValueError("oops")
    yield  # a generator


async def test_a_broken_policy_is_a_500_that_names_it_and_is_not_retried(sim: Simulator) -> None:
    sim.register_policy("broken", _broken)
    async with sdk(sim, max_retries=2) as client:
        with pytest.raises(anthropic.InternalServerError, match="policy failed: ValueError: oops"):
            await client.messages.create(**body(system="Role: broken"))
    assert sim.stats.requests == 1


THOUGHT = {"type": "thinking", "thinking": "The user wants a haiku.", "signature": "sig-1"}


async def _thinking_responder(body: dict[str, Any]) -> dict[str, Any] | ErrorReply:
    """A responder of one's own: a fixed message with a thinking block, or a 429 for 'busy'."""
    if body["messages"][-1]["content"] == "busy":
        return ErrorReply(429, "too many requests today")
    return {
        "id": "msg_own_1", "type": "message", "role": "assistant", "model": body["model"],
        "content": [THOUGHT, {"type": "text", "text": "Autumn moonlight"}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 7, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 5},
    }  # fmt: skip


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
async def test_a_responder_answers_through_the_same_checks_and_streaming(stream: bool) -> None:
    async with Simulator(responder=_thinking_responder) as sim, sdk(sim, max_retries=0) as client:
        request = body(messages=[{"role": "user", "content": "a haiku"}])
        if stream:
            async with client.messages.stream(**request) as answer:
                message = await answer.get_final_message()
        else:
            message = await client.messages.create(**request)
        assert [b.type for b in message.content] == ["thinking", "text"]
        assert message.content[0].thinking == THOUGHT["thinking"]  # type: ignore[union-attr]
        assert message.content[0].signature == "sig-1"  # type: ignore[union-attr]
        assert message.content[1].text == "Autumn moonlight"  # type: ignore[union-attr]
        assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 5)

        with pytest.raises(anthropic.RateLimitError, match="too many requests today"):
            await client.messages.create(**body(messages=[{"role": "user", "content": "busy"}]))
        with pytest.raises(anthropic.NotFoundError):  # the server's own checks come first
            await client.messages.create(**body(model="claude-nonexistent"))
    assert (sim.stats.requests, sim.stats.responses) == (3, 1)


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("rename `count_words` to `word_count`", [("count_words", "word_count")]),
        ("rename count_words to word_count", [("count_words", "word_count")]),
        ("Rename the function count_words to word_count.", [("count_words", "word_count")]),
        ("rename a.b to c, then rename `d e` to f", [("a.b", "c"), ("d e", "f")]),
        ("rename it to word_count", []),
        ("explain how words are counted", []),
    ],
)
def test_the_simulated_roles_read_renames_with_or_without_backticks(
    task: str, expected: list[tuple[str, str]]
) -> None:
    from runtime.simulator._roles import find_directives

    situation = Situation(role="builder", system="", task=task, prompt=task, tools=frozenset())
    found = find_directives(situation)
    assert [(d.old, d.new) for d in found] == expected
    assert all(d.kind == "rename" for d in found)
