"""The generic policy as a coding agent with Claude Code's tools, whatever set a version offers.

Each test plays the client's part: it sends the conversation through the real
SDK to the simulator, answers each tool call as Claude Code's tool would on a
copy of the sample repository (Grep, Glob, Read, Edit, Write, Bash), and checks
what the policy asked for and what became of the files. The real binary is
driven in tests/claude_code/.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest

from runtime import Simulator, prepare_workspace
from runtime.simulator import SEARCH_ONLY

MODEL = "claude-opus-4-6"  # an older model: its environment goes in the system prompt


def tool(name: str) -> dict[str, Any]:
    return {"name": name, "description": name, "input_schema": {"type": "object"}}


class ClaudeCodeTools:
    """Claude Code's file tools, enough of them to play the client, on one workspace."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, args: dict[str, Any]) -> str:
        self.calls.append((name, args))
        if name == "Grep":
            pattern = re.compile(args["pattern"])
            files = sorted(self.root.rglob(args.get("glob", "*")))
            return "\n".join(
                f"{f}:{n}:{line}"
                for f in files if f.is_file() and ".git" not in f.parts
                for n, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)
            )  # fmt: skip
        if name == "Glob":
            return "\n".join(str(f) for f in sorted(self.root.glob("*")))
        if name == "Read":
            lines = Path(args["file_path"]).read_text().splitlines()
            return "\n".join(f"{n}\t{line}" for n, line in enumerate(lines, 1))
        if name == "Edit":
            path = Path(args["file_path"])
            path.write_text(path.read_text().replace(args["old_string"], args["new_string"]))
            return f"The file {path} has been updated."
        if name == "Write":
            Path(args["file_path"]).write_text(args["content"])
            return f"File created successfully at: {args['file_path']}"
        if name == "Bash":
            done = subprocess.run(args["command"], shell=True, cwd=self.root, capture_output=True,
                                  text=True, check=False)  # fmt: skip
            return done.stdout + done.stderr
        raise AssertionError(f"unexpected tool {name}")


async def drive(
    sim: Simulator,
    prompt: str,
    tools: list[str],
    run: Callable[[str, dict[str, Any]], str],
    *,
    system: str = "",
    turns: int = 12,
) -> str:
    """Play the client until the simulated model ends its turn; its final text."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    async with anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sim") as client:
        for _ in range(turns):
            reply = await client.messages.create(
                model=MODEL, max_tokens=8000, system=system, messages=messages,  # type: ignore[arg-type]
                tools=[tool(t) for t in tools],  # type: ignore[misc]
            )  # fmt: skip
            content = [b.model_dump(exclude_none=True) for b in reply.content]
            messages.append({"role": "assistant", "content": content})
            calls = [b for b in reply.content if b.type == "tool_use"]
            if not calls:
                return "".join(b.text for b in reply.content if b.type == "text")
            results = [{"type": "tool_result", "tool_use_id": c.id, "content": run(c.name, dict(c.input))}
                       for c in calls]  # fmt: skip
            messages.append({"role": "user", "content": results})
    raise AssertionError("the policy did not end its turn")


@pytest.fixture
async def repo(tmp_path: Path) -> Path:
    return await prepare_workspace(tmp_path / "repo")


async def test_with_grep_and_no_subagent_it_searches_reads_and_edits(
    sim: Simulator, repo: Path
) -> None:
    tools = ClaudeCodeTools(repo)
    system = f"You are a coding agent.\n - Working directory: {repo}\n"

    answer = await drive(sim, "rename `count_words` to `word_count`", ["Read", "Edit", "Grep"],
                         tools, system=system)  # fmt: skip

    names = [name for name, _ in tools.calls]
    assert names[0] == "Grep" and set(names[1:5]) == {"Read"} and "Bash" not in names
    assert tools.calls[0][1] == {"pattern": r"\bcount_words\b", "output_mode": "content",
                                 "-n": True, "glob": "*.py"}  # fmt: skip
    assert all(args["file_path"].startswith(str(repo)) for name, args in tools.calls[1:])
    assert "8 of 8 edits applied in 4 files" in answer
    assert not re.search(r"\bcount_words\b", (repo / "textstats/counting.py").read_text())


async def test_older_claude_code_names_its_subagent_tool_task(sim: Simulator, repo: Path) -> None:
    tools = ClaudeCodeTools(repo)
    seen: list[dict[str, Any]] = []

    def run(name: str, args: dict[str, Any]) -> str:
        if name == "Task":  # the subagent: the same policy, in a conversation of its own
            seen.append(args)
            return subagent_reports.pop()
        return tools(name, args)

    subagent_reports = ["- textstats/counting.py:6: def count_words(text):"]
    answer = await drive(sim, "rename `count_words` to `word_count`",
                         ["Read", "Edit", "Bash", "Task"], run, system=f"cwd: {repo}")  # fmt: skip

    assert seen[0]["prompt"].startswith(SEARCH_ONLY)
    assert seen[0]["subagent_type"] == "general-purpose"  # no Explore type listed
    assert "1 of 1 edits applied in 1 files (textstats/counting.py)" in answer
    assert "Tests FAIL" in answer  # the other uses of count_words were not in the report


async def test_told_to_search_only_it_reports_lines_and_changes_nothing(
    sim: Simulator, repo: Path
) -> None:
    tools = ClaudeCodeTools(repo)
    before = (repo / "textstats/counting.py").read_text()

    report = await drive(
        sim, f"{SEARCH_ONLY}. Find every line to change: rename `count_words` to `word_count`.",
        ["Read", "Bash", "Glob"], tools,
    )  # fmt: skip

    assert [name for name, _ in tools.calls] == ["Bash"]
    assert "- textstats/counting.py:6: def count_words(text):" in report
    assert "8 lines in 4 files." in report
    assert (repo / "textstats/counting.py").read_text() == before


async def test_a_task_without_a_directive_gets_a_look_around(sim: Simulator, repo: Path) -> None:
    tools = ClaudeCodeTools(repo)

    answer = await drive(sim, "tell me about this project", ["Read", "Edit", "Glob"], tools,
                         system=f"Primary working directory: {repo}")  # fmt: skip

    assert [name for name, _ in tools.calls] == ["Glob", "Read"]
    assert "README.md begins: '# textstats'" in answer
    assert "nothing was changed" in answer
