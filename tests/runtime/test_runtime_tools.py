"""The worker tools in a workspace, named and shaped as Claude Code's; bad input gets a clear error."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from runtime import Toolbox, ToolContext, ToolInputInvalid, Workspace, worker_toolbox
from runtime._bash_tool import Bash
from runtime._file_tools import MAX_LIST_CHARS, MAX_LIST_RESULTS, Glob, Read


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def hello():\n    return 'hello'\n\nhello()\n")
    (root / "README.md").write_text("# App\n\nCall hello() to greet.\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("hello in a hidden folder\n")
    return Workspace(root)


@pytest.fixture
def tools() -> Toolbox:
    return worker_toolbox()


def _alive(pid: int) -> bool:
    """True if `pid` runs (a killed child no one has reaped yet is a zombie: not alive)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def ctx(ws: Workspace) -> ToolContext:
    return ToolContext(workspace=ws, agent_id="a1")


def test_tool_definitions_have_claude_codes_names_and_input_shapes(tools: Toolbox) -> None:
    defs = {d["name"]: d for d in tools.definitions()}
    assert list(defs) == ["Read", "Write", "Edit", "Glob", "Grep", "Bash"]
    shapes = {name: d["input_schema"] for name, d in defs.items()}
    assert list(shapes["Read"]["properties"]) == ["file_path", "offset", "limit"]
    assert list(shapes["Write"]["properties"]) == ["file_path", "content"]
    assert shapes["Edit"]["required"] == ["file_path", "old_string", "new_string"]
    assert list(shapes["Edit"]["properties"]) == [
        "file_path", "old_string", "new_string", "replace_all",
    ]  # fmt: skip
    assert list(shapes["Glob"]["properties"]) == ["pattern", "path"]
    assert {"pattern", "path", "glob", "type", "output_mode", "-i", "-n", "-A", "-B", "-C",
            "head_limit", "multiline"} == set(shapes["Grep"]["properties"])  # fmt: skip
    assert shapes["Grep"]["properties"]["output_mode"]["default"] == "files_with_matches"
    assert list(shapes["Bash"]["properties"]) == [
        "command", "timeout", "description", "run_in_background",
    ]  # fmt: skip
    assert all(s["additionalProperties"] is False for s in shapes.values())
    assert all(d["description"] for d in defs.values())


def test_each_tool_declares_its_kind(tools: Toolbox) -> None:
    """Reads may run again; writes can be checked; a command may have done anything."""
    kinds = {name: tools.kind(name) for name in tools.names}
    assert kinds == {
        "Read": "read", "Glob": "read", "Grep": "read",
        "Write": "write", "Edit": "write", "Bash": "command",
    }  # fmt: skip
    assert tools.kind("read_file") == "read"  # a former name is the same tool


