"""Whether an external session (a Claude Code process) still runs: judged now, never logged.

A Claude Code session that is killed (SIGKILL, a hard-closed terminal, a
machine losing power) sends no Stop or SessionEnd hook: the log keeps it
"working" for ever. The log cannot tell that session from one at work, so
the API and the CLI judge it when they answer a view now (as they answer a
run nobody conducts "interrupted"); a view at a past position is the log's.

- `fleet hook-forward` says which process it forwards for
  (`X-Fleet-Process`, `PROCESS_HEADER`): Claude Code's pid (`CLAUDE_PID`,
  which Claude Code gives every hook command), that process's start time,
  and the host's machine id, boot id and pid namespace. The server keeps
  it only from a loopback peer (`parse_process_header`): a poster on
  another machine cannot name a process of this one.
- An external agent whose process is on this host, boot and pid namespace
  and no longer runs (no such pid, or a pid reused by a later process: the
  start time differs) is "interrupted"; its host rebooted since: also.
- Otherwise (an http hook, another host, a system without /proc) only time
  can speak: a "working" external agent with no hook for `stale_after`
  seconds is "stale". A long tool call (a 40-minute test suite) sends no
  hook either: "stale" says nobody heard from it, not that it died. Waiting
  and created sessions are not judged by time (a session at its prompt is
  idle, not gone).
- The next hook of the session (a resumed one) is in the log: it works again.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

__all__ = [
    "DEFAULT_STALE_AFTER_S",
    "PROCESS_HEADER",
    "Host",
    "is_loopback_peer",
    "judge_liveness",
    "judged_card",
    "parse_process_header",
    "process_start",
    "this_host",
]

PROCESS_HEADER = "X-Fleet-Process"
"""The header in which `fleet hook-forward` names the session's process."""

DEFAULT_STALE_AFTER_S = 30 * 60.0
"""A working external agent with no hook for this long (and no process to look at) is stale."""

_JUDGED = frozenset({"created", "working", "waiting"})
_FIELDS = {"pid": int, "start": int, "boot_id": str, "machine_id": str, "pid_ns": str}


@dataclass(frozen=True, slots=True)
class Host:
    """This machine, its current boot and this process's pid namespace."""

    machine_id: str
    boot_id: str
    pid_ns: str


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip() or None
    except (OSError, ValueError):
        return None


@cache
def this_host() -> Host | None:
    """This host as `fleet hook-forward` names it, or None without /proc (not Linux)."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    machine = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    if boot is None or machine is None:
        return None
    return Host(machine, boot, pid_ns)


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot), or None if there is none."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    try:  # the name (field 2) may hold spaces and parentheses: count from the last ")"
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def is_loopback_peer(peer: str | None) -> bool:
    """Whether a request's peer address is this host's loopback (an IPv4-mapped one too):
    a poster that can name this host's processes and files."""
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def parse_process_header(value: str | None, peer: str | None) -> dict[str, Any] | None:
    """The process `value` (`pid=1;start=2;boot_id=...;machine_id=...;pid_ns=...`) names,
    or None when it is missing, malformed, or not from a loopback `peer`. Never raises."""
    if not value or not is_loopback_peer(peer) or len(value) > 400:
        return None
    parts = dict(p.strip().partition("=")[::2] for p in value.split(";") if "=" in p)
    out: dict[str, Any] = {}
    for name, kind in _FIELDS.items():
        text = parts.get(name, "")
        if kind is int:
            if not text.isdigit() or len(text) > 19:
                return None
            out[name] = int(text)
        elif not text or len(text) > 64:
            return None
        else:
            out[name] = text
    return out if out["pid"] > 0 else None


def judge_liveness(
    card: Mapping[str, Any],
    *,
    now: float,
    stale_after: float,
    host: Host | None,
    cut: frozenset[str] = frozenset(),
) -> str | None:
    """The status an agent's card has now when it is no longer what the log says:
    "interrupted" (an external session's process is gone, or one of fleet's agents is in
    `cut`, the agents of the runs cut short: `cut_short`) or "stale" (an external session
    with no hook for `stale_after` seconds, and no process to look at); None when the
    card's own status stands.

    `card` is an agent card (`AgentsProjection.record_view`); it is not mutated.
    """
    if card["status"] not in _JUDGED:
        return None
    if not card["external"]:
        return "interrupted" if card["id"] in cut else None
    process = card.get("process")
    if process is not None and host is not None and process["machine_id"] == host.machine_id:
        if process["boot_id"] != host.boot_id:
            return "interrupted"  # the machine restarted since
        if process["pid_ns"] == host.pid_ns:
            alive = process_start(process["pid"]) == process["start"]
            return None if alive else "interrupted"
    if card["status"] != "working":
        return None
    last = card["last_activity_at"]
    seen = datetime.fromisoformat(last).timestamp() if isinstance(last, str) else float(last)
    return "stale" if now - seen > stale_after else None


def judged_card(card: dict[str, Any], status: str | None) -> dict[str, Any]:
    """`card` as answered now, `status` being what `judge_liveness` said of it: itself when
    None, else a copy in that status. An interrupted agent's last tool call, "running" in
    the log, is "interrupted" too: its process stopped before the call ended (a resumed
    run records how it was settled, `ToolCallInterrupted`). `card` is not mutated."""
    if status is None:
        return card
    judged = {**card, "status": status}
    calls = card.get("tool_calls") or {}
    last = calls.get("last")
    if status == "interrupted" and last is not None and last["status"] == "running":
        judged["tool_calls"] = {**calls, "last": {**last, "status": "interrupted"}}
    return judged
