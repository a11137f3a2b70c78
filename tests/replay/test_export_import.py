"""Export a recorded run, import it elsewhere: the same run, or a clear refusal, nothing written."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from replay_support import VIEWS, Recording, lines_of, reseal, stream_rows

from events import (
    EventFilter,
    ExportInvalid,
    ImportConflict,
    InvalidEvent,
    Meta,
    NewEvent,
    RunCompleted,
    RunNotFound,
    RunStarted,
    SQLiteEventStore,
    export_run,
    import_run,
    parse_export,
    read_export,
)
from projections import ProjectionRunner


async def _views(store: SQLiteEventStore, at: int | None = None) -> dict[str, Any]:
    async with ProjectionRunner(store) as runner:
        await runner.wait_for(await store.head())
        if at is None:
            return {name: runner.view(name) for name in VIEWS}
        return {name: await runner.view_at(name, at) for name in VIEWS}


def _names(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]


async def _export(store: SQLiteEventStore, run_id: str, path: Path) -> Path:
    await export_run(store, run_id, path)
    return path


async def test_import_into_a_fresh_log_gives_every_projection_equal(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    """Nothing is ignored: the run starts the source log, so it keeps its positions too."""
    exported = await _export(store, recorded_pattern.run_id, tmp_path / "run.jsonl")
    async with SQLiteEventStore(tmp_path / "target.db") as target:
        result = await import_run(target, await read_export(exported))
        assert (result.first_position, result.last_position) == (1, recorded_pattern.events)

        assert await _views(target) == await _views(store)
        middle = recorded_pattern.events // 2
        assert await _views(target, at=middle) == await _views(store, at=middle)


async def test_import_after_other_events_remaps_positions_and_keeps_the_rest(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    """Positions (and causation ids, which are positions) move; versions, data, meta, times stay.

    The views of the run are equal but for the positions the board's history, the
    agent cards and the run's card show, which are the new ones; fleet totals differ only by the
    other run's events.
    """
    run_id = recorded_pattern.run_id
    exported = await _export(store, run_id, tmp_path / "run.jsonl")
    async with SQLiteEventStore(tmp_path / "target.db") as target:
        meta = Meta(run_id="run-other")
        await target.append("run-run-other", [
            NewEvent(RunStarted(run_id="run-other", task="something else"), meta),
            NewEvent(RunCompleted(run_id="run-other", summary="done"), meta),
        ])  # fmt: skip
        shift = await target.head()

        result = await import_run(target, await read_export(exported))

        assert result.first_position == shift + 1
        streams = list(result.streams)
        before, after = await stream_rows(store, streams), await stream_rows(target, streams)
        for rows in before.values():
            for row in rows:
                if row["meta"]["causation_id"] is not None:
                    row["meta"]["causation_id"] += shift
        assert after == before

        source_views, target_views = await _views(store), await _views(target)
    assert target_views["graph"] == source_views["graph"]
    moved = [{**a, "position": a["position"] + shift} for a in source_views["agents"]["agents"]]
    assert target_views["agents"] == {**source_views["agents"], "agents": moved}
    (was,) = source_views["runs"]["runs"]
    moved_run = {**was, "position": was["position"] + shift}
    assert [r for r in target_views["runs"]["runs"] if r["id"] == run_id] == [moved_run]
    columns = target_views["board"]["columns"]
    tasks = [t for c in columns for t in c["tasks"] if t["run_id"] == run_id]
    (old_task,) = [t for c in source_views["board"]["columns"] for t in c["tasks"]]
    assert [h["position"] for h in tasks[0]["history"]] == [
        h["position"] + shift for h in old_task["history"]
    ]
    for move in (*tasks[0]["history"], *old_task["history"]):
        del move["position"]
    assert tasks == [old_task]
    fleet, old_fleet = target_views["fleet"], source_views["fleet"]
    assert fleet["events"]["total"] == old_fleet["events"]["total"] + shift
    assert {k: v for k, v in fleet.items() if k != "events"} == {
        k: v for k, v in old_fleet.items() if k != "events"
    }


async def test_export_holds_every_stream_of_the_run_whole_in_position_order(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    written = await export_run(store, recorded_pattern.run_id, tmp_path / "run.jsonl")

    lines = [json.loads(line) for line in lines_of(written.path)]
    header, events, trailer = lines[0], lines[1:-1], lines[-1]
    assert header["format"] == "fleet-run"
    assert header["run_id"] == recorded_pattern.run_id
    assert [e["position"] for e in events] == list(range(1, recorded_pattern.events + 1))
    assert trailer["events"] == written.events == recorded_pattern.events
    run = recorded_pattern.run_id
    assert {f"run-{run}", f"task-{run}", f"agent-orchestrator-{run.removeprefix('run-')}"} <= set(
        written.streams
    )
    assert sum(1 for s in written.streams if s.startswith("agent-scout-")) == 3
    for stream_id, count in written.streams.items():
        assert count == await store.stream_version(stream_id)


async def test_imported_run_is_found_by_run_filters_and_later_appends_follow_it(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    exported = await _export(store, recorded_pattern.run_id, tmp_path / "run.jsonl")
    async with SQLiteEventStore(tmp_path / "target.db") as target:
        await target.append("run-run-x", [NewEvent(RunStarted(run_id="run-x", task="t"))])
        result = await import_run(target, await read_export(exported))

        found = await target.read_all(where=EventFilter.of(run_id=recorded_pattern.run_id))
        assert len(found) == recorded_pattern.events
        later = await target.append("run-run-x", [NewEvent(RunCompleted(run_id="run-x"))])
        assert later[0].position == result.last_position + 1


def _swap(lines: list[bytes]) -> list[bytes]:
    lines[5], lines[6] = lines[6], lines[5]
    return lines


def _edit(lines: list[bytes]) -> list[bytes]:
    index = next(i for i, line in enumerate(lines) if b'"ToolCallCompleted"' in line)
    lines[index] = lines[index].replace(b'"is_error":false', b'"is_error":true')
    return lines


def _drop_event(lines: list[bytes]) -> list[bytes]:
    del lines[10]
    return lines


BROKEN: dict[str, tuple[Any, str]] = {
    "truncated at a line end": (lambda ls: b"".join(ls[:-1]), "truncated: no trailer"),
    "truncated in a line": (lambda ls: b"".join(ls)[:-500], "ends mid-line: truncated"),
    "events cut, trailer kept": (lambda ls: b"".join(ls[:20] + ls[-1:]), "checksum does not match"),
    "two lines swapped": (lambda ls: b"".join(_swap(ls)), "out of order"),
    "two lines swapped, resealed": (lambda ls: reseal(_swap(ls)), "out of order"),
    "a value edited": (lambda ls: b"".join(_edit(ls)), "checksum does not match"),
    "an event removed, resealed": (lambda ls: reseal(_drop_event(ls)), "was expected"),
    "data of the wrong shape, resealed": (
        lambda ls: reseal([ls[0], ls[1].replace(b'"task":', b'"tusk":'), *ls[2:]]),
        "RunStarted data does not check",
    ),
    "a line after the trailer": (lambda ls: b"".join(ls) + ls[1], "more after the trailer"),
}


@pytest.mark.parametrize("damage", BROKEN, ids=list(BROKEN))
async def test_a_damaged_export_is_refused_and_the_target_untouched(
    damage: str, store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    exported = await _export(store, recorded_pattern.run_id, tmp_path / "run.jsonl")
    broken, reason = BROKEN[damage]
    path = tmp_path / "broken.jsonl"
    path.write_bytes(broken(lines_of(exported)))
    async with SQLiteEventStore(tmp_path / "target.db") as target:
        await target.append("run-run-x", [NewEvent(RunStarted(run_id="run-x", task="t"))])

        with pytest.raises(ExportInvalid, match=reason) as refused:
            await import_run(target, await read_export(path))

        assert refused.value.source == str(path)
        assert await target.head() == 1


NOT_EXPORTS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "empty"),
    "plain text": (b"hello\nworld\n", "not a JSON Lines run export"),
    "plain text, no newline": (b"hello", "not a JSON Lines run export"),
    "binary": (bytes(range(256)) * 4, "not a JSON Lines run export"),
    "a JSON array": (b"[1, 2, 3]\n", "not a JSON object"),
    "JSON Lines of something else": (b'{"a": 1}\n{"b": 2}\n', "not a fleet run export"),
    "a newer format": (b'{"format": "fleet-run", "version": 99, "run_id": "r"}\n', "version 99"),
    "a header only": (b'{"format": "fleet-run", "version": 1, "run_id": "r"}\n', "truncated"),
    "a blank line": (b'{"format": "fleet-run", "version": 1, "run_id": "r"}\n\n', "blank line"),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000 + b"\n", "not a JSON Lines run export"),
}


@pytest.mark.parametrize("name", NOT_EXPORTS, ids=list(NOT_EXPORTS))
def test_a_file_that_is_not_an_export_is_refused_clearly(name: str) -> None:
    data, reason = NOT_EXPORTS[name]
    with pytest.raises(ExportInvalid, match=reason):
        parse_export(data, source="upload")


async def test_import_into_a_log_that_has_the_run_is_refused_and_writes_nothing(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    export = await read_export(await _export(store, recorded_pattern.run_id, tmp_path / "r.jsonl"))
    head = await store.head()

    with pytest.raises(ImportConflict, match="exist in this log already") as refused:
        await import_run(store, export)

    assert set(refused.value.streams) == set(export.streams)
    assert await store.head() == head


async def test_import_is_all_or_nothing_when_one_stream_exists(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    """One existing stream of the run refuses the whole run: no other stream is written."""
    export = await read_export(await _export(store, recorded_pattern.run_id, tmp_path / "r.jsonl"))
    task_stream = f"task-{recorded_pattern.run_id}"
    async with SQLiteEventStore(tmp_path / "target.db") as target:
        await target.append(task_stream, [NewEvent(RunStarted(run_id="run-x", task="t"))])

        with pytest.raises(ImportConflict) as refused:
            await import_run(target, export)

        assert refused.value.streams == (task_stream,)
        assert await target.head() == 1


async def test_export_of_an_unknown_run_is_refused_and_writes_no_file(
    store: SQLiteEventStore, tmp_path: Path
) -> None:
    with pytest.raises(RunNotFound, match="no run 'run-nope'"):
        await export_run(store, "run-nope", tmp_path / "x.jsonl")
    assert not [name for name in _names(tmp_path) if name.startswith("x.jsonl")]


async def test_an_export_into_a_fifo_is_written_through_it_and_leaves_it_a_fifo(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    """Renaming a finished file over the target replaced a FIFO (or, as root, a device
    such as /dev/null) with a plain file: a reader of the pipe waited forever."""
    out = tmp_path / "out"
    out.mkdir()
    pipe = out / "pipe"
    os.mkfifo(pipe)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_bytes()), daemon=True)
    reader.start()
    result = await export_run(store, recorded_pattern.run_id, pipe)
    await asyncio.to_thread(reader.join, 60)
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert _names(out) == ["pipe"]  # no .partial beside it
    assert len(read) == 1 and len(read[0]) == result.bytes
    assert read[0].splitlines()[-1].startswith(b'{"end"')
    (tmp_path / "copy.jsonl").write_bytes(read[0])
    async with SQLiteEventStore(tmp_path / "target.db") as target:
        imported = await import_run(target, await read_export(tmp_path / "copy.jsonl"))
        assert imported.events == recorded_pattern.events


async def test_an_export_into_a_folder_or_through_a_link(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    folder = out / "exports"
    folder.mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="a folder, not a file"):
        await export_run(store, recorded_pattern.run_id, folder)
    assert _names(out) == ["exports"] and not _names(folder)
    # A link is written through: it stays a link, to the new export.
    link = out / "latest.jsonl"
    link.symlink_to(folder / "run.jsonl")
    await export_run(store, recorded_pattern.run_id, link)
    assert link.is_symlink() and _names(folder) == ["run.jsonl"]
    assert (await read_export(link)).run_id == recorded_pattern.run_id


async def test_an_export_written_by_an_older_schema_is_upcast_on_import(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    """A ToolCallCompleted of schema 1 (`output`, `error`) loads as the current schema."""
    lines = lines_of(await _export(store, recorded_pattern.run_id, tmp_path / "run.jsonl"))
    index = next(i for i, line in enumerate(lines) if b'"type":"ToolCallCompleted"' in line)
    event = json.loads(lines[index])
    data = event["data"]
    data["output"], data["error"] = data.pop("result"), data.pop("is_error")
    event["schema"] = 1
    lines[index] = json.dumps(event, separators=(",", ":")).encode() + b"\n"

    export = parse_export(reseal(lines))
    async with SQLiteEventStore(tmp_path / "target.db") as target:
        await import_run(target, export)
        stored = await target.read_all(after=index - 1, limit=1)

    assert stored[0].type == "ToolCallCompleted"
    assert stored[0].data.result == data["output"]  # type: ignore[union-attr]


async def test_a_run_whose_stream_goes_on_outside_it_is_not_exported(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    """An export holds whole streams: an agent commanded later outside the run cannot be cut out."""
    (created,) = await store.read_all(
        where=EventFilter.of(run_id=recorded_pattern.run_id, types=["AgentCreated"]), limit=1
    )
    await store.append(created.stream_id, [NewEvent(RunCompleted(run_id="elsewhere"))])

    with pytest.raises(InvalidEvent, match="cannot be taken out of it whole"):
        await export_run(store, recorded_pattern.run_id, tmp_path / "run.jsonl")
    assert not [name for name in _names(tmp_path) if name.startswith("run.jsonl")]


async def test_each_event_line_is_the_events_api_json_and_its_schema(
    store: SQLiteEventStore, recorded_pattern: Recording, tmp_path: Path
) -> None:
    exported = await _export(store, recorded_pattern.run_id, tmp_path / "run.jsonl")
    lines = [json.loads(line) for line in lines_of(exported)[1:-1]]
    events = await store.read_all()

    assert len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        assert line == {**event.to_json_dict(), "schema": type(event.data).SCHEMA_VERSION}
