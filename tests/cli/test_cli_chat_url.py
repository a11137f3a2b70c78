"""`fleet chat --url`: a terminal joins the conversation a running server holds.

A real `fleet chat` process, input piped in, talks HTTP and SSE to the app
under uvicorn (`serving`), whose fleet runs on the offline simulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import ApiConfig, serving
from runtime import prepare_workspace

FLEET = [sys.executable, "-m", "api.cli"]
ROOT = Path(__file__).parents[2]
TOKEN = "s3cret-token"
RENAME = "rename `count_words` to `word_count`"


def _chat(*args: str, stdin: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "FLEET_TOKEN")}
    environ |= {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    if token is not None:
        environ["FLEET_TOKEN"] = token
    return subprocess.run(
        [*FLEET, "chat", *args], input=stdin, env=environ, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


async def _in_thread(*args: str, stdin: str = "", token: str | None = None) -> Any:
    return await asyncio.to_thread(lambda: _chat(*args, stdin=stdin, token=token))


async def wait_until(predicate: Any, *, within: float, what: str) -> None:
    """Poll an async predicate until true; fail with `what` after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def config(tmp_path: Path) -> ApiConfig:
    workspace = await prepare_workspace(tmp_path / "repo")
    return ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, workspace=workspace, token=TOKEN)


async def test_a_two_turn_conversation_over_url_then_read_back_and_carried_on(
    config: ApiConfig,
) -> None:
    async with serving(config) as server:
        first = await _in_thread(
            "--url", server.url, stdin=f"{RENAME}\nWhat did the builder decide?\n", token=TOKEN
        )
        assert first.returncode == 0, first.stderr
        out = first.stdout
        # The same rendering as the local mode: each message, the fleet's progress, the answer.
        assert f"you> {RENAME}" in out
        assert "+ scout-1 (scout, " in out and "✓ builder completed" in out
        assert "orchestrator: Sleeping until one of 4 agents finishes." in out
        assert "orchestrator> DONE: 4 scouts found the relevant lines" in out
        assert (
            out.index("orchestrator> DONE")
            < out.index("you> What did the builder decide?")
            < out.index("orchestrator> builder (completed, ")
        ), out
        found = re.search(rf"fleet chat --url {re.escape(server.url)} --conversation (\w+)", out)
        assert found, out
        cid = found[1]

        # The server holds the conversation: the same two turns, read back over HTTP.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=server.url, headers=auth) as http:
            got = await http.get(f"/v1/orchestrator/conversations/{cid}")
        assert got.status_code == 200, got.text
        conversation = got.json()
        messages = conversation["messages"]
        assert [m["role"] for m in messages] == ["user", "orchestrator"] * 2
        assert [m["text"] for m in messages[::2]] == [RENAME, "What did the builder decide?"]
        assert messages[1]["text"].startswith("DONE: 4 scouts")
        assert messages[0]["author"].startswith("terminal-")
        assert conversation["pending"] == 0

        # Carried on from another terminal (--token this time): the conversation so far, then
        # a slash command the server answers.
        again = await _in_thread(
            "--url", server.url, "--token", TOKEN, "--conversation", cid, "--json",
            stdin="/status\n",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        said = [json.loads(line)["data"] for line in again.stdout.splitlines()]
        assert [m["role"] for m in said] == ["user", "orchestrator"] * 3, "history, then /status"
        assert said[4]["text"] == "/status"
        status = said[5]["text"].splitlines()
        assert [line.split(" (")[0] for line in status] == [
            "orchestrator", "scout-1", "scout-2", "scout-3", "scout-4", "builder",
        ]  # fmt: skip


async def test_clear_errors_unreachable_unauthorized_unknown_conversation(
    config: ApiConfig,
) -> None:
    async with serving(config) as server:
        down, no_token, wrong_token, unknown = await asyncio.gather(
            _in_thread("--url", "http://127.0.0.1:9", stdin="hello\n", token=TOKEN),
            _in_thread("--url", server.url, stdin="hello\n"),
            _in_thread("--url", server.url, stdin="hello\n", token="not-it"),
            _in_thread("--url", server.url, "--conversation", "nope", stdin="hello\n", token=TOKEN),
        )
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            chats = (await http.get("/v1/events", params={"type": "ChatMessagePosted"})).json()
    for run in (down, no_token, wrong_token, unknown):
        assert run.returncode == 1, run
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert down.stderr.startswith("fleet chat: cannot reach http://127.0.0.1:9: "), down.stderr
    assert "refused the token (this server needs a token" in no_token.stderr
    assert "refused the token (the token is wrong)" in wrong_token.stderr
    assert "$FLEET_TOKEN" in wrong_token.stderr
    assert unknown.stderr == f"fleet chat: no conversation 'nope' on {server.url}\n"
    assert chats["events"] == [], "nothing was posted"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://127.0.0.1:99999", "the port 99999 is not 1-65535"),
        ("localhost:8000", "expected an http:// or https:// URL with a host"),
        ("ftp://127.0.0.1:8000", "expected an http:// or https:// URL with a host"),
    ],
)
def test_a_malformed_url_is_a_usage_error_in_one_line(url: str, words: str) -> None:
    """Not an httpx or socket traceback."""
    run = _chat("--url", url, stdin="hello\n")
    assert run.returncode == 2, run
    assert run.stderr.startswith(f"fleet chat: --url: {words}"), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


