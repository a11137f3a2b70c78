"""One run out of a log and into another: checksummed JSON Lines.

    summary = await export_run(store, "run-1a2b", Path("run.jsonl"))
    export = await read_export(Path("run.jsonl"))        # every check, nothing written
    result = await import_run(other_store, export)       # one transaction

A run is every event of its streams: `run-<id>`, `task-<id>` and each stream
holding an event whose `meta.run_id` is the run (its conductor's and its
agents'), in position order. The file (format version 1) is UTF-8, one JSON
object per line::

    {"format": "fleet-run", "version": 1, "run_id": ..., "exported_at": ..., "head": ...}
    {"position": ..., "stream_id": ..., "version": ..., "type": ..., "schema": ...,
     "data": {...}, "meta": {...}, "recorded_at": ...}          one line per event
    {"end": "fleet-run", "events": N, "streams": {stream_id: count}, "sha256": ...}

The trailer's SHA-256 covers every byte before it (header and event lines,
each with its newline): a truncated, reordered or edited file is refused, and
so is one whose events are out of position order, whose stream versions are
not contiguous from 1, whose data does not match its type, or whose events
are in a stream that is not one of the run's (note 3). The SHA-256 is a
checksum against accidents, not a proof of origin: anyone can recompute it
after an edit. A signed export (`sign_key`) adds `"hmac_sha256"` to the
trailer, an HMAC-SHA256 with a shared key over the same bytes; an import
with `verify_key` refuses a file without it or with a wrong one.

Event lines are `events.encode_event(event, schema=True)`: the wire JSON of
`GET /v1/events` plus the data's schema version.

Notes (do not fix without reading this):
1. Everything is checked here, before anything is written; the write is the
   backend's `EventStore.import_run`: ONE transaction, not `append`s, since
   appends cannot carry an event's original `recorded_at` (every
   projection's times, durations and critical paths come from it) and one
   append per stream cannot be all-or-nothing across streams. It checks that
   no stream of the run exists, gives the events new positions after the
   head in their original order, keeps stream versions, and maps
   `causation_id`s to the new positions (None when the cause is not in the
   run).
2. Imported events keep their `recorded_at`, so `recorded_at` is not
   monotonic along positions in a log that received an import; nothing in
   fleet relies on that.
3. A run's streams are `run-<id>`, `task-<id>` (or `task-<id>-...`, names
   under the run's own), a conversation's `chat-<conversation>` when the run
   is that conversation's (its id is the stream's name), and `agent-<agent_id>` whose
   first event is the `AgentCreated` of that agent, and each of its events
   has `meta.run_id` = the run (what `export_run` selects). An import refuses
   any other stream: a resealed file must not plant events in another
   session's or agent's stream (`session-victim`) that does not exist yet
   in the target log.
4. `import_stream` (`_import_stream.py`) holds a bounded amount of the upload in memory whatever its
   size: lines are checked as they arrive (one line at most `max_line_bytes`)
   and the checked rows are spooled to an anonymous temporary file, which the
   store's one import transaction then reads back chunk by chunk. Nothing is
   written to the log until the whole file has checked (trailer included).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import os
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._catalogue import EVENT_TYPES, AgentCreated, EventModel, RunStarted
from ._encoding import meta_params
from ._envelope import Meta, RecordedEvent
from ._store import EventFilter, EventStore, ImportedEvent
from ._upcasting import upcast
from ._wire import encode_event
from .errors import EventTooLarge, ExportInvalid, InvalidEvent, RunNotFound

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "MIN_KEY_BYTES",
    "ImportResult",
    "RunExport",
    "RunExported",
    "export_lines",
    "export_run",
    "import_run",
    "parse_export",
    "read_export",
    "read_run",
]

EXPORT_FORMAT = "fleet-run"
EXPORT_VERSION = 1
_EVENT_KEYS = frozenset(
    ("position", "stream_id", "version", "type", "schema", "data", "meta", "recorded_at")
)
_META_KEYS = frozenset(Meta.__dataclass_fields__)
_WRITE_CHUNK = 1 << 20  # bytes handed to a file write at once
_CHECK_CHUNK = 1 << 20  # upload bytes checked per worker-thread hop
_ROWS_CHUNK = 2_000  # spooled rows handed to the store at once
MIN_KEY_BYTES = 16
"""The shortest signing key accepted (HMAC-SHA256 takes any length; a short one is guessable)."""
_SIGNATURE = "hmac_sha256"


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


# -- export -----------------------------------------------------------------------


def _line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


async def _find_run(store: EventStore, run_id: str) -> None:
    first = await store.read_stream(f"run-{run_id}", limit=1, lenient=True)
    if not first or not isinstance(first[0].data, RunStarted):
        raise RunNotFound(run_id)


async def _run_events(
    store: EventStore, run_id: str, until: int | None
) -> AsyncIterator[RecordedEvent]:
    """The run's events up to `until`, each of its streams checked to be whole."""
    counts: dict[str, int] = {}
    where = EventFilter.of(run_id=run_id)
    async for event in store.iter_all(until=until, where=where, lenient=True):
        count = counts[event.stream_id] = counts.get(event.stream_id, 0) + 1
        if event.version != count:
            raise InvalidEvent(
                f"stream {event.stream_id!r} holds events that are not of run {run_id!r} "
                f"(version {event.version} is the run's event number {count} there)"
            )
        yield event
    for stream_id, count in counts.items():
        after = await store.read_stream(stream_id, after_version=count, limit=1, lenient=True)
        if after and (until is None or after[0].position <= until):
            raise InvalidEvent(
                f"stream {stream_id!r} goes on with an event that is not of run {run_id!r} "
                f"(position {after[0].position}): the run cannot be taken out of it whole"
            )


