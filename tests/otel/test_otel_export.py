"""`fleet otel export`: a recorded run as GenAI spans, received and decoded by a real OTLP receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from otel_support import Receiver, Span, receiving

from api.cli import main
from api.otel import ExportFailed, export_run, trace_id_of
from events import (
    AgentWaiting,
    Meta,
    ModelResponded,
    NewEvent,
    RunNotFound,
    RunStarted,
    SQLiteEventStore,
    ToolCallRequested,
    read_run,
)


async def exported(log: Path, run_id: str, **options: object) -> Receiver:
    async with receiving() as receiver, SQLiteEventStore(log) as store:
        await export_run(store, run_id, receiver.url, **options)  # type: ignore[arg-type]
    return receiver


def children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_id == parent.span_id]


async def test_a_run_is_one_trace_workflow_orchestrator_agents_chat_and_tools(
    log: Path, run_id: str
) -> None:
    receiver = await exported(log, run_id)
    spans = receiver.spans
    assert receiver.content_types == {"application/x-protobuf"}
    assert {s.trace_id for s in spans} == {f"{trace_id_of(run_id):032x}"}
    assert len({s.span_id for s in spans}) == len(spans)
    (root,) = [s for s in spans if not s.parent_id]
    assert root.name == "invoke_workflow scout-plan-build"
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.conversation.id"] == run_id
    (orchestrator,) = children(spans, root)
    assert orchestrator.name == "invoke_agent orchestrator"
    agents = [s for s in children(spans, orchestrator) if s.name.startswith("invoke_agent ")]
    assert sorted(s.attributes["gen_ai.agent.name"] for s in agents) == [
        "build", "plan", "scout-1", "scout-2", "scout-3",
    ]  # fmt: skip
    by_id = receiver.by_id()
    for span in spans:
        if span.name.startswith(("chat ", "execute_tool ")):
            parent = by_id[span.parent_id]
            assert parent in agents
            assert parent.attributes["gen_ai.agent.id"] == span.attributes["fleet.agent.id"]
            assert parent.start_ns <= span.start_ns <= span.end_ns <= parent.end_ns
    waits = [s for s in children(spans, orchestrator) if s.name == "wait_for_agents"]
    async with SQLiteEventStore(log) as store:
        sleeps = [e for e in await read_run(store, run_id) if isinstance(e.data, AgentWaiting)]
    assert len(waits) == len(sleeps) >= 3  # at least: the scouts, the planner, the builder
    assert all(
        w.end_ns > w.start_ns and w.attributes["fleet.wait.reason"] == "changed" for w in waits
    )
    assert not any(s.attributes.get("fleet.unfinished") for s in spans)


async def test_usage_attributes_equal_the_logs(log: Path, run_id: str) -> None:
    receiver = await exported(log, run_id)
    by_position = {s.attributes["fleet.position"]: s for s in receiver.spans}
    async with SQLiteEventStore(log) as store:
        events = await read_run(store, run_id)
    responses = [e for e in events if isinstance(e.data, ModelResponded)]
    calls = [e for e in events if isinstance(e.data, ToolCallRequested)]
    assert len([s for s in receiver.spans if s.name.startswith("chat ")]) == len(responses) > 0
    for event in responses:
        d = event.data
        assert isinstance(d, ModelResponded)
        span = by_position[event.position]
        u = d.usage
        assert span.name == f"chat {d.model}"
        assert span.kind == 3  # CLIENT
        assert span.attributes["gen_ai.provider.name"] == "anthropic"
        assert span.attributes["gen_ai.request.model"] == d.model
        assert span.attributes["gen_ai.response.id"] == d.message_id
        assert span.attributes["gen_ai.response.finish_reasons"] == [d.stop_reason]
        assert span.attributes["gen_ai.usage.output_tokens"] == u.output_tokens
        assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == u.cache_read_input_tokens
        assert (
            span.attributes["gen_ai.usage.cache_creation.input_tokens"]
            == u.cache_creation_input_tokens
        )
        # The conventions count cached input in input_tokens too.
        assert span.attributes["gen_ai.usage.input_tokens"] == u.context_tokens
        assert span.attributes["fleet.cost_usd"] == pytest.approx(d.cost_usd)
    for event in calls:
        d = event.data
        assert isinstance(d, ToolCallRequested)
        span = by_position[event.position]
        assert span.name == f"execute_tool {d.name}"
        assert span.attributes["gen_ai.tool.call.id"] == d.tool_use_id
        assert "gen_ai.tool.call.arguments" not in span.attributes  # content is opt-in
    for agent in [s for s in receiver.spans if s.name.startswith("invoke_agent ")]:
        own = [by_position[e.position] for e in responses
               if e.data.agent_id == agent.attributes["gen_ai.agent.id"]]  # type: ignore[union-attr]  # fmt: skip
        assert agent.attributes["gen_ai.usage.output_tokens"] == sum(
            s.attributes["gen_ai.usage.output_tokens"] for s in own
        )


async def test_exporting_twice_gives_the_same_trace(log: Path, run_id: str) -> None:
    first = await exported(log, run_id)
    second = await exported(log, run_id)

    def shape(r: Receiver) -> list[tuple[str, str, str, str, int, int]]:
        return sorted(
            (s.trace_id, s.span_id, s.parent_id, s.name, s.start_ns, s.end_ns) for s in r.spans
        )

    assert shape(first) == shape(second)
    assert [s.attributes for s in first.spans] == [s.attributes for s in second.spans]


async def test_content_is_recorded_only_on_opt_in_and_truncated(log: Path, run_id: str) -> None:
    plain = await exported(log, run_id)
    assert not any(
        key in s.attributes
        for s in plain.spans
        for key in ("gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.output.messages",
                    "gen_ai.input.messages", "gen_ai.system_instructions")
    )  # fmt: skip
    rich = await exported(log, run_id, content=True, max_content_chars=60)
    tools = [s for s in rich.spans if s.name.startswith("execute_tool ")]
    assert all(0 < len(s.attributes["gen_ai.tool.call.arguments"]) <= 60 for s in tools)
    assert any(s.attributes["gen_ai.tool.call.result"].endswith("…") for s in tools)
    chats = [s for s in rich.spans if s.name.startswith("chat ")]
    assert all(len(s.attributes["gen_ai.output.messages"]) <= 60 for s in chats)


async def test_cli_exports_a_run_and_says_where(
    log: Path, run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with receiving() as receiver:
        argv = [
            "otel",
            "export",
            f"run-{run_id}",
            "--db",
            str(log),
            "--endpoint",
            receiver.url,
            "--json",
        ]
        code = await asyncio.to_thread(main, argv)
    assert code == 0
    out = capsys.readouterr().out
    assert f'"trace_id": "{trace_id_of(run_id):032x}"' in out
    assert f'"spans": {len(receiver.spans)}' in out
    assert receiver.url + "/v1/traces" in out


async def test_cli_takes_a_run_whose_own_id_begins_with_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: `run-` was cut off whatever the id, so `run-7` named a run `7`."""
    log = tmp_path / "fleet.db"
    async with SQLiteEventStore(log) as store:
        started = RunStarted(run_id="run-7", task="t", pattern="scout-builder")
        await store.append("run-run-7", [NewEvent(started, Meta(run_id="run-7"))])
    async with receiving() as receiver:
        for given in ("run-7", "run-run-7"):
            argv = ["otel", "export", given, "--db", str(log), "--endpoint", receiver.url]
            assert await asyncio.to_thread(main, argv) == 0, capsys.readouterr().err
            assert capsys.readouterr().out.startswith("sent run run-7: ")


