"""Waiting out a log that is briefly unavailable, rather than failing the agent or the run.

    outage = LogOutage(store, f"agent {agent_id}")
    try:
        await step()
    except StoreUnavailable as e:
        if await outage.wait(e, probe=log.sync):   # the log reads again: go on from it
            return
        ...                                         # unavailable for OUTAGE_LIMIT_S: fail
    else:
        outage.over()

A PostgreSQL restart, a connection killed mid-statement, a network cut or a
full disk makes an append raise `StoreUnavailable`. Failing the agent (then its
run) for it made a moment's outage worse than a `kill -9` at the same point,
after which `fleet resume` finishes the run. Now the agent (`_agent.py`) and a
pattern's conductor (`append_waiting`, `read_waiting`, `_patterns.py`) wait for
the log and go on from what it holds, as a resumed agent would, in the same
process.

Notes (do not fix without reading this):
1. An append that raised `StoreUnavailable` may still have committed (the
   connection was cut after the server's commit, before its answer). So what
   follows the wait is decided by what the log holds, read by the probe: the
   agent folds its stream (`AgentLog.sync`) and takes its next step from that
   state, whose appends carry the expected version; the conductor, whose
   appends carry none, looks for its events at the end of the stream before
   it appends them again (`append_waiting`).
2. The outage lasts until the caller says the operation went through
   (`over()`), not until the probe works: when reads work and writes do not
   (a full disk) the operation fails again at once, and it is tried again at
   the same growing interval and within the same limit, not every half second
   for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from events import EventStore, NewEvent, RecordedEvent
from events.errors import StoreUnavailable

__all__ = [
    "OUTAGE_LIMIT_S",
    "LogOutage",
    "append_waiting",
    "effect_waiting",
    "landed",
    "read_waiting",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_LIMIT_S = 600.0
"""How long an agent or a run waits for an unavailable log before it fails as it would
without waiting: long enough for a PostgreSQL restart or failover, a network cut or a disk
freed by hand; short enough that a log gone for good (a dropped database, a disk that stays
full) ends the run with its reason rather than leaving it hanging."""

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


class LogOutage:
    """One spell of the log being unavailable for `who`: waits for it with a growing interval.

    Args:
        store: the log (one opened read-only is not waited for: it will not change).
        who: what waits, for the log lines ("agent builder-1", "run 1a2b...").
        limit_s: how long an outage is waited out before `wait` gives up.
    """

    def __init__(self, store: EventStore, who: str, *, limit_s: float = OUTAGE_LIMIT_S) -> None:
        self.store = store
        self.who = who
        self.limit_s = limit_s
        self._since: float | None = None
        self._delay = FIRST_DELAY_S
        self._back = False

    async def wait(self, error: StoreUnavailable, probe: Callable[[], Awaitable[object]]) -> bool:
        """Wait until `probe` (a read of the log) works; False once the outage has lasted
        `limit_s` (then the caller does what it did before it waited).

        The first call of an outage logs a warning, and the first probe that works one
        line; the outage goes on until `over()` (note 2). Raises what `probe` raises but
        `StoreUnavailable`.
        """
        if self.store.readonly:
            return False
        loop = asyncio.get_running_loop()
        if self._since is None:
            self._since = loop.time()
            logger.warning("%s: the log is unavailable: %s; waiting for it", self.who, error.reason)
        else:
            logger.debug("%s: the log is still unavailable: %s", self.who, error.reason)
        deadline = self._since + self.limit_s
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._delay, left))
            self._delay = min(self._delay * 2, MAX_DELAY_S)
            try:
                await probe()
            except StoreUnavailable as e:
                logger.debug("%s: the log is still unavailable: %s", self.who, e.reason)
                continue
            if not self._back:
                self._back = True
                logger.warning(
                    "%s: the log is back after %.1f s; going on from what it holds",
                    self.who,
                    loop.time() - self._since,
                )
            return True
        logger.warning(
            "%s: the log has been unavailable for %.0f s; giving up", self.who, self.limit_s
        )
        self.over()
        return False

    def over(self) -> None:
        """The operation went through (or was given up): the next failure is a new outage."""
        self._since = None
        self._delay = FIRST_DELAY_S
        self._back = False


async def append_waiting(
    store: EventStore,
    stream_id: str,
    events: Sequence[NewEvent],
    *,
    who: str,
    held: Callable[[], Awaitable[object]] | None = None,
) -> list[RecordedEvent]:
    """`store.append(stream_id, events)` (any version), waiting out an unavailable log.

    For a stream only its caller writes (a run's conductor, under the run's lease):
    after an outage, events found at the end of the stream equal to `events` (data
    and meta) are taken as this append's, committed before the connection was cut,
    and not appended again (note 1). After an outage, `held()` is awaited before
    anything else: it raises if the caller's lease lapsed and was taken meanwhile.
    Raises `StoreUnavailable` after `OUTAGE_LIMIT_S`, and whatever else `append`
    or `held` raise.
    """
    outage = LogOutage(store, who)
    found: list[RecordedEvent] = []

    async def probe() -> None:
        if held is not None:
            await held()
        found[:] = await landed(store, stream_id, events)

    while True:
        try:
            return await store.append(stream_id, events)
        except StoreUnavailable as e:
            if not await outage.wait(e, probe):
                raise
            if found:
                logger.info("%s: its append to %s had committed", who, stream_id)
                return found


async def read_waiting(store: EventStore, read: Callable[[], Awaitable[T]], *, who: str) -> T:
    """`await read()`, waiting out an unavailable log and then reading again.

    For reads, and for operations that can be tried again as they are (they look
    at the log before they write). Raises `StoreUnavailable` after `OUTAGE_LIMIT_S`,
    and whatever else `read` raises.
    """
    outage = LogOutage(store, who)
    while True:
        try:
            return await read()
        except StoreUnavailable as e:
            if not await outage.wait(e, store.head):
                raise


async def effect_waiting(
    store: EventStore,
    do: Callable[[], Awaitable[T]],
    found: Callable[[], Awaitable[T | None]],
    *,
    who: str,
) -> T:
    """`await do()`, waiting out an unavailable log. A call an outage cut may have taken
    effect (its first append committed before the connection went): once the log is back,
    `found()` (it reads the log) returns that effect, or None and `do` runs again.

    Raises `StoreUnavailable` after `OUTAGE_LIMIT_S`, and whatever else they raise.
    """
    outage = LogOutage(store, who)
    while True:
        try:
            return await do()
        except StoreUnavailable as e:
            if not await outage.wait(e, store.head):
                raise
        effect = await read_waiting(store, found, who=who)
        if effect is not None:
            return effect


async def landed(
    store: EventStore, stream_id: str, events: Sequence[NewEvent]
) -> list[RecordedEvent]:
    """The last len(events) events of the stream if they are `events` (data and meta), else []:
    an append of `events` that raised for an outage had committed (note 1)."""
    version = await store.stream_version(stream_id)
    if version < len(events):
        return []
    tail = await store.read_stream(stream_id, after_version=version - len(events))
    mine = [(e.data, e.meta) for e in events]
    return tail if [(e.data, e.meta) for e in tail] == mine else []
