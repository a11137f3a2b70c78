"""The export format (`_export.py`'s module docstring describes it): its constants, the
results of an export and an import, and the checker every import runs before it writes.

`parse_export`/`read_export` check a whole file in memory; `_import_stream.py` feeds the
same `_Checker` line by line as an upload arrives.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._catalogue import EVENT_TYPES, AgentCreated, EventModel, RunStarted
from ._encoding import meta_params
from ._envelope import Meta
from ._ids import AGENT_ID_RULE, ID_RULE, is_agent_id, is_id
from ._store import ImportedEvent
from ._text import surrogate_escaped
from ._upcasting import upcast
from .errors import EventTooLarge, ExportInvalid, InvalidEvent

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "MIN_KEY_BYTES",
    "ImportResult",
    "RunExport",
    "RunExported",
    "parse_export",
    "read_export",
]

EXPORT_FORMAT = "fleet-run"
EXPORT_VERSION = 1
_EVENT_KEYS = frozenset(
    ("position", "stream_id", "version", "type", "schema", "data", "meta", "recorded_at")
)
_META_KEYS = frozenset(Meta.__dataclass_fields__)
_CHECK_CHUNK = 1 << 20  # upload bytes checked per worker-thread hop
_ROWS_CHUNK = 2_000  # spooled rows handed to the store at once
MIN_KEY_BYTES = 16
"""The shortest signing key accepted (HMAC-SHA256 takes any length; a short one is guessable)."""
_SIGNATURE = "hmac_sha256"
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""The times an imported event may have (`_Checker.recorded_at`): fleet records none before
1970, and a year's margin at the end keeps a fold's date arithmetic within `datetime`'s."""
_INT64 = 2**63
"""Positions and versions are below it: the log stores them as signed 64-bit integers."""
_MID_LINE = (
    "the file ends mid-line: truncated? (its last line has no newline and is not whole JSON)"
)


# -- results --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunExported:
    """What `export_run` wrote."""

    run_id: str
    path: Path
    events: int
    streams: dict[str, int]
    sha256: str
    bytes: int
    signed: bool = False


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What `import_run` appended: the run's new positions in the target log."""

    run_id: str
    events: int
    streams: tuple[str, ...]
    first_position: int
    last_position: int


@dataclass(frozen=True, slots=True)
class RunExport:
    """A parsed and fully checked export, ready for `import_run`. Holds no open file."""

    run_id: str
    source: str
    header: dict[str, Any]
    sha256: str
    streams: dict[str, int]
    rows: tuple[ImportedEvent, ...]

    @property
    def events(self) -> int:
        """How many events the export holds."""
        return len(self.rows)


def _check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"a signing key needs at least {MIN_KEY_BYTES} bytes, got {len(key)} "
            "(e.g. `openssl rand -hex 32`)"
        )
    return key


class _Digests:
    """The trailer's SHA-256, and its HMAC when there is a key, over the same bytes."""

    def __init__(self, key: bytes | None) -> None:
        self.sha = hashlib.sha256()
        self.mac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None

    def update(self, data: bytes) -> None:
        self.sha.update(data)
        if self.mac is not None:
            self.mac.update(data)


# -- parsing and checking ------------------------------------------------------------


