"""Document and server agree, on a real demo run's log (`fleet demo`, offline).

Two checks, each over every route of a server on loopback (uvicorn):

- every live response (each status and media type) validates against the
  schema the OpenAPI document gives for it (JSON Schema 2020-12);
- a typed Python client generated from the served document (with
  openapi-python-client, into a temporary folder, never committed) calls every
  route, parses every answer into its models, and gives back the same JSON.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from contract_support import Contract, copy_log, foreign_export, make_demo_log

from api import ApiConfig, Serving, serving
from events import ANY, AgentCommanded, ApprovalRequested, Meta, NewEvent, SQLiteEventStore
from runtime import prepare_workspace

OTLP_FIXTURES = Path(__file__).parents[1] / "hooks" / "fixtures" / "otlp-claude-code-2.1.197"
TASK = "rename `count_words` to `word_count` everywhere"


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log of one real `fleet demo` run (scout-plan-build on the sample repository)."""
    return make_demo_log(tmp_path_factory.mktemp("demo"))


@pytest.fixture
async def demo(demo_log: Path, tmp_path: Path) -> AsyncIterator[Serving]:
    """A server with the runtime (agents can be commanded) on a copy of the demo's log."""
    db = copy_log(demo_log, tmp_path)
    workspace = await prepare_workspace(tmp_path / "repo")
    config = ApiConfig(db=db, workspace=workspace, store_poll_s=0.05, sse_ping_s=0.5)
    async with serving(config) as running:
        yield running


async def _ids(http: httpx.AsyncClient) -> tuple[str, str, int]:
    """The demo's run id, one of its agents, and a position in the middle of the log."""
    runs = (await http.get("/v1/runs")).json()["runs"]
    agents = (await http.get("/v1/agents")).json()["agents"]
    head = (await http.get("/healthz")).json()["head"]
    assert runs and agents, "the demo left no run or no agent in the log"
    return runs[0]["id"], agents[1]["id"], head // 2


async def hold_a_call(db: Path, agent_id: str, approval_id: str) -> str:
    """Put a call of `agent_id` on hold for approval, as its agent would (another store)."""
    async with SQLiteEventStore(db) as store:
        request = ApprovalRequested(
            approval_id=approval_id, agent_id=agent_id, tool_use_id=f"tu-{approval_id}",
            tool_name="Bash", tool_input={"command": "rm -rf build"}, timeout_s=600,
        )  # fmt: skip
        meta = Meta(agent_id=agent_id)
        await store.append(f"agent-{agent_id}", [NewEvent(request, meta)], expected_version=ANY)
    return approval_id


async def command_behind_its_back(db: Path, agent_id: str) -> None:
    """Make the log say `agent_id` works, as a process that died while driving it would."""
    async with SQLiteEventStore(db) as store:
        command = AgentCommanded(agent_id=agent_id, prompt="look around")
        meta = Meta(agent_id=agent_id)
        await store.append(f"agent-{agent_id}", [NewEvent(command, meta)], expected_version=ANY)


