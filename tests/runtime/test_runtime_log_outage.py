"""A log that is unavailable for a while (a PostgreSQL restart, a connection cut) is waited
out: the run goes on from what the log holds and ends as an uninterrupted run does.

Regression: an append that failed for an outage failed the agent (AgentFailed once the
log was back, or an exception that left it working for ever), its run then RunFailed, and
`fleet resume` found nothing to resume, where a `kill -9` at the same point lost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from disk_support import fill
from rt_support import events_of, make_agent
from sim_support import HoldingResponder, holding_simulator, role, turn

from events import (
    EventStore,
    LeaseHeld,
    Meta,
    NewEvent,
    RecordedEvent,
    RunStarted,
    TaskCreated,
    TaskMoved,
    open_store,
)
from runtime import (
    AgentDrivenElsewhere,
    ModelClient,
    Runtime,
    RuntimeOptions,
    Simulator,
    load_pattern,
    open_runtime,
    prepare_workspace,
    resume_run,
    run_orchestrator,
    run_pattern,
)
from runtime._outage import append_waiting

if TYPE_CHECKING:
    from postgres_support import PostgresProxy
from runtime.simulator import Call, Observation, Situation, Turn

TASK = "rename `count_words` to `word_count` everywhere"
PATTERN = "plan-build-review-ship"


def _files(workspace: Path) -> dict[str, str]:
    return {
        str(p.relative_to(workspace)): p.read_text(errors="replace")
        for p in sorted(workspace.rglob("*"))
        if p.is_file()
        and not {".git", "transcripts", "__pycache__"} & set(p.relative_to(workspace).parts)
    }


async def _run_log(store: EventStore, run_id: str) -> dict[str, list[str]]:
    """The event types of each stream of the run, keyed by agent name (ids are random),
    with the board's columns."""
    events = [e for e in await store.read_all() if e.meta.run_id == run_id]
    names = {e.meta.agent_id: e.data.name for e in events if e.type == "AgentCreated"}  # type: ignore[union-attr]
    streams: dict[str, list[str]] = {}
    for e in events:
        key = e.stream_id.split("-", 1)[0]
        if key == "agent":
            key = names.get(e.meta.agent_id, e.stream_id)
        column = getattr(e.data, "column", None) if key == "task" else None
        streams.setdefault(key, []).append(e.type if column is None else f"{e.type}:{column}")
    return streams


def _duplicates(events: list[RecordedEvent]) -> list[str]:
    """Tool calls requested or completed twice, agents completed twice, in one run."""
    seen = Counter(
        (e.stream_id, e.type, getattr(e.data, "tool_use_id", None))
        for e in events
        if e.type in ("ToolCallRequested", "ToolCallCompleted", "AgentCompleted", "RunCompleted")
    )
    return [f"{k}: {n}" for k, n in seen.items() if n > 1]


@contextlib.asynccontextmanager
async def _runtime_behind_a_proxy(
    tmp_path: Path, sim: Simulator
) -> AsyncIterator[tuple[PostgresProxy, Runtime]]:
    """A runtime on the offline simulator `sim` and a fresh PostgreSQL log reached through a
    proxy the test cuts (`proxy.down()`), its workspace the sample repository in
    `tmp_path / "repo"`."""
    from postgres_support import proxied_log

    workspace = await prepare_workspace(tmp_path / "repo")
    env = {"ANTHROPIC_BASE_URL": sim.base_url, "ANTHROPIC_API_KEY": "sim-offline"}
    async with proxied_log() as (proxy, url):
        # A lock the test holds is met after 1 s, not the default 10.
        options = RuntimeOptions(db=f"{url}&lock_timeout=1", workspace=workspace, env=env)
        async with open_runtime(options) as rt:
            yield proxy, rt