async def test_read_returns_the_text_and_records_the_read(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call("Read", {"file_path": "src/app.py", "offset": 2, "limit": 1}, ctx(ws))
    assert result.content == "    return 'hello'\n"
    assert result.files_read == ("src/app.py",)
    assert not result.is_error
    assert result.response == {
        "type": "text",
        "file": {
            "filePath": f"{ws.root}/src/app.py",
            "content": "    return 'hello'\n",
            "numLines": 1,
            "startLine": 2,
        },
    }
    whole = await tools.call("Read", {"file_path": f"{ws.root}/README.md"}, ctx(ws))
    assert whole.response is not None
    assert whole.response["file"]["totalLines"] == 3 == whole.response["file"]["numLines"]


@pytest.mark.parametrize("offset", [5, 50])
async def test_read_past_the_end_says_how_many_lines_there_are(
    tools: Toolbox, ws: Workspace, offset: int
) -> None:
    # The model was given "" (no word of why) and the hook a totalLines of offset - 1.
    result = await tools.call("Read", {"file_path": "src/app.py", "offset": offset}, ctx(ws))
    assert not result.is_error
    assert result.content == f"[src/app.py has 4 lines: offset {offset} is past its end]"
    assert result.response is not None
    file = result.response["file"]
    assert (file["content"], file["numLines"], file["totalLines"]) == ("", 0, 4)


async def test_read_stops_skipping_to_a_far_offset_at_its_deadline(ws: Workspace) -> None:
    # Skipping reads every byte before the offset: a sparse terabyte took a thread for an
    # hour, the call waiting on it and a cancel leaving it running.
    with open(ws.root / "huge.bin", "wb") as f:
        f.write(b"x" * 8192)  # text where a binary file is told (NULs past it)
        f.truncate(1 << 40)
    tools = Toolbox([Read(max_seconds=1)])
    started = time.perf_counter()
    result = await asyncio.wait_for(
        tools.call("Read", {"file_path": "huge.bin", "offset": 2}, ctx(ws)), 300
    )
    assert time.perf_counter() - started < 120
    assert result.is_error
    assert result.content == (
        "stopped reading huge.bin before line 2: over 1s (the file is too large to skip that far)"
    )


@pytest.mark.parametrize("offset", [None, 2])
async def test_read_refuses_a_binary_file_as_grep_skips_it(
    tools: Toolbox, ws: Workspace, offset: int | None
) -> None:
    """Read handed up to 256 KiB of NUL and control bytes to the model as text."""
    (ws.root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x01" * 300_000)
    args = {"file_path": "logo.png"} | ({"offset": offset} if offset else {})
    result = await tools.call("Read", args, ctx(ws))
    assert result.is_error
    assert result.content == (
        "logo.png is a binary file (300016 bytes): Read shows text; "
        "use Bash, e.g. `xxd logo.png | head`, to look inside"
    )
    grep = await tools.call("Grep", {"pattern": "PNG"}, ctx(ws))
    assert grep.content == "no matches"
    # Told from the first 8 KiB alone: a sparse terabyte is refused at once.
    with open(ws.root / "my disk.img", "wb") as f:
        f.truncate(1 << 40)
    started = time.perf_counter()
    sparse = await tools.call("Read", {"file_path": "my disk.img", "offset": 2}, ctx(ws))
    assert time.perf_counter() - started < 10
    assert sparse.content == (
        f"my disk.img is a binary file ({1 << 40} bytes): Read shows text; "
        "use Bash, e.g. `xxd 'my disk.img' | head`, to look inside"
    )
    # Text with a NUL past the first 8 KiB is text, for Read as for Grep.
    (ws.root / "late.txt").write_bytes(b"a\n" * 5000 + b"\x00\n")
    late = await tools.call("Read", {"file_path": "late.txt", "limit": 1}, ctx(ws))
    assert (late.is_error, late.content) == (False, "a\n")


async def test_read_of_a_line_over_the_cap_does_not_send_the_model_back_to_it(
    tools: Toolbox, ws: Workspace
) -> None:
    # It said "read on with offset=1": the same 256 KiB again, for ever.
    (ws.root / "min.js").write_text("x" * 300_000 + "\nnext\n")
    result = await tools.call("Read", {"file_path": "min.js"}, ctx(ws))
    assert result.content.endswith(
        "\n[... truncated: line 1 alone is over 262144 bytes; Read cannot show the rest of "
        "it: use Bash (e.g. cut -c or head -c)]"
    )
    assert "offset=1" not in result.content
    second = await tools.call("Read", {"file_path": "min.js", "offset": 2}, ctx(ws))
    assert second.content == "next\n"


async def test_write_creates_folders_and_records_the_write(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call(
        "Write", {"file_path": "notes/plan.md", "content": "# Plan\n"}, ctx(ws)
    )
    assert result.files_written == ("notes/plan.md",)
    assert (ws.root / "notes" / "plan.md").read_text() == "# Plan\n"
    assert result.response == {
        "type": "create", "filePath": f"{ws.root}/notes/plan.md", "content": "# Plan\n",
    }  # fmt: skip
    again = await tools.call("Write", {"file_path": "notes/plan.md", "content": "# v2\n"}, ctx(ws))
    assert again.response is not None
    assert again.response["type"] == "update"


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("Write", {"file_path": "notes/", "content": "x"}),
        ("Write", {"file_path": "new/deeper/", "content": "x"}),
        ("Read", {"file_path": "src/app.py/"}),
        ("Edit", {"file_path": "src/app.py/", "old_string": "hello", "new_string": "bye"}),
    ],
)
async def test_a_file_path_ending_with_a_slash_is_refused(
    tools: Toolbox, ws: Workspace, tool: str, args: dict[str, object]
) -> None:
    # The slash was dropped: `Write notes/` made a file named notes, `Read a.py/` read a.py.
    before = sorted(p.relative_to(ws.root) for p in ws.root.rglob("*"))
    result = await tools.call(tool, args, ctx(ws))
    assert result.is_error
    assert result.content == f"{args['file_path']} ends with /: it names a folder, not a file"
    assert sorted(p.relative_to(ws.root) for p in ws.root.rglob("*")) == before
    assert (ws.root / "src" / "app.py").read_text().startswith("def hello():")


async def test_edit_replaces_exactly_one_match(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call(
        "Edit",
        {"file_path": "src/app.py", "old_string": "def hello():", "new_string": "def greet():"},
        ctx(ws),
    )
    assert result.content == "replaced 1 occurrence in src/app.py"
    assert result.files_written == ("src/app.py",)
    assert (ws.root / "src" / "app.py").read_text().startswith("def greet():")
    assert result.response == {
        "filePath": f"{ws.root}/src/app.py",
        "oldString": "def hello():",
        "newString": "def greet():",
        "replaceAll": False,
        "userModified": False,
    }


async def test_edit_refuses_zero_or_several_matches_and_writes_nothing(
    tools: Toolbox, ws: Workspace
) -> None:
    before = (ws.root / "src" / "app.py").read_text()
    missing = await tools.call(
        "Edit", {"file_path": "src/app.py", "old_string": "nope", "new_string": "x"}, ctx(ws)
    )
    several = await tools.call(
        "Edit", {"file_path": "src/app.py", "old_string": "hello", "new_string": "x"}, ctx(ws)
    )
    assert missing.is_error
    assert "not found in src/app.py" in missing.content
    assert several.is_error
    assert "occurs 3 times" in several.content
    assert "replace_all" in several.content
    assert (ws.root / "src" / "app.py").read_text() == before


async def test_edit_with_replace_all_replaces_every_match(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call(
        "Edit",
        {
            "file_path": "src/app.py",
            "old_string": "hello",
            "new_string": "greet",
            "replace_all": True,
        },
        ctx(ws),
    )
    assert result.content == "replaced 3 occurrences in src/app.py"
    assert "hello" not in (ws.root / "src" / "app.py").read_text()


async def test_glob_globs_and_skips_hidden_folders(tools: Toolbox, ws: Workspace) -> None:
    everything = await tools.call("Glob", {"pattern": "**/*"}, ctx(ws))
    assert everything.content.splitlines() == ["README.md", "src/app.py"]
    python = await tools.call("Glob", {"pattern": "*.py"}, ctx(ws))
    assert python.content == "src/app.py"
    assert python.response is not None
    assert python.response["filenames"] == [f"{ws.root}/src/app.py"]
    assert (python.response["numFiles"], python.response["truncated"]) == (1, False)
    required = await tools.call("Glob", {}, ctx(ws))
    assert required.is_error
    assert "pattern: Field required" in required.content


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        ("src/*.py", ["src/app.py"]),
        ("src/**/*.py", ["src/app.py", "src/lib/deep/c.py", "src/lib/util.py"]),
        ("src/lib/*.py", ["src/lib/util.py"]),
        ("**/lib/*.py", ["src/lib/util.py"]),
        ("*.py", ["src/app.py", "src/lib/deep/c.py", "src/lib/util.py"]),
        ("src/*/*.py", ["src/lib/util.py"]),
        ("**/deep/**", ["src/lib/deep/c.py"]),
        ("./src/*.py", ["src/app.py"]),
        ("/src/*.py", []),
    ],
)
async def test_glob_stars_stay_within_a_name_and_globstar_matches_no_folder_too(
    tools: Toolbox, ws: Workspace, pattern: str, found: list[str]
) -> None:
    # fnmatch over the whole path let `*` cross folders, and `src/**/` needed one.
    (ws.root / "src" / "lib" / "deep").mkdir(parents=True)
    (ws.root / "src" / "lib" / "util.py").write_text("hello = 1\n")
    (ws.root / "src" / "lib" / "deep" / "c.py").write_text("hello = 2\n")
    result = await tools.call("Glob", {"pattern": pattern}, ctx(ws))
    assert sorted(result.content.splitlines()) == (found or ["no files match"])
    grep = await tools.call("Grep", {"pattern": "hello", "glob": pattern}, ctx(ws))
    assert sorted(grep.content.splitlines()) == (found or ["no matches"])


async def test_a_glob_in_a_file_says_it_is_a_file(tools: Toolbox, ws: Workspace) -> None:
    # It said "no such folder: src/app.py", as if the file did not exist.
    result = await tools.call("Glob", {"pattern": "*", "path": "src/app.py"}, ctx(ws))
    assert result.is_error
    assert result.content == "src/app.py is a file, not a folder: give its folder"


async def test_a_glob_of_long_paths_is_capped_in_characters_too(
    tools: Toolbox, ws: Workspace
) -> None:
    """1,000 paths were capped, not their text: 128 names of 255 characters each gave 32 MB."""
    deep = ws.root.joinpath(*["d" * 250] * 4)
    deep.mkdir(parents=True)
    for i in range(MAX_LIST_RESULTS):
        (deep / f"{i:04d}{'f' * 240}.txt").touch()
    result = await tools.call("Glob", {"pattern": "**/*.txt"}, ctx(ws))
    assert not result.is_error
    *paths, note = result.content.split("\n")
    assert len(result.content) <= MAX_LIST_CHARS + 100
    assert len(paths) == MAX_LIST_CHARS // (4 * 251 + 248 + 1)
    assert paths[-1].endswith(f"{len(paths) - 1:04d}{'f' * 240}.txt")
    more = MAX_LIST_RESULTS - len(paths)
    assert note == f"[... {more} more files not shown (over {MAX_LIST_CHARS} characters)]"
    assert result.response is not None
    assert len(result.response["filenames"]) == len(paths)
    assert (result.response["numFiles"], result.response["truncated"]) == (1000, True)


@pytest.mark.parametrize("mode", ["files_with_matches", "count"])
async def test_grep_lists_of_long_paths_are_capped_in_characters_as_globs_are(
    tools: Toolbox, ws: Workspace, mode: str
) -> None:
    """Grep lists 1,000 files as Glob does, and their text was not capped either."""
    deep = ws.root.joinpath(*["d" * 250] * 4)
    deep.mkdir(parents=True)
    for i in range(MAX_LIST_RESULTS):
        (deep / f"{i:04d}{'f' * 240}.txt").write_text("needle\n")
    result = await tools.call("Grep", {"pattern": "needle", "output_mode": mode}, ctx(ws))
    assert not result.is_error
    *entries, note = result.content.split("\n")
    assert len(result.content) <= MAX_LIST_CHARS + 100
    assert 200 < len(entries) < 220
    more = MAX_LIST_RESULTS - len(entries)
    assert note == f"[... {more} more files not shown (over {MAX_LIST_CHARS} characters)]"
    assert result.response is not None
    assert len(result.response["filenames"]) == len(entries)
    assert result.response["numFiles"] == MAX_LIST_RESULTS


async def test_a_glob_past_its_time_cap_says_so(ws: Workspace) -> None:
    # The walk had no deadline and no stop: two million files held a thread for 36 s,
    # and a cancelled call left it walking.
    result = await Toolbox([Glob(max_seconds=0)]).call("Glob", {"pattern": "**/*"}, ctx(ws))
    assert result.is_error
    assert result.content == (
        "no files match\n[... walk stopped after 0s: narrow the path or pattern]"
    )


async def test_grep_lists_the_matching_files_by_default(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call("Grep", {"pattern": r"hello\("}, ctx(ws))
    assert result.content.splitlines() == ["README.md", "src/app.py"]
    assert result.files_read == ("README.md", "src/app.py")
    assert result.response == {
        "mode": "files_with_matches",
        "numFiles": 2,
        "filenames": [f"{ws.root}/README.md", f"{ws.root}/src/app.py"],
    }


async def test_grep_content_prints_paths_and_line_numbers(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call("Grep", {"pattern": r"hello\(", "output_mode": "content"}, ctx(ws))
    assert result.content.splitlines() == [
        "README.md:3:Call hello() to greet.",
        "src/app.py:1:def hello():",
        "src/app.py:4:hello()",
    ]
    assert result.response is not None
    assert result.response["numLines"] == 3
    bare = await tools.call(
        "Grep", {"pattern": r"hello\(", "output_mode": "content", "-n": False}, ctx(ws)
    )
    assert bare.content.splitlines()[0] == "README.md:Call hello() to greet."


async def test_grep_counts_matches_per_file(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call("Grep", {"pattern": "hello", "output_mode": "count"}, ctx(ws))
    assert result.content.splitlines() == ["README.md:1", "src/app.py:3"]
    assert result.response is not None
    assert result.response["numMatches"] == 4


async def test_grep_shows_context_lines_as_ripgrep_does(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call(
        "Grep",
        {"pattern": "return", "output_mode": "content", "-B": 1, "-A": 1, "type": "py"},
        ctx(ws),
    )
    assert result.content.splitlines() == [
        "src/app.py-1-def hello():",
        "src/app.py:2:    return 'hello'",
        "src/app.py-3-",
    ]
    two = await tools.call(
        "Grep", {"pattern": "hello", "output_mode": "content", "-C": 1, "-i": True}, ctx(ws)
    )
    assert "--" in two.content.splitlines()  # groups of different files are separated


async def test_grep_cuts_context_lines_as_it_cuts_matching_ones(
    tools: Toolbox, ws: Workspace
) -> None:
    """Regression: with -C, each line of a minified file came back whole (up to 256 KiB)."""
    (ws.root / "app.min.js").write_text("x" * 200_000 + "\nneedle();\n" + "y" * 200_000 + "\n")
    result = await tools.call(
        "Grep", {"pattern": "needle", "output_mode": "content", "-C": 1}, ctx(ws)
    )
    assert result.content.splitlines() == [
        "app.min.js-1-" + "x" * 500,  # as many characters as a matching line keeps
        "app.min.js:2:needle();",
        "app.min.js-3-" + "y" * 500,
    ]


async def test_grep_content_is_capped_in_characters_as_its_lists_are(
    tools: Toolbox, ws: Workspace
) -> None:
    """Regression: content had no cap but its lines': 2,000 lines of 500 characters were
    1 MB, and context (up to 100 lines a hit) multiplied it."""
    (ws.root / "wide.txt").write_text(("w" * 1_000 + "\n") * 2_000)
    result = await tools.call(
        "Grep",
        {"pattern": "^w", "output_mode": "content", "-C": 1, "head_limit": 2_000},
        ctx(ws),
    )
    shown, note = result.content.rsplit("\n", 1)
    lines = shown.splitlines()
    assert len(shown) <= MAX_LIST_CHARS
    assert lines[0] == "wide.txt:1:" + "w" * 500
    more = 2_000 - len(lines)
    assert more > 0
    assert note == f"[... {more} more lines not shown (over {MAX_LIST_CHARS} characters)]"


async def test_grep_filters_by_glob_and_type_and_is_case_insensitive_with_i(
    tools: Toolbox, ws: Workspace
) -> None:
    by_type = await tools.call("Grep", {"pattern": "HELLO", "-i": True, "type": "md"}, ctx(ws))
    assert by_type.content == "README.md"
    by_glob = await tools.call("Grep", {"pattern": "hello", "glob": "*.py"}, ctx(ws))
    assert by_glob.content == "src/app.py"
    unknown = await tools.call("Grep", {"pattern": "x", "type": "cobol"}, ctx(ws))
    assert unknown.is_error
    assert "unknown file type 'cobol'" in unknown.content
    multiline = await tools.call("Grep", {"pattern": "x", "multiline": True}, ctx(ws))
    assert multiline.is_error
    assert "multiline: not supported" in multiline.content


async def test_grep_is_capped_and_says_how_many_were_left_out(
    tools: Toolbox, ws: Workspace
) -> None:
    (ws.root / "many.txt").write_text("x\n" * 50)
    result = await tools.call(
        "Grep", {"pattern": "x", "output_mode": "content", "head_limit": 10}, ctx(ws)
    )
    assert len(result.content.splitlines()) == 11
    assert result.content.endswith("[... 40 more matching lines not shown]")


async def test_grep_lists_at_most_as_many_files_as_glob_and_says_how_many_more(
    tools: Toolbox, ws: Workspace
) -> None:
    """Files and counts were not capped: 30,000 matching files gave the model 3.8 MB."""
    for i in range(MAX_LIST_RESULTS + 5):
        (ws.root / f"m{i:05d}.txt").write_text("needle\n")
    for mode in ("files_with_matches", "count"):
        result = await tools.call("Grep", {"pattern": "needle", "output_mode": mode}, ctx(ws))
        assert not result.is_error
        lines = result.content.splitlines()
        assert len(lines) == MAX_LIST_RESULTS + 1, mode
        assert lines[-1] == "[... 5 more files not shown]", mode
        assert result.response is not None and result.response["numFiles"] == MAX_LIST_RESULTS + 5
    wider = {"pattern": "needle", "output_mode": "count", "head_limit": 2_000}
    assert len((await tools.call("Grep", wider, ctx(ws))).content.splitlines()) == 1005


async def test_grep_with_a_bad_regex_is_an_input_error(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call("Grep", {"pattern": "("}, ctx(ws))
    assert result.is_error
    assert result.content.startswith(
        "invalid input for Grep: pattern: not a valid regular expression"
    )


async def test_input_that_does_not_match_the_schema_is_a_clear_tool_error(
    tools: Toolbox, ws: Workspace
) -> None:
    result = await tools.call("Read", {"file": "src/app.py"}, ctx(ws))
    assert result.is_error
    assert "invalid input for Read" in result.content
    assert "file_path: Field required" in result.content
    assert "file: Extra inputs are not permitted" in result.content
    with pytest.raises(ToolInputInvalid):
        tools.validate("Bash", {"command": "ls", "timeout": -1})


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        ("Write", {"file_path": "new.txt", "content": "a\ud800b"}, "content"),
        (
            "Edit",
            {"file_path": "README.md", "old_string": "App", "new_string": "\ud800"},
            "new_string",
        ),
        ("Grep", {"pattern": "hello", "path": "src/\ud800"}, "path"),
        ("Glob", {"pattern": "*", "path": "\udcff"}, "path"),
    ],
)
async def test_a_lone_surrogate_in_the_input_is_refused_as_invalid_input(
    tools: Toolbox, ws: Workspace, tool: str, args: dict[str, object], field: str
) -> None:
    # A JSON "\ud800" escape has no UTF-8: it raised UnicodeEncodeError out of the tool.
    result = await tools.call(tool, args, ctx(ws))
    assert result.is_error
    assert result.content == (
        f"invalid input for {tool}: {field}: Value error, "
        "not valid Unicode (it holds a lone UTF-16 surrogate)"
    )
    assert not (ws.root / "new.txt").exists()
    assert (ws.root / "README.md").read_text() == "# App\n\nCall hello() to greet.\n"


async def test_a_long_path_is_cut_in_the_errors_that_show_it(tools: Toolbox, ws: Workspace) -> None:
    """A 100 KB path came back whole in the error, and so in the model's context."""
    long = "x" * 100_000
    deep = "/".join(["d" * 255] * 15) + "/notes.txt"  # a real file, 3,849 characters deep
    (ws.root / deep).parent.mkdir(parents=True)
    (ws.root / deep).write_text("a note\n")
    calls = [
        ("Read", {"file_path": long}, "File name too long"),
        ("Write", {"file_path": long, "content": "x"}, "File name too long"),
        ("Grep", {"pattern": "x", "path": long}, "File name too long"),
        ("Read", {"file_path": f"/elsewhere/{long}"}, "is outside the workspace"),
        ("Write", {"file_path": f".git/new/{long}", "content": "x"}, ".git belongs to git"),
        ("Read", {"file_path": f"{long}/"}, "ends with /"),
        ("Edit", {"file_path": deep, "old_string": "b", "new_string": "c"}, "not found in"),
    ]
    for tool, args, reason in calls:
        result = await tools.call(tool, args, ctx(ws))
        assert result.is_error, tool
        assert reason in result.content, tool
        assert len(result.content) < 500, tool
    edit = await tools.call("Edit", calls[-1][1], ctx(ws))
    assert edit.content == (
        f"old_string not found in {deep[:150]}…{deep[-150:]} ({len(deep)} characters)"
    )
    assert edit.content.endswith("d/notes.txt (3849 characters)")


async def test_an_unknown_tool_is_an_error_that_lists_the_tools(
    tools: Toolbox, ws: Workspace
) -> None:
    result = await tools.call("delete_everything", {}, ctx(ws))
    assert result.is_error
    assert "unknown tool 'delete_everything'" in result.content
    assert "Read" in result.content


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("Read", {"file_path": "../secret.txt"}),
        ("Write", {"file_path": "/tmp/fleet-escape.txt", "content": "x"}),
        ("Edit", {"file_path": "../secret.txt", "old_string": "a", "new_string": "b"}),
        ("Grep", {"pattern": "x", "path": ".."}),
        ("Glob", {"pattern": "*", "path": "../"}),
    ],
)
async def test_file_tools_cannot_leave_the_workspace(
    tools: Toolbox, ws: Workspace, tool: str, args: dict[str, object]
) -> None:
    (ws.root.parent / "secret.txt").write_text("a secret")
    result = await tools.call(tool, args, ctx(ws))
    assert result.is_error
    assert "is outside the workspace" in result.content
    assert not Path("/tmp/fleet-escape.txt").exists()  # noqa: ASYNC240 (one stat in a test)
    assert (ws.root.parent / "secret.txt").read_text() == "a secret"


async def test_a_symlink_pointing_out_cannot_be_read_or_written_through(
    tools: Toolbox, ws: Workspace
) -> None:
    outside = ws.root.parent / "outside"
    outside.mkdir()
    (outside / "key").write_text("s3cret")
    os.symlink(outside, ws.root / "link")
    read = await tools.call("Read", {"file_path": "link/key"}, ctx(ws))
    write = await tools.call("Write", {"file_path": "link/new", "content": "x"}, ctx(ws))
    listed = await tools.call("Grep", {"pattern": "s3cret"}, ctx(ws))
    assert read.is_error
    assert write.is_error
    assert "s3cret" not in read.content
    assert not (outside / "new").exists()
    assert listed.content == "no matches"


async def test_bash_runs_in_the_workspace_and_reports_the_exit_code(
    tools: Toolbox, ws: Workspace
) -> None:
    ok = await tools.call(
        "Bash", {"command": "pwd && echo out && echo err >&2", "description": "Where am I"}, ctx(ws)
    )
    assert ok.content.startswith("exit code 0")
    assert str(ws.root) in ok.content
    assert "out" in ok.content
    assert "err" in ok.content
    assert ok.response is not None
    assert ok.response["stdout"] == f"{ws.root}\nout\nerr\n"
    assert (ok.response["stderr"], ok.response["interrupted"], ok.response["isImage"]) == (
        "", False, False,
    )  # fmt: skip
    failed = await tools.call("Bash", {"command": "exit 3"}, ctx(ws))
    assert failed.is_error
    assert failed.content.startswith("exit code 3")
    background = await tools.call("Bash", {"command": "ls", "run_in_background": True}, ctx(ws))
    assert background.is_error
    assert "run_in_background is not supported" in background.content


async def test_bash_refuses_a_command_with_a_nul_byte(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call("Bash", {"command": "echo a\x00b > made.txt"}, ctx(ws))
    assert result.is_error
    assert result.content == (
        "invalid input for Bash: command: Value error, a command cannot hold a NUL byte (\\0)"
    )
    assert not (ws.root / "made.txt").exists()


@pytest.mark.parametrize("timeout", [True, "5000", [5000]])
async def test_a_bash_timeout_that_is_no_number_is_refused(
    tools: Toolbox, ws: Workspace, timeout: object
) -> None:
    """`true` was taken for 1 ms (the command killed at once), "5000" for 5000."""
    result = await tools.call(
        "Bash", {"command": "echo ran > ran.txt", "timeout": timeout}, ctx(ws)
    )
    assert result.is_error
    assert result.content.startswith("invalid input for Bash: timeout: ")
    assert not (ws.root / "ran.txt").exists()


@pytest.mark.parametrize(
    ("tool", "field", "value"),
    [
        ("Read", "offset", "2"),
        ("Read", "offset", True),
        ("Read", "limit", "1"),
        ("Read", "offset", 2.5),
        ("Grep", "head_limit", "1"),
        ("Grep", "-C", True),
    ],
)
async def test_a_file_tools_integer_that_is_no_number_is_refused_as_bashs_timeout_is(
    tools: Toolbox, ws: Workspace, tool: str, field: str, value: object
) -> None:
    """Read took `offset: "2"` for 2 and `true` for 1, where Bash refuses a string timeout."""
    base = {"file_path": "src/app.py"} if tool == "Read" else {"pattern": "hello"}
    result = await tools.call(tool, base | {field: value}, ctx(ws))
    assert result.is_error
    assert result.content == f"invalid input for {tool}: {field}: Input should be a valid integer"


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("Edit", {"old_string": "hello", "new_string": "bye", "replace_all": "yes"}),
        ("Edit", {"old_string": "hello", "new_string": "bye", "replace_all": 1}),
        ("Grep", {"pattern": "HELLO", "-i": "true"}),
        ("Grep", {"pattern": "hello", "output_mode": "content", "-n": 0}),
        ("Bash", {"command": "echo ran > ran.txt", "run_in_background": "false"}),
    ],
)
async def test_a_tools_boolean_that_is_no_boolean_is_refused_and_changes_nothing(
    tools: Toolbox, ws: Workspace, tool: str, args: dict[str, object]
) -> None:
    """`"yes"` and `1` were taken for true (Edit replaced every occurrence), as a model
    sending a string for a boolean gets from Claude Code: an error it can correct."""
    before = (ws.root / "src/app.py").read_text()
    if tool == "Edit":
        args = {"file_path": "src/app.py"} | args
    result = await tools.call(tool, args, ctx(ws))
    assert result.is_error
    assert result.content.startswith(f"invalid input for {tool}: ")
    assert "Input should be a valid boolean" in result.content
    assert (ws.root / "src/app.py").read_text() == before
    assert not (ws.root / "ran.txt").exists()


@pytest.mark.parametrize("number", [2, 2.0])
async def test_a_file_tools_integer_may_be_any_json_number_without_a_fraction(
    tools: Toolbox, ws: Workspace, number: float
) -> None:
    read = await tools.call("Read", {"file_path": "src/app.py", "offset": number}, ctx(ws))
    assert read.content == "    return 'hello'\n\nhello()\n"
    args = {"pattern": "hello", "output_mode": "content", "head_limit": number, "-A": number}
    grep = await tools.call("Grep", args, ctx(ws))
    assert not grep.is_error
    assert grep.content.splitlines()[:3] == [
        "README.md:3:Call hello() to greet.",
        "--",
        "src/app.py:1:def hello():",
    ]


async def test_bash_runs_without_fleets_secrets(
    tools: Toolbox, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model writes the command: `env` showed the API's token, the export signing key,
    the model's key and the log's password to it (and to wherever it sent them)."""
    secrets = {
        "FLEET_TOKEN": "tok-1", "FLEET_EXPORT_KEY": "key-2", "ANTHROPIC_API_KEY": "sk-3",
        "ANTHROPIC_AUTH_TOKEN": "auth-4", "ANTHROPIC_CUSTOM_HEADERS": "x-api-key: h-5",
        "FLEET_DB": "postgresql://fleet:pw-6@db.internal/fleet",
    }  # fmt: skip
    for name, value in {**secrets, "FLEET_WORKSPACE": "/srv/repo", "MY_SETTING": "7"}.items():
        monkeypatch.setenv(name, value)

    result = await tools.call("Bash", {"command": "env"}, ctx(ws))

    assert not result.is_error, result.content
    assert "MY_SETTING=7" in result.content and "FLEET_WORKSPACE=/srv/repo" in result.content
    for name, value in secrets.items():
        assert name not in result.content and value not in result.content
    monkeypatch.setenv("FLEET_DB", "/srv/fleet.db")  # no password: left
    assert (
        "FLEET_DB=/srv/fleet.db" in (await tools.call("Bash", {"command": "env"}, ctx(ws))).content
    )


def test_bash_timeouts_are_milliseconds_lowered_to_ten_minutes(tools: Toolbox) -> None:
    assert tools.validate("Bash", {"command": "x"}).timeout_s == 120.0  # type: ignore[attr-defined]
    long = tools.validate("Bash", {"command": "x", "timeout": 3_600_000})
    assert long.timeout_s == 600.0  # type: ignore[attr-defined]


async def test_bash_kills_the_whole_process_group_on_timeout(tools: Toolbox, ws: Workspace) -> None:
    started = time.perf_counter()
    result = await tools.call(
        "Bash",
        {"command": "sleep 600 & echo $! > child.pid; echo started; wait", "timeout": 500},
        ctx(ws),
    )
    assert time.perf_counter() - started < 120  # not the child's 600 s: it was not waited for
    assert result.is_error
    assert result.content.startswith(
        "timed out after 0.5s: the command and every process it started were killed"
    )
    assert "started" in result.content
    child = int((ws.root / "child.pid").read_text())
    deadline = time.perf_counter() + 60  # a loaded machine may take a while to reap it
    while _alive(child):
        if time.perf_counter() > deadline:
            pytest.fail("the background child survived the timeout")
        await asyncio.sleep(0.02)


async def test_bash_caps_a_flood_of_output(ws: Workspace) -> None:
    tools = worker_toolbox(["Bash"], max_output_chars=1000)
    started = time.perf_counter()
    result = await tools.call("Bash", {"command": "yes flood", "timeout": 60_000}, ctx(ws))
    assert result.is_error
    assert result.content.startswith(
        "output over 1048576 bytes: the command and every process it started were killed"
    )
    assert time.perf_counter() - started < 30
    assert len(result.content) < 1200
    assert "[... output truncated" in result.content


async def test_bash_stops_a_flood_at_once_not_after_the_stop_grace(ws: Workspace) -> None:
    # asyncio's wait() returned only once the pipe closed, and nobody read it after the
    # flood: the command, blocked writing, was waited for the whole grace.
    tools = Toolbox([Bash(max_output_chars=1000, stop_grace=60)])
    started = time.perf_counter()
    result = await tools.call("Bash", {"command": "yes flood", "timeout": 120_000}, ctx(ws))
    assert result.content.startswith("output over 1048576 bytes")
    assert time.perf_counter() - started < 30


async def test_tools_refuse_a_workspace_deleted_under_them(tools: Toolbox, tmp_path: Path) -> None:
    root = tmp_path / "gone"
    root.mkdir()
    ws = Workspace(root)
    root.rmdir()
    result = await tools.call("Bash", {"command": "true"}, ctx(ws))
    assert result.is_error
    assert "does not exist" in result.content


@pytest.mark.parametrize(
    ("old", "old_input", "new", "new_input"),
    [
        ("read_file", {"path": "src/app.py", "offset": 2}, "Read",
         {"file_path": "src/app.py", "offset": 2}),
        ("list_files", {}, "Glob", {"pattern": "**/*"}),
        ("grep", {"pattern": "hello", "ignore_case": True, "max_results": 2}, "Grep",
         {"pattern": "hello", "output_mode": "content", "-n": True, "-i": True, "head_limit": 2}),
        ("run_command", {"command": "echo hi", "timeout_s": 30}, "Bash",
         {"command": "echo hi", "timeout": 30_000}),
        ("edit_file", {"path": "src/app.py", "old_string": "hello()\n", "new_string": "x\n"},
         "Edit", {"file_path": "src/app.py", "old_string": "hello()\n", "new_string": "x\n"}),
    ],
)  # fmt: skip
async def test_a_former_tool_name_runs_the_tool_that_has_it_now(
    tmp_path: Path, old: str, old_input: dict[str, object], new: str, new_input: dict[str, object]
) -> None:
    """Recordings made before the rename replay: the old call gives the new call's result."""
    results = []
    for name, args in ((old, old_input), (new, new_input)):
        root = tmp_path / name
        root.mkdir()
        (root / "src").mkdir()
        (root / "src" / "app.py").write_text("def hello():\n    return 'hello'\n\nhello()\n")
        result = await worker_toolbox().call(name, args, ctx(Workspace(root)))
        results.append(result.content.replace("(0.00s)", "").split(" (")[0])
    assert results[0] == results[1]
    assert not any(d["name"] == old for d in worker_toolbox().definitions())
    assert worker_toolbox().resolve(old, old_input) == (new, {**new_input})


@pytest.mark.parametrize(
    ("old", "old_input", "names"),
    [
        ("read_file", {"path": "README.md", "file_path": "src/app.py"}, ("path", "file_path")),
        ("write_file", {"path": "a.txt", "file_path": "b.txt", "content": "x"},
         ("path", "file_path")),
        ("edit_file", {"path": "README.md", "file_path": "src/app.py", "old_string": "hello",
                       "new_string": "bye"}, ("path", "file_path")),
        ("grep", {"pattern": "hello", "ignore_case": True, "-i": False}, ("ignore_case", "-i")),
        ("grep", {"pattern": "hello", "max_results": 1, "head_limit": 5},
         ("max_results", "head_limit")),
        ("run_command", {"command": "touch ran", "timeout_s": 1, "timeout": 5000},
         ("timeout_s", "timeout")),
    ],
)  # fmt: skip
async def test_a_former_name_given_with_the_new_one_is_an_input_error_naming_both(
    ws: Workspace, tools: Toolbox, old: str, old_input: dict[str, object], names: tuple[str, str]
) -> None:
    """Neither silently wins: the call fails as bad input does, and changes nothing."""
    before = sorted(p.relative_to(ws.root) for p in ws.root.rglob("*"))
    app = (ws.root / "src" / "app.py").read_text()
    result = await tools.call(old, old_input, ctx(ws))
    assert result.is_error
    assert result.content.startswith("invalid input for ")
    assert all(name in result.content for name in names)
    with pytest.raises(ToolInputInvalid):
        tools.validate(old, old_input)
    assert sorted(p.relative_to(ws.root) for p in ws.root.rglob("*")) == before
    assert (ws.root / "src" / "app.py").read_text() == app
