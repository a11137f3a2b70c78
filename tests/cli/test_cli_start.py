"""`fleet` starts at once: each command imports only what it needs (api/cli/__init__.py, note 1).

`fleet hook-forward` runs on every tool call of a Claude Code session, so it
may import nothing beyond the standard library and `api.cli._forward`; the
other commands never import the server, the runtime or the model SDK unless
they need it. Each command runs in a fresh interpreter that reports what it
imported (`sys.modules` once the command has returned). Start-up times are
measured by `bench/cli.py`, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api import ApiConfig, serving
from api.cli import COMMANDS, build_parser, main
from api.cli._forward import PROCESS_HEADER, SEND_LIMIT, post_hook
from hooks import DEFAULT_MAX_INGEST_BYTES
from projections import PROCESS_HEADER as SERVERS_PROCESS_HEADER
from projections import process_start, this_host

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "hooks" / "fixtures"
FORWARDER = {"api", "api.cli", "api.cli._forward"}
HEAVY = ("anthropic", "starlette", "uvicorn", "pydantic", "httpx", "sse_starlette", "runtime")

# Runs `fleet ARGS...` as the console script does, then prints the modules it imported.
_PROBE = """
import sys
from api.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
modules = sorted(sys.modules)
import json
print("\\n" + json.dumps({"code": code, "modules": modules}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLEET_TOKEN", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _imported(*args: str, stdin: bytes = b"", cwd: Path = ROOT) -> tuple[int, set[str]]:
    """Run `fleet ARGS` in a new interpreter: its exit code and the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        input=stdin, capture_output=True, env=_env(), cwd=cwd, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout.decode().rsplit("\n", 2)[-2])
    return report["code"], set(report["modules"])


def _bare_start() -> set[str]:
    """What the interpreter imports before any command (site, .pth files of this venv)."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, env=_env(), check=True, timeout=60,
    )  # fmt: skip
    return set(json.loads(done.stdout))


def _not_stdlib(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}


# -- what each command imports -------------------------------------------------------


async def test_hook_forward_imports_only_the_standard_library_and_the_forwarder(
    tmp_path: Path,
) -> None:
    """A real post to a real server, and nothing imported but the stdlib and api.cli._forward."""
    payload = (FIXTURES / "PreToolUse.json").read_bytes()
    config = ApiConfig(db=tmp_path / "f.db", store_poll_s=0.05, runtime=False)
    async with serving(config) as server:
        code, modules = await asyncio.to_thread(
            _imported, "hook-forward", "--url", server.url, "--source-app", "probe", stdin=payload
        )
        async with httpx.AsyncClient(base_url=server.url) as http:
            page = (await http.get("/v1/events", params={"type": "ExternalHookReceived"})).json()

    assert code == 0
    [event] = page["events"]  # the forwarder really posted: the server logged it
    assert event["data"]["payload"] == json.loads(payload)
    assert event["data"]["source_app"] == "probe"
    extra = _not_stdlib(modules - _bare_start())
    assert extra == FORWARDER, f"hook-forward imported {sorted(extra - FORWARDER)}"


def test_hook_forward_imports_nothing_more_when_fleet_is_down() -> None:
    """The failure path (connection refused) stays as light as the success path."""
    code, modules = _imported(
        "hook-forward", "--url", "http://127.0.0.1:9", "--timeout", "1", stdin=b"{}"
    )
    assert code == 0
    assert _not_stdlib(modules - _bare_start()) == FORWARDER


def test_help_imports_no_command_module() -> None:
    code, modules = _imported("--help")
    assert code == 0
    assert _not_stdlib(modules - _bare_start()) == {"api", "api.cli"}


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log with one external agent in it, written through the real ingest path."""
    tmp = tmp_path_factory.mktemp("log")

    async def fill() -> None:
        config = ApiConfig(db=tmp / "fleet.db", runtime=False)
        async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
            for point in ("SessionStart", "PreToolUse", "PostToolUse"):
                body = (FIXTURES / f"{point}.json").read_bytes()
                response = await http.post(
                    "/v1/hooks/ingest", content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code == 201, response.text

    asyncio.run(fill())
    return tmp / "fleet.db"


@pytest.mark.parametrize(
    "args",
    [["agents"], ["agents", "--json"], ["events"], ["events", "--json"], ["board"], ["runs"]],
    ids=" ".join,
)
def test_read_commands_import_neither_the_server_nor_the_runtime(
    small_log: Path, args: list[str]
) -> None:
    code, modules = _imported(*args, "--db", str(small_log))
    assert code == 0
    loaded = {m.split(".")[0] for m in modules}
    assert loaded.isdisjoint({"anthropic", "starlette", "uvicorn", "httpx", "runtime", "hooks"}), (
        sorted(loaded & {"anthropic", "starlette", "uvicorn", "httpx", "runtime", "hooks"})
    )
    if args[0] == "events":
        assert "projections" not in loaded, "fleet events reads the log, not the read models"


def test_importing_api_builds_no_server() -> None:
    """`import api` (what every `fleet` start does) imports none of the heavy parts."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, api, api.cli; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, env=_env(), check=True, timeout=60,
    )  # fmt: skip
    loaded = {m.split(".")[0] for m in done.stdout.split()}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_api_names_are_imported_on_first_use() -> None:
    import api

    assert api.create_app.__module__ == "api._app"
    assert "create_app" in dir(api)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = api.nope  # type: ignore[attr-defined]


