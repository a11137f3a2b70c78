"""`fleet chat` as a user runs it: a real process, input piped in, the offline simulator."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main
from runtime import prepare_workspace

FLEET = [sys.executable, "-m", "api.cli"]
ROOT = Path(__file__).parents[2]


def _where(folder: Path) -> list[str]:
    return ["--db", str(folder / "fleet.db"), "--workspace", str(folder / "repo")]


def _chat(*args: str, stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    environ |= {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [*FLEET, "chat", *_where(cwd), *args],
        input=stdin, cwd=cwd, env=environ, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return asyncio.run(prepare_workspace(tmp_path / "repo"))


def test_a_scripted_conversation_then_carried_on_elsewhere(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _chat(
        stdin="rename `count_words` to `word_count`\nWhat did the builder decide?\n"
        "Delete the scouts\n",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "offline simulator" in out
    cid = re.search(r"fleet chat --conversation (\w+)", out)
    assert cid, out
    # Each message is echoed, the fleet's progress shown, then the answer.
    assert "you> rename `count_words` to `word_count`" in out
    assert "+ scout-1 (scout, " in out and "✓ builder completed" in out
    assert "orchestrator: Sleeping until one of 4 agents finishes." in out
    assert "orchestrator> DONE: 4 scouts found the relevant lines" in out
    assert "orchestrator> builder (completed, " in out
    assert "orchestrator> Deleted 4: scout-1, scout-2, scout-3, scout-4." in out
    assert (
        out.index("orchestrator> DONE")
        < out.index("you> What did")
        < out.index("orchestrator> builder")
    )

    # Carried on by another `fleet chat` (in this process, to spare a start-up).
    monkeypatch.setattr(sys, "stdin", io.StringIO("/status\n"))
    assert main(["chat", "--conversation", cid[1], "--json", *_where(tmp_path)]) == 0
    messages = [json.loads(line)["data"] for line in capsys.readouterr().out.splitlines()]
    assert [m["role"] for m in messages] == ["user", "orchestrator"] * 4, "history, then /status"
    status = messages[-1]["text"].splitlines()
    assert [line.split(" (")[0] for line in status] == [
        "orchestrator", "scout-1", "scout-2", "scout-3", "scout-4", "builder",
    ]  # fmt: skip
    assert all(": deleted," in line for line in status[1:5])


BAD_LINES = ["/frobnicate", "/create-agent", "/wait abc", "x" * 100_001, "/" + "y" * 5000]
"""Lines refused before anything is written: unknown, malformed, too long."""


def test_a_bad_line_is_said_and_the_chat_goes_on(tmp_path: Path, repo: Path) -> None:
    """Regression: the first bad line ended the chat (exit 1); the lines after it never ran."""
    done = _chat(stdin="\n".join([*BAD_LINES, "/cost", ""]), cwd=tmp_path)

    assert done.returncode == 1, "a refused line still makes the exit status 1"
    assert "Traceback" not in done.stderr
    refusals = done.stderr.splitlines()
    assert len(refusals) == len(BAD_LINES), done.stderr
    assert all(line.startswith("fleet chat: not posted: ") for line in refusals)
    assert "/frobnicate: unknown command" in refusals[0]
    assert "/create-agent: takes 2 arguments" in refusals[1]
    assert "/wait: SECONDS must be a number" in refusals[2]
    assert "longer than 100000 characters" in refusals[3]
    assert f"/{'y' * 39}…: unknown command" in refusals[4]  # cut, not echoed whole
    assert len(refusals[4]) < 300
    out = done.stdout
    assert "you> /cost" in out and "fleet> this conversation: 0 agents" in out
    assert "you> /frobnicate" not in out, "nothing of a refused line is in the log"
    assert "bye: carry on with" in out

    only_good = _chat(stdin="/cost\n", cwd=tmp_path)
    assert only_good.returncode == 0, only_good.stderr


def test_a_line_that_is_not_utf8_is_refused_and_the_chat_goes_on(
    tmp_path: Path, repo: Path
) -> None:
    """Regression: a Latin-1 line ended the chat with a traceback: a UnicodeDecodeError where
    stdin is strict (a UTF-8 locale, as here), else a RunStarted its log could not hold."""
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    environ |= {"PYTHONPATH": str(ROOT), "COLUMNS": "200", "PYTHONIOENCODING": "utf-8:strict"}
    done = subprocess.run(
        [*FLEET, "chat", *_where(tmp_path)], input="café crème\n/cost\n".encode("latin-1"),
        cwd=tmp_path, env=environ, capture_output=True, timeout=180,
    )  # fmt: skip
    stderr, out = done.stderr.decode(), done.stdout.decode()
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [
        "fleet chat: not posted: invalid agent text: is not valid UTF-8 text"
    ]
    assert "fleet> this conversation: 0 agents" in out, "the next line was answered"


def test_an_unknown_conversation_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "repo").mkdir()
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    assert main(["chat", "--conversation", "nope", *_where(tmp_path)]) == 1
    assert "no conversation 'nope' in this log" in capsys.readouterr().err
