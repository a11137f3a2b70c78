"""Everything a running fleet needs, opened together and closed together.

`open_runtime` builds, in one `AsyncExitStack`: the event store, the projection
runner, the hook dispatcher, the model client (the offline simulator on
loopback when there is no `ANTHROPIC_API_KEY`) and the `Fleet`. The CLI and the
API's lifespan both use it, so a command and the server run the same parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from events import EventStore, open_store
from hooks import HookDispatcher, HooksConfig, load_project_settings, load_settings
from projections import ProjectionRunner

from ._agent_spec import DEFAULT_APPROVAL_TIMEOUT_S, Engine
from ._client import ModelClient
from ._fleet import Budgets, Fleet, FleetConfig
from ._leases import DEFAULT_LEASE_TTL_S
from ._worker import Worker
from ._workspace import keep_out_of_git
from .simulator import Simulator

__all__ = ["Runtime", "RuntimeOptions", "open_runtime"]


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How to open a runtime. Paths may be relative to the current folder."""

    db: Path | str  # a SQLite file, or a URL for `events.open_store` (postgresql://...)
    workspace: Path
    hooks: Path | None = None
    default_model: str = "haiku"
    budgets: Budgets = field(default_factory=Budgets)
    max_live_agents: int = 64
    # Seconds the simulator pauses before each answer (makes a demo watchable).
    simulator_latency_s: float = 0.0
    models_file: Path | None = None
    env: Mapping[str, str] | None = None
    max_retries: int = 2
    # How often the store looks for appends made by other processes.
    store_poll_s: float = 0.2
    # Seconds a tool call on hold waits for a person before it is denied.
    approval_timeout_s: float = DEFAULT_APPROVAL_TIMEOUT_S
    # Seconds an agent asleep in wait_for_agents waits before a Notification says so.
    notify_wait_after_s: float = 300.0
    # What runs an agent created without naming its engine: "fleet" or "claude-code".
    engine: Engine = "fleet"
    # Drive the agents commanded through this process, here (each under its lease).
    # False: commands are only appended (`fleet serve --no-worker`) and workers drive them.
    drive_agents: bool = True
    # Run a `Worker` here: take over agents the log shows working that no live process
    # drives (`fleet worker`).
    worker: bool = False
    # Seconds an agent's lease lasts unless renewed: how soon a dead machine's agents move.
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S


@dataclass(frozen=True, slots=True)
class Runtime:
    """The open parts of a fleet."""

    store: EventStore
    runner: ProjectionRunner
    hooks: HookDispatcher
    client: ModelClient
    fleet: Fleet
    simulator: Simulator | None
    worker: Worker | None = None

    @property
    def simulated(self) -> bool:
        """True when the model is the offline simulator (say so wherever output is shown)."""
        return self.client.simulated


def _hooks_config(options: RuntimeOptions) -> HooksConfig:
    if options.hooks is not None:
        return load_settings(options.hooks)
    return load_project_settings(options.workspace)


def _fleet_folders(options: RuntimeOptions) -> list[Path]:
    """The `.fleet/` folders this runtime writes to: the workspace's, and the log's when it
    is a file in one (`_workspace.py`, note 4)."""
    folders = [options.workspace / ".fleet"]
    db = options.db
    if isinstance(db, Path) or (isinstance(db, str) and "://" not in db and db != "memory:"):
        parent = Path(db).absolute().parent
        if parent.name == ".fleet" and parent != folders[0].absolute():
            folders.append(parent)
    return folders


@contextlib.asynccontextmanager
async def open_runtime(options: RuntimeOptions) -> AsyncIterator[Runtime]:
    """Open store, projections, hooks, model client and fleet; close them all on exit.

    Raises `NotADatabase`, `HookConfigError`, `ModelTableInvalid` before
    anything runs. Agents still working at exit are stopped (they stay in the
    log and can be resumed).
    """
    env = os.environ if options.env is None else options.env
    hooks_config = _hooks_config(options)
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_store(options.db, poll_interval=options.store_poll_s)
        )
        # Once the log opened (a refused one writes nothing): fleet's files stay out of git.
        for folder in _fleet_folders(options):
            await asyncio.to_thread(keep_out_of_git, folder)
        runner = await stack.enter_async_context(ProjectionRunner(store))
        hooks = await stack.enter_async_context(
            HookDispatcher(hooks_config, project_dir=options.workspace)
        )
        simulator: Simulator | None = None
        if not env.get("ANTHROPIC_API_KEY"):
            simulator = await stack.enter_async_context(
                Simulator(latency_s=options.simulator_latency_s)
            )
        client = await stack.enter_async_context(
            ModelClient.from_env(
                simulator_base_url=simulator.base_url if simulator else None,
                env=env,
                models_file=options.models_file,
                max_retries=options.max_retries,
            )
        )
        fleet = await stack.enter_async_context(
            Fleet(
                store=store,
                runner=runner,
                client=client,
                hooks=hooks,
                config=FleetConfig(
                    workspace=options.workspace.resolve(),
                    default_model=options.default_model,
                    max_live_agents=options.max_live_agents,
                    budgets=options.budgets,
                    approval_timeout_s=options.approval_timeout_s,
                    notify_wait_after_s=options.notify_wait_after_s,
                    engine=options.engine,
                    drive_locally=options.drive_agents,
                    lease_ttl_s=options.lease_ttl_s,
                ),
            )
        )
        worker = None
        if options.worker:
            worker = await stack.enter_async_context(
                Worker(fleet, capacity=options.max_live_agents)
            )
        yield Runtime(store, runner, hooks, client, fleet, simulator, worker)
