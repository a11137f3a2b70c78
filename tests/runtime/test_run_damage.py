"""A run whose builder's edits fail, or whose tests fail, ends `failed`, never `completed`.

Issue 14: the builder applied 8 of 32 edits (24 `old_string not found`) and the
run still said "completed". The builder here applies a plan written before it
starts, so what its edits meet is known: a stale line, or a change that breaks
the sample's tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from events import Meta, NewEvent, ToolCallCompleted, ToolCallRequested, open_store
from runtime import (
    Runtime,
    RuntimeOptions,
    load_pattern,
    open_runtime,
    run_orchestrator,
    run_pattern,
)
from runtime._run_damage import run_damage

TASK = "rename `count_words` to `word_count` everywhere"
GOOD = {
    "file": "textstats/counting.py",
    "old": "def count_lines(text):",
    "new": "def count_lines(text):  # lines",
}
STALE = {"file": "textstats/counting.py", "old": "def count_wordz(text):", "new": "def x(text):"}
BREAKS_TESTS = {
    "file": "textstats/counting.py",
    "old": "    return len(split_words(text))",
    "new": "    return len(split_words(text)) + 1",
}
BUILD_ONLY = """name = "build-only"
description = "One builder applies a plan written beforehand."

[[steps]]
id = "build"
role = "builder"
prompt = \"\"\"Task: {task}

The plan is in notes/plan.md. Apply its edits, then run the project's tests.\"\"\"
"""


@pytest.fixture
async def rt(tmp_path: Path, workspace: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(
        RuntimeOptions(db=tmp_path / "fleet.db", workspace=workspace, env={})
    ) as runtime:
        yield runtime


def _plan(workspace: Path, edits: list[dict[str, str]]) -> None:
    (workspace / "notes").mkdir(exist_ok=True)
    block = json.dumps(edits, indent=1)
    (workspace / "notes/plan.md").write_text(f"# Plan\n\n```json fleet-edits\n{block}\n```\n")


async def _run(rt: Runtime, tmp_path: Path) -> tuple[str, str | None, dict]:
    (tmp_path / "build-only.toml").write_text(BUILD_ONLY)
    result = await run_pattern(rt.fleet, load_pattern(tmp_path / "build-only.toml"), TASK)
    await rt.runner.wait_for(await rt.store.head())
    (run,) = rt.runner.view("runs")["runs"]
    return result.status, result.error, run


async def test_a_builder_edit_that_finds_no_old_string_fails_the_run(
    rt: Runtime, workspace: Path, tmp_path: Path
) -> None:
    _plan(workspace, [GOOD, STALE])

    status, error, run = await _run(rt, tmp_path)

    assert status == "failed"
    assert run["status"] == "failed"
    assert "1 edits failed" in (error or "")
    assert "textstats/counting.py: old_string not found" in (error or "")
    assert "# lines" in (workspace / "textstats/counting.py").read_text(), "the good edit stays"


async def test_a_builder_whose_tests_fail_fails_the_run(
    rt: Runtime, workspace: Path, tmp_path: Path
) -> None:
    _plan(workspace, [BREAKS_TESTS])

    status, error, run = await _run(rt, tmp_path)

    assert status == "failed"
    assert run["status"] == "failed"
    assert "tests fail: `python -m unittest`: exit code 1" in (error or "")
    assert "FAILED (failures=" in (error or ""), "the test runner's verdict is named"


async def test_a_builder_whose_edits_apply_and_tests_pass_completes(
    rt: Runtime, workspace: Path, tmp_path: Path
) -> None:
    _plan(workspace, [GOOD])

    status, error, run = await _run(rt, tmp_path)

    assert status == "completed", error
    assert run["status"] == "completed"


async def test_an_orchestrator_run_whose_builder_leaves_tests_failing_fails(
    rt: Runtime, workspace: Path
) -> None:
    """The orchestrator agent ends `completed`; its builder's last test run says otherwise."""
    (workspace / "tests/test_broken.py").write_text(
        "import unittest\n\n\nclass Broken(unittest.TestCase):\n"
        "    def test_broken(self):\n        self.fail('broken before the run')\n"
    )

    result = await run_orchestrator(rt.fleet, TASK)

    assert result.status == "failed"
    assert "its agents' work did not" in (result.error or "")
    assert "tests fail" in (result.error or "")
    await rt.runner.wait_for(await rt.store.head())
    (run,) = rt.runner.view("runs")["runs"]
    assert run["status"] == "failed"


