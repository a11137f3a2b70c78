"""`fleet simulator`: the simulator as a process of its own, for any Messages-API client."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

FLEET = str(Path(sys.executable).with_name("fleet"))


@pytest.fixture
def running() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`fleet simulator --api-key k1` and the base URL it printed first."""
    process = subprocess.Popen(
        [FLEET, "simulator", "--api-key", "k1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    url = (
        process.stdout.readline().strip()
    )  # blocks until it listens (the test's timeout bounds it)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_it_prints_its_base_url_and_answers_the_sdk(
    running: tuple[subprocess.Popen[str], str],
) -> None:
    _, url = running
    assert url.startswith("http://127.0.0.1:")
    with anthropic.Anthropic(base_url=url, api_key="k1", max_retries=0) as client:
        message = client.messages.create(
            model="haiku", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
        )
        models = [m.id for m in client.models.list()]
    assert "Hello" in message.content[0].text
    assert "claude-opus-5-5" in models
    wrong = anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0)
    with wrong, pytest.raises(anthropic.AuthenticationError):
        wrong.models.list()


def test_sigterm_stops_it_cleanly(running: tuple[subprocess.Popen[str], str]) -> None:
    process, _ = running
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([FLEET, "simulator", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert done.stdout == ""
