"""The hook dispatcher: runs the hooks that match at one point and combines their answers.

    async with HookDispatcher(load_settings(path)) as hooks:
        hooks.add_python("PreToolUse", check, matcher="Bash")
        outcome = await hooks.dispatch("PreToolUse", payload, on_detached=record)
        for data in outcome.invocations:   # the runtime appends these (HookInvoked)
            ...

Notes (do not fix without reading this):
1. A point with no hooks costs one dict lookup: no task, no payload encoding.
   One matching hook is awaited directly (no task either); several run
   concurrently, the async ones as tasks while the sync Python ones run inline.
2. Identical commands (or URLs) selected at one point run once, as Claude Code
   deduplicates them; Python hooks are never deduplicated.
3. Python hooks receive the payload dict itself, not a copy (a copy per hook
   would cost more than the hook): they must not mutate it, and change a tool's
   input by answering `updatedInput` instead.
4. A detached hook (settings `"async": true`) runs in a task of the
   dispatcher's own and the dispatch does not wait for it: it cannot decide.
   When it ends, its record (`HookInvoked` with `detached=True`, its
   `additionalContext` and `systemMessage` kept, its decision recorded but
   never applied) goes to the dispatch's `on_detached` callback. `aclose()`
   cancels detached hooks still running, and every process they started dies;
   each one cut so still gets its record, an "error" whose reason says it was
   stopped at exit (with what it had printed), sent to `on_detached` before
   `aclose()` returns, so the runtime writes it before its store closes.
5. `onFailure: "block"`: a hook that could not start, timed out or exited
   with an unexpected code (an "error" or "timeout" verdict) blocks the action
   at points that can block; elsewhere it is the non-blocking error it was.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal, Self

import httpx

from events import HookInvoked

from ._config import DEFAULT_TIMEOUT, HooksConfig, Matcher
from ._output import NO_OUTCOME, HookOutcome, Verdict, clip, combine, error_verdict
from ._points import BLOCKING_POINTS, IF_POINTS, MATCHER_FIELDS, HookPoint, hook_point
from ._rules import PermissionRule
from ._runners import (
    Call,
    CommandHook,
    CommandOutput,
    HttpHook,
    PythonHook,
    PythonHookFn,
    Runner,
)
from .errors import DispatcherClosed, HookConfigError, UnknownHookPoint

__all__ = ["DetachedSink", "HookDispatcher"]

DetachedSink = Callable[[HookInvoked], Awaitable[object]]
"""Where a detached hook's record goes when it ends (module note 4)."""

logger = logging.getLogger(__name__)

_POINT_NAMES = tuple(p.value for p in HookPoint)

# A sync hook that runs inline longer than this stalls every agent: say so.
SLOW_INLINE_MS = 20.0


@dataclass(frozen=True, slots=True)
class _Entry:
    matcher: Matcher
    runner: Runner
    dedupe: str | None  # command and http hooks: see HookSpec.dedupe_key
    rule: PermissionRule | None = None
    detached: bool = False
    on_failure: Literal["continue", "block"] = "continue"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _fn_name(fn: object) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}" if module else qualname


def _cut_verdict(output: CommandOutput, ms: float) -> Verdict:
    """The record of a detached hook `aclose()` stopped (module note 4)."""
    said = [
        f"{name} so far: {bytes(data).decode('utf-8', errors='replace').strip()[:2000]!r}"
        for name, data in (("stdout", output.stdout), ("stderr", output.stderr))
        if data.strip()
    ]
    printed = "; ".join(said) if said else "it printed nothing"
    return error_verdict(
        f"stopped at exit: still running after {ms / 1000:.1f} s when fleet closed; {printed}"
    )


