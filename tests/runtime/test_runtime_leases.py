"""Leases: one live process drives an agent; a dead one's agents are taken over."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from events import LeaseHeld, open_store, owner_alive, process_owner
from runtime import AgentDrivenElsewhere, RuntimeOptions, open_runtime
from runtime._leases import Leaseholder

HERE = Path(__file__).parent


async def test_a_second_process_keeps_off_a_live_owners_agent_and_takes_it_over_once_it_died(
    tmp_path: Path, workspace: Path
) -> None:
    db = tmp_path / "fleet.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), str(HERE)])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "rt_fleet_process.py"), str(db), str(workspace),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        agent_id = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        assert agent_id.startswith("scout-")
        options = RuntimeOptions(db=db, workspace=workspace, env={})
        async with open_runtime(options) as rt:
            # The other process is alive and holds the agent's lease: hands off.
            assert await rt.fleet.resume_unfinished() == []
            with pytest.raises(AgentDrivenElsewhere, match=f":{proc.pid}:"):
                await rt.fleet.delete_agent(agent_id)
            assert (await rt.fleet.get_agent_status(agent_id))["status"] == "working"

            proc.send_signal(signal.SIGKILL)
            await proc.wait()

            # Its process is gone: this one takes the agent over and finishes it.
            assert await rt.fleet.resume_unfinished() == [agent_id]
            statuses = await rt.fleet.wait_all([agent_id], timeout_s=120)
            assert statuses == {agent_id: "completed"}
            types = [e.type for e in await rt.store.read_stream(f"agent-{agent_id}")]
            assert types.count("AgentCompleted") == 1
            assert "AgentDeleted" not in types
            assert (workspace / "notes" / "found.md").is_file()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_lease_of_another_host_is_trusted_until_it_expires(tmp_path: Path) -> None:
    async with open_store(tmp_path / "fleet.db") as store:
        await store.leases.acquire_lease("agent-a", "elsewhere:4242:abcd", 0.2)
        mine = Leaseholder(store, ttl_s=30)
        with pytest.raises(LeaseHeld):
            await mine.acquire("agent-a")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:  # until the foreign lease runs out (that is the behaviour tested)
            try:
                await mine.acquire("agent-a")
                break
            except LeaseHeld:
                assert loop.time() < deadline, "the expired lease was never free"
                await asyncio.sleep(0.05)
        assert [x.owner for x in await store.leases.leases()] == [mine.owner]
        await mine.aclose()
        assert await store.leases.leases() == []


async def test_renewal_keeps_a_lease_and_a_lease_taken_over_is_reported_lost(
    tmp_path: Path,
) -> None:
    lost: list[str] = []
    async with open_store(tmp_path / "fleet.db") as store:
        mine = Leaseholder(store, ttl_s=0.3, on_lost=lost.append)
        first = await mine.acquire("agent-a")
        await mine.acquire("agent-b")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30

        async def renewed() -> bool:
            leases = {x.key: x for x in await store.leases.leases()}
            return leases["agent-a"].expires_at > first.expires_at

        while not await renewed():
            assert loop.time() < deadline, "the lease was never renewed"
            await asyncio.sleep(0.02)
        # Another owner takes agent-b (as if this process had stalled past its expiry).
        await store.leases.acquire_lease("agent-b", "thief", 30, replacing=mine.owner)
        while not lost:
            assert loop.time() < deadline, "the lost lease was never reported"
            await asyncio.sleep(0.02)
        assert lost == ["agent-b"]
        assert mine.holds("agent-a") and not mine.holds("agent-b")
        await mine.aclose()


def test_an_owner_is_alive_unless_it_names_an_ended_process_of_this_host() -> None:
    assert owner_alive(process_owner())
    assert owner_alive("some-other-host:1:abcd")
    assert not owner_alive(process_owner().replace(f":{os.getpid()}:", ":999999999:"))


async def test_renewal_goes_on_after_the_log_was_unreachable_for_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One failed renewal (a PostgreSQL restart, a connection cut) stopped renewal for good:
    # the leases lapsed while the process still drove its agents, and a worker took them.
    from postgres_support import proxied_log

    caplog.set_level(logging.DEBUG, logger="runtime._leases")
    async with proxied_log() as (proxy, url), open_store(url) as store:
        mine = Leaseholder(store, ttl_s=0.6)
        await mine.acquire("agent-a")
        proxy.down()  # as a server restart: the renewals meanwhile fail
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not [r for r in caplog.records if r.name == "runtime._leases"]:
            assert loop.time() < deadline, "no renewal failed during the outage"
            await asyncio.sleep(0.02)
        proxy.up()
        back = time.time()
        while True:
            [lease] = await store.leases.leases()
            if lease.expires_at > back + mine.ttl_s:  # renewed after the outage
                break
            assert loop.time() < deadline, "the lease was never renewed again"
            await asyncio.sleep(0.02)
        assert mine.holds("agent-a")
        await mine.aclose()
