"""Slash commands: what a person can type to the orchestrator instead of prose.

    /create-agent NAME "task" [--model M] [--role R]   /command ID "prompt"
    /status [ID]   /output ID   /delete ID   /delete-all-agents
    /interrupt ID  /wait [SECONDS]   /cost   /help

They act on the fleet directly (no model call, no tokens) and their answer is
posted to the conversation like the orchestrator's. An ID is an agent's id or
its name; a name means the newest agent of that name in the conversation's run
(else in the whole log). `parse_command` checks a command before anything is
posted (`ChatCommandInvalid`), `run_command` carries it out.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from events.errors import FleetError

from .errors import AgentNotFound, ChatCommandInvalid

if TYPE_CHECKING:
    from ._fleet import Fleet

__all__ = ["SLASH_COMMANDS", "SlashCommand", "parse_command", "run_command"]

WAIT_DEFAULT_S = 600.0


@dataclass(frozen=True, slots=True)
class SlashCommand:
    """A parsed slash command: its name, positional arguments and options."""

    name: str
    args: tuple[str, ...]
    options: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Spec:
    usage: str
    help: str
    min_args: int
    max_args: int
    options: frozenset[str] = frozenset()


SLASH_COMMANDS: dict[str, _Spec] = {
    "create-agent": _Spec(
        '/create-agent NAME "task" [--model M] [--role R]',
        "create an agent and start it on the task (role from the name: scout-1 is a scout)",
        2, 2, frozenset({"model", "role"}),
    ),
    "command": _Spec('/command ID "prompt"', "give an agent a new prompt", 2, 2),
    "status": _Spec("/status [ID]", "the conversation's agents, or one agent's status", 0, 1),
    "output": _Spec("/output ID", "an agent's summary and files", 1, 1),
    "delete": _Spec("/delete ID", "delete an agent (its events stay in the log)", 1, 1),
    "delete-all-agents": _Spec(
        "/delete-all-agents", "delete every agent of this conversation but the orchestrator", 0, 0
    ),
    "interrupt": _Spec("/interrupt ID", "stop an agent's current turn, keep the agent", 1, 1),
    "wait": _Spec("/wait [SECONDS]", "sleep until the conversation's agents are done", 0, 1),
    "cost": _Spec("/cost", "tokens and cost of this conversation and of the whole log", 0, 0),
    "help": _Spec("/help", "this list", 0, 0),
}  # fmt: skip


def parse_command(text: str) -> SlashCommand:
    """Parse `text` (which starts with "/"). Raises `ChatCommandInvalid`; mutates nothing."""
    try:
        words = shlex.split(text.strip()[1:])
    except ValueError as e:
        raise ChatCommandInvalid(text.split()[0], str(e), "quote arguments with spaces") from None
    name = words[0].lower() if words else ""
    spec = SLASH_COMMANDS.get(name)
    if spec is None:
        known = " ".join(f"/{n}" for n in SLASH_COMMANDS)
        raise ChatCommandInvalid(f"/{name}", "unknown command", known)
    args: list[str] = []
    options: dict[str, str] = {}
    rest = iter(words[1:])
    for word in rest:
        if word.startswith("--") and len(word) > 2:
            key, _, value = word[2:].partition("=")
            if key not in spec.options:
                raise ChatCommandInvalid(f"/{name}", f"unknown option --{key}", spec.usage)
            value = value or next(rest, "")
            if not value:
                raise ChatCommandInvalid(f"/{name}", f"--{key} needs a value", spec.usage)
            options[key] = value
        else:
            args.append(word)
    if not spec.min_args <= len(args) <= spec.max_args:
        raise ChatCommandInvalid(f"/{name}", f"takes {_count(spec)}, got {len(args)}", spec.usage)
    if any(not a.strip() for a in args):
        raise ChatCommandInvalid(f"/{name}", "an argument is empty", spec.usage)
    if name == "wait" and args:
        try:
            seconds = float(args[0])
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= 3600:
            raise ChatCommandInvalid("/wait", "SECONDS must be a number in (0, 3600]", spec.usage)
    return SlashCommand(name, tuple(args), options)


def _count(spec: _Spec) -> str:
    if spec.min_args == spec.max_args:
        return f"{spec.min_args} argument{'s' if spec.min_args != 1 else ''}"
    return f"{spec.min_args} to {spec.max_args} arguments"


_Handler = Callable[["_Context", SlashCommand], Coroutine[Any, Any, str]]


@dataclass(frozen=True, slots=True)
class _Context:
    fleet: Fleet
    run_id: str
    orchestrator_id: str | None
    by: str

    async def resolve(self, ref: str) -> str:
        """An agent's id from its id or name (newest of the name in the run, else in the log)."""
        agents = await self.fleet.list_agents()
        if any(a["id"] == ref for a in agents):
            return ref
        named = [a for a in agents if a["name"] == ref]
        in_run = [a for a in named if a["run_id"] == self.run_id]
        live = [a for a in in_run or named if a["status"] != "deleted"]
        chosen = live or in_run or named
        if not chosen:
            raise AgentNotFound(ref)
        return str(chosen[-1]["id"])

    async def run_agents(self) -> list[dict[str, Any]]:
        return await self.fleet.list_agents(run_id=self.run_id)