async def test_every_live_response_validates_against_its_documented_schema(
    demo: Serving, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=demo.url, timeout=30) as http:
        contract = Contract((await http.get("/v1/openapi.json")).json())
        run_id, agent_id, middle = await _ids(http)
        head = (await http.get("/healthz")).json()["head"]

        async def get(template: str, url: str | None = None, **kwargs: Any) -> Any:
            return contract.check("GET", template, await http.get(url or template, **kwargs))

        await get("/healthz")
        await get("/v1/openapi.json")
        await get("/v1/events", params={"limit": 5})
        await get("/v1/events", params={"run_id": run_id, "type": "ModelResponded", "limit": 3})
        agents = await get("/v1/agents")
        assert agents["count"] >= 4
        await get("/v1/agents", params={"run_id": run_id, "status": "deleted", "limit": 2})
        for card in agents["agents"]:
            await get("/v1/agents/{agent_id}", f"/v1/agents/{card['id']}")
        await get("/v1/agents/{agent_id}", f"/v1/agents/{agent_id}?at={middle}")
        for name in ("fleet", "graph", "board"):
            for params in ({}, {"run_id": run_id}, {"at": middle}):
                await get(f"/v1/{name}", params=params)
        await get("/v1/graph", params={"role": "scout", "status": "deleted"})
        await get("/v1/runs", params={"limit": 1})
        run = await get("/v1/runs/{run_id}", f"/v1/runs/{run_id}")
        assert run["agent_count"] >= 4
        timeline = await get("/v1/runs/{run_id}/timeline", f"/v1/runs/{run_id}/timeline")
        assert timeline["entries"]
        await get("/v1/runs/{run_id}/timeline", f"/v1/runs/{run_id}/timeline?limit=5")
        await get("/v1/runs/{run_id}/export", f"/v1/runs/{run_id}/export")
        etag = (await http.get("/v1/fleet")).headers["etag"]
        await get("/v1/fleet", headers={"If-None-Match": etag})  # 304
        # Errors are problems, as documented.
        await get("/v1/agents/{agent_id}", "/v1/agents/nobody")
        await get("/v1/runs/{run_id}", "/v1/runs/nowhere")
        await get("/v1/runs/{run_id}/timeline", "/v1/runs/nowhere/timeline")
        await get("/v1/board", "/v1/board?status=working")
        await get("/v1/fleet", "/v1/fleet?min_position=1&wait=99")

        async def send(method: str, template: str, url: str | None = None, **kw: Any) -> Any:
            return contract.check(
                method, template, await http.request(method, url or template, **kw)
            )

        ingest = {"hook_event_name": "SessionStart", "session_id": "contract-1", "cwd": "/tmp"}
        await send("POST", "/v1/hooks/ingest", json=ingest)
        export = await foreign_export(tmp_path)
        ndjson = {"Content-Type": "application/x-ndjson"}
        await send("POST", "/v1/runs/import", content=export, headers=ndjson)
        await send("POST", "/v1/runs/import", content=export, headers=ndjson)  # 409: there already
        created = await send("POST", "/v1/agents", json={"name": "probe", "role": "scout"})
        probe = f"/v1/agents/{created['id']}"
        await send("GET", "/v1/agents/{agent_id}/status", probe + "/status")
        await send("GET", "/v1/agents/{agent_id}/output", probe + "/output")
        await send("POST", "/v1/agents/{agent_id}/commands", probe + "/commands",
                   json={"prompt": "look around"})  # fmt: skip
        await send("DELETE", "/v1/agents/{agent_id}", probe)
        await send("DELETE", "/v1/agents/{agent_id}", probe)  # 409: deleted already
        await send("DELETE", "/v1/agents", params={"run_id": "nowhere"})
        # The orchestrator's conversation, and an interrupted turn.
        said = await send("POST", "/v1/orchestrator/messages", json={"text": "/status"})
        await send("POST", "/v1/orchestrator/messages", json={"text": "/nope"})  # 422
        conversation = f"/v1/orchestrator/conversations/{said['conversation_id']}"
        await send("GET", "/v1/orchestrator/conversations/{conversation_id}", conversation)
        await send("GET", "/v1/orchestrator/conversations/{conversation_id}",
                   "/v1/orchestrator/conversations/nope")  # fmt: skip
        idle = await send("POST", "/v1/agents", json={"name": "idle", "role": "scout"})
        await send("POST", "/v1/agents/{agent_id}/interrupt", f"/v1/agents/{idle['id']}/interrupt")
        await command_behind_its_back(demo.app.config.db, idle["id"])
        await send("POST", "/v1/agents/{agent_id}/interrupt", f"/v1/agents/{idle['id']}/interrupt")
        await send("POST", "/v1/runs", json={"task": TASK})  # 422: no workspace named
        await send("POST", "/v1/runs", json={"task": TASK, "workspace": str(tmp_path / "nope")})
        await send(
            "POST", "/v1/runs", json={"task": TASK, "workspace": str(demo.app.config.workspace)}
        )
        # Claude Code's own telemetry (JSON bodies recorded from the real binary), and /metrics.
        for signal in ("logs", "traces", "metrics"):
            body = next((OTLP_FIXTURES / "json").glob(f"*-{signal}.json")).read_bytes()
            await send("POST", f"/v1/otlp/v1/{signal}", content=body,
                       headers={"Content-Type": "application/json"})  # fmt: skip
        await send("GET", "/metrics")
        # A call on hold, answered over HTTP (once: a second answer is a 409).
        held = await hold_a_call(demo.app.config.db, agent_id, "apr_contract")
        one = f"/v1/approvals/{held}"
        await get("/v1/approvals")
        await get("/v1/approvals", params={"status": "all", "agent_id": agent_id})
        await get("/v1/approvals/{approval_id}", one)
        await get("/v1/approvals/{approval_id}", "/v1/approvals/apr_nope")
        await send("POST", "/v1/approvals/{approval_id}", one, json={"decision": "maybe"})
        await send("POST", "/v1/approvals/{approval_id}", one,
                   json={"decision": "allow", "reason": "fine", "who": "contract"})  # fmt: skip
        await send("POST", "/v1/approvals/{approval_id}", one, json={"decision": "deny"})
        # The live stream, from where the server started: what the calls above appended.
        # (From position 0 it sends nothing of a log written before the server started:
        # see the report on api/_broadcast.py.)
        stream = f"/v1/events/stream?from={head}"
        events = await contract.check_stream(http, "/v1/events/stream", stream, 5)
        assert [e["position"] for e in events] == list(range(head + 1, head + 6))

    assert set(contract.seen) == contract.operations(), "routes the test did not call"
    for (method, template), statuses in contract.seen.items():
        assert any(s < 300 for s in statuses), f"{method} {template} never succeeded"


