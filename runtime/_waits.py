"""The sleep pattern: an agent waits on others without spending a token.

`Sleeper` is what `Fleet.wait_for_agents` and `Fleet.wait_all` run: it follows
the log until awaited agents end, records the wait in the waiter's stream
(AgentWaiting, AgentWoke: the dependency graph's "waits on" edges) and fires
Notification when a wait runs long.

Notes (do not fix without reading this):
1. It follows the log's subscription from the head it saw before checking
   statuses, so a change that lands between the check and the wait still wakes
   it, and it spends no model tokens while asleep.
2. A re-execution (runtime/replay) gives a `wake_script`: history drives its
   waits. A scripted wait sleeps until every awaited agent the recording saw
   finished has finished here too, then returns the recorded wake (reason,
   changed, statuses), so which scout finishes first under load changes
   nothing the orchestrator sees. If that state does not come within the
   timeout (or an agent ended otherwise: failed where it had completed), the
   real wake is returned, and the replay reports the divergences that follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from events import AgentWaiting, AgentWoke, EventFilter, EventModel, EventStore
from hooks import HookDispatcher, build_payload
from projections import ProjectionRunner

from ._outage import read_waiting

__all__ = ["TERMINAL", "Recorder", "ScriptedWake", "Sleeper", "WakeResult", "WakeScript"]

Recorder = Callable[[EventModel], Awaitable[object]]

TERMINAL = frozenset({"completed", "failed", "deleted"})
_TERMINAL_EVENTS = frozenset({"AgentCompleted", "AgentFailed", "AgentDeleted"})


@dataclass(frozen=True, slots=True)
class WakeResult:
    """Why a sleeping agent woke, which awaited agents changed, and every awaited status."""

    reason: str
    changed: list[str]
    statuses: dict[str, str]
    waited_ms: float


@dataclass(frozen=True, slots=True)
class ScriptedWake:
    """The wake a re-execution prescribes for one `wait_for_agents` (note 2)."""

    reason: str
    changed: list[str]
    statuses: dict[str, str]


# (waiter id, awaited ids) -> the wake to return, or None: wait as a live run does.
WakeScript = Callable[[str, list[str]], Awaitable[ScriptedWake | None]]


class Sleeper:
    """Waits on agents for a fleet: its log, its read models and its hooks.

    Args:
        status_of: an agent's status from the read models; raises `AgentNotFound`.
        sync: awaited to read one's writes (the projections at the log's head).
        notify_after_s: seconds of a wait before Notification (`agent_waiting`).
        wake_script: a re-execution's script of wakes (note 2); None in a live run.
    """

    def __init__(
        self,
        *,
        store: EventStore,
        runner: ProjectionRunner,
        hooks: HookDispatcher,
        status_of: Callable[[str], str],
        sync: Callable[[], Awaitable[None]],
        workspace: Path,
        notify_after_s: float,
        wake_script: WakeScript | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.hooks = hooks
        self.wake_script = wake_script
        self._status_of = status_of
        self._sync = sync
        self._workspace = workspace
        self._notify_after_s = notify_after_s

    async def wait_for_agents(
        self,
        agent_ids: Iterable[str],
        timeout_s: float,
        *,
        waiter_id: str | None = None,
        record: Recorder | None = None,
    ) -> WakeResult:
        """Sleep until one of `agent_ids` finishes, fails or is deleted, or `timeout_s` passes.

        Returns at once when every awaited agent has already finished. With a
        `waiter_id` and its `record` (how events reach the waiter's stream),
        appends AgentWaiting and AgentWoke (the dependency graph's "waits on"
        edges), and fires Notification (`agent_waiting`) when the wait passes
        `FleetConfig.notify_wait_after_s`. Raises `AgentNotFound`.
        """
        ids = list(dict.fromkeys(agent_ids))
        scripted = None
        if self.wake_script is not None and waiter_id is not None:
            scripted = await self.wake_script(waiter_id, ids)  # module note 2
        who = f"agent {waiter_id}" if waiter_id is not None else "a wait for agents"
        start_head = await read_waiting(self.store, self.store.head, who=who)  # an outage
        await self.runner.wait_for(start_head, timeout=10.0)
        statuses = {i: self._status_of(i) for i in ids}
        pending = {i for i, s in statuses.items() if s not in TERMINAL}
        # Live: wake when any pending agent ends. Scripted: when all the recording saw end have.
        awaited = (
            set(pending)
            if scripted is None
            else {i for i in pending if scripted.statuses.get(i) in TERMINAL}
        )
        if not awaited and (scripted is None or scripted.reason == "already_done"):
            if scripted is not None:
                return WakeResult(scripted.reason, scripted.changed, scripted.statuses, 0.0)
            return WakeResult("already_done", [], statuses, 0.0)
        if record is not None and waiter_id is not None:
            await record(AgentWaiting(agent_id=waiter_id, on=sorted(pending), timeout_s=timeout_s))
        started = time.perf_counter()
        changed: list[str] = []
        reason = "timeout"
        notifier = None
        if record is not None and waiter_id is not None:
            notifier = asyncio.create_task(
                self._notify_waiting(waiter_id, sorted(pending), timeout_s, record),
                name=f"notify-wait-{waiter_id}",
            )
        try:
            if awaited:
                changed = await self._sleep_on(start_head, awaited, timeout_s, all_=bool(scripted))
                reason = "changed" if changed else "timeout"
        finally:
            if notifier is not None:
                notifier.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await notifier
        waited_ms = (time.perf_counter() - started) * 1000
        await read_waiting(self.store, self._sync, who=who)  # the agents ended; the log went
        statuses = {i: self._status_of(i) for i in ids}
        changed = sorted({*changed, *(i for i in pending if statuses[i] in TERMINAL)})
        wake = WakeResult("changed" if changed else reason, changed, statuses, waited_ms)
        if scripted is not None and all(statuses[i] == scripted.statuses[i] for i in awaited):
            wake = WakeResult(scripted.reason, scripted.changed, scripted.statuses, waited_ms)
        if record is not None and waiter_id is not None:
            await record(  # what happened here, even when the wake returned is the recording's
                AgentWoke(
                    agent_id=waiter_id,
                    on=sorted(pending),
                    reason="changed" if changed else "timeout",
                    changed=changed,
                    waited_ms=round(waited_ms, 3),
                )
            )
        return wake

    async def _sleep_on(
        self, after: int, awaited: set[str], timeout_s: float, *, all_: bool
    ) -> list[str]:
        """The awaited agents that ended after `after`: at the first one (or all, `all_`)."""
        changed: list[str] = []
        left = set(awaited)
        terminal = EventFilter.of(types=_TERMINAL_EVENTS)
        subscription = self.store.subscribe(after=after, where=terminal)
        try:
            with contextlib.suppress(TimeoutError):  # a timeout is a normal wake-up
                async with asyncio.timeout(timeout_s):
                    async for event in subscription:
                        agent_id = event.meta.agent_id or getattr(event.data, "agent_id", None)
                        if agent_id in left:
                            left.discard(agent_id)
                            changed.append(agent_id)
                            if not all_ or not left:
                                break
        finally:
            await subscription.aclose()  # type: ignore[attr-defined]
        return changed

    async def _notify_waiting(
        self, waiter_id: str, on: list[str], timeout_s: float, record: Recorder
    ) -> None:
        """After `notify_wait_after_s` of a wait: Notification, recorded in the waiter's stream."""
        after = self._notify_after_s
        if after >= timeout_s or not self.hooks.has_hooks("Notification"):
            return
        await asyncio.sleep(after)  # cancelled when the wait ends first
        waiter = self.runner.agent(waiter_id) or {}
        names = ", ".join((self.runner.agent(i) or {}).get("name", i) for i in on)
        payload = build_payload(
            "Notification",
            session_id=waiter_id,
            cwd=str(self._workspace),
            agent_id=waiter_id,
            parent_id=waiter.get("parent_id"),
            run_id=waiter.get("run_id"),
            message=f"{waiter.get('name', waiter_id)} has waited {after:g} s on {names}",
            title="Still waiting",
            notification_type="agent_waiting",
        )
        outcome = await self.hooks.dispatch("Notification", payload)
        for invocation in outcome.invocations:
            await record(invocation)

    async def wait_all(
        self,
        agent_ids: Iterable[str],
        *,
        waiter_id: str | None = None,
        record: Recorder | None = None,
        timeout_s: float = 3600,
    ) -> dict[str, str]:
        """Sleep until every agent in `agent_ids` has finished; wakes once per completion."""
        ids = list(agent_ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            remaining = deadline - loop.time()
            wake = await self.wait_for_agents(
                ids, max(remaining, 0.001), waiter_id=waiter_id, record=record
            )
            if all(s in TERMINAL for s in wake.statuses.values()) or remaining <= 0:
                return wake.statuses