async def test_a_pattern_run_waits_out_a_postgres_outage_mid_build_and_ends_as_if_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from postgres_support import proxied_log

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    workspace = await prepare_workspace(tmp_path / "repo")
    async with proxied_log() as (proxy, url):
        async with holding_simulator() as (sim, holding):
            # The builder's second answer waits while the log goes away: its append fails.
            held = holding.arm(lambda body: role(body) == "builder" and turn(body) == 2)
            options = RuntimeOptions(
                db=url,
                workspace=workspace,
                env={"ANTHROPIC_BASE_URL": sim.base_url, "ANTHROPIC_API_KEY": "sim-offline"},
            )
            async with open_runtime(options) as rt:
                run = asyncio.create_task(run_pattern(rt.fleet, load_pattern(PATTERN), TASK))
                holding_now = asyncio.create_task(held.wait())
                await asyncio.wait(
                    {run, holding_now}, timeout=120, return_when=asyncio.FIRST_COMPLETED
                )
                holding_now.cancel()
                assert held.is_set(), "the builder never asked for its second answer"
                proxy.down()
                holding.release()
                await _until_a_probe_failed(caplog, run)  # its append failed; it waits
                proxy.up()
                result = await asyncio.wait_for(run, 180)
                assert result.status == "completed", result.error
                events = [e for e in await rt.store.read_all() if e.meta.run_id == result.run_id]
                streams = await _run_log(rt.store, result.run_id)
        assert "the log is back" in caplog.text
        assert not {"AgentFailed", "RunFailed"} & {e.type for e in events}
        assert _duplicates(events) == []

        baseline = await prepare_workspace(tmp_path / "baseline")
        plain = RuntimeOptions(db=tmp_path / "baseline.db", workspace=baseline, env={})
        async with open_runtime(plain) as rt:
            expected = await run_pattern(rt.fleet, load_pattern(PATTERN), TASK)
            assert expected.status == "completed", expected.error
            expected_streams = await _run_log(rt.store, expected.run_id)
        assert _files(workspace) == _files(baseline)
        assert streams == expected_streams


async def _until_a_probe_failed(caplog: pytest.LogCaptureFixture, run: asyncio.Task[Any]) -> None:
    """Until an agent that met the outage has tried the log again in vain (`run` still on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while "still unavailable" not in caplog.text:
        if run.done():
            pytest.fail(f"it ended in the outage: {run.exception() or run.result()}")
        assert loop.time() < deadline, "no agent waited for the log"
        await asyncio.sleep(0.05)
    assert "waiting for it" in caplog.text


def slow_committer(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """A command that runs until the test lets it end, and a write, in one response."""
    observations = yield Turn(
        "Working.",
        [
            Call(
                "Bash",
                {
                    "command": "echo ran >> ran.txt; while [ ! -f go ]; do sleep 0.05; done",
                    "timeout": 120_000,
                },
            ),
            Call("Write", {"file_path": "landed.txt", "content": "new\n"}),
        ],
    )
    return f"saw {len(observations)} results"


async def test_calls_whose_results_an_outage_kept_out_of_the_log_are_settled_not_rerun(
    tmp_path: Path,
    client: ModelClient,
    sim: Simulator,
    workspace: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The calls ran, their ToolCallCompleted did not land: once the log is back they are
    settled as after a crash (the command is not run again, the write is found applied)."""
    from postgres_support import proxied_log

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    sim.register_policy("slow-committer", slow_committer)
    async with proxied_log() as (proxy, url), open_store(url) as store:
        await _an_outage_between_calls_and_results(
            store, client, workspace, caplog, down=proxy.down, up=proxy.up
        )