class _Checker:
    """Checks an export line by line; hands each checked row to `sink` (kept in `rows` if none)."""

    def __init__(
        self,
        source: str,
        *,
        verify_key: bytes | None = None,
        sink: Callable[[ImportedEvent], None] | None = None,
        max_event_bytes: int | None = None,
    ) -> None:
        self.source = source
        self.digest = _Digests(verify_key)
        self.verify = verify_key is not None
        self.header: dict[str, Any] | None = None
        self.trailer: dict[str, Any] | None = None
        self.run_id = ""
        self.rows: list[ImportedEvent] = []
        self.sink = self.rows.append if sink is None else sink
        self.max_event_bytes = max_event_bytes
        self.count = 0
        self.versions: dict[str, int] = {}
        self.last_position = 0
        self.validators = {name: (cls.SCHEMA_VERSION, cls) for name, cls in EVENT_TYPES.items()}

    def fail(self, reason: str, line: int | None) -> ExportInvalid:
        return ExportInvalid(self.source, reason, line=line)

    def feed(self, number: int, raw: bytes, *, ended: bool = True) -> None:
        """Check line `number`, `raw` with its newline added; `ended` False: the file's last
        line, which had none (cut short, if it begins as every line does but is not whole
        JSON; a file saved without its last newline is read as if it had it)."""
        if self.trailer is not None:
            raise self.fail("there is more after the trailer line", number)
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as e:
            if not ended and isinstance(e, ValueError) and raw.startswith(b"{"):
                raise self.fail(_MID_LINE, number) from None
            raise self.fail(f"not a JSON Lines run export ({_short(e)})", number) from None
        if not isinstance(value, dict):
            raise self.fail("not a JSON Lines run export (a line is not a JSON object)", number)
        if surrogate_escaped(raw) and _lone_surrogate(value):
            # Regression: `\ud800` parsed to a string no UTF-8 encoder takes: a traceback
            # (UnicodeEncodeError, PydanticSerializationError) from data or meta.
            raise self.fail(
                "a string holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without "
                "its pair): it is not text, and the log stores text as UTF-8",
                number,
            )
        if self.header is None:
            self.start(number, value, raw)
        elif "end" in value:
            self.finish(number, value)
        else:
            self.digest.update(raw)
            self.event(number, value)

    def start(self, number: int, value: dict[str, Any], raw: bytes) -> None:
        if value.get("format") != EXPORT_FORMAT:
            raise self.fail(
                f'not a fleet run export (the first line has no "format": "{EXPORT_FORMAT}")',
                number,
            )
        version = value.get("version")
        if type(version) is not int or version != EXPORT_VERSION:  # true == 1 in Python
            raise self.fail(
                f"export format version {_shown(version)} is not supported (this fleet reads "
                f"version {EXPORT_VERSION})",
                number,
            )
        run_id = value.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise self.fail("the header names no run_id", number)
        if not is_id(run_id):
            # Regression: any string was taken: a run that the API's paths refuse to name,
            # that `fleet export` wrote out of the folder (`../x` to `../x.jsonl`), and whose
            # escape sequences `fleet import` and `fleet runs` sent to the terminal.
            raise self.fail(
                f"the header's run_id {_shown(run_id)} is not a run id ({ID_RULE}, as the API "
                "takes)",
                number,
            )
        self.header, self.run_id = value, run_id
        self.digest.update(raw)

    def event(self, number: int, value: dict[str, Any]) -> None:
        if set(value) != _EVENT_KEYS:
            missing = sorted(_EVENT_KEYS - set(value))
            extra = sorted(set(value) - _EVENT_KEYS)
            raise self.fail(f"not an event line (missing {missing}, unexpected {extra})", number)
        position, stream, version = value["position"], value["stream_id"], value["version"]
        if type(position) is not int or type(version) is not int or not isinstance(stream, str):
            raise self.fail("position and version must be integers, stream_id a string", number)
        for name, number_of in (("position", position), ("version", version)):
            # Regression: a position of 2**63 went into a signed 64-bit array as the import
            # numbered the events, a traceback (OverflowError) once the log was open.
            if not 0 < number_of < _INT64:
                raise self.fail(
                    f"{name} {number_of} is out of range (1 to 2**63 - 1: a signed 64-bit "
                    "integer, as the log stores it)",
                    number,
                )
        if position <= self.last_position:
            raise self.fail(
                f"position {position} is not after {self.last_position}: the events are out "
                "of order",
                number,
            )
        expected = self.versions.get(stream, 0) + 1
        if version != expected:
            raise self.fail(
                f"stream {_shown(stream)} jumps to version {version} where {expected} was expected "
                "(an event is missing or out of order)",
                number,
            )
        if not self.count and (stream != f"run-{self.run_id}" or value["type"] != "RunStarted"):
            raise self.fail(f"the first event is not the RunStarted of run-{self.run_id}", number)
        data = self.data(number, value)
        if isinstance(data, RunStarted) and data.run_id != self.run_id:
            raise self.fail(
                f"RunStarted is for run {_shown(data.run_id)}, not {self.run_id!r}", number
            )
        self.of_the_run(number, stream, version, data)
        meta = self.meta(number, value["meta"])
        if meta.run_id != self.run_id:
            raise self.fail(
                f"an event of stream {_shown(stream)} has meta.run_id {_shown(meta.run_id)}, "
                f"not the run's {self.run_id!r} (module note 3)",
                number,
            )
        recorded_at = self.recorded_at(number, value["recorded_at"])
        try:
            meta_params(meta)
        except InvalidEvent as e:
            raise self.fail(e.reason, number) from None
        text = type(data).__pydantic_serializer__.to_json(data).decode()
        limit = self.max_event_bytes
        if limit is not None and len(text) * 4 > limit and len(text.encode()) > limit:
            raise EventTooLarge(stream, value["type"], len(text.encode()), limit)
        self.count += 1
        self.sink(
            ImportedEvent(
                position,
                stream,
                version,
                value["type"],
                type(data).SCHEMA_VERSION,
                text,
                meta,
                recorded_at,
            )
        )
        self.versions[stream] = version
        self.last_position = position

    def of_the_run(self, number: int, stream: str, version: int, data: EventModel) -> None:
        """Refuse a stream that is not one of the run's (module note 3)."""
        run_id = self.run_id
        if stream in (f"run-{run_id}", f"task-{run_id}") or stream.startswith(f"task-{run_id}-"):
            return
        if stream == run_id and stream.startswith("chat-"):
            return  # a conversation's run is named after its stream of messages
        if stream.startswith("agent-"):
            if version > 1:
                return  # its first event was checked to be the agent's creation
            if isinstance(data, AgentCreated) and stream == f"agent-{data.agent_id}":
                if not is_agent_id(data.agent_id):
                    # An agent of the log is driven again (resume, a worker) and its
                    # transcript is `<id>.jsonl`: `../../x` would be a file outside the folder.
                    raise self.fail(
                        f"agent id {_shown(data.agent_id)} is not an agent id ({AGENT_ID_RULE})",
                        number,
                    )
                return
            raise self.fail(
                f"stream {_shown(stream)} does not begin with the AgentCreated of its agent, so it "
                f"is not an agent of run {run_id!r} (module note 3)",
                number,
            )
        raise self.fail(
            f"stream {_shown(stream)} is not one of run {run_id!r}'s (run-{run_id}, "
            f"task-{run_id}[-*] and the agent-<id> streams of the agents it created): refusing "
            "to write into another stream (module note 3)",
            number,
        )

    def data(self, number: int, value: dict[str, Any]) -> EventModel:
        kind, schema, data = value["type"], value["schema"], value["data"]
        known = self.validators.get(kind) if isinstance(kind, str) else None
        if known is None:
            raise self.fail(f"unknown event type {_shown(kind)}", number)
        current, cls = known
        if type(schema) is not int or not 1 <= schema <= current:
            raise self.fail(
                f"{kind} schema {_shown(schema)} is not one this fleet reads (1 to {current})",
                number,
            )
        if not isinstance(data, dict) or data.get("type") != kind:
            raise self.fail(f"data is not a {kind} object", number)
        try:
            return cls.model_validate(upcast(kind, schema, data))
        except ValidationError as e:
            raise self.fail(f"{kind} data does not check: {_short(e)}", number) from None

    def meta(self, number: int, raw: Any) -> Meta:
        if not isinstance(raw, dict) or not set(raw) <= _META_KEYS:
            raise self.fail(f"meta must be an object with keys among {sorted(_META_KEYS)}", number)
        return Meta(**raw)

    def recorded_at(self, number: int, raw: Any) -> datetime:
        """`raw` as a time, refused unless in `_EARLIEST`..`_LATEST` once in UTC (note 2 of
        `_export.py`): year 1 at +14:00 parsed, then overflowed when it was stored, and
        9999-12-31 made every read model's fold overflow on the event (the run landed, and
        the projections stopped)."""
        reason = "not an ISO 8601 time with a zone"
        try:
            at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError as e:  # its reason, when it says more than "invalid": year 0
            at, detail = None, _short(e)
            reason += f" ({detail})" if raw not in detail else ""
        if at is None or at.tzinfo is None:
            raise self.fail(f"recorded_at {_shown(raw)} is {reason}", number)
        try:
            in_range = _EARLIEST <= at.astimezone(UTC) < _LATEST
        except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
            in_range = False
        if not in_range:
            raise self.fail(
                f"recorded_at {_shown(raw)} is out of range (an event's time is from "
                f"{_EARLIEST:%Y-%m-%d} to {_LATEST:%Y-%m-%d} UTC)",
                number,
            )
        return at

    def finish(self, number: int, value: dict[str, Any]) -> None:
        if value.get("end") != EXPORT_FORMAT:
            raise self.fail("the trailer line is not a fleet run trailer", number)
        if value.get("sha256") != self.digest.sha.hexdigest():
            raise self.fail(
                "the SHA-256 checksum does not match: the file was changed after export", number
            )
        if value.get("events") != self.count or value.get("streams") != self.versions:
            raise self.fail("the trailer's event counts do not match the events", number)
        if self.digest.mac is not None:
            signature = value.get(_SIGNATURE)
            if not isinstance(signature, str):
                raise self.fail(
                    "the file is not signed, and a signed export was required (export it "
                    "with `fleet export --sign`)",
                    number,
                )
            if not hmac.compare_digest(signature, self.digest.mac.hexdigest()):
                raise self.fail(
                    "the signature does not match: the file was signed with another key or "
                    "changed after it was signed",
                    number,
                )
        self.trailer = value

    def complete(self) -> dict[str, Any]:
        """The trailer, once the whole file has checked. Raises `ExportInvalid`."""
        if self.header is None:
            raise self.fail("the file is empty", None)
        if self.trailer is None:
            raise self.fail(
                f"the file is truncated: no trailer line after {self.count} events", None
            )
        return self.trailer

    def result(self) -> RunExport:
        self.complete()
        assert self.header is not None
        assert self.trailer is not None
        return RunExport(
            self.run_id,
            self.source,
            self.header,
            self.trailer["sha256"],
            dict(self.versions),
            tuple(self.rows),
        )