async def read_run(store: EventStore, run_id: str) -> list[RecordedEvent]:
    """Every event of run `run_id`, in position order (the events an export holds).

    Those are the events whose `meta.run_id` is the run: its run, task,
    conductor and agent streams, each whole, up to the log's head at the call.
    Raises `RunNotFound`, and `InvalidEvent` if one of those streams also holds
    events of something else.
    """
    await _find_run(store, run_id)
    # Up to the head as of now, as an export: a live run's streams go on while they are read.
    head = await store.head()
    return [event async for event in _run_events(store, run_id, head)]


def _check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"a signing key needs at least {MIN_KEY_BYTES} bytes, got {len(key)} "
            "(e.g. `openssl rand -hex 32`)"
        )
    return key


async def export_lines(
    store: EventStore, run_id: str, *, sign_key: bytes | None = None
) -> AsyncIterator[bytes]:
    """The export of `run_id`, line by line (header, events, trailer).

    With `sign_key`, the trailer carries an HMAC-SHA256 of every line before
    it (`import_stream(..., verify_key=)` checks it). Raises `ValueError` for
    a key under `MIN_KEY_BYTES`.

    The run is looked up before the first line: `RunNotFound` is raised by
    this call, not in the middle of the iteration. Events appended to the run
    after this call are not included. An `InvalidEvent` in the middle (a
    stream of the run holding events of something else, a type this fleet
    does not know) ends the lines before the trailer: such an export is never
    importable.
    """
    if sign_key is not None:
        _check_key(sign_key)
    await _find_run(store, run_id)
    head = await store.head()
    return _lines(store, run_id, head, sign_key)


class _Digests:
    """The trailer's SHA-256, and its HMAC when there is a key, over the same bytes."""

    def __init__(self, key: bytes | None) -> None:
        self.sha = hashlib.sha256()
        self.mac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None

    def update(self, data: bytes) -> None:
        self.sha.update(data)
        if self.mac is not None:
            self.mac.update(data)


async def _lines(
    store: EventStore, run_id: str, head: int, sign_key: bytes | None
) -> AsyncIterator[bytes]:
    digest = _Digests(sign_key)
    header = _line(
        {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "run_id": run_id,
            "exported_at": datetime.now(UTC).isoformat(),
            "head": head,
        }
    )
    digest.update(header)
    yield header
    counts: dict[str, int] = {}
    async for event in _run_events(store, run_id, head):
        counts[event.stream_id] = event.version
        line = encode_event(event, schema=True) + b"\n"
        digest.update(line)
        yield line
    trailer: dict[str, Any] = {
        "end": EXPORT_FORMAT,
        "events": sum(counts.values()),
        "streams": counts,
        "sha256": digest.sha.hexdigest(),
    }
    if digest.mac is not None:
        trailer[_SIGNATURE] = digest.mac.hexdigest()
    yield _line(trailer)


