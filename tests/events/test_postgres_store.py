"""What only the PostgreSQL backend promises beyond the contract suite: several
processes (standing in for machines) writing and reading one log at once,
wake-ups by LISTEN/NOTIFY one per committed group, polling when they are lost
(the leases are in the lease contract, tests/events/test_lease_contract.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from postgres_support import (
    POSTGRES_URL,
    PostgresProxy,
    drop_postgres_schemas,
    postgres_log_url,
    postgres_or_skip,
)

from events import AgentCommanded, ImportedEvent, Meta, NewEvent, open_store
from events.postgres import PostgresEventStore

T0 = datetime(2025, 5, 1, 8, 30, tzinfo=UTC)
HELPER = Path(__file__).with_name("postgres_process.py")


class Logs:
    """Opens stores on one fresh PostgreSQL log (a schema of its own, dropped afterwards)."""

    def __init__(self) -> None:
        self.schema = f"t_{uuid.uuid4().hex[:16]}_p"
        self.location = postgres_log_url(self.schema)
        self._open: list[PostgresEventStore] = []

    async def __call__(self, **options: Any) -> PostgresEventStore:
        options.setdefault("poll_interval", 0.05)
        store = await PostgresEventStore(self.location, **options).open()
        self._open.append(store)
        return store

    async def aclose(self) -> None:
        try:
            for store in reversed(self._open):
                await store.aclose()
        finally:
            drop_postgres_schemas([self.schema])


@pytest.fixture
async def factory() -> AsyncIterator[Logs]:
    postgres_or_skip()
    logs = Logs()
    try:
        yield logs
    finally:
        await logs.aclose()


def command(agent: str, n: int) -> NewEvent:
    return NewEvent(AgentCommanded(agent_id=agent, prompt=f"{n}"), Meta(agent_id=agent))


class Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout: float = 60) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            raw = await self.process.stdout.readline()
        if not raw:
            assert self.process.stderr is not None
            raise AssertionError((await self.process.stderr.read()).decode())
        return raw.decode().strip()

    async def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()


@asynccontextmanager
async def child(*args: str) -> AsyncIterator[Child]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HELPER), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    proc = Child(process)
    try:
        assert await proc.line() == "ready"
        yield proc
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()


async def test_writers_in_three_processes_give_every_reader_every_position_once_in_order(
    factory: Logs,
) -> None:
    """Readers in two other processes and this one see 1..N exactly once, in order, while
    three processes of four concurrent appenders each commit batches at once."""
    store = await factory()
    writers, tasks, batches = 3, 3, 10
    async with AsyncExitStack() as stack:
        appenders = [
            await stack.enter_async_context(
                child("append", factory.location, str(w), str(tasks), str(batches))
            )
            for w in range(writers)
        ]
        # Followers learn the total only at the end: they read until told how many.
        followers = [
            await stack.enter_async_context(child("follow", factory.location, "0", "0.05"))
            for _ in range(2)
        ]
        seen_here: list[int] = []

        async def follow_here(total: asyncio.Future[int]) -> None:
            async for event in store.subscribe():
                seen_here.append(event.position)
                if total.done() and len(seen_here) >= total.result():
                    return

        total: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        here = asyncio.create_task(follow_here(total))
        for process in followers + appenders:
            await process.go()
        written = [json.loads(await a.line()) for a in appenders]
        count = sum(len(p) for p in written) + 1
        total.set_result(count)
        await store.append("agent-last", [command("last", 0)])  # wakes the follower here
        seen_there = []
        for follower in followers:
            # A follower printing 0 events until count is fine: read exactly `count` lines.
            seen_there.append([int(await follower.line()) for _ in range(count)])
        async with asyncio.timeout(60):
            await here

    assert sorted(p for ps in written for p in ps) == list(range(1, count))
    assert seen_here == list(range(1, count + 1))
    for seen in seen_there:
        assert seen == list(range(1, count + 1))
    everything = await store.read_all()
    assert [e.position for e in everything] == list(range(1, count + 1))
    for w in range(writers):
        for k in range(tasks):
            versions = [e.version for e in everything if e.stream_id == f"agent-{w}-{k}"]
            assert versions == list(range(1, len(versions) + 1))


async def test_one_notification_per_committed_group(factory: Logs) -> None:
    store = await factory()
    assert isinstance(store, PostgresEventStore)
    heard: list[str] = []
    listener = await asyncpg.connect(POSTGRES_URL)
    try:
        await listener.add_listener(store.tables.channel, lambda *args: heard.append(args[-1]))
        await asyncio.gather(*(store.append(f"agent-{k}", [command(str(k), 0)]) for k in range(50)))
        await store.append("agent-x", [command("x", 0), command("x", 1)])
        async with asyncio.timeout(30):
            while not heard or heard[-1] != "52":
                await asyncio.sleep(0.01)
    finally:
        await listener.close()
    # 51 appends, committed in far fewer transactions: one notification each, naming the head.
    assert len(heard) < 51
    assert [int(h) for h in heard] == sorted(int(h) for h in heard)


async def test_a_subscriber_in_another_process_is_woken_by_notify_not_by_polling(
    factory: Logs,
) -> None:
    store = await factory()
    await store.append("agent-a", [command("a", 0)])
    async with child("follow", factory.location, "4", "3600") as follower:
        await follower.go()
        # Printed once its first read is done: from there only a wake reads again, and it
        # polls once an hour, so the appends below reach it by NOTIFY or not at all.
        assert await follower.line(timeout=60) == "1"
        await store.append("agent-a", [command("a", n) for n in range(1, 4)], expected_version=1)
        lines = [await follower.line(timeout=60) for _ in range(3)]
    assert lines == ["2", "3", "4"]


async def test_a_lost_listener_falls_back_to_polling(factory: Logs) -> None:
    reader = await factory(poll_interval=0.05)
    writer = await factory()
    assert isinstance(reader, PostgresEventStore)
    await writer.append("agent-a", [command("a", 0)])
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        # Cut the sessions listening on this log's channel, as a network blip would.
        cut = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query = $1",
            f'LISTEN "{reader.tables.channel}"',
        )
    finally:
        await admin.close()
    assert cut == 2  # the reader's and the writer's listeners
    subscription = aiter(reader.subscribe())
    async with asyncio.timeout(30):
        first = await anext(subscription)
    # Its first read is done: it reads again only when woken, its listener cut.
    await writer.append("agent-a", [command("a", 1)], expected_version=1)
    async with asyncio.timeout(30):
        event = await anext(subscription)
    assert (first.position, event.position) == (1, 2)


async def _listening(channel: str) -> int:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        count: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query = $1", f'LISTEN "{channel}"'
        )
        return count
    finally:
        await admin.close()


async def test_a_lost_listener_is_opened_again_and_notifications_wake_again(
    factory: Logs,
) -> None:
    reader = await factory(poll_interval=3600)  # polls once an hour: only NOTIFY wakes it
    writer = await factory()
    assert isinstance(reader, PostgresEventStore)
    channel = reader.tables.channel
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query = $1",
            f'LISTEN "{channel}"',
        )
    finally:
        await admin.close()
    async with asyncio.timeout(60):  # both stores listen again, a second or two later
        while await _listening(channel) != 2:
            await asyncio.sleep(0.05)
    following = asyncio.create_task(anext(aiter(reader.subscribe())))
    await writer.append("agent-a", [command("a", 0)])
    async with asyncio.timeout(60):
        event = await following
    assert event.position == 1


async def test_an_unreachable_server_is_a_clear_error() -> None:
    from events import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="unreachable"):
        await open_store("postgresql://root@127.0.0.1:1/test", connect_timeout=5).open()


def _with_database(name: str, query: str = "") -> str:
    """The test server's URL naming another database (and a query string)."""
    base, _, _ = POSTGRES_URL.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}{query}"


