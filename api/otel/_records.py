"""A span as plain data, and the ids derived from the log (see `_mapping.py`)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Attributes", "Kind", "SpanRecord", "Status", "span_id_of", "trace_id_of"]

Kind = Literal["internal", "client"]
Status = Literal["unset", "error"]
Attributes = dict[str, Any]


@functools.lru_cache(maxsize=4096)
def trace_id_of(run_id: str) -> int:
    """The trace id of a run: 128 bits derived from its id (never 0)."""
    digest = hashlib.blake2b(run_id.encode(), digest_size=16, person=b"fleet-trace").digest()
    return int.from_bytes(digest, "big") or 1


def span_id_of(run_id: str, position: int) -> int:
    """The span id of the span opened by the event at `position` of run `run_id` (never 0)."""
    key = f"{run_id}/{position}".encode()
    digest = hashlib.blake2b(key, digest_size=8, person=b"fleet-span").digest()
    return int.from_bytes(digest, "big") or 1


@dataclass(slots=True)
class SpanRecord:
    """One finished span, as plain data (the SDK's `ReadableSpan` is made from it)."""

    trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    kind: Kind
    start_ns: int
    end_ns: int
    attributes: Attributes = field(default_factory=dict)
    events: list[tuple[str, int, Attributes]] = field(default_factory=list)
    status: Status = "unset"
    status_message: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data (the live exporter keeps open spans this way)."""
        return {
            "t": self.trace_id, "s": self.span_id, "p": self.parent_id, "n": self.name,
            "k": self.kind, "b": self.start_ns, "e": self.end_ns, "a": self.attributes,
            "ev": [list(ev) for ev in self.events], "st": self.status, "sm": self.status_message,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SpanRecord:
        """The record back from `to_json`'s data."""
        return cls(
            d["t"], d["s"], d["p"], d["n"], d["k"], d["b"], d["e"], dict(d["a"]),
            [(ev[0], ev[1], dict(ev[2])) for ev in d["ev"]], d["st"], d["sm"],
        )  # fmt: skip
