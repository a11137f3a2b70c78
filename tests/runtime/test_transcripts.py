"""Reading a Claude Code transcript: one response per request, incrementally, never blocking.

The lines are shaped as Claude Code 2.1.332 writes them (one line per content
block of an assistant message, each with the whole message's usage; a
subagent's lines carry `agentId`), as seen in the transcripts of the sessions
recorded for tests/runtime/fixtures/claude-code-2.1.332/.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from events import Usage
from runtime import ModelTable, PriceTable, TranscriptReader

USAGE = {
    "input_tokens": 3,
    "cache_creation_input_tokens": 468,
    "cache_read_input_tokens": 12284,
    "output_tokens": 72,
    "output_tokens_details": {"thinking_tokens": 0},
    "service_tier": "standard",
    "cache_creation": {"ephemeral_1h_input_tokens": 468, "ephemeral_5m_input_tokens": 0},
}


def assistant(request: str, *, block: int = 0, agent: str | None = None, **usage: Any) -> str:
    entry: dict[str, Any] = {
        "type": "assistant",
        "requestId": request,
        "timestamp": "2026-11-30T02:18:01.000Z",
        "isSidechain": agent is not None,
        "message": {
            "id": f"msg_{request}",
            "model": "claude-opus-5-5",
            "role": "assistant",
            "stop_reason": "tool_use",
            "content": [{"type": "text", "text": f"block {block}"}],
            "usage": {**USAGE, **usage},
        },
    }
    if agent is not None:
        entry["agentId"] = agent
    return json.dumps(entry)


def user() -> str:
    return json.dumps({"type": "user", "message": {"role": "user", "content": "ok"}})


def write(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


async def test_a_message_written_block_by_block_is_one_response(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write(path, user(), assistant("req_1", block=0), assistant("req_1", block=1), user())

    (response,) = await TranscriptReader().read(str(path))

    assert response.request_id == "req_1"
    assert response.model == "claude-opus-5-5"
    assert response.stop_reason == "tool_use"
    assert response.agent_id is None
    assert response.usage == Usage(
        input_tokens=3,
        output_tokens=72,
        cache_creation_input_tokens=468,
        cache_read_input_tokens=12284,
        cache_creation_1h_input_tokens=468,
    )


async def test_each_read_returns_only_what_was_written_since(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    reader = TranscriptReader()
    write(path, assistant("req_1"), user())
    assert [r.request_id for r in await reader.read(str(path))] == ["req_1"]
    assert await reader.read(str(path)) == []

    write(path, assistant("req_2"), user(), assistant("req_3"), user())

    assert [r.request_id for r in await reader.read(str(path))] == ["req_2", "req_3"]


async def test_the_last_message_waits_for_a_later_line_or_the_end(tmp_path: Path) -> None:
    """Its usage may still grow while it streams: held back until something follows it."""
    path = tmp_path / "s.jsonl"
    reader = TranscriptReader()
    write(path, assistant("req_1", output_tokens=1))
    assert await reader.read(str(path)) == []

    write(path, assistant("req_1", block=1, output_tokens=72))
    (final,) = await reader.read(str(path), final=True)

    assert final.usage.output_tokens == 72
    assert await reader.read(str(path), final=True) == []


async def test_a_partial_last_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    reader = TranscriptReader()
    line = assistant("req_1")
    with path.open("w") as f:
        f.write(user() + "\n" + line[:40])
    assert await reader.read(str(path), final=True) == []

    with path.open("a") as f:
        f.write(line[40:] + "\n")

    assert [r.request_id for r in await reader.read(str(path), final=True)] == ["req_1"]


async def test_a_subagents_lines_name_it(tmp_path: Path) -> None:
    path = tmp_path / "agent-ab335d475f5d1bbe9.jsonl"
    write(path, assistant("req_9", agent="ab335d475f5d1bbe9"), user())

    (response,) = await TranscriptReader().read(str(path))

    assert response.agent_id == "ab335d475f5d1bbe9"


async def test_a_rewritten_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    reader = TranscriptReader()
    write(path, assistant("req_1"), user(), assistant("req_2"), user())
    assert len(await reader.read(str(path))) == 2

    path.write_text(assistant("req_3") + "\n" + user() + "\n")

    assert [r.request_id for r in await reader.read(str(path))] == ["req_3"]


async def test_lines_that_are_not_responses_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    synthetic = json.loads(assistant("req_x"))
    synthetic["message"]["model"] = "<synthetic>"
    write(path, "not json", "[1, 2]", json.dumps(synthetic), assistant("req_1"), user())

    assert [r.request_id for r in await TranscriptReader().read(str(path))] == ["req_1"]


@pytest.mark.parametrize(
    "name", ["s.json", "relative.jsonl", "dir.jsonl", "fifo.jsonl", "gone.jsonl"]
)
async def test_only_a_regular_jsonl_file_at_an_absolute_path_is_read(
    tmp_path: Path, name: str
) -> None:
    """The path comes from a posted payload: a FIFO must not block, a folder must not fail."""
    path = tmp_path / name
    if name == "s.json":
        write(path, assistant("req_1"), user())
    elif name == "dir.jsonl":
        path.mkdir()
    elif name == "fifo.jsonl":
        os.mkfifo(path)
    target = name if name == "relative.jsonl" else str(path)

    assert await TranscriptReader().read(target, final=True) == []


async def test_a_response_is_priced_at_the_price_of_its_day(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write(path, assistant("req_1"), user())
    (response,) = await TranscriptReader().read(str(path))
    models, prices = ModelTable.default(), PriceTable.default()

    event = response.as_event("ext-s", models, prices)

    assert event.agent_id == "ext-s"
    assert event.message_id == "req_1"
    assert event.context_limit == 1_000_000
    assert event.cost_usd == pytest.approx(
        prices.cost("claude-opus-5-5", response.usage, date(2026, 11, 30))
    )
    assert event.cost_usd > 0


async def test_a_model_the_table_does_not_know_costs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    line = json.loads(assistant("req_1"))
    line["message"]["model"] = "claude-future-9"
    write(path, json.dumps(line), user())
    (response,) = await TranscriptReader().read(str(path))

    event = response.as_event("ext-s", ModelTable.default(), PriceTable.default())

    assert (event.model, event.cost_usd, event.context_limit) == ("claude-future-9", 0.0, None)


async def test_a_line_longer_than_a_read_is_skipped_and_the_rest_counted(tmp_path: Path) -> None:
    """A line over `max_bytes` was read from its start again and again: every response
    after it was lost for good."""
    path = tmp_path / "s.jsonl"
    huge = json.dumps({"type": "user", "message": {"content": "x" * 5_000}})
    write(path, assistant("req_1"), user())
    reader = TranscriptReader(max_bytes=1_000)
    assert [r.request_id for r in await reader.read(str(path))] == ["req_1"]
    with path.open("a") as f:
        f.write(huge[:3_000])  # still being written: nothing to skip yet
    assert await reader.read(str(path)) == []
    with path.open("a") as f:
        f.write(huge[3_000:] + "\n")
    write(path, assistant("req_2"), user())
    assert [r.request_id for r in await reader.read(str(path))] == ["req_2"]


@pytest.mark.parametrize("agent_id", ["../../tmp/pwned", "a/b", ".hidden", "a\\b", "nul\x00"])
def test_an_agent_id_that_is_no_file_name_names_no_transcript(
    tmp_path: Path, agent_id: str
) -> None:
    """The agents driven come from the log, which may be an imported one."""
    from runtime._transcript import transcript_path

    with pytest.raises(ValueError, match="cannot name a transcript file"):
        transcript_path(tmp_path, agent_id)
    assert transcript_path(tmp_path, "builder-1a2b").parent == tmp_path
