"""`fleet chat --url`: the same conversation, held by a running `fleet serve`.

    $ fleet chat --url http://127.0.0.1:8000 --conversation 3f2a9c0e1b7d

Each line is posted to `POST /v1/orchestrator/messages`; what is shown comes
from the server's SSE stream (`/v1/events/stream`, filtered to the
conversation's run `chat-<id>`), rendered by `_chat.View` as in the local
mode. Slash commands are posted like prose: the server answers them.

Notes (do not fix without reading this):
1. The stream is opened before the first post, and a new stream starts at
   the head as of its request (`api/_sse.py`), so no answer can slip between
   them; a carried-on conversation's stream starts before its first message,
   which shows the conversation so far.
2. A stream the server ends (a slow reader cut off, a restart) is reopened
   with `Last-Event-ID`: no event is lost or shown twice. A server that
   cannot be reached again ends the chat with that error.
3. Errors are one line each (exit 1): the server unreachable, a 401 (the
   token missing or wrong), an unknown conversation, any other problem's
   detail. A line the server refuses (422: a malformed slash command, a text
   too long; 413: a body too large) is no such error: nothing was posted, it
   is said and the chat goes on (`_chat_view.py`, note 1). A line longer than
   a message may be is refused here, unsent: a body past the server's limit
   is answered 413 while it is still being sent, and the connection closed
   under the client reads as a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import datetime
from typing import Any

import httpx

from events import EVENT_TYPES, Meta, RecordedEvent
from hooks import http_url_problem

from ._chat_view import SHOWN, Followed, View, converse

__all__ = ["chat_over_http"]

_RECONNECTS = 5  # in a row without an event in between, before giving up


class ServerError(Exception):
    """What went wrong talking to the server, in one line for the person."""


class LineRefused(Exception):
    """The server refused a line (422, 413) and posted nothing: the server's reason."""


_REFUSED = (413, 422)  # a line the server will not post; the chat goes on (note 3)
MAX_TEXT = 100_000
"""The longest message, `runtime`'s `MAX_TEXT` (not imported here: a test keeps the two equal)."""


async def chat_over_http(args: argparse.Namespace) -> int:
    url = str(args.url).rstrip("/")
    if (problem := http_url_problem(url)) is not None:
        print(f"fleet chat: --url: {problem}", file=sys.stderr)
        return 2
    try:
        refusals = await _chat(args, url)
    except ServerError as e:
        print(f"fleet chat: {e}", file=sys.stderr)
        return 1
    except httpx.TransportError as e:
        print(f"fleet chat: cannot reach {url}: {_reason(e)}", file=sys.stderr)
        return 1
    return 1 if refusals else 0


async def _chat(args: argparse.Namespace, url: str) -> int:
    """Hold the conversation; returns how many lines the server refused."""
    token = args.token or os.environ.get("FLEET_TOKEN") or None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    view = View(as_json=args.json, echo=not sys.stdin.isatty())
    timeout = httpx.Timeout(30.0, connect=10.0)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as http:
        cid: str = args.conversation or uuid.uuid4().hex[:12]
        orchestrator: str | None = None
        after: int | None = None  # None: from the head as the stream opens (note 1)
        if args.conversation is not None:
            got = await http.get(f"/v1/orchestrator/conversations/{cid}")
            if got.status_code == 404:
                raise ServerError(f"no conversation {cid!r} on {url}")
            _check(got, url)
            conversation = got.json()
            orchestrator = conversation["orchestrator_id"]
            after = conversation["messages"][0]["position"] - 1  # the conversation so far
        followed = Followed(cid, orchestrator, view)
        opened = asyncio.Event()
        follower = asyncio.create_task(_follow(http, url, followed, after, opened))
        began = asyncio.ensure_future(opened.wait())
        await asyncio.wait({began, follower}, return_when=asyncio.FIRST_COMPLETED)
        if not began.done():
            began.cancel()
            follower.result()  # its error

        async def post(text: str) -> int:
            if len(text) > MAX_TEXT:  # refused by the server anyway; not sent (note 3)
                raise LineRefused(f"text: longer than {MAX_TEXT} characters")
            body = {"text": text, "conversation_id": cid, "author": view.author}
            posted = await http.post("/v1/orchestrator/messages", json=body)
            if posted.status_code in _REFUSED:
                raise LineRefused(_detail(posted))
            _check(posted, url)
            position: int = posted.json()["position"]
            return position

        return await converse(
            followed, post, follower, carried_on=args.conversation is not None,
            again=f"fleet chat --url {url} --conversation {cid}", refused=(LineRefused,),
        )  # fmt: skip


async def _follow(
    http: httpx.AsyncClient, url: str, followed: Followed, after: int | None, opened: asyncio.Event
) -> None:
    """Feed `followed` from the server's SSE stream, reopened where it ended (note 2)."""
    params: dict[str, Any] = {"run_id": f"chat-{followed.cid}", "type": sorted(SHOWN)}
    last = after
    failures = 0
    while True:
        headers = {} if last is None else {"Last-Event-ID": str(last)}
        try:
            async with http.stream(
                "GET", "/v1/events/stream", params=params, headers=headers,
                timeout=httpx.Timeout(30.0, read=None),
            ) as stream:  # fmt: skip
                if stream.status_code != 200:
                    await stream.aread()
                    _check(stream, url)
                opened.set()
                async for event in _events(stream):
                    failures = 0
                    last = event.position
                    followed.see(event)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            pass  # cut off: reopened below
        except httpx.TransportError:
            if not opened.is_set() or failures >= _RECONNECTS:
                raise
        failures += 1
        if failures > _RECONNECTS:
            raise ServerError(f"{url} keeps ending the event stream")
        await asyncio.sleep(0.5 * failures)


async def _events(stream: httpx.Response) -> Any:
    """The events of an SSE response, as the log holds them (frames: `id:` and `data:`)."""
    data: list[str] = []
    async for line in stream.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            yield _recorded(json.loads("\n".join(data)))
            data = []


def _recorded(wire: dict[str, Any]) -> RecordedEvent:
    """An event from its wire JSON (`RecordedEvent.to_json_dict`), for the shared view."""
    data: Any = EVENT_TYPES[wire["type"]].model_validate(wire["data"])  # one of the catalogue's
    return RecordedEvent(
        wire["position"], wire["stream_id"], wire["version"], data, Meta(**wire["meta"]),
        datetime.fromisoformat(wire["recorded_at"]),
    )  # fmt: skip


def _check(response: httpx.Response, url: str) -> None:
    """Raise `ServerError` in one line unless the response is a success."""
    if response.is_success:
        return
    detail = _detail(response)
    if response.status_code == 401:
        raise ServerError(f"{url} refused the token ({detail}): pass --token or set $FLEET_TOKEN")
    raise ServerError(f"{url} answered {response.status_code}: {detail}")


def _detail(response: httpx.Response) -> str:
    """What the server said went wrong (a problem's `detail`), in one line."""
    try:
        return str(response.json().get("detail") or response.reason_phrase)
    except (ValueError, AttributeError):
        return response.text.strip()[:200] or response.reason_phrase


def _reason(error: httpx.TransportError) -> str:
    return str(error) or type(error).__name__