# -- every command still parses --------------------------------------------------------


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_its_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fleet {command}")


@pytest.mark.parametrize("argv", [["--help"], ["-h", "agents"]], ids=" ".join)
def test_help_lists_every_command_with_its_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no line wrapped inside a word
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for command, (_, line) in COMMANDS.items():
        assert f"{command} {line}" in out


def test_the_full_parser_knows_every_command() -> None:
    parser = build_parser()
    args = parser.parse_args(["events", "--tail", "3", "--db", "x.db"])
    assert (args.command, args.tail, args.db) == ("events", 3, "x.db")
    assert callable(args.func)


def test_an_unknown_command_is_refused_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["agentz"])
    assert exit_.value.code == 2
    assert "invalid choice: 'agentz'" in capsys.readouterr().err


def test_run_help_lists_the_builtin_patterns_without_the_runtime() -> None:
    from api.cli._run import BUILTIN_PATTERN_NAMES
    from runtime import BUILTIN_PATTERNS

    assert tuple(sorted(BUILTIN_PATTERNS)) == BUILTIN_PATTERN_NAMES


# -- the forwarder ------------------------------------------------------------------------


async def test_hook_forward_cuts_a_payload_over_the_ingest_limit_to_fit(tmp_path: Path) -> None:
    """Claude Code's PostToolUse of a Write holds the file's text twice: writing a 400 KB
    file made a payload the server refused (413), and the tool call never reached fleet.
    The longest strings are cut, each saying its length; the ids and paths arrive whole."""
    payload = {
        "session_id": "s1", "hook_event_name": "PostToolUse", "tool_name": "Write",
        "tool_use_id": "toolu_big", "cwd": "/w", "transcript_path": "/t.jsonl",
        "tool_input": {"file_path": "/w/big.txt", "content": "line of text\n" * 31_000},
        "tool_response": {
            "type": "create", "filePath": "/w/big.txt", "content": "é" * 300_000,
            "structuredPatch": [],
        },
    }  # fmt: skip
    config = ApiConfig(db=tmp_path / "f.db", store_poll_s=0.05, runtime=False)
    async with serving(config) as server:
        done = await asyncio.to_thread(
            _forward, "--url", server.url, stdin=json.dumps(payload, ensure_ascii=False).encode()
        )
        async with httpx.AsyncClient(base_url=server.url) as http:
            page = (await http.get("/v1/events", params={"type": "ExternalHookReceived"})).json()

    assert (done.returncode, done.stderr) == (0, b"")
    [event] = page["events"]
    got = event["data"]["payload"]
    assert len(json.dumps(got, ensure_ascii=False, separators=(",", ":")).encode()) <= SEND_LIMIT
    assert {k: v for k, v in got.items() if k not in ("tool_input", "tool_response")} == {
        k: v for k, v in payload.items() if k not in ("tool_input", "tool_response")
    }
    assert got["tool_input"]["file_path"] == got["tool_response"]["filePath"] == "/w/big.txt"
    content = got["tool_input"]["content"]
    assert content.startswith("line of text\n" * 1000)
    assert content.endswith("… [cut by fleet hook-forward: 403,000 characters in all]")
    assert got["tool_response"]["content"].endswith("[cut by fleet hook-forward: 300,000 "
                                                    "characters in all]")  # fmt: skip


