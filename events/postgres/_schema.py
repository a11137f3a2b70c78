"""The PostgreSQL log's location, tables and queries.

A log is one schema of one database, named by a URL:
`postgresql://user@host:port/database?schema=NAME` (`schema` defaults to
`fleet`). The store's own options may be given there too (`STORE_OPTIONS`:
`lock_timeout`, `command_timeout`, `connect_timeout` in seconds, `pool_size`),
since a URL is all `fleet run --db` or `FLEET_DB` can carry; every other
query parameter goes to asyncpg (`sslmode`, or a server setting such as
`statement_timeout`). Several logs can share a database, one per schema.

Notes (do not fix without reading this):
1. `log_head` is one row holding the last position and the last
   `recorded_at`. Every transaction that adds events locks it first
   (`SELECT ... FOR UPDATE`) and moves it in the same transaction, so
   positions are numbered by the writer that holds the lock and commits
   happen in position order. A reader that has seen position n can never
   later find a committed event below n (see the README's "PostgreSQL").
2. `recorded_at` is integer microseconds since the epoch (UTC), as in
   SQLite, so the shared `RowDecoder` reads both backends' rows; it is
   `GREATEST(last, now)` under the lock, so it never goes backwards along
   positions even when the writers' clocks disagree.
3. `data` is `text`, not `jsonb`: the decoder parses the JSON the encoder
   wrote, and jsonb refuses a NUL character in a string (`\\u0000`), which
   a tool's output may hold.
4. Reads filtered by run or agent use partial B-tree indexes on
   `(run_id, position)` and `(agent_id, position)`.
5. The schema is created under a transaction-level advisory lock, so two
   processes opening a new log at once do not race on `CREATE ... IF NOT EXISTS`.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._location import without_password
from .._store import EventFilter
from ..errors import UnsupportedLocation

__all__ = [
    "DEFAULT_SCHEMA",
    "SELECT_COLUMNS",
    "STORE_OPTIONS",
    "Location",
    "Tables",
    "parse_location",
    "select_events",
]

DEFAULT_SCHEMA = "fleet"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# The store's options a URL may carry, and their types. Each would otherwise reach asyncpg
# as a server setting: `connect_timeout` (libpq's, so often written) was refused by the
# server at opening, `lock_timeout` silently replaced by the store's own.
STORE_OPTIONS: dict[str, type[float] | type[int]] = {
    "lock_timeout": float,
    "command_timeout": float,
    "connect_timeout": float,
    "pool_size": int,
}


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed PostgreSQL log URL: what asyncpg connects to, the log's schema, and the
    store's options the URL gives (`STORE_OPTIONS`)."""

    url: str  # as given, for messages
    dsn: str  # without `schema` and the store's options, for asyncpg
    schema: str
    options: dict[str, float | int]
    # How the store's sessions are named in pg_stat_activity: the URL's own
    # `application_name` if it gives one (to tell workers apart), else "fleet".
    application_name: str = "fleet"


def parse_location(url: str) -> Location:
    """Split `url` into asyncpg's DSN and the log's schema.

    Raises `UnsupportedLocation` for a schema name that is not a lowercase
    identifier (it is in the channel's name), or for two of them.
    """
    try:
        parts = urlsplit(url)
    except ValueError as e:  # "Invalid IPv6 URL": a traceback for the user otherwise
        raise UnsupportedLocation(url, f"not a valid URL ({e})") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:  # which log was meant? (the last one was taken, silently)
        raise UnsupportedLocation(url, f"one schema, not {len(schemas)}: {schemas!r}")
    schema = schemas[0] if schemas else DEFAULT_SCHEMA
    options = _store_options(url, [(key, value) for key, value in query if key in STORE_OPTIONS])
    rest = [(key, value) for key, value in query if key != "schema" and key not in STORE_OPTIONS]
    if not _IDENTIFIER.match(schema):
        raise UnsupportedLocation(
            url,
            "schema must be a lowercase identifier (a-z, 0-9, _, not starting with a digit, "
            f"at most 63 characters), got {schema[:80]!r}",
        )
    _check_ports(url, parts.netloc)
    scheme = "postgresql" if parts.scheme.lower() in ("postgresql", "postgres") else parts.scheme
    dsn = urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    names = [value for key, value in rest if key == "application_name"]
    return Location(
        url=without_password(url),
        dsn=dsn,
        schema=schema,
        options=options,
        application_name=names[-1] if names else "fleet",
    )


