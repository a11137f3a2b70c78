"""Hook scripts written for Claude Code run unchanged against fleet's agents (on the simulator).

The scripts in `claude_code_hooks/` are written as Claude Code users write them
(matching `Bash`, reading `.tool_input.command` and `.tool_input.file_path`
with jq or Python, answering in Claude Code's JSON). They are copied into a
copy of the sample repository's `.claude/hooks/` with a `.claude/settings.json`
naming them as a Claude Code project would, and a fleet runs there.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Generator
from pathlib import Path

import pytest

from events import AgentCommanded, AgentCreated, SQLiteEventStore, ToolCallCompleted
from runtime import RuntimeOptions, load_pattern, open_runtime, prepare_workspace, run_pattern
from runtime.simulator import Call, Observation, Situation, Turn

SCRIPTS = Path(__file__).parent / "claude_code_hooks"
TASK = "rename `count_words` to `word_count`"

SETTINGS = {
    "permissions": {"allow": ["Bash(python -m unittest)"]},
    "hooks": {
        "UserPromptSubmit": [
            {"hooks": [{"type": "command",
                        "command": '"$CLAUDE_PROJECT_DIR"/.claude/hooks/add-context.sh'}]}
        ],
        "PreToolUse": [
            {"matcher": "Bash",
             "hooks": [{"type": "command",
                        "command": '"$CLAUDE_PROJECT_DIR"/.claude/hooks/block-rm.sh',
                        "timeout": 30}]}
        ],
        "PostToolUse": [
            {"matcher": "Write|Edit",
             "hooks": [{"type": "command",
                        "command": "python3 \"$CLAUDE_PROJECT_DIR\"/.claude/hooks/audit_files.py"}]}
        ],
    },
}  # fmt: skip


def cleaner(situation: Situation) -> Generator[Turn, list[Observation], str]:
    seen = yield Turn("Cleaning up.", [Call("Bash", {"command": "rm -rf textstats build"})])
    return f"error={seen[0].is_error}: {seen[0].content}"


@pytest.fixture
async def project(tmp_path: Path) -> Path:
    workspace = await prepare_workspace(tmp_path / "shop")
    hooks = workspace / ".claude" / "hooks"
    hooks.mkdir(parents=True)
    for script in SCRIPTS.iterdir():
        shutil.copy2(script, hooks / script.name)
    (workspace / ".claude" / "settings.json").write_text(json.dumps(SETTINGS, indent=2))
    return workspace


async def test_claude_code_hook_scripts_run_unchanged_on_fleets_agents(
    project: Path, tmp_path: Path
) -> None:
    db = tmp_path / "fleet.db"
    async with open_runtime(RuntimeOptions(db=db, workspace=project, env={})) as rt:
        assert rt.hooks.config.source == str(project / ".claude" / "settings.json")
        result = await run_pattern(rt.fleet, load_pattern("scout-plan-build"), TASK)
        assert rt.simulator is not None
        rt.simulator.register_policy("cleaner", cleaner)
        status = await rt.fleet.create_agent(name="cleaner", role="cleaner", task="clean up")
        await rt.fleet.wait_all([status["id"]], timeout_s=60)
    assert result.status == "completed", result.error

    async with SQLiteEventStore(db) as store:
        events = await store.read_all(after=0)

    # The prompt hook's additionalContext went to the model with every prompt (the
    # pattern's conductor is code, not a model: it gets no prompt hook).
    conductor = {e.data.agent_id for e in events if isinstance(e.data, AgentCreated)
                 and e.data.model.startswith("pattern:")}  # fmt: skip
    prompts = [
        e.data.prompt
        for e in events
        if isinstance(e.data, AgentCommanded) and e.data.agent_id not in conductor
    ]
    assert len(prompts) == 6  # 3 scouts, the planner, the builder, the cleaner
    assert all(
        p.endswith(
            "\n\nProject facts: the current git branch is main; the tests run with python -m "
            "unittest."
        )
        for p in prompts
    )

    # The guard (jq on .tool_input.command) denied `rm -rf`; the files are still there.
    completed = [e.data for e in events if isinstance(e.data, ToolCallCompleted)]
    [rm] = [c for c in completed if c.blocked]
    assert rm.name == "Bash"
    assert rm.result == (
        "blocked by a PreToolUse hook: Destructive command blocked by block-rm.sh: "
        "rm -rf textstats build"
    )
    assert (project / "textstats" / "counting.py").is_file()
    assert not any(c.blocked for c in completed if c.tool_use_id != rm.tool_use_id)

    # The audit log (Python on .tool_input.file_path) has every file the agents wrote.
    audit = [
        json.loads(line) for line in (project / ".claude" / "audit.log").read_text().splitlines()
    ]
    audited = {(entry["tool"], entry["file"]) for entry in audit}
    written = {(c.name, path) for c in completed if not c.is_error for path in c.files_written}
    assert written and audited == written
    assert ("Edit", "textstats/counting.py") in audited
    assert "word_count" in (project / "textstats" / "counting.py").read_text()