def test_the_forwarders_limit_is_the_servers() -> None:
    assert SEND_LIMIT == DEFAULT_MAX_INGEST_BYTES
    assert PROCESS_HEADER == SERVERS_PROCESS_HEADER


@pytest.mark.parametrize("claude_pid", [True, False])
async def test_hook_forward_names_the_process_it_forwards_for(
    tmp_path: Path, claude_pid: bool
) -> None:
    """Claude Code gives its hook commands `CLAUDE_PID`; without it (an older Claude Code),
    the parent of the `sh -c` the hook ran in. This test's process stands for Claude Code."""
    host = this_host()
    if host is None:
        pytest.skip("no /proc here: hook-forward names no process")
    env = {k: v for k, v in _env().items() if k != "CLAUDE_PID"}
    if claude_pid:
        env["CLAUDE_PID"] = str(os.getpid())
    payload = b'{"hook_event_name": "SessionStart", "session_id": "s1"}'
    config = ApiConfig(db=tmp_path / "f.db", store_poll_s=0.05, runtime=False)
    async with serving(config) as server:
        command = f"{sys.executable} -m api.cli hook-forward --url {server.url}"
        done = await asyncio.to_thread(
            subprocess.run, ["/bin/sh", "-c", command], input=payload, capture_output=True,
            env=env, timeout=60,
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=server.url) as http:
            card = (await http.get("/v1/agents/ext-s1")).json()

    assert (done.returncode, done.stderr) == (0, b"")
    assert card["process"] == {
        "pid": os.getpid(), "start": process_start(os.getpid()), "boot_id": host.boot_id,
        "machine_id": host.machine_id, "pid_ns": host.pid_ns,
    }  # fmt: skip


async def test_post_hook_sends_the_payload_as_is_with_the_token(tmp_path: Path) -> None:
    raw = (FIXTURES / "Stop.json").read_bytes()
    config = ApiConfig(db=tmp_path / "f.db", token="s3cret-token", runtime=False)
    async with serving(config) as server:
        url = f"{server.url}/v1/hooks/ingest?source_app=tok"
        assert await asyncio.to_thread(post_hook, raw, url, token="s3cret-token") == 201
        assert await asyncio.to_thread(post_hook, raw, url) == 401
        assert await asyncio.to_thread(post_hook, b"[1]", url, token="s3cret-token") == 422
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": "Bearer s3cret-token"}
        ) as http:
            page = (await http.get("/v1/events", params={"type": "ExternalHookReceived"})).json()
    assert [e["data"]["payload"] for e in page["events"]] == [json.loads(raw)]


@contextlib.contextmanager
def _silent_server() -> Iterator[str]:
    """A server that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/hooks/ingest"


def test_post_hook_gives_up_on_a_silent_server_within_its_timeout() -> None:
    with _silent_server() as url:
        started = time.monotonic()
        assert post_hook(b"{}", url, timeout=0.3) is None
        assert time.monotonic() - started < 10  # bounded by the timeout, not the OS's


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/v1/hooks/ingest", "not a url", "ftp://127.0.0.1/x", "http://[::1"]
)
def test_post_hook_never_raises(url: str) -> None:
    assert post_hook(b"{}", url, timeout=1.0) is None


def _forward(
    *args: str, stdin: bytes = b'{"hook_event_name": "Stop", "session_id": "s1"}'
) -> subprocess.CompletedProcess[bytes]:
    """`fleet hook-forward ARGS` with `stdin` as its payload, as Claude Code runs it."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "hook-forward", *args],
        input=stdin, capture_output=True, env=_env(), timeout=60,
    )  # fmt: skip