def _store_options(url: str, given: list[tuple[str, str]]) -> dict[str, float | int]:
    """The store's options in the URL's query, checked: a timeout is a number of seconds
    (0 or more), `pool_size` a whole number (1 or more), each given once."""
    options: dict[str, float | int] = {}
    for key, text in given:
        if key in options:
            raise UnsupportedLocation(url, f"{key} is given twice")
        try:
            value = STORE_OPTIONS[key](text)
        except ValueError:
            value = None
        if key == "pool_size":
            if value is None or value < 1:
                raise UnsupportedLocation(
                    url, f"pool_size must be a whole number from 1, got {text!r}"
                )
        elif value is None or not 0 <= value < float("inf"):
            raise UnsupportedLocation(url, f"{key} must be a number of seconds, got {text!r}")
        elif key == "connect_timeout" and not value:
            raise UnsupportedLocation(url, "connect_timeout must be more than 0 seconds")
        options[key] = value
    return options


def _check_ports(url: str, netloc: str) -> None:
    """Refuse a port that is not a number from 1 to 65535 (asyncpg would raise a bare
    ValueError or OverflowError, a traceback for the user). `host1:5432,host2:5433` is
    a list of hosts to asyncpg, so each is checked."""
    hosts = netloc.rpartition("@")[2]
    for host in hosts.split(","):
        if host.startswith("["):  # [IPv6]:port
            host = host.partition("]")[2]
        port = host.rpartition(":")[2] if ":" in host else ""
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise UnsupportedLocation(url, f"the port must be 1 to 65535, got {port!r}")