async def test_on_sqlite_a_full_disk_between_calls_and_results_is_waited_out(
    small_disk: Path,
    client: ModelClient,
    sim: Simulator,
    workspace: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same on SQLite with a real full disk (reads work, appends do not, until freed)."""
    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    sim.register_policy("slow-committer", slow_committer)
    filler = small_disk / "filler"
    async with open_store(small_disk / "fleet.db") as store:
        await _an_outage_between_calls_and_results(
            store, client, workspace, caplog, down=lambda: fill(small_disk), up=filler.unlink
        )


async def _an_outage_between_calls_and_results(
    store: EventStore,
    client: ModelClient,
    workspace: Path,
    caplog: pytest.LogCaptureFixture,
    *,
    down: Callable[[], object],
    up: Callable[[], object],
) -> None:
    agent = make_agent(store, client, workspace, role="slow-committer")
    await agent.create(task="do it")
    run = asyncio.create_task(agent.run_until_idle())
    async with asyncio.timeout(60):  # until the command runs
        while not (workspace / "ran.txt").is_file():
            await asyncio.sleep(0.02)
    down()
    (workspace / "go").touch()  # the calls end; their results cannot be appended
    await _until_a_probe_failed(caplog, run)
    up()
    outcome = await asyncio.wait_for(run, 120)

    assert outcome.status == "completed", outcome.error
    settled = [
        (e.data.name, e.data.resolution)  # type: ignore[union-attr]
        for e in await events_of(store, type="ToolCallInterrupted")
    ]
    assert settled == [("Bash", "not_run"), ("Write", "already_applied")]
    assert (workspace / "ran.txt").read_text() == "ran\n", "the command ran once"
    assert (workspace / "landed.txt").read_text() == "new\n"
    assert len(await events_of(store, type="ToolCallCompleted")) == 2
    assert not await events_of(store, type="AgentFailed")


async def test_a_board_move_appended_in_an_outage_lands_once_when_the_log_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The conductor's appends (`append_waiting`) wait for the log, as its agents do."""
    from postgres_support import proxied_log

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    meta = Meta(run_id="r1", agent_id="orchestrator-r1")
    async with proxied_log() as (proxy, url), open_store(url) as store:
        await store.append("task-r1", [NewEvent(TaskCreated(task_id="r1", title="t"), meta)])
        proxy.down()
        moved = NewEvent(TaskMoved(task_id="r1", column="BUILD"), meta)
        append = asyncio.create_task(append_waiting(store, "task-r1", [moved], who="run r1"))
        await _until_a_probe_failed(caplog, append)
        proxy.up()
        [recorded] = await asyncio.wait_for(append, 60)
        assert recorded.version == 2
        board = await store.read_stream("task-r1")
        assert [(e.type, e.data.column) for e in board] == [  # type: ignore[union-attr]
            ("TaskCreated", "PLAN"),
            ("TaskMoved", "BUILD"),
        ]


async def test_a_reply_whose_append_met_a_full_disk_is_recorded_not_asked_for_again(
    small_disk: Path, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads work on a full disk, appends do not: each try took the step again, and the
    model was asked (and, with a key, paid) again every few seconds for ten minutes."""
    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    asked: list[int] = []  # the scout's turn of each request the model got
    holding = HoldingResponder()
    held = holding.arm(lambda body: role(body) == "scout")

    async def counting(body: dict[str, Any]) -> dict[str, Any]:
        if role(body) == "scout":
            asked.append(turn(body))
        return await holding(body)

    filler = small_disk / "filler"
    async with (
        Simulator(responder=counting) as sim,
        ModelClient.from_env(simulator_base_url=sim.base_url, env={}) as client,
        open_store(small_disk / "fleet.db") as store,
    ):
        agent = make_agent(store, client, workspace, role="scout")
        await agent.create(task="find where count_words is used")
        run = asyncio.create_task(agent.run_until_idle())
        try:
            await asyncio.wait_for(held.wait(), 60)
            fill(small_disk)
            holding.release()  # answered: its append finds the disk full
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while caplog.text.count("still unavailable") < 2:  # tried again, twice
                assert not run.done(), run
                assert loop.time() < deadline, "the agent did not try again"
                await asyncio.sleep(0.05)
            assert asked == [1], "the model was asked again for the same turn"
            filler.unlink()
            outcome = await asyncio.wait_for(run, 120)
        finally:
            holding.release()
            run.cancel()
        assert outcome.status == "completed", outcome.error
        assert asked.count(1) == 1
        assert not await events_of(store, type="AgentFailed")


async def test_a_step_agent_whose_creation_met_an_outage_is_taken_up_and_the_run_goes_on(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The conductor's creation of an agent (and its reads) wait for the log, as its appends do.

    Regression: the builder's creation failed (its AgentCreated committed, the append
    after it did not), and the run ended RunFailed with "StoreUnavailable"."""

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (proxy, rt):
        cut: list[str] = []

        def cut_at_the_builder(payload: dict[str, Any]) -> None:
            if payload.get("agent_type") == "builder" and not cut:
                cut.append(payload["agent_id"])
                proxy.down()  # its AgentCreated is in; its hook's event is not

        rt.hooks.add_python("SubagentStart", cut_at_the_builder)
        run = asyncio.create_task(run_pattern(rt.fleet, load_pattern(PATTERN), TASK))
        await _until_a_probe_failed(caplog, run)
        proxy.up()
        result = await asyncio.wait_for(run, 180)
        assert result.status == "completed", result.error
        events = [e for e in await rt.store.read_all() if e.meta.run_id == result.run_id]
    created = [e.data.name for e in events if e.type == "AgentCreated"]  # type: ignore[union-attr]
    baseline = await prepare_workspace(tmp_path / "baseline")
    plain = RuntimeOptions(db=tmp_path / "baseline.db", workspace=baseline, env={})
    async with open_runtime(plain) as rt:
        expected = await run_pattern(rt.fleet, load_pattern(PATTERN), TASK)
        events_then = [e for e in await rt.store.read_all() if e.meta.run_id == expected.run_id]
    assert created == [e.data.name for e in events_then if e.type == "AgentCreated"]  # type: ignore[union-attr]
    assert cut and cut[0] in {e.data.agent_id for e in events if e.type == "AgentCreated"}  # type: ignore[union-attr]
    assert not {"AgentFailed", "RunFailed"} & {e.type for e in events}
    assert _duplicates(events) == []


async def test_a_run_taken_over_while_its_conductor_waited_out_an_outage_is_left_to_the_taker(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The run's lease lapses during a long outage (its renewal fails too) and another
    process takes the run: once the log is back, the first conductor stops, writing nothing.

    Regression: it went on as if it still held the run, beside the new conductor."""
    from urllib.parse import parse_qs, urlsplit

    from postgres_support import postgres_log_url, proxied_log

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    workspace = await prepare_workspace(tmp_path / "repo")
    run_id = "0a1b2c3d4e"
    async with proxied_log() as (proxy, url):
        [schema] = parse_qs(urlsplit(url).query)["schema"]
        options = RuntimeOptions(
            db=url,
            workspace=workspace,
            env={"ANTHROPIC_BASE_URL": sim.base_url, "ANTHROPIC_API_KEY": "sim-offline"},
            lease_ttl_s=1.0,
        )
        async with open_runtime(options) as rt, open_store(postgres_log_url(schema)) as direct:

            def cut_at_the_builder(payload: dict[str, Any]) -> None:
                if payload.get("agent_type") == "builder":
                    proxy.down()

            rt.hooks.add_python("SubagentStart", cut_at_the_builder)
            run = asyncio.create_task(
                run_pattern(rt.fleet, load_pattern(PATTERN), TASK, run_id=run_id)
            )
            await _until_a_probe_failed(caplog, run)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while True:  # until the run's lease has lapsed, then another process takes it
                try:
                    await direct.leases.acquire_lease(f"run-{run_id}", "elsewhere:4242:abcd", 60)
                    break
                except LeaseHeld:
                    assert loop.time() < deadline, "the run's lease never lapsed"
                    await asyncio.sleep(0.1)
            before = await direct.head()
            proxy.up()
            with pytest.raises(AgentDrivenElsewhere):
                await asyncio.wait_for(run, 120)
            mine = f"orchestrator-{run_id}"
            wrote = [
                e.type
                for e in await direct.read_all(after=before)
                if e.stream_id in (f"run-{run_id}", f"task-{run_id}", f"agent-{mine}")
                or (e.type == "AgentCreated" and e.meta.parent_id == mine)
            ]
            assert wrote == [], "the first conductor wrote after it lost the run"
            [lease] = [x for x in await direct.leases.leases() if x.key == f"run-{run_id}"]
            assert lease.owner == "elsewhere:4242:abcd"


async def test_an_append_behind_a_postgres_lock_held_past_lock_timeout_waits_for_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lock held elsewhere (`BEGIN; LOCK TABLE ...` left open in psql, a migration) is
    waited out as an outage. Regression: the append failed with a plain StoreError at the
    first lock_timeout, and the run with it."""
    import asyncpg
    from postgres_support import POSTGRES_URL, proxied_log

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    meta = Meta(run_id="r1", agent_id="orchestrator-r1")
    async with proxied_log() as (_, url), open_store(url, lock_timeout=0.1) as store:
        await store.append("task-r1", [NewEvent(TaskCreated(task_id="r1", title="t"), meta)])
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            async with admin.transaction():
                await admin.execute(f"LOCK TABLE {store.tables.head}")  # type: ignore[attr-defined]
                moved = NewEvent(TaskMoved(task_id="r1", column="BUILD"), meta)
                append = asyncio.create_task(
                    append_waiting(store, "task-r1", [moved], who="run r1")
                )
                await _until_a_probe_failed(caplog, append)
            [recorded] = await asyncio.wait_for(append, 60)  # the lock is gone
        finally:
            await admin.close()
        assert recorded.version == 2


async def test_a_step_agent_whose_delete_met_an_outage_is_deleted_once_the_log_is_back(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The conductor's delete of a step's agent, and the reads after it, wait for the log.

    Regression: the delete's StoreUnavailable was taken for "already gone" and the agent
    was left undeleted until the run's end, out of the order an uninterrupted run has."""

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (proxy, rt):
        cut: list[str] = []

        def cut_at_the_planners_end(payload: dict[str, Any]) -> None:
            if str(payload.get("fleet_agent_id")).startswith("plan-") and not cut:
                cut.append(payload["fleet_agent_id"])
                proxy.down()  # its SessionEnd is recorded with its AgentDeleted

        rt.hooks.add_python("SessionEnd", cut_at_the_planners_end)
        run = asyncio.create_task(run_pattern(rt.fleet, load_pattern(PATTERN), TASK))
        await _until_a_probe_failed(caplog, run)
        proxy.up()
        result = await asyncio.wait_for(run, 180)
        assert result.status == "completed", result.error
        events = [e for e in await rt.store.read_all() if e.meta.run_id == result.run_id]
    order = [(e.type, e.stream_id.split("-")[1]) for e in events if e.type.startswith("Agent")]
    order = [x for x in order if x[0] in ("AgentCreated", "AgentDeleted")]
    assert cut
    assert order.index(("AgentDeleted", "plan")) < order.index(("AgentCreated", "build"))
    assert not {"AgentFailed", "RunFailed"} & {e.type for e in events}


async def test_an_orchestrator_run_whose_run_started_met_a_lock_waits_for_it(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """RunStarted of an orchestrator-agent run waits out an unavailable log (here a lock
    held past lock_timeout), as a pattern run's does. Regression: `run_orchestrator`
    raised StoreUnavailable, the run never started."""
    import asyncpg
    from postgres_support import POSTGRES_URL

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (_, rt):
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            async with admin.transaction():  # writes wait, reads do not
                await admin.execute(f"LOCK TABLE {rt.store.tables.head} IN EXCLUSIVE MODE")  # type: ignore[attr-defined]
                run = asyncio.create_task(run_orchestrator(rt.fleet, TASK))
                await _until_waiting(caplog, run)
            result = await asyncio.wait_for(run, 180)  # the lock is gone
        finally:
            await admin.close()
        assert result.status == "completed", result.error
        events = [e for e in await rt.store.read_all() if e.meta.run_id == result.run_id]
    assert [e.type for e in events if e.stream_id.startswith("run-")] == [
        "RunStarted",
        "RunCompleted",
    ]


async def test_an_orchestrator_whose_creation_met_an_outage_is_taken_up_not_created_twice(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The orchestrator agent's AgentCreated landed, the append after it did not: once the
    log is back the run takes that agent up. Regression: the run raised StoreUnavailable
    and left RunStarted without an end."""

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (proxy, rt):
        cut: list[str] = []

        def cut_at_the_orchestrator(payload: dict[str, Any]) -> None:
            if payload.get("agent_type") == "orchestrator" and not cut:
                cut.append(payload["fleet_agent_id"])
                proxy.down()  # its AgentCreated is in; its hook's event is not

        rt.hooks.add_python("SessionStart", cut_at_the_orchestrator)
        run = asyncio.create_task(run_orchestrator(rt.fleet, TASK))
        await _until_a_probe_failed(caplog, run)
        proxy.up()
        result = await asyncio.wait_for(run, 180)
        assert result.status == "completed", result.error
        events = [e for e in await rt.store.read_all() if e.meta.run_id == result.run_id]
    orchestrators = [
        e.data.agent_id  # type: ignore[union-attr]
        for e in events
        if e.type == "AgentCreated" and e.data.role == "orchestrator"  # type: ignore[union-attr]
    ]
    assert orchestrators == cut == [result.orchestrator_id]
    assert not {"AgentFailed", "RunFailed"} & {e.type for e in events}
    assert _duplicates(events) == []


async def test_an_orchestrator_run_whose_final_deletes_met_an_outage_deletes_every_agent(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """`finish_orchestrator` deletes the run's agents waiting out the log. Regression: a
    delete that met an outage was taken as done and the orchestrator stayed undeleted."""

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (proxy, rt):
        cut: list[str] = []

        def cut_at_the_orchestrators_end(payload: dict[str, Any]) -> None:
            agent_id = str(payload.get("fleet_agent_id"))
            ending = payload.get("fleet_reason") == "delete" and agent_id.startswith("orch")
            if ending and not cut:
                cut.append(agent_id)
                proxy.down()  # its SessionEnd is recorded with its AgentDeleted

        rt.hooks.add_python("SessionEnd", cut_at_the_orchestrators_end)
        run = asyncio.create_task(run_orchestrator(rt.fleet, TASK))
        await _until_a_probe_failed(caplog, run)
        proxy.up()
        result = await asyncio.wait_for(run, 180)
        assert result.status == "completed", result.error
        agents = await rt.fleet.list_agents(run_id=result.run_id, include_deleted=True)
    assert cut == [result.orchestrator_id]
    assert {a["id"]: a["status"] for a in agents if a["status"] != "deleted"} == {}


async def _until_waiting(caplog: pytest.LogCaptureFixture, run: asyncio.Task[Any]) -> None:
    """Until something met the outage and waits for the log (`run` still on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while "waiting for it" not in caplog.text:
        if run.done():
            pytest.fail(f"it ended in the outage: {run.exception() or run.result()}")
        assert loop.time() < deadline, "nothing waited for the log"
        await asyncio.sleep(0.05)


async def test_an_orchestrators_create_agent_that_met_an_outage_waits_and_reports_the_agent(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The orchestrator model's create_agent waits out the log, as an append does, and
    returns the agent whose AgentCreated landed before the cut. Regression: the model was
    told "the event log is unavailable" for an agent that existed (never given its task),
    when the log was back by the time the call's result was appended."""

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (proxy, rt):
        cut: list[str] = []

        def cut_at_the_first_scout(payload: dict[str, Any]) -> None:
            if payload.get("agent_type") == "scout" and not cut:
                cut.append(payload["agent_id"])
                proxy.down()  # its AgentCreated is in; its hook's event is not

        def back_before_the_result(payload: dict[str, Any]) -> None:
            if payload.get("tool_name") == "create_agent":
                proxy.up()  # the call's result (an error) is appended

        rt.hooks.add_python("SubagentStart", cut_at_the_first_scout)
        rt.hooks.add_python("PostToolUseFailure", back_before_the_result)
        run = asyncio.create_task(run_orchestrator(rt.fleet, TASK))
        async with asyncio.timeout(120):
            while "waiting for it" not in caplog.text and not run.done():
                await asyncio.sleep(0.05)
        proxy.up()
        result = await asyncio.wait_for(run, 180)
        events = [e for e in await rt.store.read_all() if e.meta.run_id == result.run_id]
    assert cut
    created = [
        e.data.result  # type: ignore[union-attr]
        for e in events
        if e.type == "ToolCallCompleted" and e.data.name == "create_agent"  # type: ignore[union-attr]
    ]
    assert [c for c in created if "unavailable" in c] == []
    assert result.status == "completed", result.error
    commanded = {e.stream_id for e in events if e.type == "AgentCommanded"}
    assert f"agent-{cut[0]}" in commanded


async def test_on_sqlite_an_agent_waits_out_a_write_lock_held_past_lock_timeout(
    tmp_path: Path, client: ModelClient, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds SQLite's write lock (`BEGIN IMMEDIATE` left open) past the
    store's lock_timeout: the agent waits for it, as for a PostgreSQL lock. Regression: the
    append failed with a plain StoreError and the agent with it."""
    import sqlite3
    from contextlib import closing

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with open_store(tmp_path / "fleet.db", lock_timeout=0.1) as store:
        agent = make_agent(store, client, workspace, role="scout")
        await agent.create(task="find where count_words is used")
        with closing(sqlite3.connect(tmp_path / "fleet.db", timeout=0)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            run = asyncio.create_task(agent.run_until_idle())
            await _until_a_probe_failed(caplog, run)
            holder.execute("ROLLBACK")
        outcome = await asyncio.wait_for(run, 120)
        assert outcome.status == "completed", outcome.error
        assert "held the log's write lock too long" in caplog.text
        assert not await events_of(store, type="AgentFailed")


@pytest.mark.parametrize("cut", ["before", "asleep"])
async def test_a_wait_for_agents_in_an_outage_waits_for_the_log_and_wakes_as_without(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: str
) -> None:
    """The sleep pattern's reads of the log (its head before it sleeps, its agents after)
    wait out an outage (`_waits.py`). Regression: `wait_for_agents` raised StoreUnavailable,
    and the orchestrator's or the conductor's wait with it."""
    from postgres_support import proxied_log

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    workspace = await prepare_workspace(tmp_path / "repo")
    recorded: list[str] = []
    async with proxied_log() as (proxy, url):

        async def record(event: Any) -> None:  # the waiter's stream, as the test sees it
            recorded.append(type(event).__name__)
            if cut == "asleep" and type(event).__name__ == "AgentWaiting":
                proxy.down()  # the log goes while it sleeps; its wake reads it

        options = RuntimeOptions(db=url, workspace=workspace, env={})
        async with open_runtime(options) as rt:
            agent_id = (await rt.fleet.create_agent("idle", "scout"))["id"]  # no task: it waits
            if cut == "before":
                proxy.down()
            wait = asyncio.create_task(
                rt.fleet.wait_for_agents([agent_id], 1.0, waiter_id="orch-x", record=record)
            )
            await _until_a_probe_failed(caplog, wait)
            proxy.up()
            wake = await asyncio.wait_for(wait, 60)
    assert (wake.reason, wake.statuses) == ("timeout", {agent_id: "created"})
    assert recorded == ["AgentWaiting", "AgentWoke"]


@pytest.mark.parametrize("stopped", ["before its orchestrator", "orchestrator never commanded"])
async def test_a_resumed_orchestrator_run_waits_out_a_lock_on_its_writes(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture, stopped: str
) -> None:
    """`fleet resume` of an orchestrator-agent run creates or commands its orchestrator
    waiting out an unavailable log (here a lock held past lock_timeout), as a new run does.
    Regression: `resume_run` raised StoreUnavailable and left the run interrupted."""
    import asyncpg
    from postgres_support import POSTGRES_URL

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (_, rt):
        run_id = "resumed1"
        model = rt.fleet.models.resolve(rt.fleet.config.default_model).id
        started = RunStarted(
            run_id=run_id, task=TASK, pattern="orchestrator",
            workspace=str((tmp_path / "repo").resolve()), model=model,
            simulated=rt.fleet.client.simulated,
        )  # fmt: skip
        await rt.store.append(f"run-{run_id}", [NewEvent(started, Meta(run_id=run_id))])
        if stopped == "orchestrator never commanded":
            await rt.fleet.create_agent("orchestrator", "orchestrator", run_id=run_id)
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            async with admin.transaction():  # writes wait, reads do not
                await admin.execute(f"LOCK TABLE {rt.store.tables.head} IN EXCLUSIVE MODE")  # type: ignore[attr-defined]
                run = asyncio.create_task(resume_run(rt.fleet, run_id))
                await _until_waiting(caplog, run)
            result = await asyncio.wait_for(run, 180)  # the lock is gone
        finally:
            await admin.close()
        assert result.status == "completed", result.error
        events = [e for e in await rt.store.read_all() if e.meta.run_id == run_id]
    orchestrators = [
        e.data.agent_id  # type: ignore[union-attr]
        for e in events
        if e.type == "AgentCreated" and e.data.role == "orchestrator"  # type: ignore[union-attr]
    ]
    assert orchestrators == [result.orchestrator_id]
    assert [e.type for e in events if e.stream_id.startswith("run-")] == [
        "RunStarted",
        "RunCompleted",
    ]
    assert _duplicates(events) == []


async def test_a_run_whose_lease_met_an_outage_waits_for_the_log_and_runs(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Taking the run's lease, the first thing a run (or a resume) writes, waits out an
    unavailable log; a lease a live process elsewhere holds is still refused at once.
    Regression: the run raised StoreUnavailable before it started."""

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (proxy, rt):
        await rt.store.leases.acquire_lease("run-taken", "elsewhere:1:abcd", 60)
        with pytest.raises(AgentDrivenElsewhere):
            await run_orchestrator(rt.fleet, TASK, run_id="taken")
        assert "waiting for it" not in caplog.text
        proxy.down()
        run = asyncio.create_task(run_orchestrator(rt.fleet, TASK))
        await _until_a_probe_failed(caplog, run)
        proxy.up()
        result = await asyncio.wait_for(run, 180)
        assert result.status == "completed", result.error
        events = [e for e in await rt.store.read_all() if e.meta.run_id == result.run_id]
    assert [e.type for e in events if e.stream_id.startswith("run-")] == [
        "RunStarted",
        "RunCompleted",
    ]


async def _a_run_whose_release_meets(fleet: Any, cut: Callable[[], None]) -> None:
    """A run (its lease held) that cuts the log, then ends raising its own outcome."""
    from runtime._patterns import run_lease

    async with asyncio.timeout(60), run_lease(fleet, "r1"):
        cut()
        raise ValueError("the run's own outcome")


async def test_a_run_lease_whose_release_met_an_outage_keeps_the_outcome_and_lapses(
    tmp_path: Path,
) -> None:
    """The release of a run's lease at its end meets a cut log: the run's own outcome (here
    its exception) comes out at once, not StoreUnavailable, and the lease left behind is
    not renewed: it lapses after its ttl, and another process takes the run then."""
    from postgres_support import proxied_log

    workspace = await prepare_workspace(tmp_path / "repo")
    async with proxied_log() as (proxy, url):
        options = RuntimeOptions(db=url, workspace=workspace, env={}, lease_ttl_s=3.0)
        async with open_runtime(options) as rt:
            with pytest.raises(ValueError, match="the run's own outcome"):
                await _a_run_whose_release_meets(rt.fleet, proxy.down)
            assert not rt.fleet.leases.holds("run-r1")
            proxy.up()
            [left] = await rt.store.leases.leases(prefix="run-r1")
            assert left.owner == rt.fleet.leases.owner  # left behind, not released
            with pytest.raises(LeaseHeld):
                await rt.store.leases.acquire_lease("run-r1", "elsewhere:1:abcd", 60)
            async with asyncio.timeout(60):  # not renewed: it lapses
                while True:
                    try:
                        await rt.store.leases.acquire_lease("run-r1", "elsewhere:1:abcd", 60)
                        break
                    except LeaseHeld:
                        await asyncio.sleep(0.5)
            assert left.expires_at <= time.time()


async def test_a_run_lease_whose_release_met_a_silent_network_gives_up_after_its_ttl(
    tmp_path: Path,
) -> None:
    """The release of a run's lease meets a network that drops everything silently (no
    reset: the statement would wait for TCP to give up, a quarter of an hour): the run's
    outcome comes out after the lease's ttl, when the lease has lapsed anyway.
    Regression: the run hung in its release after it had ended."""
    from postgres_support import proxied_log

    workspace = await prepare_workspace(tmp_path / "repo")
    async with proxied_log() as (proxy, url):
        options = RuntimeOptions(db=url, workspace=workspace, env={}, lease_ttl_s=3.0)
        async with open_runtime(options) as rt:
            try:
                with pytest.raises(ValueError, match="the run's own outcome"):
                    await _a_run_whose_release_meets(rt.fleet, proxy.stall)
            finally:
                proxy.up()
            assert not rt.fleet.leases.holds("run-r1")


async def test_a_resume_begun_while_the_log_is_cut_waits_for_it(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """`fleet resume` begun in an outage waits for the log in its check of the run and its
    lease, then resumes it. Regression: it raised StoreUnavailable at its first read."""

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    async with _runtime_behind_a_proxy(tmp_path, sim) as (proxy, rt):
        run_id = "resumed2"
        model = rt.fleet.models.resolve(rt.fleet.config.default_model).id
        started = RunStarted(
            run_id=run_id, task=TASK, pattern="orchestrator",
            workspace=str((tmp_path / "repo").resolve()), model=model,
            simulated=rt.fleet.client.simulated,
        )  # fmt: skip
        await rt.store.append(f"run-{run_id}", [NewEvent(started, Meta(run_id=run_id))])
        proxy.down()
        run = asyncio.create_task(resume_run(rt.fleet, run_id))
        await _until_a_probe_failed(caplog, run)
        proxy.up()
        result = await asyncio.wait_for(run, 180)
        assert result.status == "completed", result.error
        types = [e.type for e in await rt.store.read_stream(f"run-{run_id}")]
    assert types == ["RunStarted", "RunCompleted"]


async def test_a_pattern_resume_whose_read_of_the_run_meets_an_outage_waits_for_it(
    tmp_path: Path,
    sim: Simulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The log cut as a pattern run's resume reads what the run holds (its agents, its board),
    after its lease: the read waits for the log, then the run goes on. Regression: that one
    read raised StoreUnavailable and the resume failed."""
    from runtime import _run_resume

    caplog.set_level(logging.DEBUG, logger="runtime._outage")
    read_the_journal = _run_resume._journal
    cuts: list[int] = []

    async with _runtime_behind_a_proxy(tmp_path, sim) as (proxy, rt):

        async def cut_first(store: EventStore, run_id: str) -> Any:
            if not cuts:  # the real log goes away just as the run's journal is read
                cuts.append(1)
                proxy.down()
            return await read_the_journal(store, run_id)

        monkeypatch.setattr(_run_resume, "_journal", cut_first)
        run_id = "resumed3"
        model = rt.fleet.models.resolve(rt.fleet.config.default_model).id
        started = RunStarted(
            run_id=run_id, task=TASK, pattern=PATTERN,
            workspace=str((tmp_path / "repo").resolve()), model=model,
            simulated=rt.fleet.client.simulated,
        )  # fmt: skip
        await rt.store.append(f"run-{run_id}", [NewEvent(started, Meta(run_id=run_id))])
        run = asyncio.create_task(resume_run(rt.fleet, run_id))
        await _until_a_probe_failed(caplog, run)
        proxy.up()
        result = await asyncio.wait_for(run, 180)
        assert cuts == [1]
        assert result.status == "completed", result.error
        types = [e.type for e in await rt.store.read_stream(f"run-{run_id}")]
    assert types == ["RunStarted", "RunCompleted"]
