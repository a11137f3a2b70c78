"""Every Python example in README.md runs as written.

Each ```python block is run on its own, as a reader would paste it into
`python -m asyncio` (top-level `await` and `async with` allowed), in a fresh
folder, offline (no ANTHROPIC_API_KEY: the model is fleet's simulator). A block
that is a fragment, not a program, is marked in the README by an HTML comment
on the line before it, with the reason:

    <!-- readme-test: skip (a fragment: ...) -->

Every other block must run. An error's traceback names README.md and the line.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b(.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # of the block's first line of code in README.md
    code: str
    skip: str | None  # the reason given by a skip marker, or None


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, with their line and any skip marker."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _SKIP.search(before)
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append(Block(line, match.group(1), marker.group(1).strip() if marker else None))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_examples_and_every_skip_says_why() -> None:
    assert len(BLOCKS) >= 4, "the block parser found too few examples: is it broken?"
    for block in BLOCKS:
        if block.skip is not None:
            assert block.skip.strip("() "), f"README.md:{block.line}: a skip needs a reason"


def test_the_block_parser_reads_fences_and_markers() -> None:
    text = "# t\n```python\nx = 1\n```\n\n<!-- readme-test: skip (a fragment) -->\n```python\nf(\n```\n"
    assert python_blocks(text) == [Block(3, "x = 1\n", None), Block(8, "f(\n", "(a fragment)")]


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.skip is None], ids=lambda b: f"README.md:{b.line}"
)
async def test_readme_example_runs(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("FLEET_DB", raising=False)
    # Blank lines first, so a traceback's line numbers are README.md's own.
    source = "\n" * (block.line - 1) + block.code
    code = compile(source, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, {"__name__": "__readme__"})
    if inspect.iscoroutine(result):
        await result
