"""Fault figures for RELIABILITY.md: a real `fleet serve` killed, doubled, flooded and fed bad input.

Run from the repository root::

    .venv/bin/python bench/faults.py              # every part (about four minutes)
    .venv/bin/python bench/faults.py --quick      # fewer rounds and clients (about two)
    .venv/bin/python bench/faults.py --only stalled,bad

Every server is `python -m api.cli serve --port 0` (what `fleet serve` runs,
the agent runtime included) in a temporary folder, talked to over loopback.
The parts:

- kill9: writers post hook payloads (each with a unique key) while the
  server is killed with SIGKILL, again and again; then the log is read and
  every acknowledged (201) key must be in it, at the position it was
  acknowledged with, the positions gap-free and no key twice.
- two: two servers on one log file, writers on both, an SSE reader on one;
  the same checks, and the reader must see every event of both.
- closed: 1,000 SSE connections opened, then reset (RST) at once; the
  subscriber count must return to 0 and the server's file descriptors to
  what they were before.
- stalled: a healthy SSE reader (its own process) measures the delay from
  each post to its arrival, while 1,000 events of 100 KB are posted at a
  steady rate; first alone, then with 300 clients that never read (plain
  sockets that send the request and nothing else). The server's memory is
  sampled from /proc: idle, then peak.
- imports: a run export of 200 MiB uploaded to `POST /v1/runs/import`
  (streamed from disk), with a second upload sent while the first is in
  flight; the server's memory is sampled from /proc: idle, then peak.
- diskfull: a server whose log is on an 8 MiB tmpfs (needs root); writers
  post while the disk is filled with a file, then the file is removed:
  the answers while full, what /healthz says, how many log lines the
  outage made, how long until writes are taken again (no restart), and the
  acknowledged writes against the log.
- bad: each bad input of issue 12 (and a few more) against a server, with
  the status code it gets; the `fleet serve` cases with the exit status and
  the number of lines on stderr.

The machine has 2 cores shared with other work: times are indicative, the
counts (lost, gaps, status codes) are not. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_URL = re.compile(r"at (http://\S+?)/ ")
JSON = {"content-type": "application/json"}


SERVER_ROOT = ROOT
"""Where the servers' code is taken from (`--server-root`: another checkout, to compare)."""


