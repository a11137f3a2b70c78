"""A run recorded on SQLite, exported and imported into a PostgreSQL log, folds
into the same read models there: the projections are backend-blind."""

from __future__ import annotations

import uuid

from postgres_support import drop_postgres_schemas, postgres_log_url, postgres_or_skip
from replay_support import Recording

from events import SQLiteEventStore, export_lines, import_run, open_store, parse_export
from projections import ProjectionRunner

VIEWS = ["agents", "fleet", "graph", "board", "runs"]


async def test_a_run_imported_into_postgresql_rebuilds_the_same_views_as_on_sqlite(
    recorded_pattern: Recording,
) -> None:
    postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:16]}_i"
    try:
        async with SQLiteEventStore(recorded_pattern.db, readonly=True) as source:
            lines = b"".join(
                [line async for line in await export_lines(source, recorded_pattern.run_id)]
            )
            async with ProjectionRunner(source) as runner:
                on_sqlite = {name: runner.view(name) for name in VIEWS}
                sqlite_head = await source.head()
        async with open_store(postgres_log_url(schema)) as target:
            result = await import_run(target, parse_export(lines))
            assert (result.first_position, result.last_position) == (1, sqlite_head)
            async with ProjectionRunner(target) as runner:
                await runner.wait_for(result.last_position, timeout=60)
                on_postgres = {name: runner.view(name) for name in VIEWS}
            # Rebuilt from scratch (not from the checkpoints just saved), the same again.
            async with ProjectionRunner(target) as runner:
                await runner.rebuild()
                rebuilt = {name: runner.view(name) for name in VIEWS}
    finally:
        drop_postgres_schemas([schema])

    assert on_postgres == on_sqlite
    assert rebuilt == on_sqlite
