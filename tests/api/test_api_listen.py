"""Where `serve()` listens: hosts as a user types them, a port in use, tokens beyond loopback.

The `fleet serve` cases run the real command in a subprocess and read what a
user sees: one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api import ApiConfig, InsecureServe, ListenError, WeakToken, serve, serving
from hooks import HookConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
FLEET = [sys.executable, "-m", "api.cli"]


def fleet(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [*FLEET, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("host", "shown"),
    [("localhost.", "localhost"), ("[::1]", "[::1]"), ("::1", "[::1]"), ("LOCALHOST", "localhost"),
     ("127.0.0.1", "127.0.0.1"), ("0:0:0:0:0:0:0:1", "[::1]")],
)  # fmt: skip
async def test_loopback_hosts_in_every_spelling_are_served(
    tmp_path: Path, host: str, shown: str
) -> None:
    config = ApiConfig(db=tmp_path / "f.db", runtime=False)
    async with serving(config, host=host) as server:
        assert server.url.rsplit(":", 1)[0] == f"http://{shown.lower()}"
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_a_port_in_use_is_a_listen_error_and_opens_nothing(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match="already in use") as caught:
            await serve("127.0.0.1", port, tmp_path / "f.db")
    assert caught.value.port == port
    assert str(caught.value).startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert not (tmp_path / "f.db").exists()


@pytest.mark.parametrize(
    ("host", "port", "reason"),
    [("nosuch.invalid", 0, "does not resolve"), ("127.0.0.1", 70000, "0 to 65535")],
)
async def test_an_address_that_cannot_be_listened_on_is_a_listen_error(
    tmp_path: Path, host: str, port: int, reason: str
) -> None:
    config = ApiConfig(db=tmp_path / "f.db", runtime=False, token="x" * 20)
    with pytest.raises(ListenError, match=reason):
        async with serving(config, host=host, port=port):
            pass  # pragma: no cover - nothing is served


@pytest.mark.parametrize("token", ["a", "x" * 15])
async def test_a_short_token_is_refused_beyond_loopback(tmp_path: Path, token: str) -> None:
    with pytest.raises(WeakToken, match="at least 16") as caught:
        await serve("0.0.0.0", 0, tmp_path / "f.db", token)
    assert isinstance(caught.value, InsecureServe)
    assert caught.value.length == len(token)
    assert not (tmp_path / "f.db").exists()


async def test_a_short_token_is_fine_on_loopback_and_16_characters_beyond(tmp_path: Path) -> None:
    config = ApiConfig(db=tmp_path / "a.db", runtime=False, token="a")
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz", headers={"Authorization": "Bearer a"})).is_success
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        serve("0.0.0.0", 0, tmp_path / "b.db", "x" * 16, ready=ready.put_nowait, log_config=None)
    )
    try:
        url = await asyncio.wait_for(ready.get(), 30)
        assert url.startswith("http://0.0.0.0:")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_fleet_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = fleet("serve", "--port", str(port), "--db", str(tmp_path / "f.db"), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"fleet: error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another server? pick another --port)"
    ]
    assert "Traceback" not in done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--host", "0.0.0.0", "--token", "a"], "with a token of 1 character"),
        (["--host", "0.0.0.0"], "without a token"),
        (["--host", "nosuch.invalid", "--token", "x" * 20], "does not resolve"),
        (["--allow-host", "fleet.example:80"], "is not a host name"),
    ],
)
def test_fleet_serve_refusals_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    done = fleet("serve", "--port", "0", "--db", str(tmp_path / "f.db"), *args, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fleet: error: ")
    assert expected in lines[0]
    assert not (tmp_path / "f.db").exists()


def test_a_server_that_cannot_start_says_why_in_one_line(tmp_path: Path) -> None:
    """An error in the app's startup (here the workspace's hook settings) was a SystemExit
    out of uvicorn's task: two tracebacks and exit code 3."""
    settings = tmp_path / "ws" / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"hooks": {"PreToolUse": 5}}')
    done = fleet(
        "serve", "--port", "0", "--db", str(tmp_path / "f.db"), "--workspace", "ws", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.splitlines()[-1] == (
        "fleet: error: invalid hook settings in ws/.claude/settings.json: "
        "hooks.PreToolUse: Input should be a valid list"
    )


async def test_serving_raises_the_startup_error_and_frees_its_port(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"hooks": {"PreToolUse": 5}}')
    # The port the OS gave stays bound here, not listening, so no other process takes it
    # during the test; the server (SO_REUSEADDR) binds it all the same, as does the check.
    with socket.socket() as reserved:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        config = ApiConfig(db=tmp_path / "f.db", workspace=tmp_path)
        with pytest.raises(HookConfigError, match="invalid hook settings"):
            async with serving(config, port=port):
                pass  # never reached: entering the block raises the startup's error
        with socket.create_server(("127.0.0.1", port)):
            pass  # listening on it is the check: the server's socket is closed


def test_fleet_serve_port_must_be_a_port(tmp_path: Path) -> None:
    done = fleet("serve", "--port", "99999", cwd=tmp_path)
    assert done.returncode == 2
    assert "is not a port (0 to 65535)" in done.stderr
    assert "Traceback" not in done.stderr