async def test_an_edit_made_again_after_it_failed_or_one_a_hook_blocked_is_no_damage(
    tmp_path: Path,
) -> None:
    """Claude Code refuses an edit of a file not read yet; the agent reads it and edits again."""
    edit = {"file_path": "a.py", "old_string": "x", "new_string": "y"}
    calls = [  # (tool_use_id, input, is_error, blocked, result)
        ("t1", edit, True, False, "File has not been read yet"),
        ("t2", edit, False, False, "edited a.py"),
        ("t3", {**edit, "file_path": "b.py"}, True, True, "blocked by hook: no"),
    ]
    events = []
    for use_id, tool_input, is_error, blocked, result in calls:
        events.append(ToolCallRequested(agent_id="b1", tool_use_id=use_id, name="Edit",
                                        input=tool_input))  # fmt: skip
        events.append(ToolCallCompleted(agent_id="b1", tool_use_id=use_id, name="Edit",
                                        result=result, is_error=is_error, blocked=blocked))  # fmt: skip
    async with open_store(tmp_path / "f.db") as store:
        await store.append("agent-b1", [NewEvent(e, Meta(run_id="r1")) for e in events])
        assert not await run_damage(store, agent_ids=["b1"])
        again = ToolCallRequested(agent_id="b1", tool_use_id="t4", name="Edit", input=edit)
        failed = ToolCallCompleted(agent_id="b1", tool_use_id="t4", name="Edit",
                                   result="old_string not found in a.py", is_error=True)  # fmt: skip
        await store.append("agent-b1", [NewEvent(again, Meta(run_id="r1")),
                                        NewEvent(failed, Meta(run_id="r1"))])  # fmt: skip
        damage = await run_damage(store, run_id="r1")
    assert damage.failed_edits == ["a.py: old_string not found in a.py"]


async def test_the_last_test_command_is_kept_with_the_edits_made_after_it(tmp_path: Path) -> None:
    """`fleet run`'s summary reports the agents' last test run (note 3 of _run_damage.py):
    its command, whose it was, what it said, and the edits it did not see."""

    def call(use_id: str, name: str, tool_input: dict[str, str], result: str,
             is_error: bool = False) -> list[NewEvent]:  # fmt: skip
        meta = Meta(run_id="r1")
        return [
            NewEvent(ToolCallRequested(agent_id="b1", tool_use_id=use_id, name=name,
                                       input=tool_input), meta),
            NewEvent(ToolCallCompleted(agent_id="b1", tool_use_id=use_id, name=name,
                                       result=result, is_error=is_error), meta),
        ]  # fmt: skip

    edit = {"file_path": "a.py", "old_string": "x", "new_string": "y"}
    async with open_store(tmp_path / "f.db") as store:
        assert (await run_damage(store, run_id="r1")).last_tests is None
        await store.append("agent-b1", call("t1", "Bash", {"command": "pytest -q"},
                                            "1 failed\nFAILED a_test.py", is_error=True))  # fmt: skip
        await store.append("agent-b1", call("t2", "Edit", edit, "edited a.py"))
        await store.append("agent-b1", call("t3", "Bash", {"command": "ls"}, "a.py"))
        await store.append("agent-b1", call("t4", "Bash", {"command": "pytest -q"},
                                            "....\n4 passed in 0.1s"))  # fmt: skip
        passed = (await run_damage(store, run_id="r1")).last_tests
        await store.append("agent-b1", call("t5", "Edit", {**edit, "old_string": "z"}, "ok"))
        await store.append("agent-b1", call("t6", "Edit", {**edit, "old_string": "w"},
                                            "old_string not found", is_error=True))  # fmt: skip
        later = (await run_damage(store, run_id="r1")).last_tests
        # unittest says "OK" last: the line counting the tests is the one that tells.
        output = "exit code 0 (0.1s)\n\n-------\nRan 0 tests in 0.000s\n\nOK"
        await store.append("agent-b1", call("t7", "Bash", {"command": "python -m unittest"},
                                            output))  # fmt: skip
        unittest = (await run_damage(store, run_id="r1")).last_tests
    assert unittest is not None
    assert unittest.said == "exit code 0 (0.1s) ... Ran 0 tests in 0.000s ... OK"
    # Exit code 0, but unittest found nothing to run (a pytest repository): not a pass.
    assert unittest.passed and unittest.none_ran
    # pytest's "no tests ran" exits 5: nothing failed, so the run is not damaged by it.
    async with open_store(tmp_path / "f.db") as store:
        await store.append("agent-b1", call("t8", "Bash", {"command": "python -m pytest -q"},
                                            "exit code 5\n\nno tests ran in 0.01s", is_error=True))  # fmt: skip
        none = await run_damage(store, run_id="r1")
    assert none.last_tests is not None and none.last_tests.none_ran
    # Where pytest is not installed (fleet's demo venv has none), as Python really says it.
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True,
                   timeout=120)  # fmt: skip
    missing = subprocess.run([str(bare / "bin" / "python"), "-m", "pytest", "-q"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    async with open_store(tmp_path / "f.db") as store:
        await store.append("agent-b1", call("t9", "Bash", {"command": "python -m pytest -q"},
                                            f"exit code 1\n\n{missing.stderr}", is_error=True))  # fmt: skip
        absent = await run_damage(store, run_id="r1")
    assert absent.last_tests is not None and absent.last_tests.none_ran, missing.stderr
    assert absent.failed_tests is None
    assert none.failed_tests is None  # (the failed edit above is damage still)
    assert not passed.none_ran and not later.none_ran
    assert passed is not None and later is not None
    assert (passed.command, passed.agent_id, passed.passed) == ("pytest -q", "b1", True)
    assert passed.said == ".... ... 4 passed in 0.1s"
    assert passed.edits_after == 0
    assert later.edits_after == 1  # the edit that failed changed nothing