async def run_command(
    fleet: Fleet,
    command: SlashCommand,
    *,
    run_id: str,
    orchestrator_id: str | None,
    by: str = "user",
) -> str:
    """Carry out `command` on the fleet; returns the answer to post (errors included)."""
    ctx = _Context(fleet, run_id, orchestrator_id, by)
    try:
        return await _HANDLERS[command.name](ctx, command)
    except FleetError as e:
        return f"/{command.name} failed: {e}"


def _role_of(name: str) -> str:
    from ._roles import ROLES

    base = name.rstrip("0123456789").rstrip("-_.")
    return base if base in ROLES else "worker"


async def _create(ctx: _Context, c: SlashCommand) -> str:
    name, task = c.args
    status = await ctx.fleet.create_agent(
        name=name, role=c.options.get("role") or _role_of(name), task=task,
        model=c.options.get("model"), run_id=ctx.run_id, parent_id=ctx.orchestrator_id,
    )  # fmt: skip
    who = f"{status['name']} ({status['id']}), a {status['role']} on {status['model']}"
    return f"created {who}: {status['status']}"


async def _command(ctx: _Context, c: SlashCommand) -> str:
    agent_id = await ctx.resolve(c.args[0])
    status = await ctx.fleet.command_agent(agent_id, c.args[1], by=ctx.by)
    return f"commanded {agent_id}: {status['status']}"


def _line(a: dict[str, Any]) -> str:
    tokens = a["tokens"] if isinstance(a["tokens"], int) else a["tokens"]["total"]
    return (
        f"{a['name']} ({a['id']}): {a['status']}, {a['role']} on {a['model']}, "
        f"{tokens} tokens, ${a['cost_usd']:.4f}"
        + (f", error: {a['error']}" if a.get("error") else "")
    )


async def _status(ctx: _Context, c: SlashCommand) -> str:
    if c.args:
        return _line(await ctx.fleet.get_agent_status(await ctx.resolve(c.args[0])))
    agents = await ctx.run_agents()
    if not agents:
        return "no agents in this conversation yet"
    return "\n".join(_line(a) for a in agents)


async def _output(ctx: _Context, c: SlashCommand) -> str:
    out = await ctx.fleet.get_agent_output(await ctx.resolve(c.args[0]))
    files = ", ".join(out["files_produced"]) or "none"
    head = f"{out['id']} ({out['status']}); files produced: {files}"
    body = out["summary"] or out["error"] or "(no summary yet)"
    return f"{head}\n{body}"


async def _delete(ctx: _Context, c: SlashCommand) -> str:
    agent_id = await ctx.resolve(c.args[0])
    await ctx.fleet.delete_agent(agent_id, by=ctx.by)
    return f"deleted {agent_id}"


async def _delete_all(ctx: _Context, c: SlashCommand) -> str:
    targets = [
        a["id"]
        for a in await ctx.run_agents()
        if a["status"] != "deleted" and a["id"] != ctx.orchestrator_id and not a["external"]
    ]
    for agent_id in targets:
        await ctx.fleet.delete_agent(agent_id, by=ctx.by)
    return f"deleted {len(targets)} agents" + (f": {', '.join(targets)}" if targets else "")


async def _interrupt(ctx: _Context, c: SlashCommand) -> str:
    agent_id = await ctx.resolve(c.args[0])
    status = await ctx.fleet.interrupt_agent(agent_id, by=ctx.by)
    return f"interrupted {agent_id}: it is {status['status']} and takes a new command"


async def _wait(ctx: _Context, c: SlashCommand) -> str:
    timeout = float(c.args[0]) if c.args else WAIT_DEFAULT_S
    agents = await ctx.run_agents()
    busy = [a["id"] for a in agents if a["status"] in ("working", "waiting")]
    if not busy:
        # Those that ended before the wait was asked for say how (an agent may finish
        # between its command and the /wait that follows it).
        ended = ", ".join(f"{a['id']}: {a['status']}" for a in agents if a["status"] != "deleted")
        return "no agent is working" + (f"; {ended}" if ended else "")
    statuses = await ctx.fleet.wait_all(busy, timeout_s=timeout)
    still = sorted(i for i, s in statuses.items() if s in ("working", "waiting"))
    done = ", ".join(f"{i}: {s}" for i, s in statuses.items())
    return (f"still working after {timeout:g} s: {', '.join(still)}; " if still else "") + done


async def _cost(ctx: _Context, c: SlashCommand) -> str:
    agents = await ctx.run_agents()
    tokens = sum(int(a["tokens"]["total"]) for a in agents)
    cost = sum(float(a["cost_usd"]) for a in agents)
    totals = ctx.fleet.runner.view("fleet")
    return (
        f"this conversation: {len(agents)} agents, {tokens} tokens, ${cost:.4f}; "
        f"the whole log: {totals['tokens']['total']} tokens, ${totals['cost_usd']:.4f}"
    )


async def _help(ctx: _Context, c: SlashCommand) -> str:
    return "\n".join(f"{s.usage}: {s.help}" for s in SLASH_COMMANDS.values())


_HANDLERS: dict[str, _Handler] = {
    "create-agent": _create,
    "command": _command,
    "status": _status,
    "output": _output,
    "delete": _delete,
    "delete-all-agents": _delete_all,
    "interrupt": _interrupt,
    "wait": _wait,
    "cost": _cost,
    "help": _help,
}