def _env(root: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(PYTHONPATH=str(root), COLUMNS="200", ANTHROPIC_API_KEY="")
    env.update(PYTHONDONTWRITEBYTECODE="1")
    return env


# -- a fleet serve process ----------------------------------------------------------


@dataclass
class Server:
    """`fleet serve` in a subprocess; `url` once it is ready."""

    db: Path
    workspace: Path
    args: tuple[str, ...] = ()
    url: str = ""
    process: asyncio.subprocess.Process | None = None
    output: list[str] = field(default_factory=list)

    async def start(self) -> Server:
        cmd = [sys.executable, "-m", "api.cli", "serve", "--port", "0", "--db", str(self.db),
               "--workspace", str(self.workspace), *self.args]  # fmt: skip
        self.process = await asyncio.create_subprocess_exec(
            *cmd, cwd=self.workspace, env=_env(SERVER_ROOT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(120):
            while not self.url:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("fleet serve ended:\n" + "".join(self.output))
                self.output.append(line)
                if match := _URL.search(line):
                    self.url = match.group(1)
        asyncio.get_running_loop().create_task(self._drain())
        return self

    async def _drain(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line.decode())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def status(self, key: str) -> int:
        """A /proc/PID/status figure in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    async def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode or 0


@contextlib.asynccontextmanager
async def serving(tmp: Path, name: str = "fleet.db", *args: str) -> AsyncIterator[Server]:
    workspace = tmp / "workspace"
    workspace.mkdir(exist_ok=True)
    server = await Server(tmp / name, workspace, args).start()
    try:
        yield server
    finally:
        await server.stop()


async def health(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/healthz")).json()
    return body


async def wait_for(predicate: Any, within: float = 60.0) -> float:
    """Poll an async predicate; the seconds it took (raises TimeoutError past `within`)."""
    start = time.monotonic()
    async with asyncio.timeout(within):
        while not await predicate():  # noqa: ASYNC110 - a server's figure, polled over HTTP
            await asyncio.sleep(0.05)
    return time.monotonic() - start


def payload(key: str, session: str = "bench", **extra: Any) -> dict[str, Any]:
    return {"hook_event_name": "Notification", "session_id": session, "key": key, **extra}


async def read_log(db: Path) -> list[Any]:
    from events import SQLiteEventStore

    async with SQLiteEventStore(db) as store:
        return [event async for event in store.iter_all()]


@dataclass
class Ledger:
    """What writers were told (key -> position) and what the log holds."""

    acked: dict[str, int] = field(default_factory=dict)
    sent: int = 0

    async def write(self, url: str, writer: int, tag: str, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                key = f"{tag}-w{writer}-{n}"
                n += 1
                self.sent += 1
                try:
                    answer = await client.post("/v1/hooks/ingest", json=payload(key, f"k{writer}"))
                except httpx.HTTPError:
                    return  # the server is gone: this one is not acknowledged
                if answer.status_code == 201:
                    self.acked[key] = answer.json()["position"]

    def check(self, events: list[Any]) -> dict[str, Any]:
        keys = [e.data.payload.get("key") for e in events if e.type == "ExternalHookReceived"]
        where = {e.data.payload.get("key"): e.position for e in events
                 if e.type == "ExternalHookReceived"}  # fmt: skip
        positions = [e.position for e in events]
        return {
            "acknowledged": len(self.acked),
            "stored": len(keys),
            "lost": sum(1 for key in self.acked if key not in where),
            "moved": sum(1 for key, p in self.acked.items() if where.get(key, p) != p),
            "gaps": 0 if positions == list(range(1, len(positions) + 1)) else 1,
            "duplicates": len(keys) - len(set(keys)),
            "unacknowledged but stored": sum(1 for key in where if key not in self.acked),
        }


# -- kill -9 under load -------------------------------------------------------------


async def part_kill9(tmp: Path, rounds: int, writers: int) -> dict[str, Any]:
    """Repeated SIGKILL of a server under concurrent writes; then what the log holds."""
    ledger = Ledger()
    rng = random.Random(12)
    workspace = tmp / "workspace"
    workspace.mkdir(exist_ok=True)
    db = tmp / "kill9.db"
    for r in range(rounds):
        server = await Server(db, workspace).start()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(ledger.write(server.url, w, f"r{r}", stop))
                 for w in range(writers)]  # fmt: skip
        await asyncio.sleep(rng.uniform(1.0, 2.5))
        await server.kill9()
        stop.set()
        await asyncio.gather(*tasks)
    # One more start: the log opens after the last kill and serves what it holds.
    async with serving(tmp, "kill9.db") as server, httpx.AsyncClient(base_url=server.url) as c:
        head = (await health(c))["head"]
    result = ledger.check(await read_log(db))
    result.update(kills=rounds, writers=writers, sent=ledger.sent, head_after_restart=head)
    return result


# -- two servers on one file --------------------------------------------------------


@dataclass
class Follower:
    """An SSE reader's ids; it stops once it has seen `head` (0: not known yet)."""

    seen: list[int] = field(default_factory=list)
    head: int = 0

    async def follow(self, url: str) -> None:
        async with (
            httpx.AsyncClient(base_url=url, timeout=None) as client,
            client.stream("GET", "/v1/events/stream?from=0") as response,
        ):
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    self.seen.append(int(line[3:]))
                if self.head and self.seen and self.seen[-1] >= self.head:
                    return


async def part_two(tmp: Path, writers: int, seconds: float) -> dict[str, Any]:
    """Two servers on one log file, writers on both, a live reader on the first."""
    ledger = Ledger()
    async with serving(tmp, "two.db") as a, serving(tmp, "two.db") as b:
        follower = Follower()
        reader = asyncio.create_task(follower.follow(a.url))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(ledger.write(url, w, f"s{i}", stop))
                 for i, url in enumerate((a.url, b.url)) for w in range(writers)]  # fmt: skip
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        async with httpx.AsyncClient(base_url=a.url) as ca, httpx.AsyncClient(base_url=b.url) as cb:
            heads = ((await health(ca))["head"], (await health(cb))["head"])

            async def same() -> bool:
                ha, hb = (await health(ca))["broadcast"], (await health(cb))["broadcast"]
                return bool(ha == hb == max(heads))

            await wait_for(same)
        follower.head = max(heads)
        await asyncio.wait_for(reader, 60)
    seen = follower.seen
    result = ledger.check(await read_log(tmp / "two.db"))
    result.update(
        writers=2 * writers, sent=ledger.sent,
        heads_equal=heads[0] == heads[1],
        reader_saw=len(seen), reader_gap_free=seen == list(range(1, len(seen) + 1)),
    )  # fmt: skip
    return result


# -- 1,000 abruptly closed SSE connections ------------------------------------------


def _open_stream(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    request = f"GET /v1/events/stream HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def part_closed(tmp: Path, connections: int) -> dict[str, Any]:
    """Open `connections` SSE streams, post a few events, reset them all at once."""
    async with serving(tmp, "closed.db") as server, httpx.AsyncClient(base_url=server.url) as c:
        await health(c)
        idle_fds = server.fds()
        sockets = []
        for _ in range(connections):
            sockets.append(await asyncio.to_thread(_open_stream, server.url))

        async def all_subscribed() -> bool:
            return bool((await health(c))["subscribers"] == connections)

        await wait_for(all_subscribed, within=120)
        for i in range(5):
            await c.post("/v1/hooks/ingest", json=payload(f"c{i}"))
        peak_fds = server.fds()
        for sock in sockets:
            _reset(sock)

        async def drained() -> bool:
            body = await health(c)
            return bool(body["subscribers"] == 0 and body["streams"] == 0)

        seconds = await wait_for(drained, within=120)

        async def fds_idle() -> bool:
            return server.fds() <= idle_fds

        fd_seconds = await wait_for(fds_idle, within=120)
        body = await health(c)
        return {
            "connections": connections, "fds_idle": idle_fds, "fds_open": peak_fds,
            "fds_after": server.fds(), "subscribers_after": body["subscribers"],
            "streams_after": body["streams"], "seconds_to_zero": round(seconds, 2),
            "seconds_to_idle_fds": round(fd_seconds, 2), "status": body["status"],
        }  # fmt: skip


# -- stalled readers ----------------------------------------------------------------

_T0 = re.compile(rb'"t0":([0-9.]+)')


async def reader_process(url: str, count: int) -> None:
    """`--reader URL COUNT`: read the stream, print each event's delay (post to arrival) as JSON."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 24)
    writer.write(f"GET /v1/events/stream HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    print("ready", flush=True)
    delays: list[float] = []
    buffer = b""
    while len(delays) < count:
        data = await reader.read(1 << 20)
        if not data:
            break
        now = time.time()
        buffer += data
        *frames, buffer = buffer.split(b"\n\n")
        for frame in frames:
            if match := _T0.search(frame):
                delays.append(now - float(match.group(1)))
    writer.close()
    print(json.dumps(delays), flush=True)


async def _post_steadily(url: str, events: int, rate: float, size: int) -> float:
    """Post `events` payloads of about `size` bytes, `rate` per second, up to 8 at a time
    (the server commits concurrent appends together); the seconds it took."""
    pad = "x" * size
    start = time.monotonic()
    slots = asyncio.Semaphore(8)
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def post(i: int) -> None:
            async with slots:
                body = payload(f"e{i}", t0=time.time(), pad=pad)
                answer = await client.post("/v1/hooks/ingest", json=body)
                answer.raise_for_status()

        tasks = []
        for i in range(events):
            if (wait := start + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await slots.acquire()  # on schedule, or as soon as a post is done
            slots.release()
            tasks.append(asyncio.create_task(post(i)))
        await asyncio.gather(*tasks)
    return time.monotonic() - start


async def _sample_rss(server: Server, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], server.status("VmRSS"))
        await asyncio.sleep(0.05)


async def stalled_phase(
    tmp: Path, name: str, stalled: int, events: int, rate: float, size: int
) -> dict[str, Any]:
    """One server: a healthy reader, `stalled` clients that never read, `events` posted."""
    async with serving(tmp, f"{name}.db") as server, httpx.AsyncClient(base_url=server.url) as c:
        await health(c)
        await asyncio.sleep(1)  # let the server settle before its idle figure
        idle = server.status("VmRSS")
        reader = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--reader", server.url, str(events),
            stdout=asyncio.subprocess.PIPE, env=_env(),
        )  # fmt: skip
        assert reader.stdout is not None
        await reader.stdout.readline()  # "ready"
        socks = [await asyncio.to_thread(_open_stream, server.url) for _ in range(stalled)]

        async def subscribed() -> bool:
            return bool((await health(c))["subscribers"] == stalled + 1)

        await wait_for(subscribed, within=120)
        peak, stop = [idle], asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(server, peak, stop))
        took = await _post_steadily(server.url, events, rate, size)
        async with asyncio.timeout(120):
            delays = json.loads((await reader.stdout.readline()).decode())
        await reader.wait()
        stop.set()
        await sampler
        body = await health(c)
        after = server.status("VmRSS")
        ended = sum(await asyncio.gather(*(asyncio.to_thread(_ended, s) for s in socks)))
    delays.sort()
    return {
        "stalled": stalled, "events": events, "event_kb": size // 1000,
        "posted_per_s": round(events / took), "delivered": len(delays),
        "p50_ms": round(1000 * statistics.median(delays), 1),
        "p99_ms": round(1000 * delays[int(0.99 * (len(delays) - 1))], 1),
        "rss_idle_mb": round(idle / 1024), "rss_peak_mb": round(peak[0] / 1024),
        "added_mb": round((peak[0] - idle) / 1024), "rss_after_mb": round(after / 1024),
        "max_ms": round(1000 * delays[-1], 1), "delays": delays,
        "stalled_ended_by_server": ended, "cut_offs": body["cut_offs"],
        "subscribers_after": body["subscribers"],
    }  # fmt: skip


def _ended(sock: socket.socket) -> bool:
    """True if the server ended this never-read connection (read what it holds, then EOF)."""
    sock.settimeout(2)
    try:
        while sock.recv(1 << 20):
            pass  # drain what the server sends until it closes
    except ConnectionResetError:
        pass  # a reset is the server closing it too
    except TimeoutError:
        return False  # still open: the server still holds it
    finally:
        sock.close()
    return True


async def part_stalled(tmp: Path, stalled: int, events: int, rate: float) -> dict[str, Any]:
    base = await stalled_phase(tmp, "alone", 0, events, rate, 100_000)
    loaded = await stalled_phase(tmp, "stalled", stalled, events, rate, 100_000)
    slower = sum(1 for delay in loaded.pop("delays") if 1000 * delay > base["p99_ms"])
    base.pop("delays")
    loaded["events_slower_than_alone_p99"] = slower
    return {
        "alone": base, "with_stalled": loaded,
        "p99_ratio": round(loaded["p99_ms"] / base["p99_ms"], 2),
    }  # fmt: skip


# -- imports ------------------------------------------------------------------------


async def make_export(tmp: Path, mib: int, event_kb: int = 20) -> tuple[Path, int]:
    """A run of about `mib` MiB (one agent's tool calls of `event_kb` KB) exported to a file."""
    from events import (
        AgentCreated,
        Meta,
        NewEvent,
        RunStarted,
        SQLiteEventStore,
        ToolCallCompleted,
        export_run,
    )  # fmt: skip

    rng = random.Random(7)
    run, agent = "bigrun", "worker-1"
    meta = Meta(run_id=run, agent_id=agent)
    count = mib * 1024 // event_kb
    async with SQLiteEventStore(tmp / "export-source.db") as store:
        await store.append(
            f"run-{run}", [NewEvent(RunStarted(run_id=run, task="big"), Meta(run_id=run))]
        )
        created = AgentCreated(agent_id=agent, name="w", role="builder", model="m")
        await store.append(f"agent-{agent}", [NewEvent(created, meta)])
        for start in range(0, count, 100):
            batch = [
                NewEvent(ToolCallCompleted(
                    agent_id=agent, tool_use_id=f"t{n}", name="Read",
                    result="".join(rng.choices("abcdefghij \n", k=event_kb * 1000)),
                ), meta)
                for n in range(start, min(count, start + 100))
            ]  # fmt: skip
            await store.append(f"agent-{agent}", batch)
        written = await export_run(store, run, tmp / "big.jsonl")
    return written.path, written.events


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while block := await asyncio.to_thread(handle.read, 1 << 20):
            yield block


async def part_imports(tmp: Path, mib: int) -> dict[str, Any]:
    """Upload a `mib` MiB export; a second one meanwhile; the server's memory."""
    path, events = await make_export(tmp, mib)
    async with (
        serving(tmp, "imports.db") as server,
        httpx.AsyncClient(base_url=server.url, timeout=600) as client,
    ):
        await health(client)
        await asyncio.sleep(1)
        idle = server.status("VmRSS")
        peak, stop = [idle], asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(server, peak, stop))
        start = time.monotonic()
        first = asyncio.create_task(client.post("/v1/runs/import", content=_file_chunks(path)))
        await asyncio.sleep(1.0)  # the first upload is under way
        second = await client.post("/v1/runs/import", content=b"{}\n")
        answer = await first
        took = time.monotonic() - start
        stop.set()
        await sampler
        head = (await health(client))["head"]
    return {
        "export": f"{path.stat().st_size / 2**20:.0f} MiB, {events:,} events",
        "first upload": f"{answer.status_code} in {took:.1f} s",
        "second upload while the first runs": (
            f"{second.status_code}, Retry-After: {second.headers.get('retry-after')}"
        ),
        "events in the log after": head,
        "server memory: idle / peak": f"{idle // 1024} / {peak[0] // 1024} MB",
        "memory added": f"{(peak[0] - idle) // 1024} MB",
    }


# -- disk full ----------------------------------------------------------------------


async def _run(*cmd: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    return process.returncode or 0, err.decode().strip()


def _fill(folder: Path) -> Path:
    """Write a file until the disk holding `folder` is full; returns it."""
    filler = folder / "filler"
    for block in (65536, 512):
        with contextlib.suppress(OSError), filler.open("ab") as handle:
            while True:
                handle.write(b"\0" * block)
                handle.flush()
                os.fsync(handle.fileno())
    return filler


async def part_diskfull(tmp: Path) -> dict[str, Any]:
    """Fill the disk under a loaded server, then free it; what writers and /healthz saw."""
    mount = tmp / "small-disk"
    mount.mkdir()
    code, err = await _run("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount))
    if code != 0:
        return {"skipped": f"cannot mount a tmpfs (needs root): {err}"}
    try:
        async with (
            serving(mount, "fleet.db") as server,
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        ):
            ledger, stop = Ledger(), asyncio.Event()
            statuses: dict[int, int] = {}
            retry_after: set[str] = set()

            async def write(writer: int) -> None:
                n = 0
                while not stop.is_set():
                    key = f"full-w{writer}-{n}"
                    n += 1
                    ledger.sent += 1
                    answer = await client.post("/v1/hooks/ingest", json=payload(key, f"d{writer}"))
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                    if answer.status_code == 201:
                        ledger.acked[key] = answer.json()["position"]
                    elif answer.status_code == 503:
                        retry_after.add(answer.headers.get("retry-after", "-"))
                        await asyncio.sleep(0.05)

            writers = [asyncio.create_task(write(w)) for w in range(4)]
            await asyncio.sleep(1)
            filler = await asyncio.to_thread(_fill, mount)
            await asyncio.sleep(3)  # writers meet the full disk
            full_health = await client.get("/healthz")
            before = dict(statuses)
            filler.unlink()
            freed = time.monotonic()

            async def healthy() -> bool:
                return (await client.get("/healthz")).status_code == 200

            await wait_for(healthy, within=60)
            recovered_s = time.monotonic() - freed
            acked_at_free = len(ledger.acked)

            async def writes_again() -> bool:
                return len(ledger.acked) > acked_at_free

            await wait_for(writes_again, within=60)
            await asyncio.sleep(1)
            stop.set()
            await asyncio.gather(*writers)
            log_lines = [line for line in server.output if "cannot be written" in line]
        check = ledger.check(await read_log(mount / "fleet.db"))
    finally:
        await _run("umount", "-l", str(mount))
    body = full_health.json()
    return {
        "posts sent": ledger.sent,
        "answers while the disk was full (to the moment it was freed)": ", ".join(
            f"{count} x {status}" for status, count in sorted(before.items())
        ),
        "Retry-After on the 503s": ", ".join(sorted(retry_after)),
        "/healthz while full": f"{full_health.status_code}, store {body.get('store')}: "
        f"{(body.get('store_error') or '')[:70]}",
        "server log lines about it (whole outage)": " / ".join(
            line.strip()[:60] + "..." for line in log_lines
        ),
        "seconds from freeing the disk to /healthz ok": round(recovered_s, 2),
        "restarts": 0,
        "acknowledged / stored": f"{check['acknowledged']} / {check['stored']}",
        "acknowledged but lost, gaps": f"{check['lost']}, {check['gaps']}",
    }


# -- bad input ----------------------------------------------------------------------


async def raw_status(url: str, head: str, body: bytes = b"") -> int:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"{head}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    writer.write(request.encode("latin-1") + body)
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


def _requests(url: str, workspace: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(what, method path, httpx keyword arguments) of the bad requests sent over HTTP."""
    big = "9" * 4301
    hook = '{"hook_event_name": "Stop", "session_id": "s1", "n": %s}'
    text = {"content-type": "text/plain", "origin": "http://evil.example"}
    return [
        ("text/plain POST /v1/runs from http://evil.example", "POST /v1/runs",
         {"content": b'{"task": "x"}', "headers": text}),
        ("the same without Origin", "POST /v1/runs",
         {"content": b'{"task": "x"}', "headers": {"content-type": "text/plain"}}),
        ("application/json POST /v1/runs from http://evil.example", "POST /v1/runs",
         {"json": {"task": "x"}, "headers": {"origin": "http://evil.example"}}),
        ("form post to /v1/agents", "POST /v1/agents",
         {"data": {"name": "x", "role": "scout"}}),
        ("JSON integer of 4,301 digits, /v1/hooks/ingest", "POST /v1/hooks/ingest",
         {"content": hook % big, "headers": JSON}),
        ("JSON integer of 4,301 digits, /v1/agents", "POST /v1/agents",
         {"content": f'{{"name": "a", "role": "scout", "n": {big}}}', "headers": JSON}),
        ("JSON integer of 4,301 digits, /v1/agents/a1/commands", "POST /v1/agents/a1/commands",
         {"content": f'{{"prompt": "p", "n": {big}}}', "headers": JSON}),
        ("JSON integer of 4,301 digits, /v1/runs", "POST /v1/runs",
         {"content": f'{{"task": "t", "n": {big}}}', "headers": JSON}),
        ("NaN in an ingest payload", "POST /v1/hooks/ingest",
         {"content": hook % "NaN", "headers": JSON}),
        ("Infinity in an ingest payload", "POST /v1/hooks/ingest",
         {"content": hook % "Infinity", "headers": JSON}),
        ("1e999 in an ingest payload", "POST /v1/hooks/ingest",
         {"content": hook % "1e999", "headers": JSON}),
        ("POST /v1/agents with an unknown parent_id", "POST /v1/agents",
         {"json": {"name": "orphan", "role": "scout", "parent_id": "nobody-1"}}),
        ("POST /v1/runs with an unknown model", "POST /v1/runs",
         {"json": {"task": "t", "model": "gpt-9", "workspace": str(workspace)}}),
        ("POST /v1/runs without a workspace", "POST /v1/runs", {"json": {"task": "t"}}),
        ("POST /v1/runs with a workspace that does not exist", "POST /v1/runs",
         {"json": {"task": "t", "workspace": str(workspace / "nope")}}),
        ("JSON nested 100,000 deep", "POST /v1/hooks/ingest",
         {"content": "[" * 100_000 + "]" * 100_000, "headers": JSON}),
        ("a lone surrogate (\\ud800) in a payload", "POST /v1/hooks/ingest",
         {"content": hook % '"\\ud800"', "headers": JSON}),
        ("Last-Event-ID: 99999999999999999999", "GET /v1/events/stream",
         {"headers": {"last-event-id": "9" * 20}}),
        ("?from= beyond the head", "GET /v1/events/stream?from=999999", {}),
        ("?min_position= beyond the head", "GET /v1/fleet?min_position=999999", {}),
        ("an agent id of 5,000 characters", "GET /v1/agents/" + "a" * 5000, {}),
        ("an import that is not an export", "POST /v1/runs/import",
         {"content": b"garbage", "headers": {"content-type": "application/x-ndjson"}}),
    ]  # fmt: skip


async def _live_timeline(client: httpx.AsyncClient, workspace: Path) -> str:
    """Start a simulated run and read its timeline 100 times while it is written."""
    task = "rename `count_words` to `word_count`"
    started = await client.post("/v1/runs", json={"task": task, "workspace": str(workspace)})
    run_id = started.json()["run_id"]
    heads = [(await health(client))["head"]]
    statuses = []
    for _ in range(100):
        statuses.append((await client.get(f"/v1/runs/{run_id}/timeline")).status_code)
    heads.append((await health(client))["head"])
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    return f"{counts} (the log grew from {heads[0]} to {heads[1]} meanwhile)"


async def _cli(tmp: Path, *args: str, ready: bool = False) -> str:
    """`fleet serve ARGS`: its exit status and lines on stderr, or that it served."""
    env = _env(SERVER_ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "serve", "--db", str(tmp / "cli.db"), *args,
        cwd=tmp, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    if ready:
        async with asyncio.timeout(120):
            line = (await process.stdout.readline()).decode()
        process.send_signal(signal.SIGTERM)
        await process.wait()
        match = _URL.search(line)
        return f"serves at {match.group(1)}/" if match else f"did not serve: {line.strip()}"
    async with asyncio.timeout(120):
        _, err = await process.communicate()
    lines = err.decode().splitlines()
    shown = lines[0] if lines else ""
    return f"exit {process.returncode}, {len(lines)} line: {shown}"


async def _forged_export(tmp: Path) -> bytes:
    """A small run's export with its last event moved to `session-victim`, resealed."""
    import hashlib

    path, _ = await make_export(tmp / "forge", 1, event_kb=1)
    lines = path.read_bytes().splitlines(keepends=True)
    event = json.loads(lines[-2])
    event["stream_id"], event["version"] = "session-victim", 1
    body = [*lines[:-2], json.dumps(event).encode() + b"\n"]
    trailer = json.loads(lines[-1])
    trailer["sha256"] = hashlib.sha256(b"".join(body)).hexdigest()
    trailer["streams"][event["stream_id"]] = 1
    trailer["streams"]["agent-worker-1"] -= 1
    return b"".join(body) + json.dumps(trailer).encode() + b"\n"


async def _read_only_serve(tmp: Path) -> tuple[str, str]:
    from events import SQLiteEventStore

    folder, view = tmp / "ro-source", tmp / "ro"
    folder.mkdir()
    view.mkdir()
    async with SQLiteEventStore(folder / "fleet.db"):
        pass  # opening creates the log the read-only part needs
    ok = (await _run("mount", "--bind", str(folder), str(view)))[0] == 0
    ok = ok and (await _run("mount", "-o", "remount,ro,bind", str(view)))[0] == 0
    try:
        if not ok:
            return ("`fleet serve` on a read-only log", "skipped (needs root for a ro mount)")
        answer = await _cli(tmp, "--db", str(view / "fleet.db"), "--port", "0")
    finally:
        await _run("umount", "-l", str(view))
    return ("`fleet serve` on a log in a read-only folder", answer)


async def part_bad(tmp: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    async with (
        serving(tmp, "bad.db") as server,
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
    ):
        port = server.url.rsplit(":", 1)[1]
        for what, host in [("Host: attacker.example", "attacker.example"),
                           ("Host: 127.0.0.1.nip.io:PORT", f"127.0.0.1.nip.io:{port}")]:  # fmt: skip
            for path in ("/", "/app.js", "/healthz", "/v1/events/stream"):
                status = await raw_status(server.url, f"GET {path} HTTP/1.1\r\nHost: {host}")
                rows.append((f"{what}, GET {path}", str(status)))
        status = await raw_status(server.url, "GET /healthz HTTP/1.0")
        rows.append(("no Host header (HTTP/1.0)", str(status)))
        for what, request, kwargs in _requests(server.url, server.workspace):
            method, path = request.split(" ", 1)
            response = await client.request(method, path, **kwargs)
            rows.append((what, str(response.status_code)))
        forged = await _forged_export(tmp)
        response = await client.post("/v1/runs/import", content=forged)
        rows.append(("an import resealed with an event moved into `session-victim`",
                     f"{response.status_code}: {response.json()['detail'][:90]}..."))  # fmt: skip
        head = (await health(client))["head"]
        rows.append(("events in the log after all of the above", str(head)))
        rows.append(
            (
                "GET /v1/runs/{id}/timeline x100 on a live run",
                await _live_timeline(client, server.workspace),
            )
        )
    rows.append(("`fleet serve --host localhost.`", await _cli(tmp, "--host", "localhost.", "--port", "0", ready=True)))  # fmt: skip
    rows.append(("`fleet serve --host [::1]`", await _cli(tmp, "--host", "[::1]", "--port", "0", ready=True)))  # fmt: skip
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        rows.append(("`fleet serve` on a port in use", await _cli(tmp, "--port", port)))
    rows.append(await _read_only_serve(tmp))
    rows.append(("`fleet serve --host 0.0.0.0 --token a`", await _cli(tmp, "--host", "0.0.0.0", "--token", "a", "--port", "0")))  # fmt: skip
    return rows


# -- the driver ---------------------------------------------------------------------


def _table(title: str, result: dict[str, Any]) -> None:
    print(f"\n### {title}\n\n| | |\n|---|---|")
    for key, value in result.items():
        print(f"| {key.replace('_', ' ')} | {value} |")


async def main(only: set[str], quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="fleet-faults-") as name:
        tmp = Path(name)
        if "kill9" in only:
            _table("kill -9 under load", await part_kill9(tmp, 4 if quick else 10, 8))
        if "two" in only:
            _table("two servers on one log file", await part_two(tmp, 4, 3 if quick else 6))
        if "closed" in only:
            _table(
                "abruptly closed SSE connections", await part_closed(tmp, 300 if quick else 1000)
            )
        if "stalled" in only:
            result = await part_stalled(tmp, 100 if quick else 300, 300 if quick else 1000, 25)
            for phase in ("alone", "with_stalled"):
                _table(f"SSE reader, {phase.replace('_', ' ')}", result[phase])
            print(f"\np99 with stalled readers / p99 alone: {result['p99_ratio']}")
        if "imports" in only:
            _table("imports", await part_imports(tmp, 50 if quick else 200))
        if "diskfull" in only:
            _table("disk full", await part_diskfull(tmp))
        if "bad" in only:
            print("\n### bad input\n\n| input | answer |\n|---|---|")
            for what, answer in await part_bad(tmp):
                print(f"| {what} | {answer} |")


PARTS = ("kill9", "two", "closed", "stalled", "imports", "diskfull", "bad")

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--reader":
        asyncio.run(reader_process(sys.argv[2], int(sys.argv[3])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and clients")
    parser.add_argument(
        "--server-root", type=Path, default=ROOT,
        help="run the servers from this checkout (e.g. `git worktree add /tmp/before HEAD~20`)",
    )  # fmt: skip
    parser.add_argument(
        "--only", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS)
    )
    args = parser.parse_args()
    SERVER_ROOT = args.server_root.resolve()
    chosen = {part.strip() for part in args.only.split(",") if part.strip()}
    if unknown := chosen - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    asyncio.run(main(chosen, args.quick))
