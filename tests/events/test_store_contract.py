"""The event store contract: every backend passes these tests unchanged.

They use only the `EventStore` protocol (appends, reads, subscriptions,
imports, read-only opening) and the `store_factory` fixture
(tests/conftest.py), which is parametrized over the backends; a new backend
joins by adding itself there.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import pickle
import random
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from events import (
    ANY,
    NO_STREAM,
    AgentCommanded,
    AgentCreated,
    Checkpoint,
    CheckpointStore,
    DataTest,
    EventFilter,
    EventStore,
    EventTooLarge,
    ExternalHookReceived,
    HookInvoked,
    ImportConflict,
    ImportedEvent,
    InvalidEvent,
    Meta,
    NewEvent,
    RecordedEvent,
    RunStarted,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    ToolCallCompleted,
    UnknownEvent,
    UnknownEventType,
    VersionConflict,
    export_lines,
    import_run,
    parse_export,
    read_run,
)
from events._import_chunks import CHUNK


def command(agent: str, n: int, *, run: str = "run-1") -> NewEvent:
    return NewEvent(
        AgentCommanded(agent_id=agent, prompt=f"step {n}"),
        Meta(run_id=run, agent_id=agent),
    )


def started(run: str = "run-1") -> NewEvent:
    return NewEvent(RunStarted(run_id=run, task="build it"), Meta(run_id=run))


async def positions(store: EventStore, **kwargs: object) -> list[int]:
    return [e.position for e in await store.read_all(**kwargs)]  # type: ignore[arg-type]


# -- appending and reading ------------------------------------------------------


async def test_append_assigns_gap_free_positions_and_per_stream_versions(store: EventStore) -> None:
    a = await store.append("agent-a", [command("a", 1), command("a", 2)])
    b = await store.append("agent-b", [command("b", 1)])
    c = await store.append("agent-a", [command("a", 3)])

    assert [(e.position, e.stream_id, e.version) for e in a + b + c] == [
        (1, "agent-a", 1),
        (2, "agent-a", 2),
        (3, "agent-b", 1),
        (4, "agent-a", 3),
    ]
    assert await store.head() == 4
    assert await store.stream_version("agent-a") == 3
    assert await store.stream_version("agent-b") == 1


async def test_append_returns_what_a_read_gives_back(store: EventStore) -> None:
    meta = Meta(
        run_id="run-1",
        agent_id="a",
        parent_id="orchestrator",
        causation_id=1,
        correlation_id="corr-9",
        source="hook",
    )
    await store.append("run-1", [started()])
    appended = await store.append(
        "agent-a", [NewEvent(AgentCommanded(agent_id="a", prompt="go"), meta)]
    )

    [read] = await store.read_stream("agent-a")
    assert read == appended[0]
    assert read.meta == meta
    assert read.data == AgentCommanded(agent_id="a", prompt="go")
    assert read.type == "AgentCommanded"


def caused(agent: str, n: int, cause: int | None) -> NewEvent:
    return NewEvent(
        AgentCommanded(agent_id=agent, prompt=f"step {n}"),
        Meta(run_id="run-1", agent_id=agent, causation_id=cause),
    )


@pytest.mark.parametrize("size", [2, 70, 250])  # one statement, a transaction, several INSERTs
async def test_a_cause_given_as_an_earlier_event_of_the_append_is_recorded_as_its_position(
    store: EventStore, size: int
) -> None:
    """A causation id of -k names the event k places earlier in the same append."""
    await store.append("run-1", [started()])
    batch = [caused("a", 0, 1), *(caused("a", n, -1 if n % 2 else -n) for n in range(1, size))]
    others = [caused("b", 0, None), caused("b", 1, -1)]
    appended, other = await asyncio.gather(
        store.append("agent-a", batch), store.append("agent-b", others)
    )

    first = appended[0].position
    expected = [e.position - 1 if n % 2 else first for n, e in enumerate(appended)]
    assert [e.meta.causation_id for e in appended] == [1, *expected[1:]]
    assert other[1].meta.causation_id == other[0].position
    assert await store.read_stream("agent-a") == appended
    assert await store.read_stream("agent-b") == other
    assert appended[1].meta == Meta(run_id="run-1", agent_id="a", causation_id=first)


@pytest.mark.parametrize(("index", "cause"), [(0, -1), (1, -2), (2, -5)])
async def test_a_cause_before_the_first_event_of_the_append_is_refused(
    store: EventStore, index: int, cause: int
) -> None:
    batch = [caused("a", n, cause if n == index else None) for n in range(3)]
    with pytest.raises(InvalidEvent, match=r"meta\.causation_id"):
        await store.append("agent-a", batch)
    assert await store.head() == 0


async def test_recorded_at_is_utc_with_microseconds_and_never_goes_backwards(
    store: EventStore,
) -> None:
    before = datetime.now(UTC)
    for n in range(5):
        await store.append("agent-a", [command("a", n)])
    after = datetime.now(UTC)

    stamps = [e.recorded_at for e in await store.read_all()]
    assert all(s.tzinfo is not None and s.utcoffset() == timedelta(0) for s in stamps)
    assert stamps == sorted(stamps)
    assert before - timedelta(seconds=1) <= stamps[0]
    assert stamps[-1] <= after + timedelta(seconds=1)


async def test_empty_store_has_head_zero_and_reads_nothing(store: EventStore) -> None:
    assert await store.head() == 0
    assert await store.stream_version("agent-a") == 0
    assert await store.read_all() == []
    assert await store.read_stream("agent-a") == []


async def test_appending_no_events_writes_nothing(store: EventStore) -> None:
    assert await store.append("agent-a", []) == []
    assert await store.head() == 0


async def test_read_stream_pages_by_version(store: EventStore) -> None:
    await store.append("agent-a", [command("a", n) for n in range(5)])
    await store.append("agent-b", [command("b", 0)])

    page = await store.read_stream("agent-a", after_version=1, limit=2)
    assert [e.version for e in page] == [2, 3]
    assert [e.version for e in await store.read_stream("agent-a", after_version=3)] == [4, 5]


async def test_read_all_pages_with_after_until_and_limit(store: EventStore) -> None:
    await store.append("agent-a", [command("a", n) for n in range(10)])

    assert await positions(store, after=3, limit=4) == [4, 5, 6, 7]
    assert await positions(store, after=3, until=5) == [4, 5]
    assert await positions(store, after=10) == []
    assert [e.position async for e in store.iter_all(after=2, until=9, page=3)] == list(
        range(3, 10)
    )


async def test_nonsense_page_sizes_are_refused(store: EventStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.read_all(limit=-1)
    with pytest.raises(ValueError, match="limit"):
        await store.read_stream("agent-a", limit=-5)
    with pytest.raises(ValueError, match="page"):
        await anext(aiter(store.iter_all(page=0)))


async def test_read_all_filters_by_stream_type_run_and_agent(store: EventStore) -> None:
    await store.append("run-1", [started("run-1")])
    await store.append("run-2", [started("run-2")])
    await store.append("agent-a", [command("a", 1, run="run-1"), command("a", 2, run="run-1")])
    await store.append("agent-b", [command("b", 1, run="run-2")])

    assert await positions(store, where=EventFilter.of(stream_ids=["agent-a", "run-2"])) == [
        2,
        3,
        4,
    ]
    assert await positions(store, where=EventFilter.of(types=["RunStarted"])) == [1, 2]
    assert await positions(store, where=EventFilter.of(run_id="run-2")) == [2, 5]
    assert await positions(store, where=EventFilter.of(agent_id="a")) == [3, 4]
    both = EventFilter.of(run_id="run-1", types=["AgentCommanded"])
    assert await positions(store, where=both) == [3, 4]
    assert await positions(store, where=EventFilter.of(agent_id="nobody")) == []
    # The filter's own test agrees with the store's query.
    everything = await store.read_all()
    for where in (both, EventFilter.of(run_id="run-2"), EventFilter.of(stream_ids=["run-1"])):
        assert [e.position for e in everything if where.matches(e)] == await positions(
            store, where=where
        )


async def test_a_read_may_leave_out_what_a_skippable_test_fails_never_what_it_passes(
    store_factory,
) -> None:
    """`EventFilter.skippable` is a hint: a store may leave out the events of the test's
    type that fail it (the SQLite log does, in SQL), and keeps every other event."""
    store = await store_factory()
    said = [("none", None), ("deny", None), ("allow", "careful"), ("allow", ""), ("block", None)]
    await store.append("agent-a", [command("a", 1)])
    await store.append("agent-a", [
        NewEvent(HookInvoked(point="PreToolUse", kind="command", agent_id="a",
                             decision=decision, system_message=message), Meta(agent_id="a"))
        for decision, message in said
    ])  # fmt: skip
    # Rows the test cannot judge are kept: a JSON that does not parse, an older schema.
    broken = store_factory.write_raw(
        stream_id="agent-a", type="HookInvoked", schema_version=2, data_json="{"
    )
    older = store_factory.write_raw(
        stream_id="agent-a",
        type="HookInvoked",
        schema_version=1,
        data_json='{"point": "Stop", "kind": "command", "decision": "none"}',
    )
    await store.append("agent-a", [command("a", 2)])
    test = DataTest(
        "HookInvoked", (("decision", frozenset({"deny", "block"})), ("system_message", None))
    )
    where = EventFilter.of(skippable=[test])
    read = [e.position for e in await store.read_all(where=where, lenient=True)]
    passing = [1, 3, 4, 6, broken, older, older + 1]
    assert set(passing) <= set(read)
    if store_factory.backend == "sqlite":
        assert read == passing
    else:  # the PostgreSQL and in-memory logs return them all
        assert read == list(range(1, older + 2))
    # Only a bulk read takes the hint: a subscription, and `matches`, want every event.
    seen = []
    async for event in store.subscribe(where=where):
        seen.append(event.position)
        if event.position == older + 1:
            break
    assert seen == list(range(1, older + 2))
    assert all(where.matches(e) for e in await store.read_all(lenient=True))


async def test_filtered_reads_agree_with_filtering_everything(store: EventStore) -> None:
    """Interleaved runs and agents, appended in concurrent groups, then every filter and page."""
    rng = random.Random(7)
    runs, agents = ["run-1", "run-2", "run-3", None], ["a", "b", "c", "d", None]

    def event(n: int) -> NewEvent:
        run, agent = rng.choice(runs), rng.choice(agents)
        return NewEvent(AgentCommanded(agent_id=agent or "-", prompt=str(n)), Meta(run, agent))

    for round_ in range(12):
        await asyncio.gather(
            *(
                store.append(
                    f"s{rng.randrange(6)}", [event(round_) for _ in range(rng.randint(1, 4))]
                )
                for _ in range(rng.randint(1, 6))
            )
        )
    everything = await store.read_all()
    head = everything[-1].position
    filters = [EventFilter.of(run_id=r) for r in runs if r] + [
        EventFilter.of(agent_id=a) for a in agents if a
    ]
    filters += [EventFilter.of(run_id="run-2", agent_id="b"), EventFilter.of(run_id="nope")]
    filters += [EventFilter.of(stream_ids=["s1", "s4"], agent_id="c", types=["AgentCommanded"])]

    for where in filters:
        expected = [e.position for e in everything if where.matches(e)]
        assert await positions(store, where=where) == expected, where
        window = [p for p in expected if head // 4 < p <= head * 3 // 4]
        assert await positions(store, where=where, after=head // 4, until=head * 3 // 4) == window
        assert [e.position async for e in store.iter_all(where=where, page=3)] == expected


async def test_iter_all_walks_many_pages_in_order(store: EventStore) -> None:
    await store.append("agent-a", [command("a", n) for n in range(25)])

    seen = [e.position async for e in store.iter_all(page=4)]
    filtered = [e.version async for e in store.iter_all(page=4, where=EventFilter.of(agent_id="a"))]
    assert seen == list(range(1, 26))
    assert filtered == list(range(1, 26))


async def test_a_second_store_on_the_same_log_sees_appended_events(store_factory) -> None:
    first = await store_factory()
    second = await store_factory()
    await first.append("agent-a", [command("a", 1)])

    assert [e.stream_id for e in await second.read_all()] == ["agent-a"]
    appended = await second.append("agent-a", [command("a", 2)], expected_version=1)
    assert appended[0].position == 2


# -- optimistic concurrency ------------------------------------------------------------


async def test_expected_version_accepts_the_current_version(store: EventStore) -> None:
    await store.append("agent-a", [command("a", 1)], expected_version=NO_STREAM)
    await store.append("agent-a", [command("a", 2)], expected_version=1)
    await store.append("agent-a", [command("a", 3)], expected_version=ANY)
    await store.append("agent-b", [command("b", 1)], expected_version=0)

    assert await store.stream_version("agent-a") == 3
    assert await store.stream_version("agent-b") == 1


async def test_append_with_stale_version_raises_and_writes_nothing(store: EventStore) -> None:
    await store.append("agent-a", [command("a", 1), command("a", 2)])

    with pytest.raises(VersionConflict) as caught:
        await store.append("agent-a", [command("a", 3), command("a", 4)], expected_version=1)

    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("agent-a", 1, 2)
    assert "agent-a" in str(caught.value)
    assert "expected 1" in str(caught.value)
    assert "actual 2" in str(caught.value)
    assert await store.head() == 2
    assert await store.stream_version("agent-a") == 2


async def test_no_stream_on_an_existing_stream_conflicts(store: EventStore) -> None:
    await store.append("agent-a", [command("a", 1)])

    with pytest.raises(VersionConflict) as caught:
        await store.append("agent-a", [command("a", 2)], expected_version=NO_STREAM)

    assert caught.value.actual == 1
    assert await store.head() == 1


async def test_a_version_ahead_of_the_stream_conflicts(store: EventStore) -> None:
    with pytest.raises(VersionConflict):
        await store.append("agent-a", [command("a", 1)], expected_version=3)
    assert await store.head() == 0


async def test_concurrent_appends_at_one_version_let_exactly_one_win(store: EventStore) -> None:
    await store.append("agent-a", [command("a", 0)])

    results = await asyncio.gather(
        *(store.append("agent-a", [command("a", n)], expected_version=1) for n in range(10)),
        return_exceptions=True,
    )

    winners = [r for r in results if isinstance(r, list)]
    assert len(winners) == 1
    assert all(isinstance(r, VersionConflict) for r in results if not isinstance(r, list))
    assert await store.stream_version("agent-a") == 2
    assert await store.head() == 2


async def test_a_conflicting_append_leaves_the_others_of_its_group_to_land(
    store: EventStore,
) -> None:
    await store.append("agent-x", [command("x", 0)])

    outcomes = await asyncio.gather(
        *(store.append(f"agent-{n}", [command(str(n), 0), command(str(n), 1)]) for n in range(20)),
        store.append("agent-x", [command("x", 1)], expected_version=0),
        *(store.append(f"agent-{n}", [command(str(n), 2)]) for n in range(20, 40)),
        return_exceptions=True,
    )

    assert isinstance(outcomes[20], VersionConflict)
    assert all(isinstance(o, list) for i, o in enumerate(outcomes) if i != 20)
    everything = await store.read_all()
    assert [e.position for e in everything] == list(range(1, 62))
    assert [e.stream_id for e in everything].count("agent-x") == 1
    for n in range(20):
        assert await store.stream_version(f"agent-{n}") == 2


async def test_many_concurrent_appenders_get_distinct_gap_free_positions(store: EventStore) -> None:
    async def appender(k: int) -> None:
        for n in range(10):
            await store.append(f"agent-{k}", [command(str(k), n)], expected_version=n)

    await asyncio.gather(*(appender(k) for k in range(16)))

    everything = await store.read_all()
    assert [e.position for e in everything] == list(range(1, 161))
    for k in range(16):
        assert [e.version for e in everything if e.stream_id == f"agent-{k}"] == list(range(1, 11))


async def test_one_appends_unstorable_value_fails_only_that_append_of_its_group(
    store: EventStore,
) -> None:
    # A lone surrogate passes the checks in Python but has no UTF-8: the database refuses it.
    bad = NewEvent(AgentCommanded(agent_id="z", prompt="p"), Meta(run_id="run-\ud800"))

    outcomes = await asyncio.gather(
        *(store.append(f"agent-{n}", [command(str(n), 0)]) for n in range(8)),
        store.append("agent-z", [bad]),
        *(store.append(f"agent-{n}", [command(str(n), 0)]) for n in range(8, 16)),
        return_exceptions=True,
    )

    good = outcomes[:8] + outcomes[9:]
    assert all(isinstance(o, list) for o in good), good
    everything = await store.read_all()
    landed = [e.position for e in everything if e.stream_id != "agent-z"]
    assert sorted(o[0].position for o in good) == landed  # type: ignore[index]
    assert [e.position for e in everything] == list(range(1, len(everything) + 1))
    if isinstance(outcomes[8], BaseException):  # SQLite and PostgreSQL refuse it
        assert isinstance(outcomes[8], StoreError)
        assert await store.stream_version("agent-z") == 0


# -- bad input: a clear error and nothing written ---------------------------------------


@pytest.mark.parametrize("stream_id", ["", "x" * 201, 42, None])
async def test_a_bad_stream_id_is_refused(store: EventStore, stream_id: object) -> None:
    with pytest.raises(InvalidEvent, match="stream_id"):
        await store.append(stream_id, [command("a", 1)])  # type: ignore[arg-type]
    assert await store.head() == 0


@pytest.mark.parametrize("expected", [-1, 1.0, "1", True, None])
async def test_a_bad_expected_version_is_refused(store: EventStore, expected: object) -> None:
    with pytest.raises(InvalidEvent, match="expected_version"):
        await store.append("agent-a", [command("a", 1)], expected_version=expected)
    assert await store.head() == 0


async def test_data_that_is_not_json_serializable_is_refused_with_the_whole_append(
    store: EventStore,
) -> None:
    bad = NewEvent(
        ExternalHookReceived(
            source_app="claude-code",
            session_id="s",
            hook_event_name="Stop",
            payload={"x": object()},
        )
    )

    with pytest.raises(InvalidEvent, match="not JSON-serializable"):
        await store.append("ingest-1", [command("a", 1), bad, command("a", 2)])

    assert await store.head() == 0


@pytest.mark.parametrize(
    "data",
    [{"type": "AgentCommanded", "agent_id": "a", "prompt": "p"}, UnknownEvent(type="Future")],
    ids=["dict", "UnknownEvent"],
)
async def test_data_that_is_not_an_event_type_is_refused(store: EventStore, data: object) -> None:
    with pytest.raises(InvalidEvent, match="event types"):
        await store.append("agent-a", [NewEvent(data)])  # type: ignore[arg-type]
    assert await store.head() == 0


async def test_events_that_are_not_new_events_are_refused(store: EventStore) -> None:
    with pytest.raises(InvalidEvent, match="NewEvent"):
        await store.append("agent-a", command("a", 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent, match="NewEvent"):
        await store.append("agent-a", [AgentCommanded(agent_id="a", prompt="p")])  # type: ignore[list-item]
    assert await store.head() == 0


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        (Meta(run_id=""), "run_id"),
        (Meta(agent_id=""), "agent_id"),
        (Meta(correlation_id=7), "correlation_id"),  # type: ignore[arg-type]
        (Meta(causation_id=0), "causation_id"),
        (Meta(causation_id=2**63), "causation_id"),  # beyond a signed 64-bit position
        (Meta(source="elsewhere"), "source"),  # type: ignore[arg-type]
    ],
)
async def test_meta_that_would_not_read_back_the_same_is_refused(
    store: EventStore, meta: Meta, field: str
) -> None:
    event = NewEvent(AgentCommanded(agent_id="a", prompt="p"), meta)
    with pytest.raises(InvalidEvent, match=f"meta.{field}"):
        await store.append("agent-a", [event])
    assert await store.head() == 0


async def test_an_event_over_the_size_limit_is_refused(store_factory) -> None:
    store = await store_factory(max_event_bytes=2_000)
    fits = NewEvent(ToolCallCompleted(agent_id="a", tool_use_id="t", name="read", result="é" * 800))
    too_big = NewEvent(
        ToolCallCompleted(agent_id="a", tool_use_id="t", name="read", result="é" * 1_000)
    )

    await store.append("agent-a", [fits])
    with pytest.raises(EventTooLarge) as caught:
        await store.append("agent-a", [fits, too_big])

    error = caught.value
    assert (error.stream_id, error.event_type, error.limit) == (
        "agent-a",
        "ToolCallCompleted",
        2_000,
    )
    assert error.size == len(too_big.data.model_dump_json().encode())
    assert "2000 bytes" in str(error)
    assert await store.head() == 1


async def test_the_default_size_limit_is_one_mebibyte(store: EventStore) -> None:
    big = NewEvent(
        ToolCallCompleted(agent_id="a", tool_use_id="t", name="read", result="x" * (1024 * 1024))
    )
    with pytest.raises(EventTooLarge) as caught:
        await store.append("agent-a", [big])
    assert caught.value.limit == 1024 * 1024
    assert await store.head() == 0


class _Str(str):
    """A str subclass: equal to its value, but not a plain str."""


_BAD_IN_A_LARGE_APPEND = {
    "not a NewEvent": (lambda: AgentCommanded(agent_id="a", prompt="p"), InvalidEvent, "NewEvent"),
    "not an event type": (lambda: NewEvent(UnknownEvent(type="Future")), InvalidEvent, "types"),
    "not serializable": (
        lambda: NewEvent(
            ExternalHookReceived(
                source_app="c", session_id="s", hook_event_name="Stop", payload={"x": object()}
            ),
            Meta(run_id="run-1", agent_id="a"),
        ),
        InvalidEvent,
        "JSON-serializable",
    ),
    "too large": (
        lambda: NewEvent(
            ToolCallCompleted(agent_id="a", tool_use_id="t", name="read", result="x" * 5_000),
            Meta(run_id="run-1", agent_id="a"),
        ),
        EventTooLarge,
        "bytes",
    ),
    "a causation of True": (
        lambda: NewEvent(AgentCommanded(agent_id="a", prompt="p"), Meta(causation_id=True)),
        InvalidEvent,
        "causation_id",
    ),
    "a run id of a str subclass": (
        lambda: NewEvent(AgentCommanded(agent_id="a", prompt="p"), Meta(run_id=_Str("run-1"))),
        InvalidEvent,
        "run_id",
    ),
}


@pytest.mark.parametrize("bad", _BAD_IN_A_LARGE_APPEND)
async def test_a_bad_event_in_a_large_append_is_refused_with_the_whole_append(
    store_factory, bad: str
) -> None:
    """A large append is encoded column by column; a bad event in it still raises
    the error it raises alone, and nothing is written."""
    store = await store_factory(max_event_bytes=2_000)
    make, error, match = _BAD_IN_A_LARGE_APPEND[bad]
    events = [command("a", n) for n in range(40)]
    # The good events have causation 1 and run id "run-1": values equal to the bad ones'.
    events = [NewEvent(e.data, Meta(run_id="run-1", agent_id="a", causation_id=1)) for e in events]
    with pytest.raises(error, match=match):
        await store.append("agent-a", [*events[:20], make(), *events[20:]])
    assert await store.head() == 0


async def test_a_large_append_of_mixed_types_and_metas_reads_back_as_appended(
    store: EventStore,
) -> None:
    metas = [
        Meta(run_id="run-1", agent_id="a"),
        Meta(run_id="run-1", agent_id="b", parent_id="a", causation_id=3, correlation_id="c"),
        Meta(source="api"),
    ]
    events = [
        NewEvent(command("a", n).data if n % 3 else started().data, metas[n // 50 % 3])
        for n in range(250)
    ]
    uniform = [
        NewEvent(command("a", n).data, Meta(run_id="run-2", agent_id="z")) for n in range(150)
    ]

    recorded = await store.append("mixed", events)
    recorded += await store.append("uniform", uniform)

    assert await store.read_all() == recorded
    assert [(e.position, e.version, e.data, e.meta) for e in recorded] == [
        (n + 1, n + 1, e.data, e.meta) for n, e in enumerate(events)
    ] + [(251 + n, n + 1, e.data, e.meta) for n, e in enumerate(uniform)]
    assert await positions(store, where=EventFilter(agent_id="b")) == [
        51 + n for n in range(50)
    ] + [201 + n for n in range(50)]
    assert await positions(store, where=EventFilter(run_id="run-2")) == list(range(251, 401))


# -- stored rows this code did not write ---------------------------------------------


async def test_an_unknown_stored_type_fails_strict_reads_naming_its_position(
    store_factory,
) -> None:
    store = await store_factory()
    await store.append("agent-a", [command("a", 1)])
    position = store_factory.write_raw(
        stream_id="agent-a", type="AgentTeleported", data_json='{"to": "mars"}'
    )
    await store.append("agent-a", [command("a", 3)])

    with pytest.raises(UnknownEventType) as caught:
        await store.read_all()
    assert (caught.value.position, caught.value.event_type) == (2, "AgentTeleported")
    assert position == 2
    assert "position 2" in str(caught.value)
    with pytest.raises(UnknownEventType):
        await store.read_stream("agent-a")


async def test_lenient_reads_return_unknown_types_as_unknown_event(store_factory) -> None:
    store = await store_factory()
    await store.append("agent-a", [command("a", 1)])
    store_factory.write_raw(stream_id="agent-a", type="AgentTeleported", data_json='{"to": "mars"}')
    await store.append("agent-a", [command("a", 3)])

    events = await store.read_all(lenient=True)
    assert [e.type for e in events] == ["AgentCommanded", "AgentTeleported", "AgentCommanded"]
    assert events[1].data == UnknownEvent(type="AgentTeleported", raw={"to": "mars"})
    fresh = await store.read_all(lenient=True)  # told without decoding the known ones' data
    assert [e.unknown for e in fresh] == [False, True, False]
    assert events[1].to_json_dict()["data"] == {"to": "mars"}
    assert [e.position async for e in store.iter_all(lenient=True, page=1)] == [1, 2, 3]


async def test_a_page_read_and_dropped_leaves_nothing_to_the_cyclic_collector(
    store: EventStore,
) -> None:
    # Its events refer to their page weakly (`events/_envelope.py`, note 2): dropped with
    # none of its data read, as the API's pages and SSE catch-up do, it is freed at once.
    await store.append("agent-a", [command("a", n) for n in range(50)])
    gc.collect()
    gc.disable()
    try:
        page = await store.read_all()
        assert {e.type for e in page} == {"AgentCommanded"}  # nothing decoded
        del page
        assert gc.collect() == 0
    finally:
        gc.enable()
    kept = (await store.read_all())[7]  # the page is dropped at once
    assert kept.data == command("a", 7).data  # an event kept apart decodes on its own


async def test_reading_one_events_data_decodes_its_page_while_the_page_is_held(
    store: EventStore,
) -> None:
    # The page the store returns is the one its events refer to (not a copy, which
    # would leave each event to decode alone): `_text` is the data not decoded yet.
    await store.append("agent-a", [command("a", n) for n in range(5)])
    page = await store.read_all()
    assert all(e._text is not None for e in page)
    assert page[0].data == command("a", 0).data
    assert all(e._text is None for e in page)
    assert [e.data for e in page] == [command("a", n).data for n in range(5)]


async def test_an_event_not_decoded_yet_is_a_recorded_event_like_any_other(
    store: EventStore,
) -> None:
    # A read event whose data is not decoded yet is of a subclass that decodes it on first
    # read (`events/_envelope.py`, note 1), then a plain RecordedEvent: to its reader it
    # is the same event either way: equal, hashed, pickled and immutable alike.
    [appended] = await store.append("agent-a", [command("a", 1)])
    [read] = await store.read_all()
    assert read._text is not None  # not decoded yet
    assert isinstance(read, RecordedEvent)
    assert read == appended
    assert appended == read
    assert hash(read) == hash(appended)
    with pytest.raises(AttributeError, match="immutable"):
        read.position = 9  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = read.nothing  # type: ignore[attr-defined]
    [again] = await store.read_all()
    assert pickle.loads(pickle.dumps(again)) == appended
    assert type(again) is RecordedEvent  # pickling read its data
    alone = (await store.read_all())[0]  # its page dropped: decoded on its own
    assert alone.data == appended.data
    assert type(alone) is RecordedEvent  # a plain event once its data is read
    page = await store.read_all()  # held: decoded with its page
    assert page[0].data == appended.data
    assert type(page[0]) is RecordedEvent


async def test_a_stored_row_that_no_longer_decodes_names_its_position(store_factory) -> None:
    store = await store_factory()
    await store.append("agent-a", [command("a", 1)])
    store_factory.write_raw(stream_id="agent-a", type="AgentCommanded", data_json='{"prompt": 3')

    # The row is read (its type, meta and position are intact); its data is
    # decoded when first used, and that is where it is refused.
    first, broken = await store.read_all(lenient=True)
    assert (broken.position, broken.type, broken.stream_id) == (2, "AgentCommanded", "agent-a")
    with pytest.raises(StoreError, match="position 2") as caught:
        _ = broken.data
    assert not isinstance(caught.value, UnknownEventType)
    with pytest.raises(StoreError, match="position 2"):  # and again: nothing was cached
        _ = broken.data
    assert first.data == command("a", 1).data
    assert [e.position for e in await store.read_all(until=1)] == [1]


async def test_a_row_from_a_newer_schema_is_unknown_to_strict_reads(store_factory) -> None:
    store = await store_factory()
    newer = json.dumps({"type": "AgentCommanded", "agent_id": "a", "prompt": "p", "urgency": 3})
    store_factory.write_raw(
        stream_id="agent-a", type="AgentCommanded", data_json=newer, schema_version=9
    )

    with pytest.raises(UnknownEventType) as caught:
        await store.read_all()
    assert caught.value.schema_version == 9
    assert "schema 9" in str(caught.value)
    [lenient] = await store.read_all(lenient=True)
    assert lenient.unknown  # of a known type's name, at a schema this code does not know
    assert isinstance(lenient.data, UnknownEvent)


async def test_a_tool_call_stored_at_schema_1_loads_as_the_current_schema(store_factory) -> None:
    store = await store_factory()
    v1 = {
        "type": "ToolCallCompleted",
        "agent_id": "a",
        "tool_use_id": "toolu_1",
        "name": "bash",
        "output": "command not found",
        "error": 1,
        "duration_ms": 3.5,
    }
    store_factory.write_raw(
        stream_id="agent-a", type="ToolCallCompleted", data_json=json.dumps(v1), schema_version=1
    )
    await store.append("agent-a", [command("a", 2)])

    [old, new] = await store.read_stream("agent-a")
    assert old.data == ToolCallCompleted(
        agent_id="a",
        tool_use_id="toolu_1",
        name="bash",
        result="command not found",
        is_error=True,
        duration_ms=3.5,
    )
    assert new.type == "AgentCommanded"
    assert [e.data for e in await store.read_all()] == [old.data, new.data]


# -- subscriptions ----------------------------------------------------------------------


async def test_subscribe_catches_up_then_follows_live_appends(store: EventStore) -> None:
    await store.append("agent-a", [command("a", n) for n in range(3)])
    seen: list[int] = []

    async def follow() -> None:
        async for event in store.subscribe(after=1):
            seen.append(event.position)
            if event.position == 3:
                await store.append("agent-a", [command("a", 3)])
            if event.position == 4:
                return

    async with asyncio.timeout(30):
        await follow()
    assert seen == [2, 3, 4]


async def test_subscribe_from_zero_during_concurrent_appends_sees_every_position_once_in_order(
    store: EventStore,
) -> None:
    """The seam between catch-up and live neither drops nor repeats an event."""
    await store.append("agent-a", [command("a", n) for n in range(1_500)])  # more than one page
    appenders, each = 8, 40
    total = 1_500 + appenders * each
    seen: list[int] = []

    async def follow() -> None:
        async for event in store.subscribe(after=0):
            seen.append(event.position)
            if len(seen) == total:
                return

    async def append(k: int) -> None:
        for n in range(each):
            await store.append(f"agent-{k}", [command(str(k), n)])

    async with asyncio.timeout(20):
        await asyncio.gather(follow(), *(append(k) for k in range(appenders)))
    assert seen == list(range(1, total + 1))


async def test_subscribe_with_a_filter_sees_only_matching_events(store: EventStore) -> None:
    seen: list[str] = []

    async def follow() -> None:
        async for event in store.subscribe(where=EventFilter.of(agent_id="b")):
            seen.append(f"{event.stream_id}:{event.version}")
            if len(seen) == 2:
                return

    task = asyncio.create_task(follow())
    await store.append("agent-a", [command("a", 0)])
    await store.append("agent-b", [command("b", 0)])
    await store.append("agent-a", [command("a", 1)])
    await store.append("agent-b", [command("b", 1)])
    async with asyncio.timeout(30):
        await task
    assert seen == ["agent-b:1", "agent-b:2"]


async def test_lenient_subscribe_passes_unknown_types_and_keeps_going(store_factory) -> None:
    store = await store_factory()
    store_factory.write_raw(stream_id="future", type="AgentTeleported", data_json="{}")
    await store.append("agent-a", [command("a", 1)])
    seen: list[str] = []

    async with asyncio.timeout(30):
        async for event in store.subscribe():
            seen.append(event.type)
            if len(seen) == 2:
                break
    assert seen == ["AgentTeleported", "AgentCommanded"]

    strict = store.subscribe(lenient=False)
    with pytest.raises(UnknownEventType):
        await asyncio.wait_for(anext(aiter(strict)), 30)


async def test_subscriptions_end_when_the_store_closes(store_factory) -> None:
    store = await store_factory()
    await store.append("agent-a", [command("a", 0)])
    seen: list[int] = []
    caught_up = asyncio.Event()

    async def follow() -> None:
        async for event in store.subscribe():
            seen.append(event.position)
            caught_up.set()

    task = asyncio.create_task(follow())
    async with asyncio.timeout(30):
        await caught_up.wait()
        await store.aclose()
        await task
    assert seen == [1]


# -- lifecycle ----------------------------------------------------------------------------


async def test_use_after_close_raises_store_closed(store_factory) -> None:
    store = await store_factory()
    await store.append("agent-a", [command("a", 0)])
    await store.aclose()
    await store.aclose()  # twice is fine

    with pytest.raises(StoreClosed):
        await store.append("agent-a", [command("a", 1)])
    with pytest.raises(StoreClosed):
        await store.read_all()
    with pytest.raises(StoreClosed):
        await store.read_stream("agent-a")
    with pytest.raises(StoreClosed):
        await store.head()
    with pytest.raises(StoreClosed):
        await store.stream_version("agent-a")
    with pytest.raises(StoreClosed):
        await anext(aiter(store.subscribe()))
    with pytest.raises(StoreClosed):
        await anext(aiter(store.iter_all()))
    with pytest.raises(StoreClosed):
        await store.import_run("run-x", a_run())


async def test_close_finishes_the_appends_already_made(store_factory) -> None:
    store = await store_factory()
    appends = [
        asyncio.create_task(store.append(f"agent-{k}", [command(str(k), 0)])) for k in range(20)
    ]
    await asyncio.sleep(0)  # every append is queued
    await store.aclose()

    results = await asyncio.gather(*appends)
    reopened = await store_factory()
    assert sorted(r[0].position for r in results) == list(range(1, 21))
    assert await reopened.head() == 20


async def test_a_cancelled_append_is_written_whole_or_not_at_all(store: EventStore) -> None:
    await store.append("agent-a", [command("a", 0)])
    task = asyncio.create_task(store.append("agent-b", [command("b", n) for n in range(50)]))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    after = await store.append("agent-a", [command("a", 1)], expected_version=1)
    landed = await store.stream_version("agent-b")
    assert landed in (0, 50)
    assert after[0].position == 2 + landed
    assert [e.position for e in await store.read_all()] == list(range(1, 3 + landed))


async def test_the_store_satisfies_the_protocol(store: EventStore) -> None:
    assert isinstance(store, EventStore)
    assert isinstance((await store.append("s", [started()]))[0], RecordedEvent)
    await store.append(
        "agent", [NewEvent(AgentCreated(agent_id="a", name="a", role="r", model="m"))]
    )
    assert isinstance(store.checkpoints, CheckpointStore)


# -- importing a run ----------------------------------------------------------------------

T0 = datetime(2025, 5, 1, 8, 30, tzinfo=UTC)


def imported(
    position: int,
    stream_id: str,
    version: int,
    data: AgentCommanded | RunStarted,
    *,
    cause: int | None = None,
    seconds: float = 0,
) -> ImportedEvent:
    """An event as another log stored it (its position, its time), ready to import."""
    agent = getattr(data, "agent_id", None)
    return ImportedEvent(
        position=position,
        stream_id=stream_id,
        version=version,
        type=data.type,
        schema_version=type(data).SCHEMA_VERSION,
        data=data.model_dump_json(),
        meta=Meta(run_id="run-x", agent_id=agent, causation_id=cause, source="replay"),
        recorded_at=T0 + timedelta(seconds=seconds),
    )


def a_run() -> list[ImportedEvent]:
    return [
        imported(10, "run-x", 1, RunStarted(run_id="run-x", task="t")),
        imported(11, "agent-x", 1, AgentCommanded(agent_id="x", prompt="go"), cause=10, seconds=1),
        imported(15, "agent-x", 2, AgentCommanded(agent_id="x", prompt="on"), cause=3, seconds=2.5),
        imported(20, "run-x", 2, RunStarted(run_id="run-x", task="u"), cause=15, seconds=60),
    ]


async def test_import_run_writes_after_the_head_keeping_versions_times_and_meta(
    store: EventStore,
) -> None:
    await store.append("agent-a", [command("a", 0), command("a", 1)])

    first = await store.import_run("run-x", a_run())

    assert first == 3
    events = await store.read_all(after=2)
    assert [(e.position, e.stream_id, e.version) for e in events] == [
        (3, "run-x", 1),
        (4, "agent-x", 1),
        (5, "agent-x", 2),
        (6, "run-x", 2),
    ]
    assert [e.recorded_at for e in events] == [T0 + timedelta(seconds=s) for s in (0, 1, 2.5, 60)]
    # Causes inside the run follow it to its new positions; one outside it is dropped.
    assert [e.meta.causation_id for e in events] == [None, 3, None, 5]
    assert [e.data for e in events] == [
        RunStarted(run_id="run-x", task="t"),
        AgentCommanded(agent_id="x", prompt="go"),
        AgentCommanded(agent_id="x", prompt="on"),
        RunStarted(run_id="run-x", task="u"),
    ]
    assert events[1].meta == Meta(run_id="run-x", agent_id="x", causation_id=3, source="replay")
    assert await store.head() == 6
    assert await store.stream_version("agent-x") == 2
    appended = await store.append("agent-x", [command("x", 3)], expected_version=2)
    assert (appended[0].position, appended[0].version) == (7, 3)


async def test_imported_events_are_found_by_run_and_agent(store: EventStore) -> None:
    await store.append("agent-a", [command("a", 0, run="run-1")])
    await store.import_run("run-x", a_run())

    assert await positions(store, where=EventFilter.of(run_id="run-x")) == [2, 3, 4, 5]
    assert await positions(store, where=EventFilter.of(agent_id="x")) == [3, 4]
    assert [e.version for e in await store.read_stream("run-x")] == [1, 2]


async def test_import_of_a_run_whose_streams_exist_writes_nothing(store: EventStore) -> None:
    await store.append("agent-x", [command("x", 0)])

    with pytest.raises(ImportConflict) as caught:
        await store.import_run("run-x", a_run())

    assert (caught.value.run_id, caught.value.streams) == ("run-x", ("agent-x",))
    assert await store.head() == 1
    assert await store.stream_version("run-x") == 0


def a_long_run(count: int, *, prompt: str = "go") -> Iterator[ImportedEvent]:
    """`count` events of agents x0, x1, x2 taken in turn, from old position 100 in steps of
    3, each caused by the event of the same agent 30 positions before it (in an earlier
    chunk of the import for most), the first ten by an event outside the run; made as
    they are taken, as a spooled export is read."""
    for i in range(count):
        agent = f"x{i % 3}"
        event = AgentCommanded(agent_id=agent, prompt=f"{prompt} {i}")
        yield imported(100 + 3 * i, f"agent-{agent}", i // 3 + 1, event, cause=10 + 3 * i)


async def test_a_run_longer_than_a_chunk_imports_whole_with_its_causes(
    store: EventStore,
) -> None:
    count = 2 * CHUNK + 500  # three chunks (`events/_import_chunks.py`)
    await store.append("agent-a", [command("a", 0)])

    assert await store.import_run("run-x", a_long_run(count)) == 2

    events = await store.read_all(after=1)
    assert [e.position for e in events] == list(range(2, count + 2))
    assert [e.data.prompt for e in events] == [f"go {i}" for i in range(count)]
    # The cause of event i (old position 10 + 3i) is event i - 30, now at position i - 28.
    assert [e.meta.causation_id for e in events] == [None] * 30 + list(range(2, count - 28))
    assert [await store.stream_version(f"agent-x{k}") for k in range(3)] == [
        len(range(k, count, 3)) for k in range(3)
    ]
    assert await store.head() == count + 1


async def test_an_import_that_meets_an_existing_stream_late_writes_nothing(
    store: EventStore,
) -> None:
    await store.append("agent-late", [command("late", 0)])
    late = imported(100 + 3 * 5000, "agent-late", 1, AgentCommanded(agent_id="late", prompt="p"))

    with pytest.raises(ImportConflict) as caught:
        await store.import_run("run-x", itertools.chain(a_long_run(5000), [late]))

    assert caught.value.streams == ("agent-late",)
    assert await store.head() == 1
    assert [await store.stream_version(f"agent-x{k}") for k in range(3)] == [0, 0, 0]


async def test_an_import_holds_one_chunk_of_the_run_in_memory(store_factory) -> None:
    if store_factory.backend == "memory":
        pytest.skip("the in-memory log holds every event it has, by design")
    store = await store_factory()
    run_bytes = 3_000 * 16_000  # 48 MB of data, made as the import takes it
    tracemalloc.start()
    try:
        await store.import_run("run-x", a_long_run(3_000, prompt="p" * 16_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert await store.head() == 3_000
    assert peak < run_bytes / 3, f"{peak / 2**20:.1f} MiB at the peak"


async def test_a_subscriber_is_woken_by_an_import(store: EventStore) -> None:
    seen: list[int] = []

    async def follow() -> None:
        async for event in store.subscribe():
            seen.append(event.position)
            if len(seen) == 4:
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0)
    await store.import_run("run-x", a_run())
    async with asyncio.timeout(5):  # well before a poll would find them on SQLite's default
        await task
    assert seen == [1, 2, 3, 4]


async def test_an_exported_run_imports_into_another_log_as_it_was(store_factory) -> None:
    source = await store_factory()
    await source.append("agent-other", [command("o", 0, run="run-other")])
    [begun] = await source.append("run-r", [started("r")])
    meta = Meta(run_id="r", agent_id="b", causation_id=begun.position)
    created = AgentCreated(agent_id="b", name="b", role="r", model="m")
    await source.append("agent-b", [NewEvent(created, meta)])
    await source.append("agent-b", [command("b", 1, run="r")])
    lines = [line async for line in await export_lines(source, "r")]

    target = await store_factory.other()
    await target.append("agent-t", [command("t", 0, run="run-t")])
    result = await import_run(target, parse_export(b"".join(lines)))

    assert (result.first_position, result.last_position, result.events) == (2, 4, 3)
    original = await read_run(source, "r")
    copy = await read_run(target, "r")
    assert [(e.stream_id, e.version, e.data, e.recorded_at) for e in copy] == [
        (e.stream_id, e.version, e.data, e.recorded_at) for e in original
    ]
    assert copy[1].meta.causation_id == copy[0].position == 2
    with pytest.raises(ImportConflict):
        await import_run(target, parse_export(b"".join(lines)))


# -- read-only ------------------------------------------------------------------------------


async def test_a_read_only_store_reads_and_refuses_every_write(store_factory) -> None:
    writer = await store_factory()
    await writer.append("agent-a", [command("a", 0)])
    reader = await store_factory(readonly=True)

    assert reader.readonly and not writer.readonly
    assert [e.position for e in await reader.read_all()] == [1]
    with pytest.raises(StoreUnavailable, match="read-only"):
        await reader.append("agent-a", [command("a", 1)])
    with pytest.raises(StoreUnavailable, match="read-only"):
        await reader.import_run("run-x", a_run())
    with pytest.raises(StoreUnavailable, match="read-only"):
        await reader.checkpoints.save_checkpoints([Checkpoint("fleet", 1, 1, "{}")])
    assert await writer.head() == 1
    assert await reader.checkpoints.load_checkpoints() == {}

    await writer.append("agent-a", [command("a", 1)])
    async with asyncio.timeout(30):
        follow = reader.subscribe(after=1)
        assert (await anext(aiter(follow))).position == 2
