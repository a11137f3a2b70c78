"""How fast the `fleet` command starts: hook-forward, --help, agents, events.

    .venv/bin/python bench/cli.py [--runs N]

Starts `fleet serve` on a free loopback port with a fresh log, then times, in
one run and interleaved (one of each per round, so a busy moment hits all
alike), the wall time of each command as a new process:

- baseline `python -c pass` (the same interpreter: the bare start);
- baseline `curl` posting the same hook payload to the server;
- `fleet hook-forward` posting that payload (what Claude Code runs on every
  tool call, Pre and Post);
- `fleet --help`, `fleet agents`, `fleet events` on the served log (which the
  posts fill with one external agent's events).

Prints the median, p90 and min wall time of each in ms, its ratio to `python
-c pass` (and hook-forward's to curl), the median CPU time the process used
itself (user + system, which a busy machine inflates far less than wall time)
and its ratio, and whether each meets its aim: hook-forward under 50 ms and
within 3x the bare start, the others under 400 ms (wall time, medians).
Figures are indicative on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

BIN = Path(sys.executable).parent
FLEET = str(BIN / "fleet")
PAYLOAD = {
    "session_id": "bench-session",
    "transcript_path": "/tmp/bench/transcript.jsonl",
    "cwd": "/tmp/bench",
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "ls -la", "description": "list files"},
    "tool_use_id": "toolu_bench",
}
AIM_FORWARD_MS = 50.0
AIM_FORWARD_RATIO = 3.0
AIM_OTHER_MS = 400.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"fleet serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"fleet serve not ready at {url} after {timeout:.0f} s")


def timed(argv: Sequence[str], stdin: bytes, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one process, in ms; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, env=env, cwd=cwd, capture_output=True)
    elapsed = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return elapsed, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (default 21)")
    args = parser.parse_args(argv)
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is needed for the curl baseline")

    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "FLEET_TOKEN")}
    env["COLUMNS"] = "120"
    payload = json.dumps(PAYLOAD).encode()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-cli-") as tmp:
        cwd = Path(tmp)
        db = cwd / "fleet.db"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [FLEET, "serve", "--db", str(db), "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(url, server)
            ingest = f"{url}/v1/hooks/ingest?source_app=bench"
            cases: dict[str, tuple[list[str], bytes]] = {
                "python -c pass": ([sys.executable, "-c", "pass"], b""),
                "curl POST (same payload)": (
                    [
                        curl,
                        "-sf",
                        "-o",
                        "/dev/null",
                        "-m",
                        "5",
                        "-H",
                        "content-type: application/json",
                        "--data-binary",
                        "@-",
                        ingest,
                    ],
                    payload,
                ),
                "fleet hook-forward": (
                    [FLEET, "hook-forward", "--url", url, "--source-app", "bench"],
                    payload,
                ),
                "fleet --help": ([FLEET, "--help"], b""),
                "fleet agents": ([FLEET, "agents", "--db", str(db)], b""),
                "fleet events": ([FLEET, "events", "--db", str(db), "--tail", "20"], b""),
            }
            for argv_, stdin in cases.values():  # warm-up: caches, the first checkpoint
                timed(argv_, stdin, env, cwd)
            samples: dict[str, list[float]] = {name: [] for name in cases}
            cpu: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.runs):
                for name, (argv_, stdin) in cases.items():
                    wall, used = timed(argv_, stdin, env, cwd)
                    samples[name].append(wall)
                    cpu[name].append(used)
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(samples, cpu, args.runs)
    return 0


def report(samples: dict[str, list[float]], cpu: dict[str, list[float]], runs: int) -> None:
    medians = {name: statistics.median(s) for name, s in samples.items()}
    bare = medians["python -c pass"]
    curl = medians["curl POST (same payload)"]
    load = os.getloadavg()[0]
    print(f"{runs} runs each, interleaved; load average {load:.2f}; {sys.version.split()[0]}")
    print("wall time, ms; cpu: the process's own CPU time (user + system), ms, median")
    print(
        f"{'command':<26}{'median':>9}{'p90':>9}{'min':>9}{'x python':>10}{'x curl':>8}"
        f"{'cpu':>8}{'x python':>10}  aim"
    )
    bare_cpu = statistics.median(cpu["python -c pass"])
    for name, s in samples.items():
        p90 = statistics.quantiles(s, n=10)[8] if len(s) > 1 else s[0]
        median = medians[name]
        aim = ""
        if name == "fleet hook-forward":
            met = median < AIM_FORWARD_MS and median <= AIM_FORWARD_RATIO * bare
            aim = f"< {AIM_FORWARD_MS:.0f} ms and <= {AIM_FORWARD_RATIO:.0f}x python: "
            aim += "met" if met else "NOT met"
        elif name.startswith("fleet"):
            aim = f"< {AIM_OTHER_MS:.0f} ms: " + ("met" if median < AIM_OTHER_MS else "NOT met")
        ratio_curl = f"{median / curl:>8.2f}" if name == "fleet hook-forward" else f"{'':>8}"
        used = statistics.median(cpu[name])
        print(
            f"{name:<26}{median:>9.1f}{p90:>9.1f}{min(s):>9.1f}{median / bare:>10.2f}"
            f"{ratio_curl}{used:>8.1f}{used / bare_cpu:>10.2f}  {aim}"
        )


if __name__ == "__main__":
    sys.exit(main())
