"""The checkpoint store contract: every backend's `store.checkpoints` passes these unchanged.

Like the event store contract, they use only the protocols (`EventStore`,
`CheckpointStore`) and `store_factory`, parametrized over `STORE_BACKENDS`.
"""

from __future__ import annotations

import asyncio

import pytest

from events import Checkpoint, CheckpointStore, EventStore, Snapshot, StoreClosed


def state(n: int) -> str:
    return f'{{"count":{n},"names":["é","x"]}}'


# -- checkpoints --------------------------------------------------------------------------


async def test_saved_checkpoints_load_back_from_any_store_on_the_log(store_factory) -> None:
    first: EventStore = await store_factory()
    saved = [Checkpoint("agents", 3, 120, state(1)), Checkpoint("fleet", 1, 118, state(2))]

    await first.checkpoints.save_checkpoints(saved)

    assert isinstance(first.checkpoints, CheckpointStore)
    assert await first.checkpoints.load_checkpoints() == {c.name: c for c in saved}
    second: EventStore = await store_factory()
    assert await second.checkpoints.load_checkpoints() == {c.name: c for c in saved}


async def test_a_fresh_log_has_no_checkpoint_and_no_snapshot(store: EventStore) -> None:
    assert await store.checkpoints.load_checkpoints() == {}
    assert await store.checkpoints.best_snapshot("agents", 1, 10**9) is None
    assert await store.checkpoints.snapshot_positions("agents", 1) == []


async def test_a_checkpoint_never_moves_back_within_its_version(store: EventStore) -> None:
    checkpoints = store.checkpoints
    await checkpoints.save_checkpoints([Checkpoint("runs", 1, 50, state(50))])

    await checkpoints.save_checkpoints([Checkpoint("runs", 1, 40, state(40))])
    assert (await checkpoints.load_checkpoints())["runs"] == Checkpoint("runs", 1, 50, state(50))

    await checkpoints.save_checkpoints([Checkpoint("runs", 1, 50, state(51))])
    assert (await checkpoints.load_checkpoints())["runs"].state == state(51)

    # A new version of the fold replaces it, wherever it is.
    await checkpoints.save_checkpoints([Checkpoint("runs", 2, 10, state(10))])
    assert (await checkpoints.load_checkpoints())["runs"] == Checkpoint("runs", 2, 10, state(10))


async def test_checkpoints_saved_together_land_together(store: EventStore) -> None:
    names = [f"p{n}" for n in range(30)]
    await store.checkpoints.save_checkpoints([Checkpoint(n, 1, 7, state(7)) for n in names])
    loaded = await store.checkpoints.load_checkpoints()
    assert sorted(loaded) == sorted(names)
    assert {c.position for c in loaded.values()} == {7}


async def test_saving_no_checkpoint_changes_nothing(store: EventStore) -> None:
    await store.checkpoints.save_checkpoints([Checkpoint("board", 1, 9, state(9))])
    await store.checkpoints.save_checkpoints([])
    assert list(await store.checkpoints.load_checkpoints()) == ["board"]


# -- snapshots -----------------------------------------------------------------------------


async def test_the_best_snapshot_is_the_latest_at_or_before_the_position(
    store: EventStore,
) -> None:
    checkpoints = store.checkpoints
    await checkpoints.save_snapshots(
        [Snapshot("graph", 1, p, b"state at %d" % p) for p in (1000, 3000, 2000)]
    )

    assert await checkpoints.best_snapshot("graph", 1, 999) is None
    assert await checkpoints.best_snapshot("graph", 1, 1000) == Snapshot(
        "graph", 1, 1000, b"state at 1000"
    )
    assert (await checkpoints.best_snapshot("graph", 1, 2999)) == Snapshot(
        "graph", 1, 2000, b"state at 2000"
    )
    assert (await checkpoints.best_snapshot("graph", 1, 10**9)) == Snapshot(
        "graph", 1, 3000, b"state at 3000"
    )
    assert await checkpoints.snapshot_positions("graph", 1) == [1000, 2000, 3000]


async def test_snapshots_of_another_version_or_name_are_not_used(store: EventStore) -> None:
    checkpoints = store.checkpoints
    await checkpoints.save_snapshots(
        [Snapshot("graph", 1, 100, b"old fold"), Snapshot("board", 2, 150, b"another model")]
    )

    assert await checkpoints.best_snapshot("graph", 2, 500) is None
    assert await checkpoints.best_snapshot("board", 1, 500) is None
    assert await checkpoints.snapshot_positions("graph", 2) == []


async def test_a_snapshot_saved_again_at_its_position_is_replaced(store: EventStore) -> None:
    await store.checkpoints.save_snapshots([Snapshot("fleet", 1, 10, b"first")])
    await store.checkpoints.save_snapshots([Snapshot("fleet", 1, 10, b"second")])

    assert await store.checkpoints.best_snapshot("fleet", 1, 10) == Snapshot(
        "fleet", 1, 10, b"second"
    )
    assert await store.checkpoints.snapshot_positions("fleet", 1) == [10]


async def test_snapshots_are_deleted_by_position_or_all_at_once(store_factory) -> None:
    store: EventStore = await store_factory()
    checkpoints = store.checkpoints
    await checkpoints.save_snapshots(
        [Snapshot("agents", v, p, b"x" * p) for v in (1, 2) for p in (10, 20, 30)]
        + [Snapshot("runs", 1, 10, b"kept")]
    )

    await checkpoints.delete_snapshots("agents", positions=[20, 30])
    assert await checkpoints.snapshot_positions("agents", 1) == [10]
    assert await checkpoints.snapshot_positions("agents", 2) == [10]

    await checkpoints.delete_snapshots("agents")
    assert await checkpoints.snapshot_positions("agents", 1) == []
    assert await checkpoints.snapshot_positions("agents", 2) == []
    other: EventStore = await store_factory()
    assert await other.checkpoints.best_snapshot("runs", 1, 10) == Snapshot("runs", 1, 10, b"kept")


async def test_a_large_snapshot_comes_back_byte_for_byte(store: EventStore) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
    await store.checkpoints.save_snapshots([Snapshot("agents", 1, 1, blob)])
    found = await store.checkpoints.best_snapshot("agents", 1, 1)
    assert found is not None and found.blob == blob


# -- lifecycle -------------------------------------------------------------------------------


async def test_the_checkpoints_of_a_closed_store_refuse_use(store_factory) -> None:
    store: EventStore = await store_factory()
    checkpoints = store.checkpoints
    await store.aclose()

    with pytest.raises(StoreClosed):
        await checkpoints.load_checkpoints()
    with pytest.raises(StoreClosed):
        await checkpoints.save_checkpoints([Checkpoint("fleet", 1, 1, state(1))])
    with pytest.raises(StoreClosed):
        await checkpoints.save_snapshots([Snapshot("fleet", 1, 1, b"")])
    with pytest.raises(StoreClosed):
        await checkpoints.best_snapshot("fleet", 1, 1)
    with pytest.raises(StoreClosed):
        await checkpoints.snapshot_positions("fleet", 1)
    with pytest.raises(StoreClosed):
        await checkpoints.delete_snapshots("fleet")


async def test_checkpoints_saved_before_close_are_there_when_the_log_is_opened_again(
    store_factory,
) -> None:
    store: EventStore = await store_factory()
    save = asyncio.create_task(
        store.checkpoints.save_checkpoints([Checkpoint("fleet", 1, 5, state(5))])
    )
    await asyncio.sleep(0)  # queued
    await store.aclose()
    await save

    reopened: EventStore = await store_factory()
    assert (await reopened.checkpoints.load_checkpoints())["fleet"].position == 5