class Tables:
    """The statements of one log (one schema), built once per store."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        # Quoted in statements: a lowercase identifier may still be a keyword (`user`, `order`).
        s = self.quoted = f'"{schema}"'
        self.events = f"{s}.events"
        self.head = f"{s}.log_head"
        self.checkpoints = f"{s}.projection_checkpoints"
        self.snapshots = f"{s}.projection_snapshots"
        self.leases = f"{s}.leases"
        # The NOTIFY channel of this log (one per schema); identifiers are at most 63 bytes.
        self.channel = f"fleet_{schema}"[:63]
        # A key for the advisory lock that serialises schema creation (note 5).
        self.ddl_lock = int.from_bytes(
            hashlib.sha256(schema.encode()).digest()[:8], "big", signed=True
        )

    def ddl(self) -> str:
        s = self.quoted
        return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.events (
    position       bigint  PRIMARY KEY,
    stream_id      text    NOT NULL CHECK (stream_id <> ''),
    version        integer NOT NULL CHECK (version > 0),
    type           text    NOT NULL,
    schema_version integer NOT NULL,
    data           text    NOT NULL,
    run_id         text,
    agent_id       text,
    parent_id      text,
    causation_id   bigint,
    correlation_id text,
    source         text    NOT NULL,
    recorded_at    bigint  NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_by_run ON {s}.events (run_id, position)
    WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_agent ON {s}.events (agent_id, position)
    WHERE agent_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.log_head (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    position    bigint  NOT NULL,
    recorded_at bigint  NOT NULL
);
INSERT INTO {s}.log_head (one, position, recorded_at) VALUES (true, 0, 0)
    ON CONFLICT (one) DO NOTHING;
CREATE OR REPLACE FUNCTION {s}.events_are_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'events are immutable'; END $$;
CREATE OR REPLACE TRIGGER events_are_immutable BEFORE UPDATE OR DELETE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.events_are_immutable();
CREATE TABLE IF NOT EXISTS {s}.projection_checkpoints (
    name       text    PRIMARY KEY,
    version    integer NOT NULL,
    position   bigint  NOT NULL,
    state      text    NOT NULL,
    updated_at bigint  NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.projection_snapshots (
    name     text    NOT NULL,
    version  integer NOT NULL,
    position bigint  NOT NULL,
    blob     bytea   NOT NULL,
    PRIMARY KEY (name, version, position)
);
CREATE OR REPLACE FUNCTION {s}.append_group(
    p_streams text[], p_expected bigint[], p_counts integer[], p_types text[],
    p_schemas integer[], p_data text[], p_run text[], p_agent text[], p_parent text[],
    p_cause bigint[], p_corr text[], p_source text[], p_now bigint,
    OUT first_position bigint, OUT actual integer, OUT recorded_at bigint
) RETURNS SETOF record LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_head bigint; v_last bigint; v_now bigint; v_version integer; v_n integer;
    v_versions jsonb := '{{}}'; v_offset integer := 0; v_wrote boolean := false;
BEGIN
    SELECT h.position, h.recorded_at INTO v_head, v_last FROM {s}.log_head h FOR UPDATE;
    v_now := GREATEST(p_now, v_last);
    FOR i IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
        v_n := p_counts[i];
        IF v_versions ? p_streams[i] THEN
            v_version := (v_versions ->> p_streams[i])::integer;
        ELSE
            SELECT COALESCE(MAX(e.version), 0) INTO v_version
                FROM {s}.events e WHERE e.stream_id = p_streams[i];
        END IF;
        actual := v_version;
        recorded_at := v_now;
        IF (p_expected[i] = -2 AND v_version <> 0)
                OR (p_expected[i] >= 0 AND p_expected[i] <> v_version) THEN
            first_position := NULL;
        ELSE
            first_position := v_head + 1;
            INSERT INTO {s}.events (position, stream_id, version, recorded_at, type,
                schema_version, data, run_id, agent_id, parent_id, causation_id,
                correlation_id, source)
            SELECT v_head + u.k, p_streams[i], v_version + u.k, v_now, u.t, u.sv, u.d, u.r,
                u.a, u.p, CASE WHEN u.c < 0 THEN v_head + u.k + u.c ELSE u.c END, u.co, u.so
            FROM unnest(p_types[v_offset + 1 : v_offset + v_n],
                p_schemas[v_offset + 1 : v_offset + v_n], p_data[v_offset + 1 : v_offset + v_n],
                p_run[v_offset + 1 : v_offset + v_n], p_agent[v_offset + 1 : v_offset + v_n],
                p_parent[v_offset + 1 : v_offset + v_n], p_cause[v_offset + 1 : v_offset + v_n],
                p_corr[v_offset + 1 : v_offset + v_n], p_source[v_offset + 1 : v_offset + v_n])
                WITH ORDINALITY AS u(t, sv, d, r, a, p, c, co, so, k);
            v_head := v_head + v_n;
            v_versions := v_versions || jsonb_build_object(p_streams[i], v_version + v_n);
            v_wrote := true;
        END IF;
        v_offset := v_offset + v_n;
        RETURN NEXT;
    END LOOP;
    IF v_wrote THEN
        UPDATE {s}.log_head SET position = v_head, recorded_at = v_now;
        PERFORM pg_notify('{self.channel}', v_head::text);
    END IF;
END $fn$;
CREATE TABLE IF NOT EXISTS {s}.leases (
    key        text             PRIMARY KEY,
    owner      text             NOT NULL,
    expires_at double precision NOT NULL
);
"""

    @functools.cached_property
    def append_group(self) -> str:
        """Call the function that commits a group of appends (`_writer.py`, note 1)."""
        return (
            f"SELECT first_position, actual, recorded_at FROM {self.quoted}.append_group("
            "$1::text[], $2::bigint[], $3::integer[], $4::text[], $5::integer[], $6::text[], "
            "$7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], "
            "$13::bigint)"
        )

    @functools.cached_property
    def insert(self) -> str:
        """Insert rows from one array per column, move the head to $14 (recorded_at $15)
        and notify the channel with the head: one statement, one round trip, whatever
        the number of rows (the NOTIFY is delivered on commit)."""
        return (
            f"WITH inserted AS (INSERT INTO {self.events} (position, stream_id, version, "
            "recorded_at, type, schema_version, data, run_id, agent_id, parent_id, "
            "causation_id, correlation_id, source) SELECT * FROM unnest($1::bigint[], "
            "$2::text[], $3::integer[], $4::bigint[], $5::text[], $6::integer[], $7::text[], "
            "$8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[])), "
            f"moved AS (UPDATE {self.head} SET position = $14, recorded_at = $15) "
            f"SELECT pg_notify('{self.channel}', $14::text)"
        )


SELECT_COLUMNS = (
    "position, stream_id, version, type, schema_version, data, run_id, agent_id, "
    "parent_id, causation_id, correlation_id, source, recorded_at"
)


def select_events(
    events: str,
    after: int,
    until: int | None,
    where: EventFilter | None,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The SELECT of a page of the log, `after < position <= until`, and its parameters."""
    params: list[Any] = [after]
    clauses = ["position > $1"]

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if until is not None:
        clauses.append(f"position <= {bind(until)}")
    if where is not None:
        if where.stream_ids is not None:
            clauses.append(f"stream_id = ANY({bind(sorted(where.stream_ids))}::text[])")
        if where.types is not None:
            clauses.append(f"type = ANY({bind(sorted(where.types))}::text[])")
        if where.run_id is not None:
            clauses.append(f"run_id = {bind(where.run_id)}")
        if where.agent_id is not None:
            clauses.append(f"agent_id = {bind(where.agent_id)}")
    sql = f"SELECT {SELECT_COLUMNS} FROM {events} WHERE {' AND '.join(clauses)} ORDER BY position"
    if limit is not None:
        sql += f" LIMIT {bind(limit)}"
    return sql, params
