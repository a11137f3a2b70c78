"""Tokens and cost of ingested Claude Code sessions, read from their transcripts.

    async with SessionUsage(store, runner) as usage:    # the app's lifespan opens it
        usage.notify(external_hook_data)                 # the ingest route, after each append

Each ingested hook payload names the session's transcript (`transcript_path`)
and, for a subagent, the subagent's (`agent_transcript_path` at SubagentStop;
before that, the file Claude Code keeps beside the session's,
`<session>/subagents/agent-<agent_id>.jsonl`). `notify()` only queues the
file; one background task reads each queued file from where it stopped
(`runtime.TranscriptReader`), prices each new response with the model table,
and appends it as `ModelResponded` of the session's agent or of the subagent's
to the session's stream, so the agents' cards show model, tokens, cache
buckets, cost and context in use.

Notes (do not fix without reading this):
1. Each response is counted once, by its request id: the ids already in the
   session's stream (from an earlier server process, or from Claude Code's
   OpenTelemetry `api_request` through the OTLP ingest) are loaded before
   the first response of a session is appended, and the OTLP ingest asks
   `claim()` before it appends one, whichever source comes first.
2. The hook answers before the transcript is read: reading a large
   transcript must not hold Claude Code up (a PreToolUse hook waits for the
   answer). The tokens appear a moment after the hook that announced them.
3. Transcripts are read only when fleet runs where Claude Code does (the file
   is readable); otherwise the session is shown without tokens.
4. A transcript belongs to the first session (or subagent) that names it:
   another naming the same file is not read for it (a warning says so). The
   reader keeps its place by file, so a second session naming a file took
   whatever was written to it next as its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from events import EventStore, ExternalHookReceived, Meta, ModelResponded, NewEvent
from projections import ProjectionRunner, external_agent_id, external_subagent_id
from runtime import ModelTable, PriceTable, TranscriptReader

__all__ = ["SessionUsage"]

logger = logging.getLogger(__name__)

_FINAL_HOOKS = frozenset({"Stop", "SubagentStop", "SessionEnd"})


@dataclass(slots=True)
class _Job:
    session_id: str
    agent_id: str  # whose responses the file holds (a subagent's lines name theirs)
    final: bool


class SessionUsage:
    """Reads the transcripts of ingested sessions in the background. An async context manager."""

    def __init__(
        self,
        store: EventStore,
        runner: ProjectionRunner,
        *,
        models: ModelTable | None = None,
        prices: PriceTable | None = None,
        reader: TranscriptReader | None = None,
    ) -> None:
        file = os.environ.get("FLEET_MODELS_FILE") or None
        self.models = models or (
            ModelTable.default().with_file(file) if file else ModelTable.default()
        )
        self.prices = prices or PriceTable.default(self.models)
        if file and prices is None:
            self.prices = self.prices.with_file(file)
        self._store = store
        self._runner = runner
        self._reader = reader or TranscriptReader()
        self._pending: dict[str, _Job] = {}
        self._owners: dict[str, str] = {}  # transcript path -> the agent it is read for (note 4)
        self._seen: dict[str, set[str]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def notify(self, data: ExternalHookReceived) -> None:
        """Queue the transcripts `data` names (non-blocking; the argument is not mutated)."""
        if self._closed:
            return
        payload = data.payload
        session = external_agent_id(data.session_id)
        final = data.hook_event_name in _FINAL_HOOKS
        sub = payload.get("agent_id")
        main = payload.get("transcript_path")
        if isinstance(main, str):
            # A subagent's Stop is not its session's: the session's file stays open.
            self._queue(main, _Job(data.session_id, session, final and not sub))
        if isinstance(sub, str) and sub:
            own = payload.get("agent_transcript_path")
            if not isinstance(own, str) and isinstance(main, str):
                own = posixpath.join(
                    posixpath.dirname(main), data.session_id, "subagents", f"agent-{sub}.jsonl"
                )
            if isinstance(own, str):
                agent = external_subagent_id(data.session_id, sub)
                self._queue(own, _Job(data.session_id, agent, final))

    def _queue(self, path: str, job: _Job) -> None:
        owner = self._owners.setdefault(path, job.agent_id)
        if owner != job.agent_id:  # note 4
            logger.warning(
                "transcript %s is %s's: not read for %s, which names it too",
                path, owner, job.agent_id,
            )  # fmt: skip
            return
        queued = self._pending.get(path)
        if queued is not None:
            job.final = job.final or queued.final
        self._pending[path] = job
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Return when every transcript queued so far has been read (for tests and shutdown)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                path, job = next(iter(self._pending.items()))
                del self._pending[path]
                try:
                    await self._read(path, job)
                except Exception:  # one bad transcript must not stop the others
                    logger.warning("transcript %s could not be read", path, exc_info=True)
            self._idle.set()

    async def _read(self, path: str, job: _Job) -> None:
        responses = await self._reader.read(path, final=job.final)
        if not responses:
            return
        seen = await self._seen_ids(job.session_id)
        stream_id = f"session-{job.session_id}"
        batch: list[NewEvent] = []
        for response in responses:
            if response.request_id in seen:
                continue
            seen.add(response.request_id)
            agent = (
                external_subagent_id(job.session_id, response.agent_id)
                if response.agent_id
                else job.agent_id
            )
            data = response.as_event(agent, self.models, self.prices)
            batch.append(NewEvent(data, Meta(agent_id=agent, source="ingest")))
        if batch:
            recorded = await self._store.append(stream_id, batch)
            await self._runner.offer(recorded)
            logger.debug("%d responses of %s from %s", len(batch), job.session_id, path)

    async def claim(self, session_id: str, request_id: str) -> bool:
        """Whether `request_id` is not counted yet for the session; it is from now on.

        The OTLP ingest asks before it appends Claude Code's `api_request` as a
        `ModelResponded`, so that telemetry and transcripts count each request once.
        """
        seen = await self._seen_ids(session_id)
        if request_id in seen:
            return False
        seen.add(request_id)
        return True

    async def _seen_ids(self, session_id: str) -> set[str]:
        seen = self._seen.get(session_id)
        if seen is None:
            events = await self._store.read_stream(f"session-{session_id}", lenient=True)
            loaded = {
                e.data.message_id
                for e in events
                if isinstance(e.data, ModelResponded) and e.data.message_id
            }
            # Another task may have loaded it meanwhile: keep the one already shared.
            seen = self._seen.setdefault(session_id, loaded)
        return seen

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="fleet-session-usage")
        return self

    async def aclose(self) -> None:
        """Stop reading; what is queued and not read yet is dropped. Safe to call twice."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._idle.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