async def test_a_line_the_server_refuses_is_said_and_the_chat_goes_on(
    config: ApiConfig,
) -> None:
    """Regression: the server's 422 for a bad line ended the chat; the next lines never ran."""
    bad = ["/frobnicate", "/wait abc", "x" * 100_001, "y" * (1024 * 1024 + 1)]
    async with serving(config) as server:
        done = await _in_thread("--url", server.url, stdin="\n".join([*bad, "/cost", ""]),
                                token=TOKEN)  # fmt: skip
    assert done.returncode == 1, "a refused line still makes the exit status 1"
    refusals = done.stderr.splitlines()
    assert len(refusals) == len(bad), done.stderr
    assert all(line.startswith("fleet chat: not posted: ") for line in refusals), done.stderr
    assert "/frobnicate: unknown command" in refusals[0]
    assert "/wait: SECONDS must be a number" in refusals[1]
    assert "fleet> this conversation: 0 agents" in done.stdout


def test_the_longest_line_sent_is_the_longest_message_the_runtime_takes() -> None:
    from api.cli._chat_remote import MAX_TEXT
    from runtime._chat import MAX_TEXT as RUNTIME_MAX_TEXT

    assert MAX_TEXT == RUNTIME_MAX_TEXT


async def test_a_server_restart_mid_chat_loses_and_repeats_nothing(
    config: ApiConfig, reserved_port: int
) -> None:
    """The stream ends with the server; the chat reopens it after the last event it showed."""
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    environ |= {"PYTHONPATH": str(ROOT), "COLUMNS": "200", "FLEET_TOKEN": TOKEN}
    url = f"http://127.0.0.1:{reserved_port}"
    out: list[str] = []

    async def shown(text: str, times: int = 1) -> None:
        async def enough() -> bool:
            return "".join(out).count(text) >= times

        await wait_until(enough, within=60, what=f"{text!r} shown {times}x")

    async with serving(config, port=reserved_port):
        chat = await asyncio.create_subprocess_exec(
            *FLEET, "chat", "--url", url, env=environ, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert chat.stdin and chat.stdout and chat.stderr
        stdout = chat.stdout

        async def read() -> None:
            while line := await stdout.readline():
                out.append(line.decode())

        reader = asyncio.create_task(read())
        chat.stdin.write(b"/cost\n")
        await shown("fleet> this conversation: 0 agents")
        found = re.search(r"--conversation (\w+)", "".join(out))
        assert found, out
    async with (
        serving(config, port=reserved_port),
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        # Posted from elsewhere while the chat may still be reconnecting: shown all the same.
        body = {"text": "/help", "conversation_id": found[1]}
        assert (await http.post("/v1/orchestrator/messages", json=body)).status_code == 202
        await shown("/help: this list")
        chat.stdin.write(b"/cost\n")
        await shown("fleet> this conversation: 0 agents", times=2)
        chat.stdin.close()
        assert await asyncio.wait_for(chat.wait(), timeout=60) == 0, await chat.stderr.read()
        await reader
    text = "".join(out)
    assert text.count("you (api)> /help") == 1 and text.count("/help: this list") == 1, text
    assert text.count("you> /cost") == 2 and text.count("fleet> this conversation") == 2, text
    assert text.index("you (api)> /help") < text.rindex("you> /cost"), text
