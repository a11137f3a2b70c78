"""Safe by default: a foreign Host (DNS rebinding) is 421, a foreign Origin 403, a form body 415.

Over uvicorn on a real socket (that is where `Host` and the bound address
meet), and in process for the routes. The browser's side of it is in
tests/dashboard/test_cross_origin.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from apitest_support import JSON
from pydantic import ValidationError

from api import ApiConfig, Serving, serving
from events import SQLiteEventStore

INGEST = b'{"hook_event_name": "Stop", "session_id": "s1"}'

ROUTES = [
    "/healthz",
    "/v1/events",
    "/v1/events/stream",
    "/v1/agents",
    "/v1/openapi.json",
    "/",
    "/app.js",
    "/no-such-file",
]


async def raw(url: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send `head` (request line and headers, CRLF-separated, no blank line) and `body`."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    try:
        request = head + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode("latin-1") + body)
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
            rest = await reader.read(65536)
        return int(status_line.split()[1]), rest
    finally:
        writer.close()


def hostport(server: Serving) -> str:
    return server.url.removeprefix("http://")


def port(server: Serving) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "host",
    ["attacker.example:{port}", "attacker.example", "127.0.0.1.nip.io:{port}", "[::1]:{port}",
     "127.0.0.2:{port}", "127.0.0.1:1", "localhost:1", "0.0.0.0:{port}"],
)  # fmt: skip
async def test_a_host_that_is_not_the_bound_address_is_421_on_every_route(
    server: Serving, path: str, host: str
) -> None:
    status, body = await raw(
        server.url, f"GET {path} HTTP/1.1\r\nHost: {host.format(port=port(server))}"
    )
    assert status == 421
    assert b"urn:fleet:problem:misdirected-request" in body
    assert b"--allow-host" in body


@pytest.mark.parametrize("path", ROUTES[:-1])
@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost.:{port}", "127.0.0.1", "localhost"]
)
async def test_the_bound_address_and_localhost_are_served(
    server: Serving, path: str, host: str
) -> None:
    head = f"GET {path} HTTP/1.1\r\nHost: {host.format(port=port(server))}"
    if path.endswith("stream"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port(server))
        writer.write(f"{head}\r\n\r\n".encode())
        async with asyncio.timeout(10):
            status = int((await reader.readline()).split()[1])
        writer.close()
    else:
        status, _ = await raw(server.url, head)
    assert status == 200


@pytest.mark.parametrize(
    "host",
    # "\xb2" is "²" read as Latin-1: a digit to str.isdigit, not to int() (it was a 500).
    [
        "",
        "Host: a\r\nHost: 127.0.0.1:{port}",
        "Host: 127.0.0.1:x",
        "Host: 127.0.0.1:\xb2",
        "Host: localhost:1\xb9",
    ],
)
async def test_a_missing_doubled_or_malformed_host_is_400(server: Serving, host: str) -> None:
    header = host.format(port=port(server))
    head = "GET /healthz HTTP/1.0" + (f"\r\n{header}" if header else "")
    status, _ = await raw(server.url, head)
    assert status == 400


async def test_names_allowed_with_allow_hosts_are_served_on_any_port(tmp_path: Path) -> None:
    config = ApiConfig(db=tmp_path / "f.db", runtime=False, allow_hosts=("Fleet.Example",))
    async with serving(config) as server:
        for host in ("fleet.example", "fleet.example:443", "FLEET.EXAMPLE."):
            status, _ = await raw(server.url, f"GET /healthz HTTP/1.1\r\nHost: {host}")
            assert status == 200, host
        status, _ = await raw(server.url, "GET /healthz HTTP/1.1\r\nHost: evil.fleet.example")
        assert status == 421


async def test_an_ipv6_loopback_server_answers_to_its_address_and_localhost(
    tmp_path: Path,
) -> None:
    async with serving(ApiConfig(db=tmp_path / "f.db", runtime=False), host="::1") as server:
        assert server.url.startswith("http://[::1]:")
        p = port(server)
        for host, expected in [
            (f"[::1]:{p}", 200), (f"localhost:{p}", 200), (f"[0:0:0:0:0:0:0:1]:{p}", 200),
            (f"127.0.0.1:{p}", 421), (f"[::2]:{p}", 421), (f"[::1:{p}", 400),
        ]:  # fmt: skip
            status, _ = await raw(server.url, f"GET /healthz HTTP/1.1\r\nHost: {host}")
            assert status == expected, host


@pytest.mark.parametrize(
    "bad", ["fleet.example:80", "http://fleet.example", "*.example", "a b", "", "user@host"]
)
def test_allow_hosts_takes_names_only(bad: str) -> None:
    with pytest.raises(ValidationError):
        ApiConfig(allow_hosts=(bad,))


def test_allow_hosts_from_the_environment() -> None:
    config = ApiConfig.from_env({"FLEET_ALLOW_HOSTS": "fleet.example, [::1] ,"})
    assert config.allow_hosts == ("fleet.example", "[::1]")


# -- Origin -------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}",
     "http://localhost:{port}", "http://127.0.0.1:{port}.evil.example", "file://",
     "http://127.0.0.1:{port}/path"],
)  # fmt: skip
async def test_a_state_changing_request_from_another_origin_is_403_and_writes_nothing(
    server: Serving, origin: str
) -> None:
    head = (
        f"POST /v1/hooks/ingest HTTP/1.1\r\nHost: {hostport(server)}\r\n"
        f"Content-Type: application/json\r\nOrigin: {origin.format(port=port(server))}"
    )
    status, body = await raw(server.url, head, INGEST)
    assert status == 403
    assert b"urn:fleet:problem:cross-origin" in body
    assert server.app.services is not None
    assert await server.app.services.store.head() == 0


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH"])
async def test_every_method_that_may_change_something_checks_the_origin(
    server: Serving, method: str
) -> None:
    head = (
        f"{method} /v1/agents HTTP/1.1\r\nHost: {hostport(server)}\r\n"
        "Content-Type: application/json\r\nOrigin: http://evil.example"
    )
    status, _ = await raw(server.url, head, b"{}")
    assert status == 403


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_without_origin_a_cross_site_fetch_is_403(server: Serving, site: str) -> None:
    head = (
        f"POST /v1/hooks/ingest HTTP/1.1\r\nHost: {hostport(server)}\r\n"
        f"Content-Type: application/json\r\nSec-Fetch-Site: {site}"
    )
    status, _ = await raw(server.url, head, INGEST)
    assert status == 403


@pytest.mark.parametrize(
    ("host", "origin"),
    [("127.0.0.1:{port}", "http://127.0.0.1:{port}"), ("localhost:{port}", "http://localhost:{port}"),
     ("localhost:{port}", "http://LOCALHOST:{port}"), ("127.0.0.1:{port}", None)],
)  # fmt: skip
async def test_the_servers_own_origin_and_clients_without_one_may_post(
    server: Serving, host: str, origin: str | None
) -> None:
    p = port(server)
    head = f"POST /v1/hooks/ingest HTTP/1.1\r\nHost: {host.format(port=p)}\r\nContent-Type: application/json"
    if origin is not None:
        head += f"\r\nOrigin: {origin.format(port=p)}\r\nSec-Fetch-Site: same-origin"
    status, _ = await raw(server.url, head, INGEST)
    assert status == 201


async def test_reads_from_another_origin_get_no_cors_headers(server: Serving) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/v1/events", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)


# -- body types -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", "TEXT/PLAIN"],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/v1/hooks/ingest", "/v1/runs/import", "/v1/agents", "/v1/runs"])
async def test_a_body_a_web_page_may_send_anywhere_is_415_on_every_route(
    client: httpx.AsyncClient, store: SQLiteEventStore, content_type: str, path: str
) -> None:
    response = await client.post(path, content=INGEST, headers={"content-type": content_type})
    assert response.status_code == 415
    assert response.json()["type"] == "urn:fleet:problem:unsupported-media-type"
    assert await store.head() == 0


@pytest.mark.parametrize(
    "content_type", [None, "application/xml", "application/json; charset=latin-1", "json"]
)
async def test_a_json_route_takes_application_json_only(
    client: httpx.AsyncClient, store: SQLiteEventStore, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post("/v1/hooks/ingest", content=INGEST, headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    assert await store.head() == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON; charset=utf-8", 'application/json;charset="UTF-8"'],
)
async def test_application_json_with_or_without_utf8_charset_is_taken(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post(
        "/v1/hooks/ingest", content=INGEST, headers={"content-type": content_type}
    )
    assert response.status_code == 201


async def test_the_json_header_helper_is_what_a_client_sends(client: httpx.AsyncClient) -> None:
    """httpx's `json=` sends application/json; so does the tests' JSON header."""
    sent = await client.post(
        "/v1/hooks/ingest", json={"hook_event_name": "Stop", "session_id": "s2"}
    )
    assert sent.status_code == 201
    assert (await client.post("/v1/hooks/ingest", content=INGEST, headers=JSON)).status_code == 201