class HookDispatcher:
    """Runs hooks at hook points; an async context manager (`aclose()` is idempotent).

    Args:
        config: validated settings (`load_settings()`); None for no configured hooks.
        project_dir: the folder named by `CLAUDE_PROJECT_DIR` / `FLEET_PROJECT_DIR`
            for command hooks (default: the config's project, else the current folder).
        http_client: an `httpx.AsyncClient` for HTTP hooks, owned by the caller;
            by default the dispatcher makes one when first needed and closes it.
    """

    def __init__(
        self,
        config: HooksConfig | None = None,
        *,
        project_dir: str | os.PathLike[str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config or HooksConfig()
        folder = project_dir if project_dir is not None else self.config.project_dir
        self.project_dir = os.path.abspath(folder if folder is not None else os.getcwd())
        self._own_client = http_client is None
        self._client = http_client
        self._closed = False
        self._detached: set[asyncio.Task[None]] = set()
        env = dict(os.environ)
        env["CLAUDE_PROJECT_DIR"] = env["FLEET_PROJECT_DIR"] = self.project_dir
        self._table: dict[str, tuple[HookPoint, tuple[_Entry, ...]]] = {
            p.value: (p, ()) for p in HookPoint
        }
        for point, groups in self.config.groups.items():
            entries: list[_Entry] = []
            for group in groups:
                for spec in group.hooks:
                    runner: Runner
                    if spec.kind == "command":
                        runner = CommandHook(spec, env, self.project_dir)
                    else:
                        runner = HttpHook(spec, self._http)
                    entries.append(
                        _Entry(
                            group.matcher,
                            runner,
                            spec.dedupe_key,
                            spec.rule,
                            spec.detached and spec.kind == "command",
                            spec.on_failure,
                        )
                    )
            self._table[point.value] = (point, tuple(entries))

    # -- configuration ----------------------------------------------------------

    def add_python(
        self,
        point: str,
        fn: PythonHookFn,
        *,
        matcher: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        name: str | None = None,
        thread: bool = False,
        if_: str | None = None,
        on_failure: Literal["continue", "block"] = "continue",
    ) -> None:
        """Add an in-process hook at `point`, after the hooks already there.

        `fn(payload)` returns None, a dict in Claude Code's output shape, a
        `HookOutput`, or an awaitable of one. A sync `fn` runs on the event loop
        and must be cheap; pass `thread=True` for one that blocks (it then runs in
        a worker thread under `timeout`). `name` is recorded in `HookInvoked.hook`
        (default: the function's qualified name). `if_` is a permission rule
        (`"Bash(rm *)"`) narrowing a tool point's hook, as settings' `if`;
        `on_failure="block"` makes a hook that raises or times out block.

        Raises:
            UnknownHookPoint: `point` is not a hook point.
            HookConfigError: `matcher` is not a valid regular expression, `if_`
                is not a permission rule or is given at a point that is not a
                tool point, or `timeout` is not positive.
            TypeError: `fn` is not callable.
        """
        hp = hook_point(point)
        if not callable(fn):
            raise TypeError(f"a python hook must be callable, got {type(fn).__name__}")
        try:
            compiled = Matcher(matcher)
        except re.error as e:
            raise HookConfigError(
                "add_python", [("matcher", f"invalid regular expression {matcher!r}: {e}")]
            ) from e
        if not timeout > 0:
            raise HookConfigError("add_python", [("timeout", f"must be > 0, got {timeout!r}")])
        rule = None
        if if_ is not None:
            if hp.value not in IF_POINTS:
                raise HookConfigError("add_python", [("if", f"{hp.value} is not a tool point")])
            try:
                rule = PermissionRule.parse(if_)
            except ValueError as e:
                raise HookConfigError("add_python", [("if", str(e))]) from None
        hook = PythonHook(fn, name or _fn_name(fn), float(timeout), thread)
        entry = _Entry(compiled, hook, None, rule, on_failure=on_failure)
        _, entries = self._table[hp.value]
        self._table[hp.value] = (hp, (*entries, entry))

    def has_hooks(self, point: str) -> bool:
        """Whether any hook is configured at `point` (to skip building a payload when none is)."""
        entry = self._table.get(point)
        return bool(entry and entry[1])

    # -- dispatch ---------------------------------------------------------------

    async def dispatch(
        self,
        point: str,
        payload: dict[str, Any],
        *,
        on_detached: DetachedSink | None = None,
    ) -> HookOutcome:
        """Run the hooks at `point` that match `payload` and combine their answers.

        Tool points match on `payload["tool_name"]` (see `MATCHER_FIELDS` for the
        others), and a handler's `if` rule on the tool call. A hook that fails,
        hangs or answers garbage is recorded as an "error" or "timeout"
        invocation and never raises here. Detached hooks are started and not
        waited for; their records go to `on_detached` (module note 4).

        Raises:
            UnknownHookPoint: `point` is not a hook point.
            DispatcherClosed: after `aclose()`.

        The payload is never mutated.
        """
        if self._closed:
            raise DispatcherClosed()
        try:
            hp, entries = self._table[point]
        except KeyError:
            raise UnknownHookPoint(point, _POINT_NAMES) from None
        if not entries:
            return NO_OUTCOME
        selected = self._select(hp, entries, payload, self.project_dir)
        if not selected:
            return NO_OUTCOME
        call = Call(hp, payload)
        if any(e.detached for e in selected):
            for entry in selected:
                if entry.detached:
                    self._start_detached(hp, entry, call, on_detached)
            selected = [e for e in selected if not e.detached]
            if not selected:
                return NO_OUTCOME
        if len(selected) == 1:
            results = [await self._run(selected[0], call)]
        else:
            results = await self._run_all(selected, call)
        invocations = tuple(
            self._record(hp, entry.runner, payload, verdict, ms)
            for entry, (verdict, ms) in zip(selected, results, strict=True)
        )
        return combine(hp, [verdict for verdict, _ in results], invocations)

    @staticmethod
    def _select(
        hp: HookPoint, entries: tuple[_Entry, ...], payload: Mapping[str, Any], project_dir: str
    ) -> list[_Entry]:
        field = MATCHER_FIELDS.get(hp)
        value = payload.get(field) if field is not None else None
        selected: list[_Entry] = []
        seen: set[str] = set()
        for entry in entries:
            if field is not None and not entry.matcher.matches(value):
                continue
            if entry.rule is not None and not entry.rule.matches(
                payload.get("tool_name"),
                payload.get("tool_input"),
                cwd=str(payload.get("cwd") or ""),
                project_dir=project_dir,
            ):
                continue
            if entry.dedupe is not None and not entry.detached:
                if entry.dedupe in seen:
                    continue
                seen.add(entry.dedupe)
            selected.append(entry)
        return selected

    @staticmethod
    async def _run(
        entry: _Entry, call: Call, output: CommandOutput | None = None
    ) -> tuple[Verdict, float]:
        runner = entry.runner
        started = time.perf_counter()
        try:
            if isinstance(runner, CommandHook):
                verdict = await runner.run(call, output)
            else:
                verdict = await runner.run(call)
        except Exception as e:  # a hook's failure is a verdict, never the agent's failure
            logger.debug("hook %s at %s raised", runner.name, call.point, exc_info=True)
            verdict = error_verdict(f"{type(e).__name__}: {e}")
        if (
            entry.on_failure == "block"
            and verdict.decision in ("error", "timeout")
            and call.point in BLOCKING_POINTS
        ):  # module note 5
            why = f'the hook failed and its onFailure is "block": {verdict.reason}'
            verdict = replace(verdict, decision="block", reason=clip(why))
        ms = (time.perf_counter() - started) * 1000.0
        if runner.inline and ms > SLOW_INLINE_MS:
            logger.warning(
                "python hook %s held the event loop for %.0f ms; add it with thread=True",
                runner.name,
                ms,
            )
        return verdict, ms

    async def _run_all(self, selected: list[_Entry], call: Call) -> list[tuple[Verdict, float]]:
        tasks = {
            i: asyncio.ensure_future(self._run(entry, call))
            for i, entry in enumerate(selected)
            if not entry.runner.inline
        }
        results: list[tuple[Verdict, float]] = []
        try:
            for entry in selected:
                if entry.runner.inline:
                    results.append(await self._run(entry, call))
                else:
                    results.append((Verdict(), 0.0))  # filled in below
            if tasks:
                done = await asyncio.gather(*tasks.values())
                for i, result in zip(tasks, done, strict=True):
                    results[i] = result
        finally:
            for task in tasks.values():
                task.cancel()  # a no-op for finished tasks; stops the rest when we are cancelled
        return results

    @staticmethod
    def _record(
        hp: HookPoint,
        runner: Runner,
        payload: Mapping[str, Any],
        verdict: Verdict,
        ms: float,
        *,
        detached: bool = False,
    ) -> HookInvoked:
        logger.debug("hook %s at %s: %s (%.2f ms)", runner.name, hp.value, verdict.decision, ms)
        if verdict.system_message:
            logger.warning("hook %s at %s says: %s", runner.name, hp.value, verdict.system_message)
        tool_use_id = payload.get("tool_use_id", payload.get("fleet_tool_use_id"))
        return HookInvoked(
            point=hp.value,
            kind=runner.kind,
            hook=runner.name,
            agent_id=_str_or_none(payload.get("fleet_agent_id")),
            tool_use_id=_str_or_none(tool_use_id),
            decision=verdict.decision,
            reason=verdict.reason,
            duration_ms=round(ms, 3),
            updated_input=verdict.updated_input,
            additional_context=verdict.context,
            system_message=clip(verdict.system_message) if verdict.system_message else None,
            detached=detached,
        )

    def _start_detached(
        self, hp: HookPoint, entry: _Entry, call: Call, sink: DetachedSink | None
    ) -> None:
        """Run a detached hook in a task of the dispatcher's own (module note 4)."""

        async def run() -> None:
            output = CommandOutput()
            started = time.perf_counter()
            try:
                verdict, ms = await self._run(replace(entry, on_failure="continue"), call, output)
            except asyncio.CancelledError:
                if not self._closed:
                    raise  # not our doing (the loop is going away): nothing to record it with
                if (me := asyncio.current_task()) is not None:
                    me.uncancel()  # ours, and handled here
                ms = (time.perf_counter() - started) * 1000.0
                verdict = _cut_verdict(output, ms)
            record = self._record(hp, entry.runner, call.payload, verdict, ms, detached=True)
            if sink is None:
                return
            try:
                await sink(record)
            except Exception:  # the sink's failure is logged, never lost silently
                name = entry.runner.name
                logger.warning("recording detached hook %s failed", name, exc_info=True)

        task = asyncio.create_task(run(), name=f"hook-{hp.value}-{entry.runner.name[:40]}")
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def drain(self) -> None:
        """Wait until every detached hook started so far has ended and been recorded."""
        while self._detached:
            await asyncio.gather(*list(self._detached), return_exceptions=True)

    # -- resources ----------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._closed:
                raise DispatcherClosed()
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        """Cancel detached hooks (each recorded as stopped, module note 4), close the HTTP
        client (if it made it); safe to call twice."""
        self._closed = True
        detached = list(self._detached)
        if detached:
            # A task not started yet would take the cancel before its first line, where
            # nothing can catch it to record the cut (module note 4): let each take a step.
            await asyncio.sleep(0)
        for task in detached:
            task.cancel()
        await asyncio.gather(*detached, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None and self._own_client:
            await client.aclose()

    async def __aenter__(self) -> Self:
        if self._closed:
            raise DispatcherClosed()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
