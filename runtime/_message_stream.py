"""A streamed Messages-API answer, read from its server-sent events into plain dicts.

    reader = MessageStreamReader()
    async for chunk in response.iter_bytes():      # the SDK's raw streaming response
        reader.feed(chunk)                         # raises StreamError on `event: error`
    message = reader.message()                     # {"id", "model", "content", "usage", ...}

The model client sends its requests through the official SDK (its auth,
retries, errors, transport) and reads the answer's bytes here, instead of
through `messages.stream()`'s accumulator.

Notes (do not fix without reading this):
1. Why not the SDK's accumulator: it builds a typed SDK model for every
   event, a "snapshot" event for every delta, and re-parses a tool call's
   partial JSON at every delta; the runtime only ever wants the final
   message, as dicts. Measured on the simulator (`bench/agents.py`), the
   SDK's stream cost 3.8 ms of CPU a request, this 2.2 ms (a non-streaming
   request: 2.2 ms too). Streaming stays: a long answer from the real API
   needs it (the SDK refuses a non-streaming request that may last over
   10 minutes), and a mid-stream `event: error` stays visible.
2. The rules are the SDK's `accumulate_event`: a block opens with
   `content_block_start` (appended, as the SDK does), text, thinking and
   signature deltas add to it, a tool call's `input_json_delta`s are joined
   and parsed once at the end with jiter in partial mode (so an input cut by
   `max_tokens` is what the SDK would give: the complete part), citations
   are kept, `message_delta` sets the stop reason and overwrites the usage
   counts it carries. Unknown events and deltas are ignored, like the SDK's.
3. Lines end with `\\n` (the API's); `\\r\\n` and `\\r` are accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jiter import from_json

__all__ = ["MessageStreamReader", "StreamError", "StreamInvalid"]

_INPUT_BLOCKS = frozenset({"tool_use", "server_tool_use"})
_USAGE_COUNTS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "server_tool_use",
)


class StreamError(Exception):
    """An `event: error` in the stream: the API's error object (`type`, `message`)."""

    def __init__(self, body: Any) -> None:
        error = body.get("error") if isinstance(body, Mapping) else None
        error = error if isinstance(error, Mapping) else {}
        self.body = body
        self.type = str(error.get("type") or "api_error")
        self.message = str(error.get("message") or body)
        super().__init__(f"{self.type}: {self.message}")


class StreamInvalid(ValueError):
    """The body is not a streamed message: bad JSON, an event out of order, a missing field."""


class MessageStreamReader:
    """Folds the bytes of one streamed answer into the final message (module notes).

    `feed` and `message` raise `StreamInvalid` for a body that is not a
    message, where the SDK's accumulator raises its own errors.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._message: dict[str, Any] | None = None
        self._content: list[dict[str, Any]] = []
        self._json: dict[int, list[str]] = {}  # block index -> its input's JSON pieces

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the body; raises `StreamError` at an `event: error`."""
        buffer = self._buffer + chunk
        if b"\r" in buffer:  # note 3; a final "\r" may be the first half of "\r\n"
            held = buffer.endswith(b"\r")
            buffer = buffer[:-1] if held else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        *events, self._buffer = buffer.split(b"\n\n")
        try:
            for event in events:
                self._event(event)
        except (ValueError, LookupError, TypeError, AttributeError) as e:
            raise StreamInvalid(f"not a streamed message: {e!r}") from e

    def message(self) -> dict[str, Any]:
        """The message as the stream left it; `StreamInvalid` if it never began."""
        try:
            if self._buffer.strip():
                self._event(self._buffer)
                self._buffer = b""
            if self._message is None:
                raise StreamInvalid("the stream ended before its message began")
            for index, pieces in self._json.items():
                if text := "".join(pieces):
                    self._content[index]["input"] = from_json(text.encode(), partial_mode=True)
        except (ValueError, LookupError, TypeError, AttributeError) as e:
            if isinstance(e, StreamInvalid):
                raise
            raise StreamInvalid(f"not a streamed message: {e!r}") from e
        self._json = {}
        return {**self._message, "content": self._content}

    def _event(self, raw: bytes) -> None:
        name: str | None = None
        data: list[str] = []
        for line in raw.decode("utf-8").split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if name is None or name == "ping" or not data:
            return
        body = json.loads("\n".join(data))
        if name == "error":
            raise StreamError(body)
        self._apply(body)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        message = self._message
        if message is None and kind != "message_start":
            raise StreamInvalid(f"unexpected event order: {kind!r} before 'message_start'")
        if kind == "content_block_delta":
            index = event["index"]
            block, delta = self._content[index], event["delta"]
            change = delta.get("type")
            if change == "text_delta":
                if block.get("type") == "text":
                    block["text"] += delta["text"]
            elif change == "input_json_delta":
                if block.get("type") in _INPUT_BLOCKS:
                    self._json.setdefault(index, []).append(delta["partial_json"])
            elif change == "thinking_delta":
                if block.get("type") == "thinking":
                    block["thinking"] += delta["thinking"]
            elif change == "signature_delta":
                if block.get("type") == "thinking":
                    block["signature"] = delta["signature"]
            elif change == "citations_delta" and block.get("type") == "text":
                block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        elif kind == "content_block_start":
            self._content.append(dict(event["content_block"]))
        elif kind == "message_start":
            self._message = dict(event["message"])
            self._message["usage"] = dict(self._message.get("usage") or {})
            self._content = [dict(b) for b in self._message.get("content") or []]
        elif kind == "message_delta" and message is not None:
            delta = event.get("delta") or {}
            message["stop_reason"] = delta.get("stop_reason")
            message["stop_sequence"] = delta.get("stop_sequence")
            usage, counts = message["usage"], event.get("usage") or {}
            usage["output_tokens"] = counts.get("output_tokens")
            for key in _USAGE_COUNTS:
                if counts.get(key) is not None:
                    usage[key] = counts[key]
