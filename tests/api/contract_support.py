"""What the contract tests share: a real demo run's log, and checking a response against the document.

`make_demo_log(root)` runs `fleet demo` (the CLI, offline against the
simulator) in a throwaway folder and returns its log. `Contract` holds the
served OpenAPI document and checks each live response against the schema it
documents for that operation, status and media type, noting which operations
were exercised.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from apitest_support import seed
from jsonschema import Draft202012Validator

from events import SQLiteEventStore, export_lines


def make_demo_log(root: Path) -> Path:
    """Run `fleet demo` in `root` (offline, scripted simulator) and return its log's path."""
    fleet = Path(sys.executable).with_name("fleet")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "FLEET_"))}
    db = root / "fleet.db"
    done = subprocess.run(
        [str(fleet), "demo", "--db", str(db), "--workspace", str(root / "repo"), "--quiet"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"fleet demo failed:\n{done.stdout}\n{done.stderr}"
    return db


def copy_log(source: Path, target_dir: Path) -> Path:
    """A copy of the log (and its WAL files, if any) in `target_dir`."""
    for path in source.parent.glob(source.name + "*"):
        shutil.copy2(path, target_dir / path.name)
    return target_dir / source.name


async def foreign_export(root: Path, run_id: str = "elsewhere") -> bytes:
    """The export of a small run from another log (so importing it lands: 201)."""
    async with SQLiteEventStore(root / "other.db") as store:
        await seed(store, run_id=run_id)
        return b"".join([line async for line in await export_lines(store, run_id)])


@dataclass
class Contract:
    """The served document, and the operations a test has checked against it."""

    document: dict[str, Any]
    seen: dict[tuple[str, str], set[int]] = field(default_factory=dict)

    def operations(self) -> set[tuple[str, str]]:
        return {(m.upper(), p) for p, item in self.document["paths"].items() for m in item}

    def documented(self, method: str, template: str, status: int) -> dict[str, Any]:
        operation = self.document["paths"][template][method.lower()]
        response = operation["responses"].get(str(status))
        assert response is not None, (
            f"{method} {template} answered {status}, which the document does not list "
            f"(it lists {sorted(operation['responses'])})"
        )
        return dict(response)

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        # The components travel with the schema, so its `#/components/...` refs resolve.
        return Draft202012Validator({**schema, "components": self.document["components"]})

    def check(self, method: str, template: str, response: httpx.Response) -> Any:
        """Fail unless `response` is what the document says; returns its parsed body."""
        self.seen.setdefault((method, template), set()).add(response.status_code)
        documented = self.documented(method, template, response.status_code)
        for name in documented.get("headers", {}):
            assert name.lower() in response.headers, f"{method} {template}: no {name} header"
        content = documented.get("content")
        if not content:
            assert response.content == b"", f"{method} {template}: a body where none is documented"
            return None
        media = response.headers["content-type"].split(";")[0].strip()
        assert media in content, f"{method} {template}: {media} is not one of {sorted(content)}"
        schema = content[media]["schema"]
        body = response.json() if media.endswith(("/json", "+json")) else response.text
        errors = sorted(self.validator(schema).iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{method} {template} {response.status_code}: " + "; ".join(
            f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]
        )
        return body

    async def check_stream(
        self, client: httpx.AsyncClient, template: str, url: str, count: int
    ) -> list[dict[str, Any]]:
        """Read `count` Server-Sent Events and check each `data` against the documented schema."""
        async with client.stream("GET", url) as response:
            self.seen.setdefault(("GET", template), set()).add(response.status_code)
            documented = self.documented("GET", template, response.status_code)
            event_schema = documented["content"]["text/event-stream"]["schema"]
            data_schema = event_schema["properties"]["data"]["contentSchema"]
            validator = self.validator(data_schema)
            events: list[dict[str, Any]] = []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:])
                    validator.validate(data)
                    events.append(data)
                    if len(events) == count:
                        break
        return events
