"""The model client reads a streamed answer as the SDK's own accumulator does, and shares pools.

The streams are the simulator's, fetched through the real SDK; what `MessageStreamReader`
makes of their bytes is compared with what `messages.stream()` makes of the same answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest
from rt_support import make_agent

from events import EventStore
from runtime import ModelClient, Simulator
from runtime._client import blocks_to_dicts, usage_from_dict
from runtime._client_pools import AGENTS_PER_CLIENT, ClientPools
from runtime._message_stream import MessageStreamReader, StreamError, StreamInvalid
from runtime.simulator import ErrorReply

TASK = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."
THOUGHT = {"type": "thinking", "thinking": "Let me think, « at length » … " * 5, "signature": "s-1"}
TOOL_INPUT = {"path": "notes/ünïcode.md", "content": "line\n" * 40, "n": [1, 2.5, None, True]}


async def _own(body: dict[str, Any]) -> dict[str, Any] | ErrorReply:
    """A thinking block, a long text and a tool call whose input spans many deltas."""
    return {
        "id": "msg_own_2", "type": "message", "role": "assistant", "model": body["model"],
        "content": [
            THOUGHT,
            {"type": "text", "text": "Here is the plan — " * 20},
            {"type": "tool_use", "id": "toolu_1", "name": "write", "input": TOOL_INPUT},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 7, "cache_creation_input_tokens": 3,
                  "cache_read_input_tokens": 2, "output_tokens": 50},
    }  # fmt: skip


def _request(model: str = "claude-haiku-4-5") -> dict[str, Any]:
    return {"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": TASK}]}


async def _bytes(sim: Simulator, request: dict[str, Any]) -> bytes:
    sdk = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sim")
    async with sdk, sdk.messages.with_streaming_response.create(**request, stream=True) as r:
        raw: bytes = await r.read()
        return raw


async def _sdk_message(sim: Simulator, request: dict[str, Any]) -> Any:
    sdk = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sim")
    async with sdk, sdk.messages.stream(**request) as stream:
        return await stream.get_final_message()


def _read(raw: bytes, step: int) -> dict[str, Any]:
    reader = MessageStreamReader()
    for i in range(0, len(raw), step):
        reader.feed(raw[i : i + step])
    return reader.message()


def _sdk_blocks(message: Any) -> list[dict[str, Any]]:
    """The SDK accumulator's content blocks, as fleet keeps a response's content."""
    return blocks_to_dicts([block.model_dump(mode="json") for block in message.content])


@pytest.mark.parametrize("fault", [None, "max_tokens", "pause_turn", "refusal"])
async def test_the_reader_makes_what_the_sdks_accumulator_makes(fault: str | None) -> None:
    async with Simulator(chunk_chars=7) as sim:
        if fault is not None:
            sim.inject_faults(mid_stream=fault, count=1)  # type: ignore[arg-type]
        raw = await _bytes(sim, _request())
        if fault is not None:
            sim.inject_faults(mid_stream=fault, count=1)  # type: ignore[arg-type]
        expected = await _sdk_message(sim, _request())
    # Whole, a byte at a time, and in odd chunks; with CRLF line ends too.
    for body, step in [(raw, len(raw)), (raw, 1), (raw, 13), (raw.replace(b"\n", b"\r\n"), 5)]:
        message = _read(body, step)
        assert blocks_to_dicts(message["content"]) == _sdk_blocks(expected)
        assert usage_from_dict(message["usage"]) == usage_from_dict(expected.usage.model_dump())
        assert (message["id"], message["stop_reason"]) == (expected.id, expected.stop_reason)


async def test_thinking_long_text_and_a_long_tool_input_read_the_same() -> None:
    async with Simulator(responder=_own, chunk_chars=5) as sim:
        raw = await _bytes(sim, _request())
        expected = await _sdk_message(sim, _request())
    message = _read(raw, 3)
    assert blocks_to_dicts(message["content"]) == _sdk_blocks(expected)
    assert message["content"][2]["input"] == TOOL_INPUT
    assert usage_from_dict(message["usage"]) == usage_from_dict(expected.usage.model_dump())


def test_an_error_event_and_a_body_that_is_no_message_are_told_apart() -> None:
    start = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{}}}\n\n'
    )
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    reader = MessageStreamReader()
    reader.feed(start)
    with pytest.raises(StreamError) as raised:
        reader.feed(b": a comment\n\nevent: ping\ndata: {}\n\n" + error)
    assert (raised.value.type, raised.value.message) == ("overloaded_error", "Overloaded")

    with pytest.raises(StreamInvalid, match="before its message began"):
        MessageStreamReader().message()
    with pytest.raises(StreamInvalid, match="before 'message_start'"):
        MessageStreamReader().feed(
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        )
    with pytest.raises(StreamInvalid):
        MessageStreamReader().feed(b"event: message_start\ndata: {not json\n\n")


def _pools() -> tuple[ClientPools, list[anthropic.AsyncAnthropic]]:
    """Pools whose clients (never used for a request) are listed as they are made."""
    made: list[anthropic.AsyncAnthropic] = []

    def make() -> anthropic.AsyncAnthropic:
        made.append(anthropic.AsyncAnthropic(base_url="http://127.0.0.1:9", api_key="sim"))
        return made[-1]

    return ClientPools(make(), make), made


async def test_agents_share_an_sdk_client_a_few_at_a_time_and_keep_theirs() -> None:
    pools, made = _pools()
    first = made[0]
    try:
        n = AGENTS_PER_CLIENT
        agents = 2 * n + n // 2
        clients = [pools.client_for(f"a{i}") for i in range(agents)]
        assert pools.count == 3 and clients[:n] == [first] * n
        assert [clients.count(c) for c in made] == [n, n, n // 2]
        assert [pools.client_for(f"a{i}") for i in range(agents)] == clients  # each keeps its own
        for i in range(agents):  # their requests end: each still counts (its connection is warm)
            pools.done(f"a{i}")
            pools.done(f"a{i}")
        assert [pools.client_for(f"a{i}") for i in range(agents)] == clients
        assert pools.count == 3
        assert pools.client_for(None) is first
        alone = ClientPools(first)  # no way to make more: one client for all
        assert {alone.client_for(f"a{i}") for i in range(40)} == {first}
    finally:
        await pools.aclose()


async def test_an_agent_let_go_gives_its_place_at_once_unless_a_request_is_in_flight() -> None:
    pools, made = _pools()
    first = made[0]
    try:
        for i in range(40):  # one after another, each let go when done: all on the first
            assert pools.client_for(f"a{i}") is first
            pools.done(f"a{i}")
            pools.let_go(f"a{i}")
        assert pools.count == 1
        pools.client_for("busy")
        pools.let_go("busy")  # its request is in flight: it keeps its place
        pools.let_go("never-asked")
        others = [pools.client_for(f"b{i}") for i in range(AGENTS_PER_CLIENT - 1)]
        assert others == [first] * (AGENTS_PER_CLIENT - 1) and pools.count == 1
        assert pools.client_for("one-more") is not first and pools.count == 2
        assert pools.client_for("busy") is first  # still its own
    finally:
        await pools.aclose()


async def test_agents_run_one_after_another_make_no_new_sdk_client(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    """An agent whose turn ended gives its place on its SDK client to the next one, so
    agents run one after another all use the first client (and its warm connection)."""
    for i in range(AGENTS_PER_CLIENT + 2):
        agent = make_agent(store, client, workspace, agent_id=f"scout-{i}")
        await agent.create(task=TASK)
        assert (await agent.run_until_idle()).status == "completed"
    assert client._pools.count == 1


async def test_the_model_client_answers_through_its_pools(client: ModelClient) -> None:
    replies = [
        await client.respond(
            model="haiku", system="You are a scout.", messages=[{"role": "user", "content": TASK}],
            agent=f"agent-{i}",
        )
        for i in range(AGENTS_PER_CLIENT + 1)
    ]  # fmt: skip
    assert client._pools.count == 2
    assert len({r.content[0]["type"] for r in replies}) == 1
