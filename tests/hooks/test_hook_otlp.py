"""`hooks.parse_otlp`: what the real Claude Code sends over OTLP becomes events of its session.

The payloads are the fixtures captured from Claude Code 2.1.197 (see
fixtures/otlp-claude-code-2.1.197/README.md), in protobuf and in JSON.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from events import ModelResponded, TelemetryReceived
from hooks import (
    TelemetryInvalid,
    TelemetryTooLarge,
    TelemetryUnsupported,
    otlp_response,
    parse_otlp,
)

FIXTURES = Path(__file__).parent / "fixtures" / "otlp-claude-code-2.1.197"
PROTO_SESSION = "30006865-2829-403c-aa30-ad40fccfcdc9"
JSON_SESSION = "ffb7204b-6cfa-4872-bd64-8274cd61f1b5"
CONTENT_TYPES = {"proto": "application/x-protobuf", "json": "application/json"}


def fixture(encoding: str, signal: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((FIXTURES / encoding).glob(f"*-{signal}.*"))]


def events_of(encoding: str, signal: str) -> list[object]:
    out: list[object] = []
    for body in fixture(encoding, signal):
        batch = parse_otlp(body, signal=signal, content_type=CONTENT_TYPES[encoding])
        assert batch.rejected == 0
        for events in batch.sessions.values():
            out.extend(events)
    return out


@pytest.mark.parametrize(
    ("encoding", "session"), [("proto", PROTO_SESSION), ("json", JSON_SESSION)]
)
def test_each_api_request_becomes_a_model_response_with_claude_codes_numbers(
    encoding: str, session: str
) -> None:
    events = events_of(encoding, "logs")
    requests = [
        e
        for e in events
        if isinstance(e, TelemetryReceived) and e.name == "claude_code.api_request"
    ]
    responses = [e for e in events if isinstance(e, ModelResponded)]
    assert len(requests) == 4
    assert len(responses) == len(requests)
    for request, response in zip(requests, responses, strict=True):
        attrs = request.attributes
        assert response.agent_id == f"ext-{session}"
        assert response.model == attrs["model"] == "claude-sonnet-4-5"
        assert response.message_id == attrs["request_id"]
        assert response.usage.input_tokens == int(attrs["input_tokens"])
        assert response.usage.output_tokens == int(attrs["output_tokens"])
        assert response.usage.cache_read_input_tokens == int(attrs["cache_read_tokens"])
        assert response.usage.cache_creation_input_tokens == int(attrs["cache_creation_tokens"])
        assert response.cost_usd == pytest.approx(attrs["cost_usd"])
        assert response.duration_ms == int(attrs["duration_ms"])
    assert sum(r.cost_usd for r in responses) > 0


@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_tool_results_and_decisions_are_kept_with_their_tool_use_ids(encoding: str) -> None:
    events = [e for e in events_of(encoding, "logs") if isinstance(e, TelemetryReceived)]
    results = [e for e in events if e.name == "claude_code.tool_result"]
    decisions = [e for e in events if e.name == "claude_code.tool_decision"]
    assert sorted(e.attributes["tool_name"] for e in results) == ["Bash", "Glob", "Read"]
    assert [e.attributes["decision"] for e in decisions] == ["accept"] * 3
    assert all(e.attributes["tool_use_id"].startswith("toolu_") for e in results + decisions)
    assert all(e.signal == "log" and e.time_unix_nano > 0 for e in events)
    assert events[0].detail["resource"]["service.name"] == "claude-code"


@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_metric_points_are_kept_raw_and_never_folded(encoding: str) -> None:
    """Claude Code's token and cost metrics repeat its api_request events: kept, not counted."""
    events = events_of(encoding, "metrics")
    assert not [e for e in events if isinstance(e, ModelResponded)]
    costs = [
        e for e in events if isinstance(e, TelemetryReceived) and e.name == "claude_code.cost.usage"
    ]
    tokens = [
        e
        for e in events
        if isinstance(e, TelemetryReceived) and e.name == "claude_code.token.usage"
    ]
    assert costs and tokens
    assert {e.attributes["type"] for e in tokens} == {
        "input",
        "output",
        "cacheRead",
        "cacheCreation",
    }
    assert all(e.detail["temporality"] == "delta" and e.value is not None for e in costs + tokens)
    assert sum(e.value or 0 for e in costs) > 0


@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_beta_spans_keep_their_ids_and_times(encoding: str) -> None:
    spans = [e for e in events_of(encoding, "traces") if isinstance(e, TelemetryReceived)]
    names = {e.name for e in spans}
    assert {"claude_code.interaction", "claude_code.llm_request", "claude_code.tool"} <= names
    for span in spans:
        assert len(span.detail["trace_id"]) == 32 and len(span.detail["span_id"]) == 16
        assert span.detail["end_time_unix_nano"] >= span.detail["start_time_unix_nano"] > 0


