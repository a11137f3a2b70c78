"""The lease store contract: every backend's `store.leases` passes these unchanged.

They use only the protocols (`EventStore`, `LeaseStore`) and `store_factory`,
parametrized over `STORE_BACKENDS`, like the event and checkpoint contracts.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from events import EventStore, LeaseHeld, LeaseStore, StoreClosed


async def test_a_lease_is_held_by_one_owner_and_seen_from_every_store_on_the_log(
    store_factory,
) -> None:
    first: EventStore = await store_factory()
    second: EventStore = await store_factory()
    assert isinstance(first.leases, LeaseStore)

    lease = await first.leases.acquire_lease("agent-a", "p1", 30)

    assert lease.owner == "p1"
    assert lease.live(time.time())
    with pytest.raises(LeaseHeld, match="leased by 'p1'") as held:
        await second.leases.acquire_lease("agent-a", "p2", 30)
    assert held.value.owner == "p1"
    assert held.value.expires_at == pytest.approx(lease.expires_at)
    assert [(x.key, x.owner) for x in await second.leases.leases()] == [("agent-a", "p1")]


async def test_the_owner_may_acquire_again_and_an_expired_lease_is_free(store: EventStore) -> None:
    leases = store.leases
    await leases.acquire_lease("agent-a", "p1", 30)
    again = await leases.acquire_lease("agent-a", "p1", 60)
    assert again.expires_at - time.time() > 45

    await leases.acquire_lease("agent-b", "p1", 0.01)
    await asyncio.sleep(0.05)  # the lease runs out: that is what is tested, not a speed
    taken = await leases.acquire_lease("agent-b", "p2", 30)
    assert taken.owner == "p2"


async def test_a_dead_holder_named_in_replacing_is_taken_over_but_no_other(
    store: EventStore,
) -> None:
    leases = store.leases
    await leases.acquire_lease("run-r", "dead", 30)

    with pytest.raises(LeaseHeld):
        await leases.acquire_lease("run-r", "p2", 30, replacing="someone-else")
    taken = await leases.acquire_lease("run-r", "p2", 30, replacing="dead")

    assert taken.owner == "p2"
    assert [x.owner for x in await leases.leases(prefix="run-")] == ["p2"]


async def test_renewal_extends_only_the_owners_leases_and_tells_which_it_lost(
    store: EventStore,
) -> None:
    leases = store.leases
    await leases.acquire_lease("agent-a", "p1", 5)
    await leases.acquire_lease("agent-b", "p2", 5)

    renewed = await leases.renew_leases(["agent-a", "agent-b", "agent-c"], "p1", 120)

    assert renewed == {"agent-a"}
    by_key = {x.key: x for x in await leases.leases()}
    assert by_key["agent-a"].expires_at - time.time() > 100
    assert by_key["agent-b"].expires_at - time.time() < 10


async def test_release_frees_only_the_owners_leases(store: EventStore) -> None:
    leases = store.leases
    await leases.acquire_lease("agent-a", "p1", 30)
    await leases.acquire_lease("agent-b", "p2", 30)

    await leases.release_leases(["agent-a", "agent-b"], "p1")

    assert [(x.key, x.owner) for x in await leases.leases(prefix="agent-")] == [("agent-b", "p2")]
    assert (await leases.acquire_lease("agent-a", "p3", 30)).owner == "p3"


async def test_racing_owners_never_both_win_a_key(store_factory) -> None:
    stores = [await store_factory() for _ in range(4)]

    async def try_acquire(i: int) -> str | None:
        try:
            return (await stores[i].leases.acquire_lease("agent-x", f"p{i}", 30)).owner
        except LeaseHeld:
            return None

    winners = [w for w in await asyncio.gather(*(try_acquire(i) for i in range(4))) if w]
    assert len(winners) == 1
    assert [x.owner for x in await stores[0].leases.leases()] == winners


async def test_leases_refuse_a_bad_ttl_and_a_closed_store(store_factory) -> None:
    store: EventStore = await store_factory()
    with pytest.raises(ValueError, match="ttl_s"):
        await store.leases.acquire_lease("agent-a", "p1", 0)
    await store.aclose()
    with pytest.raises(StoreClosed):
        await store.leases.acquire_lease("agent-a", "p1", 30)
    with pytest.raises(StoreClosed):
        await store.leases.leases()
