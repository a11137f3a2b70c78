"""Ctrl-C pressed again while `fleet run` or `fleet resume` closes its log.

The first press stops the run (tests/cli/test_cli_resume.py drives it end to
end); these press again during the closing, at a point the child chooses (it
sends SIGINT to itself), so what each press does is not left to timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# A child process whose `main`, under `_stoppable` as `fleet run` has it, is pressed once
# while it works and `presses - 1` times while it closes; it prints what it got to.
CHILD = """
import argparse, asyncio, os, signal, sys
from api.cli._run import _stoppable

presses = int(sys.argv[1])

async def main(runs):
    runs.append("r1")
    os.kill(os.getpid(), signal.SIGINT)
    try:
        await asyncio.sleep(60)  # the work: the first press stops it
    finally:
        for _ in range(presses - 1):  # pressed again while the log closes
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        print("closed", flush=True)
    return 0

args = argparse.Namespace(db="fleet.db", command="run")
sys.exit(_stoppable(args, main))
"""


@pytest.mark.parametrize(
    ("presses", "closed", "said"),
    [
        (1, True, ["fleet: stopped; run r1 is interrupted, not ended: `{resume}` carries it on"]),
        (
            2,
            True,
            [
                "fleet: stopping: closing the log; Ctrl-C again quits at once",
                "fleet: stopped; run r1 is interrupted, not ended: `{resume}` carries it on",
            ],
        ),
        (
            3,
            False,
            [
                "fleet: stopping: closing the log; Ctrl-C again quits at once",
                "fleet: quit at once: what was written stays; `{resume}` carries on",
            ],
        ),
    ],
)
def test_ctrl_c_again_while_closing_says_so_and_a_third_quits_at_once(
    tmp_path: Path, presses: int, closed: bool, said: list[str]
) -> None:
    """Regression: a second press raised KeyboardInterrupt wherever the closing was
    (a traceback, the last checkpoints half written, exit code -2 at times)."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(presses)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    resume = "fleet resume --db fleet.db"  # as given: the user is in that folder
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == [line.format(resume=resume) for line in said]
    assert (done.stdout == "closed\n") is closed