def test_hook_forward_exits_zero_on_a_silent_server() -> None:
    with _silent_server() as url:
        base = url.removesuffix("/v1/hooks/ingest")
        done = _forward("--url", base, "--timeout", "0.3", stdin=b"{}")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://127.0.0.1:8000", "is not an http:// or https:// URL with a host"),
        ("localhost:8000", "is not an http:// or https:// URL with a host"),
        ("http://[::1", "is not a valid URL"),
        ("http://127.0.0.1:99999", "is not a valid URL"),
    ],
)
def test_hook_forward_says_a_malformed_url_and_still_exits_zero(url: str, words: str) -> None:
    """A typo in --url would drop every event of every session unseen: said, one line."""
    done = _forward("--url", url)
    assert done.returncode == 0
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"fleet hook-forward: --url {url!r} {words}")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--source_app", "x"], "unrecognized arguments: --source_app x"),
        (["--timeout", "2s"], "argument --timeout: '2s' is not a positive number of seconds"),
        (["--url"], "argument --url: expected one argument"),
        (["--timeout", "0"], "argument --timeout: '0' is not a positive number of seconds"),
        (["--timeout", "inf"], "argument --timeout: 'inf' is not a positive number of seconds"),
        (["--timeout", "nan"], "argument --timeout: 'nan' is not a positive number of seconds"),
    ],
)
def test_hook_forward_says_a_usage_error_and_still_exits_zero(args: list[str], words: str) -> None:
    """argparse exits 2 on a usage error, and Claude Code reads a hook's exit code 2 as
    a block: a typo in the hook's command line blocked every tool call of the session."""
    payload = b'{"hook_event_name": "PreToolUse", "session_id": "s1"}'
    done = _forward("--url", "http://127.0.0.1:9", *args, stdin=payload)
    assert done.returncode == 0
    assert words in done.stderr.decode()


def test_hook_forward_says_a_payload_too_large_to_send() -> None:
    """A payload over 16 MiB is not sent at all (one up to it is cut to fit), and said so:
    nothing said it before."""
    big = (
        b'{"hook_event_name": "PostToolUse", "session_id": "s1", "x": "' + b"a" * (17 << 20) + b'"}'
    )
    done = _forward("--url", "http://127.0.0.1:9", stdin=big)
    assert done.returncode == 0
    assert done.stderr.decode().splitlines() == [
        "fleet hook-forward: the payload is over 16777216 bytes: not sent"
    ]


@contextlib.contextmanager
def _plain_http_server(
    status: bytes = b"400 Bad Request", *, scheme: str = "https", headers: bytes = b""
) -> Iterator[str]:
    """A server that answers one connection in plain HTTP with `status` (a TLS client gets
    no handshake); its URL with `scheme`."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)

        def answer() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    conn.recv(4096)
                    conn.sendall(
                        b"HTTP/1.1 " + status + b"\r\n" + headers + b"Content-Length: 0\r\n\r\n"
                    )

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}"
        thread.join(timeout=10)


def test_hook_forward_says_a_redirect_and_still_exits_zero() -> None:
    """A redirect (a proxy sending http to https, a moved server) is not followed: the event
    was dropped without a word, as if fleet were down."""
    moved = b"Location: https://fleet.example/v1/hooks/ingest\r\n"
    with _plain_http_server(b"301 Moved Permanently", scheme="http", headers=moved) as url:
        done = _forward("--url", url)
    assert done.returncode == 0
    assert done.stderr.decode().splitlines() == [
        f"fleet hook-forward: {url}/v1/hooks/ingest refused the event (HTTP 301: a redirect, "
        "not followed: give --url the address it names)"
    ]


def test_hook_forward_says_a_tls_failure_and_still_exits_zero() -> None:
    """https:// to an http server (or a certificate not trusted) dropped every event
    unseen, as if fleet were down."""
    with _plain_http_server() as url:
        done = _forward("--url", url)
    assert done.returncode == 0
    (line,) = done.stderr.decode().splitlines()
    assert line.startswith(f"fleet hook-forward: {url}/v1/hooks/ingest: TLS failed: ")
