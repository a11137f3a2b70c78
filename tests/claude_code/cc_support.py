"""What the end-to-end tests with the real Claude Code binary share (fixtures: conftest.py).

`make claude-code` (run by `make test`, required by .ci/run) installs Claude
Code pinned into `.claude-code/`; `FLEET_CLAUDE_BIN` names another binary.
Without one, these tests skip and say how to get it.

`simulator` is `fleet simulator` and `fleet_server` is `fleet serve`, each a
real process of its own (started once for the module: they start in a second
or two), found by the URL each prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLEET = Path(sys.executable).with_name("fleet")
CLAUDE = Path(os.environ.get("FLEET_CLAUDE_BIN") or REPO / ".claude-code/node_modules/.bin/claude")
STARTUP_S = 60.0


def claude_bin() -> Path:
    """The Claude Code binary, or a skip saying how to install it."""
    if not CLAUDE.exists():
        pytest.skip(
            f"the real Claude Code is not installed at {CLAUDE}: `make claude-code` installs it "
            "(npm needed), or set FLEET_CLAUDE_BIN"
        )
    return CLAUDE


@dataclass(frozen=True, slots=True)
class Process:
    """A fleet process started for the tests, and the base URL it printed."""

    url: str
    process: subprocess.Popen[str]
    log: Path


def start(args: list[str], log: Path, pattern: str) -> Process:
    """`fleet ARGS` as a process, once its output matches `pattern` (group 1 is its URL)."""
    # COLUMNS: the rich console must not wrap the line that holds the URL.
    env = {**os.environ, "COLUMNS": "500", "NO_COLOR": "1"}
    with log.open("w") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [str(FLEET), *args], stdout=out, stderr=subprocess.STDOUT, text=True, env=env
        )
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return Process(found.group(1), process, log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"`fleet {' '.join(args)}` did not start:\n{log.read_text()}")


def stop(p: Process) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    p.process.terminate()
    try:
        p.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.process.kill()
        p.process.wait()


def offline_env(home: Path, simulator_url: str) -> dict[str, str]:
    """Claude Code's environment: the simulator, a dummy key, nothing sent anywhere else.

    The parent's own Anthropic and Claude Code settings are left out, so a
    developer's real key or configuration never reaches the test.
    """
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("ANTHROPIC_", "CLAUDE_", "OTEL_"))}  # fmt: skip
    return {
        **keep,
        "HOME": str(home),
        # The Bash tool runs `python -m unittest`: this interpreter, first on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANTHROPIC_BASE_URL": simulator_url,
        "ANTHROPIC_API_KEY": "sk-ant-offline-dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_ENABLE_TELEMETRY": "0",
    }


def fleet_on_path() -> str:
    """The `fleet` command of this interpreter, for a command hook."""
    found = shutil.which("fleet", path=str(FLEET.parent))
    assert found is not None
    return found