async def export_run(
    store: EventStore,
    run_id: str,
    path: str | os.PathLike[str],
    *,
    sign_key: bytes | None = None,
) -> RunExported:
    """Write run `run_id` to `path` as JSON Lines, signed with `sign_key` if given.

    The file appears whole or not at all (written beside it, then renamed).
    Raises `RunNotFound`, `InvalidEvent` (an event of a type unknown to this
    fleet), `ValueError` for a signing key too short, `OSError` when the file
    cannot be written.
    """
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    lines = await export_lines(store, run_id, sign_key=sign_key)
    handle = await asyncio.to_thread(partial.open, "wb")
    size = 0
    last = b""
    try:
        chunk: list[bytes] = []
        pending = 0
        async for line in lines:
            chunk.append(line)
            pending += len(line)
            last = line
            if pending >= _WRITE_CHUNK:
                await asyncio.to_thread(handle.writelines, chunk)
                size += pending
                chunk, pending = [], 0
        await asyncio.to_thread(handle.writelines, chunk)
        size += pending
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(os.replace, partial, target)
    except BaseException:
        handle.close()
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    trailer = json.loads(last)
    return RunExported(
        run_id,
        target,
        trailer["events"],
        trailer["streams"],
        trailer["sha256"],
        size,
        signed=_SIGNATURE in trailer,
    )


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

    def feed(self, number: int, raw: bytes) -> None:
        if self.trailer is not None:
            raise self.fail("there is more after the trailer line", number)
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise self.fail(f"not a JSON Lines run export ({_short(e)})", number) from None
        if not isinstance(value, dict):
            raise self.fail("not a JSON Lines run export (a line is not a JSON object)", number)
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
        if version != EXPORT_VERSION:
            raise self.fail(
                f"export format version {version!r} is not supported (this fleet reads "
                f"version {EXPORT_VERSION})",
                number,
            )
        run_id = value.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise self.fail("the header names no run_id", number)
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
        if position <= self.last_position:
            raise self.fail(
                f"position {position} is not after {self.last_position}: the events are out "
                "of order",
                number,
            )
        expected = self.versions.get(stream, 0) + 1
        if version != expected:
            raise self.fail(
                f"stream {stream!r} jumps to version {version} where {expected} was expected "
                "(an event is missing or out of order)",
                number,
            )
        if not self.count and (stream != f"run-{self.run_id}" or value["type"] != "RunStarted"):
            raise self.fail(f"the first event is not the RunStarted of run-{self.run_id}", number)
        data = self.data(number, value)
        if isinstance(data, RunStarted) and data.run_id != self.run_id:
            raise self.fail(f"RunStarted is for run {data.run_id!r}, not {self.run_id!r}", number)
        self.of_the_run(number, stream, version, data)
        meta = self.meta(number, value["meta"])
        if meta.run_id != self.run_id:
            raise self.fail(
                f"an event of stream {stream!r} has meta.run_id {meta.run_id!r}, not the run's "
                f"{self.run_id!r} (module note 3)",
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
                return
            raise self.fail(
                f"stream {stream!r} does not begin with the AgentCreated of its agent, so it "
                f"is not an agent of run {run_id!r} (module note 3)",
                number,
            )
        raise self.fail(
            f"stream {stream!r} is not one of run {run_id!r}'s (run-{run_id}, task-{run_id}[-*] "
            "and the agent-<id> streams of the agents it created): refusing to write into "
            "another stream (module note 3)",
            number,
        )

    def data(self, number: int, value: dict[str, Any]) -> EventModel:
        kind, schema, data = value["type"], value["schema"], value["data"]
        known = self.validators.get(kind) if isinstance(kind, str) else None
        if known is None:
            raise self.fail(f"unknown event type {kind!r}", number)
        current, cls = known
        if type(schema) is not int or not 1 <= schema <= current:
            raise self.fail(
                f"{kind} schema {schema!r} is not one this fleet reads (1 to {current})", number
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
        try:
            at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise self.fail(f"recorded_at {raw!r} is not an ISO 8601 time with a zone", number)
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
        body = raw[:-1] if raw.endswith(b"\n") else raw
        if not body.strip():
            raise checker.fail("a blank line (not a JSON Lines run export)", number)
        checker.feed(number, body + b"\n")
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


# -- import ----------------------------------------------------------------------


async def import_run(store: EventStore, export: RunExport) -> ImportResult:
    """Append the run in `export` to `store`'s log in one transaction (module note 1).

    Every event gets a new position after the log's head, in the export's
    order; stream versions, data, meta and `recorded_at` are kept. Raises
    `ImportConflict` when a stream of the run exists already, `EventTooLarge`
    for an event over this store's size limit, `StoreError`/`StoreClosed`/
    `StoreUnavailable` for the log itself; in every case nothing is written.
    `export` is not mutated.
    """
    limit = store.max_event_bytes
    for event in export.rows:
        if len(event.data) * 4 > limit and len(event.data.encode()) > limit:
            raise EventTooLarge(event.stream_id, event.type, len(event.data.encode()), limit)
    first = await store.import_run(export.run_id, export.rows)
    return ImportResult(
        export.run_id,
        export.events,
        tuple(export.streams),
        first,
        first + export.events - 1,
    )