async def test_the_cli_says_why_a_receiver_did_not_take_the_spans_in_one_line(
    log: Path, run_id: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK's exporter returns only "failure" and logged why on every retry: the error
    said "did not take the spans", after lines of the SDK's own."""
    # 0.5 s: no time for a retry, after which the SDK logs no cause at all (CI saw that).
    argv = ["otel", "export", run_id, "--db", str(log), "--timeout", "0.5"]
    code = await asyncio.to_thread(main, [*argv, "--endpoint", "http://127.0.0.1:9"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("fleet: error: the OTLP receiver at http://127.0.0.1:9/v1/traces")
    assert "did not take the spans: " in err and "Connection refused" in err, err
    assert len(err.splitlines()) == 1, err
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]


async def test_an_unknown_run_or_a_dead_endpoint_is_a_clear_error(log: Path, run_id: str) -> None:
    async with SQLiteEventStore(log) as store:
        with pytest.raises(RunNotFound):
            await export_run(store, "nope", "http://127.0.0.1:9")
        # Why, as the SDK said it in its log: the refused connection, the HTTP status.
        with pytest.raises(ExportFailed, match=r"did not take the spans: .*Connection refused"):
            await export_run(store, run_id, "http://127.0.0.1:9", timeout_s=1)
        async with receiving() as receiver:
            with pytest.raises(ExportFailed, match="did not take the spans: HTTP 404 Not Found"):
                await export_run(store, run_id, receiver.url + "/nothing-here")
        with pytest.raises(ExportFailed, match="not an http"):
            await export_run(store, run_id, "ftp://x")
        # A malformed URL is refused before any span is made, not retried at each batch.
        for bad, words in [
            ("http://[::1", "not a valid URL"),
            ("http://127.0.0.1:99999", "port 99999 is not 1-65535"),
            ("http://receiver host:4318", "no spaces"),
        ]:
            with pytest.raises(ExportFailed, match=words):
                await export_run(store, run_id, bad)
    code = await asyncio.to_thread(main, ["otel", "export", run_id, "--db", str(log)])
    assert code == 1