def test_protobuf_and_json_give_the_same_records() -> None:
    def shape(encoding: str) -> list[tuple[str, str, list[str]]]:
        return [
            (e.signal, e.name, sorted(e.attributes))
            for signal in ("logs", "metrics", "traces")
            for e in events_of(encoding, signal)
            if isinstance(e, TelemetryReceived)
        ]

    assert shape("proto") == shape("json")


def test_gzip_bodies_are_accepted() -> None:
    (body,) = fixture("proto", "logs")[:1]
    plain = parse_otlp(body, signal="logs", content_type="application/x-protobuf")
    zipped = parse_otlp(
        gzip.compress(body),
        signal="logs",
        content_type="application/x-protobuf",
        content_encoding="gzip",
    )
    assert zipped.sessions == plain.sessions


def test_half_a_surrogate_pair_in_json_is_kept_as_a_replacement_character() -> None:
    # JavaScript cuts strings between an emoji's halves; JSON.stringify writes the half left
    # as "\ud83d", as json.dumps does here. protobuf refused it, and every record with it.
    body = json.loads(fixture("json", "logs")[0])
    record = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["attributes"].append({"key": "prompt", "value": {"stringValue": "hi 😀 \ud83d"}})
    raw = json.dumps(body).encode()
    assert b"\\ud83d" in raw
    batch = parse_otlp(raw, signal="logs", content_type="application/json")
    assert batch.rejected == 0
    kept = [e for events in batch.sessions.values() for e in events
            if isinstance(e, TelemetryReceived) and "prompt" in e.attributes]  # fmt: skip
    assert "hi 😀 \ufffd" in [e.attributes["prompt"] for e in kept]


def test_records_without_a_session_are_rejected_and_the_rest_kept() -> None:
    request = ExportLogsServiceRequest()
    request.ParseFromString(fixture("proto", "logs")[0])
    record = request.resource_logs[0].scope_logs[0].log_records.add()
    record.event_name = "other.event"
    batch = parse_otlp(
        request.SerializeToString(), signal="logs", content_type="application/x-protobuf"
    )
    assert batch.rejected == 1
    assert "session.id" in batch.reason
    assert batch.records == 9


@pytest.mark.parametrize(
    ("body", "content_type", "error", "match"),
    [
        (
            b"\x0a\xff\xff\xff",
            "application/x-protobuf",
            TelemetryInvalid,
            "not an OTLP logs protobuf",
        ),
        (b"", "application/x-protobuf", TelemetryInvalid, "empty"),
        (b"{}", "text/plain", TelemetryUnsupported, "text/plain"),
        (b"{}", None, TelemetryUnsupported, "none"),
        (b"[1]", "application/json", TelemetryInvalid, "JSON object"),
        (b"{nope", "application/json", TelemetryInvalid, "not valid JSON"),
        (b'{"resourceLogs": [{"surprise": 1}]}', "application/json", TelemetryInvalid, "surprise"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
            "application/json",
            TelemetryInvalid,
            "hex",
        ),
    ],
)
def test_bad_bodies_are_refused_naming_the_fault(
    body: bytes, content_type: str | None, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        parse_otlp(body, signal="logs", content_type=content_type)


def test_unknown_protobuf_fields_are_refused() -> None:
    """A field number this opentelemetry-proto does not know is named, not silently kept."""
    body = fixture("proto", "logs")[0] + b"\xf8\x07\x01"  # field 127, varint 1
    with pytest.raises(TelemetryInvalid, match=r"unknown field number\(s\) \[127\]"):
        parse_otlp(body, signal="logs", content_type="application/x-protobuf")


def test_oversized_bodies_are_refused_before_decoding() -> None:
    body = fixture("proto", "logs")[0]
    with pytest.raises(TelemetryTooLarge, match="over the limit"):
        parse_otlp(body, signal="logs", content_type="application/x-protobuf", max_bytes=100)
    bomb = gzip.compress(b"\0" * 10_000)
    # Inflated no further than the limit: it said "is 1001 bytes" of a body of 10,000.
    with pytest.raises(TelemetryTooLarge, match="once gzip is undone, is over the limit of 1000"):
        parse_otlp(bomb, signal="logs", content_type="application/x-protobuf",
                   content_encoding="gzip", max_bytes=1000)  # fmt: skip
    with pytest.raises(TelemetryUnsupported, match="br"):
        parse_otlp(
            body, signal="logs", content_type="application/x-protobuf", content_encoding="br"
        )


def test_the_answer_is_otlps_own_message_in_the_requests_encoding() -> None:
    body, media = otlp_response("logs", "application/x-protobuf", rejected=2, message="why")
    assert media == "application/x-protobuf"
    response = ExportLogsServiceResponse()
    response.ParseFromString(body)
    assert response.partial_success.rejected_log_records == 2
    assert response.partial_success.error_message == "why"
    text, media = otlp_response("logs", "application/json; charset=utf-8")
    assert media == "application/json"
    assert json.loads(text) == {}