def _lone_surrogate(value: Any) -> bool:
    """Whether a string in `value` (a key or a value, at any depth) is not valid Unicode."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
    return False


def _shown(value: Any, limit: int = 80) -> str:
    """`value` as a message shows a file's value: its repr (control characters escaped), cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _short(error: Exception) -> str:
    text = str(error).replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def parse_export(
    data: bytes | Iterable[bytes], *, source: str = "<export>", verify_key: bytes | None = None
) -> RunExport:
    """Check an export (its bytes, or its lines) completely; returns it ready to import.

    Holds every event in memory: `import_stream` is the way for a large file.
    With `verify_key`, the file must be signed with it. CPU-bound: call it
    through `asyncio.to_thread` for a large export. Raises `ExportInvalid`
    naming the line at fault. The argument is never mutated.
    """
    checker = _Checker(source, verify_key=verify_key)
    lines = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    for number, raw in enumerate(lines, start=1):
        ended = raw.endswith(b"\n")  # else the last line: cut short, or a file saved without
        body = raw[:-1] if ended else raw
        if not body.strip():
            raise checker.fail("a blank line (not a JSON Lines run export)", number)
        checker.feed(number, body + b"\n", ended=ended)
    return checker.result()


async def read_export(
    path: str | os.PathLike[str], *, verify_key: bytes | None = None
) -> RunExport:
    """Read and check the export at `path` (on a worker thread), every event in memory.

    Raises `ExportInvalid` (with the file's name), `OSError` when it cannot be read.
    """
    target = Path(path)

    def parse() -> RunExport:
        try:
            with target.open("rb") as handle:
                return parse_export(handle, source=str(target), verify_key=verify_key)
        except UnicodeDecodeError as e:
            raise ExportInvalid(str(target), f"not UTF-8 text ({e.reason})") from None

    return await asyncio.to_thread(parse)