@pytest.mark.parametrize("readonly", [False, True])
async def test_a_database_that_does_not_exist_is_named_not_called_read_only(
    readonly: bool,
) -> None:
    """A writer does not create the database either: it said "(opened read-only, so none
    is created)" to `fleet serve` and `fleet run`, which are not."""
    from events import LogNotFound

    postgres_or_skip()
    url = _with_database(f"nosuch_{uuid.uuid4().hex[:8]}")
    with pytest.raises(LogNotFound) as caught:
        await open_store(url, readonly=readonly).open()
    assert "does not exist: fleet makes its tables, not the database; create it first" in str(
        caught.value
    )
    assert "read-only" not in str(caught.value)


async def test_a_wrong_setting_in_the_url_is_not_called_unreachable() -> None:
    from events import StoreError, StoreUnavailable

    postgres_or_skip()
    with pytest.raises(StoreError, match=r"a setting of the URL is wrong.*sslmode") as caught:
        await open_store(_with_database("test", "?sslmode=bogus")).open()
    assert not isinstance(caught.value, StoreUnavailable)


@pytest.fixture
def cut_after_commit(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Stores opened meanwhile have the server cut a connection as the pool takes it back
    (after its statement committed) when the list holds True (once per True)."""
    armed: list[bool] = []
    create_pool = asyncpg.create_pool

    async def reset(conn: asyncpg.Connection) -> None:
        if armed and armed.pop():
            # The server ends the session: as `pg_terminate_backend` from psql, or a restart.
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        await conn.execute(conn.get_reset_query())  # what the pool does without a `reset`

    def pool_with_reset(*args: Any, **kwargs: Any) -> Any:
        return create_pool(*args, reset=reset, **kwargs)

    monkeypatch.setattr(asyncpg, "create_pool", pool_with_reset)
    return armed


async def test_an_append_committed_before_its_connection_is_cut_is_acknowledged(
    factory: Logs, cut_after_commit: list[bool]
) -> None:
    store = await factory()
    await store.append("agent-a", [command("a", 0)])
    cut_after_commit.append(True)
    # Committed, then the pool's reset of its connection fails: the append happened, and
    # saying it failed would have its caller append it again.
    appended = await store.append("agent-a", [command("a", 1)])
    assert [e.position for e in appended] == [2]
    assert not cut_after_commit  # the cut happened
    appended = await store.append("agent-a", [command("a", 2)])  # on a new connection
    assert [(e.position, e.version) for e in await store.read_all()] == [(1, 1), (2, 2), (3, 3)]


async def test_an_import_committed_before_its_connection_is_cut_is_acknowledged(
    factory: Logs, cut_after_commit: list[bool]
) -> None:
    store = await factory()
    run = [
        ImportedEvent(n, "agent-x", n, "AgentCommanded", 1, json.dumps({"type": "AgentCommanded",
            "agent_id": "x", "prompt": f"{n}"}), Meta(run_id="run-x", agent_id="x"), T0)
        for n in (1, 2)
    ]  # fmt: skip
    cut_after_commit.append(True)
    assert await store.import_run("run-x", run) == 1  # not "failed": importing again conflicts
    assert not cut_after_commit
    assert [e.position for e in await store.read_all()] == [1, 2]


class _Following:
    """`reader.subscribe()` followed in a task of its own: the positions it has `seen`, and
    `until(condition)`, which waits for a condition on them (60 s at most) while it runs."""

    def __init__(self, reader: PostgresEventStore) -> None:
        self.seen: list[int] = []
        self._task = asyncio.create_task(self._follow(reader))

    async def _follow(self, reader: PostgresEventStore) -> None:
        async for event in reader.subscribe():
            self.seen.append(event.position)

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(60):
            while not condition():
                assert not self._task.done(), self._task.exception()
                await asyncio.sleep(0.01)

    def cancel(self) -> None:
        self._task.cancel()


async def test_a_subscription_waits_out_an_outage_and_goes_on_without_gap_or_repeat(
    factory: Logs, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await PostgresProxy().start()
    try:
        writer = await factory()  # straight to the server
        reader = await PostgresEventStore(proxy.url(factory.schema), poll_interval=0.05).open()
        try:
            following = _Following(reader)
            seen, until = following.seen, following.until
            for n in range(3):
                await writer.append("agent-a", [command("a", n)])
            await until(lambda: seen == [1, 2, 3])
            proxy.down()  # as a restart: every connection cut, new ones closed at once
            for n in range(3, 6):
                await writer.append("agent-a", [command("a", n)])
            await until(lambda: proxy.refused >= 3)  # the subscription tried, and failed
            proxy.up()
            await writer.append("agent-a", [command("a", 6)])
            await until(lambda: len(seen) >= 7)
            assert seen == [1, 2, 3, 4, 5, 6, 7]
            outage = [r.getMessage() for r in caplog.records if "subscriptions" in r.getMessage()]
            assert len(outage) == 2, outage  # one line down, one line back
            assert "unavailable" in outage[0] and "again" in outage[1]
            # Nor a traceback from asyncpg's pool at each of its retries.
            assert not [r for r in caplog.records if r.name.startswith("asyncpg")]
            following.cancel()
        finally:
            await reader.aclose()
    finally:
        await proxy.aclose()


async def test_a_statement_a_silent_network_never_answers_is_an_outage_not_a_hang(
    factory: Logs,
) -> None:
    # On a network that drops packets silently (a cut link, a firewall that forgets the
    # connection) an append waited for TCP to give up, a quarter of an hour, with every
    # append queued behind it and nothing said.
    from events import StoreUnavailable

    await factory()  # the schema and its tables
    proxy = await PostgresProxy().start()
    try:
        store = await PostgresEventStore(
            proxy.url(factory.schema), command_timeout=1, connect_timeout=1
        ).open()
        try:
            await store.append("agent-a", [command("a", 0)])
            proxy.stall()
            async with asyncio.timeout(60):
                with pytest.raises(StoreUnavailable, match="did not answer in time"):
                    await store.append("agent-a", [command("a", 1)])
                with pytest.raises(StoreUnavailable, match="did not answer in time"):
                    await store.head()
            proxy.up()
            await store.append("agent-a", [command("a", 2)])
            # The stalled append's commit is unknown (it may land once the network is back).
            events = await store.read_all()
            assert {"0", "2"} <= {e.data.prompt for e in events}  # type: ignore[union-attr]
            assert [e.position for e in events] == list(range(1, len(events) + 1))
        finally:
            await store.aclose()
    finally:
        await proxy.aclose()


async def test_a_subscription_waits_out_a_silent_network_and_reads_on(
    factory: Logs, caplog: pytest.LogCaptureFixture
) -> None:
    # A page read on a silent network never came back: `fleet serve`'s views and streams
    # froze, with no line said, until TCP gave up.
    proxy = await PostgresProxy().start()
    try:
        writer = await factory()  # straight to the server
        reader = await PostgresEventStore(
            proxy.url(factory.schema), poll_interval=0.05, command_timeout=1, connect_timeout=1
        ).open()
        try:
            following = _Following(reader)
            seen, until = following.seen, following.until
            await writer.append("agent-a", [command("a", 0)])
            await until(lambda: seen == [1])
            proxy.stall()
            await writer.append("agent-a", [command("a", 1)])
            await until(lambda: any("did not answer" in r.getMessage() for r in caplog.records))
            proxy.up()
            await writer.append("agent-a", [command("a", 2)])
            await until(lambda: len(seen) >= 3)
            assert seen == [1, 2, 3]
            following.cancel()
        finally:
            await reader.aclose()
    finally:
        await proxy.aclose()


async def test_a_schema_named_by_a_keyword_holds_a_log() -> None:
    # `order` is a lowercase identifier, and a reserved word: unquoted, opening said
    # 'syntax error at or near "order"'.
    postgres_or_skip()
    try:
        async with open_store(postgres_log_url("order")) as store:
            await store.append("agent-a", [command("a", 0)])
            assert [e.position for e in await store.read_all()] == [1]
        async with open_store(postgres_log_url("order"), readonly=True) as store:
            assert await store.head() == 1
    finally:
        drop_postgres_schemas(['"order"'])


async def test_every_connection_of_a_store_is_named_fleet_in_pg_stat_activity(
    factory: Logs,
) -> None:
    # An operator finds fleet's sessions by name (to see them, or to end them); the one
    # that listens for notifications had none.
    store = await factory()
    await store.append("agent-a", [command("a", 0)])
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await admin.fetch(
            "SELECT application_name FROM pg_stat_activity WHERE query = $1",
            f'LISTEN "{store.tables.channel}"',
        )
    finally:
        await admin.close()
    assert [r["application_name"] for r in rows] == ["fleet"]


async def test_a_url_names_the_stores_sessions_with_its_application_name(factory: Logs) -> None:
    # Workers on one log told apart in pg_stat_activity, as libpq users do it: fleet's own
    # "fleet" replaced the URL's, on the listener and on every pooled connection.
    store = await PostgresEventStore(factory.location + "&application_name=worker-3").open()
    factory._open.append(store)
    await store.append("agent-a", [command("a", 0)])
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        names = await admin.fetch(
            "SELECT application_name, query FROM pg_stat_activity WHERE application_name = $1",
            "worker-3",
        )
    finally:
        await admin.close()
    queries = [r["query"] for r in names]
    assert f'LISTEN "{store.tables.channel}"' in queries
    assert len(queries) >= 2  # the listener and the pool's connection that appended


async def test_an_append_behind_a_lock_held_elsewhere_fails_saying_so(factory: Logs) -> None:
    from events import StoreError

    # Options in the URL, as `fleet run --db` can give them (lock_timeout's default is 10
    # s); `connect_timeout`, as libpq users write it, had reached the server, which refused it.
    url = factory.location + "&lock_timeout=0.5&connect_timeout=5"
    store = await PostgresEventStore(url).open()
    factory._open.append(store)
    assert store.lock_timeout == 0.5
    await store.append("agent-a", [command("a", 0)])
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        async with admin.transaction():  # as `BEGIN; LOCK TABLE ...;` left open in psql
            await admin.execute(f"LOCK TABLE {store.tables.head}")
            async with asyncio.timeout(30):  # without a lock_timeout: waited for ever, silent
                with pytest.raises(StoreError, match="held a lock on the log longer than"):
                    await store.append("agent-a", [command("a", 1)])
    finally:
        await admin.close()
    await store.append("agent-a", [command("a", 2)])
    assert [(e.position, e.data.prompt) for e in await store.read_all()] == [(1, "0"), (2, "2")]  # type: ignore[union-attr]


async def test_a_subscription_waits_out_a_lock_held_past_lock_timeout(
    factory: Logs, caplog: pytest.LogCaptureFixture
) -> None:
    # A lock held in psql past lock_timeout ended every subscription for good: `fleet serve`
    # answered 503 to everything until restarted, `fleet events --follow` exited.
    reader = await factory(lock_timeout=0.1)
    writer = await factory()
    await writer.append("agent-a", [command("a", 0)])
    following = _Following(reader)
    seen, until = following.seen, following.until
    await until(lambda: seen == [1])
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        async with admin.transaction():  # as `BEGIN; LOCK TABLE ...;` left open in psql
            await admin.execute(f"LOCK TABLE {reader.tables.events} IN ACCESS EXCLUSIVE MODE")
            await until(lambda: any("lock_timeout" in r.getMessage() for r in caplog.records))
    finally:
        await admin.close()
    await writer.append("agent-a", [command("a", 1)])
    await until(lambda: seen == [1, 2])
    following.cancel()


def _pooled_pids(store: PostgresEventStore) -> list[int]:
    """The server pids of the store's pooled connections (asyncpg has no public way), so
    the test ends this log's sessions only: other tests share the server."""
    holders = store._pool._holders  # type: ignore[union-attr]
    return [h._con.get_server_pid() for h in holders if h._con is not None]


async def test_an_append_on_a_pooled_connection_the_server_just_ended_is_sent_again(
    factory: Logs,
) -> None:
    """Regression: an append right after `pg_terminate_backend` (or a restart) met a pooled
    connection asyncpg had not yet seen closed ("cannot switch to state 12", or "closed in
    the middle of operation: terminating connection due to administrator command") and
    failed with StoreUnavailable, though the server surely had not committed it."""
    store = await factory()
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        for n in range(10):  # the race is met in most rounds, not in every one
            await store.append("agent-a", [command("a", n)])
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
                _pooled_pids(store),
            )
            await store.append("agent-a", [command("a", n)])  # at once: the pool's race
    finally:
        await admin.close()
    assert await store.stream_version("agent-a") == 20