# -- the generated client -------------------------------------------------------

GENERATOR_CONFIG = """\
post_hooks: []
content_type_overrides:
  application/x-ndjson: application/octet-stream
"""


def _generate(document: dict[str, Any], root: Path) -> Path:
    """Generate the client package `fleet_client` under `root` with openapi-python-client."""
    (root / "openapi.json").write_text(json.dumps(document))
    (root / "generator.yaml").write_text(GENERATOR_CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(root / "openapi.json"), "--meta", "none",
         "--output-path", str(root / "fleet_client"), "--config", str(root / "generator.yaml"),
         "--fail-on-warning"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"the generator refused the document:\n{done.stdout}{done.stderr}"
    return root / "fleet_client"


@pytest.fixture
def generated(tmp_path: Path) -> Any:
    """A factory: generate the client from a document and import it (unloaded afterwards)."""
    root = tmp_path / "client"
    root.mkdir()

    def load(document: dict[str, Any]) -> Any:
        _generate(document, root)
        sys.path.insert(0, str(root))
        importlib.invalidate_caches()
        return importlib.import_module("fleet_client")

    yield load
    if str(root) in sys.path:
        sys.path.remove(str(root))
    for name in [n for n in sys.modules if n == "fleet_client" or n.startswith("fleet_client.")]:
        del sys.modules[name]


class Calls:
    """Calls generated endpoint functions, checking each answer against the server's JSON."""

    def __init__(self, package: Any, client: Any) -> None:
        self.package = package
        self.client = client
        self.called: set[str] = set()

    def endpoints(self) -> set[str]:
        api = importlib.import_module("fleet_client.api")
        found = set()
        for tag in pkgutil.iter_modules(api.__path__):
            module = importlib.import_module(f"fleet_client.api.{tag.name}")
            found |= {m.name for m in pkgutil.iter_modules(module.__path__)}
        return found

    async def __call__(self, tag: str, name: str, status: int, model: str | None, **kw: Any) -> Any:
        module = importlib.import_module(f"fleet_client.api.{tag}.{name}")
        self.called.add(name)
        response = await module.asyncio_detailed(client=self.client, **kw)
        assert response.status_code == status, (name, response.status_code, response.content)
        if model is None:
            return response.parsed
        expected = getattr(importlib.import_module("fleet_client.models"), model)
        assert isinstance(response.parsed, expected), (name, type(response.parsed))
        # Nothing dropped, nothing unknown: the parsed models give back the server's JSON.
        assert response.parsed.to_dict() == json.loads(response.content), name
        assert not getattr(response.parsed, "additional_properties", None), name
        return response.parsed


async def test_a_client_generated_from_the_document_calls_every_route(
    demo: Serving, tmp_path: Path, generated: Any
) -> None:
    async with httpx.AsyncClient(base_url=demo.url, timeout=30) as http:
        document = (await http.get("/v1/openapi.json")).json()
        run_id, agent_id, middle = await _ids(http)
    package = await asyncio.to_thread(generated, document)
    models = importlib.import_module("fleet_client.models")
    types = importlib.import_module("fleet_client.types")
    async with package.Client(base_url=demo.url, raise_on_unexpected_status=True,
                              timeout=httpx.Timeout(30)) as client:  # fmt: skip
        call = Calls(package, client)
        await call("server", "get_healthz", 200, "Health")
        await call("server", "get_v1_openapi_json", 200, None)
        await call("events", "get_v1_events", 200, "EventPage", run_id=run_id, limit=10)
        page = await call("agents", "get_v1_agents", 200, "AgentPage", run_id=run_id, limit=3)
        assert page.next_ is not None
        await call("agents", "get_v1_agents", 200, "AgentPage", after=page.next_)
        await call("agents", "get_v1_agents_agent_id", 200, "AgentCard", agent_id=agent_id,
                   at=middle)  # fmt: skip
        fleet = await call("views", "get_v1_fleet", 200, "FleetTotals", run_id=run_id)
        assert fleet.agents.total >= 4
        graph = await call("views", "get_v1_graph", 200, "Graph", run_id=run_id)
        assert {type(edge).__name__ for edge in graph.edges} >= {"CreatedEdge", "WaitsOnEdge"}
        board = await call("views", "get_v1_board", 200, "Board", run_id=run_id)
        assert board.count >= 1
        etag = (await client.get_async_httpx_client().get("/v1/board")).headers["etag"]
        await call("views", "get_v1_board", 304, None, if_none_match=etag)
        await call("runs", "get_v1_runs", 200, "RunPage")
        await call("runs", "get_v1_runs_run_id", 200, "RunCard", run_id=run_id)
        timeline = await call("replay", "get_v1_runs_run_id_timeline", 200, "Timeline",
                              run_id=run_id, limit=5)  # fmt: skip
        assert timeline.next_ is not None
        export = await call("replay", "get_v1_runs_run_id_export", 200, None, run_id=run_id)
        assert isinstance(export, bytes) and export.startswith(b"{")  # the JSON Lines header
        imported = await call("replay", "post_v1_runs_import", 201, "ImportedRun",
                              body=types.File(payload=await foreign_export(tmp_path)))  # fmt: skip
        assert imported.run_id == "elsewhere"
        ingest = models.PostV1HooksIngestBody.from_dict(
            {"hook_event_name": "SessionStart", "session_id": "client-1"}
        )
        await call("hooks", "post_v1_hooks_ingest", 201, "IngestAccepted", body=ingest)
        created = await call("agents", "post_v1_agents", 201, "AgentStatus",
                             body=models.CreateAgent(name="probe", role="scout"))  # fmt: skip
        await call("agents", "get_v1_agents_agent_id_status", 200, "AgentStatus",
                   agent_id=created.id)  # fmt: skip
        await call("agents", "get_v1_agents_agent_id_output", 200, "AgentOutput",
                   agent_id=created.id)  # fmt: skip
        await call("agents", "post_v1_agents_agent_id_commands", 202, "AgentStatus",
                   agent_id=created.id, body=models.CommandAgent(prompt="look around"))  # fmt: skip
        await call("agents", "delete_v1_agents_agent_id", 204, None, agent_id=created.id)
        await call("agents", "delete_v1_agents", 200, "Deleted", run_id="nowhere")
        said = await call("orchestrator", "post_v1_orchestrator_messages", 202, "MessageAccepted",
                          body=models.PostMessage(text="/cost"))  # fmt: skip
        await call("orchestrator", "get_v1_orchestrator_conversations_conversation_id", 200,
                   "ConversationView", conversation_id=said.conversation_id)  # fmt: skip
        idle = await call("agents", "post_v1_agents", 201, "AgentStatus",
                          body=models.CreateAgent(name="idle", role="scout"))  # fmt: skip
        await command_behind_its_back(demo.app.config.db, idle.id)
        stopped = await call("orchestrator", "post_v1_agents_agent_id_interrupt", 200,
                             "AgentStatus", agent_id=idle.id)  # fmt: skip
        assert stopped.status == "failed"
        start = models.StartRun(task=TASK, workspace=str(demo.app.config.workspace))
        await call("runs", "post_v1_runs", 202, "RunAccepted", body=start)
        for signal, model in (("logs", "PostV1OtlpV1LogsResponse200"),
                              ("traces", "PostV1OtlpV1TracesResponse200"),
                              ("metrics", "PostV1OtlpV1MetricsResponse200")):  # fmt: skip
            body = json.loads(next((OTLP_FIXTURES / "json").glob(f"*-{signal}.json")).read_text())
            await call("hooks", f"post_v1_otlp_v1_{signal}", 200, model, body=body)
        metrics = await call("server", "get_metrics", 200, None)
        assert "fleet_events_appended" in str(metrics)
        held = await hold_a_call(demo.app.config.db, agent_id, "apr_client")
        pending = await call("approvals", "get_v1_approvals", 200, "Approvals")
        assert [a.id for a in pending.approvals] == [held]
        await call("approvals", "get_v1_approvals_approval_id", 200, "Approval", approval_id=held)
        decided = await call("approvals", "post_v1_approvals_approval_id", 200, "Decided",
                             approval_id=held,
                             body=models.Decide.from_dict({"decision": "deny", "who": "client"}))  # fmt: skip
        assert decided.by == "client"
        # The stream never ends: the generated module builds the request, httpx streams it.
        stream_module = importlib.import_module("fleet_client.api.events.get_v1_events_stream")
        request = stream_module._get_kwargs(from_=0)
        async with client.get_async_httpx_client().stream(**request) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            call.called.add("get_v1_events_stream")
    assert call.called == call.endpoints()
