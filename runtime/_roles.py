"""Roles: the system prompt and the tool set each kind of agent is given.

"One agent, one task": a role narrows what an agent may do. The system prompt
starts with a `Role: <role>` line, which is also how the offline simulator
knows which scripted policy to play.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ROLES", "RoleSpec", "role_purpose", "role_spec"]

_READ = ("Read", "Glob", "Grep")


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """What a role is for and which worker tools it gets."""

    name: str
    purpose: str
    tools: tuple[str, ...]


ROLES: dict[str, RoleSpec] = {
    spec.name: spec
    for spec in (
        RoleSpec(
            "scout",
            "Search the codebase and report exact files and line numbers. Never change code; "
            "write only your findings file.",
            (*_READ, "Write"),
        ),
        RoleSpec(
            "planner",
            "Read the scouts' findings and the files they name, then write a detailed, "
            "machine-checkable implementation plan. Do not change code.",
            (*_READ, "Write"),
        ),
        RoleSpec(
            "builder",
            "Carry out the plan exactly with precise edits, then run the tests.",
            (*_READ, "Write", "Edit", "Bash"),
        ),
        RoleSpec(
            "reviewer",
            "Check the change against the plan: read the diff, look for anything left undone, run "
            "the tests. End with APPROVED or with CHANGES REQUESTED and the list of what is left.",
            (*_READ, "Bash"),
        ),
        RoleSpec(
            "shipper",
            "Commit the approved change to the repository's git history with a clear message.",
            ("Read", "Bash"),
        ),
    )
}

_GENERIC = RoleSpec(
    "worker",
    "Do the task you are given with the tools you have, then report what you did.",
    (*_READ, "Write", "Edit", "Bash"),
)


def role_spec(role: str) -> RoleSpec:
    """The spec of `role`; an unknown role gets the generic worker's tools and purpose."""
    return ROLES.get(role, RoleSpec(role, _GENERIC.purpose, _GENERIC.tools))


def role_purpose(role: str) -> str:
    """What an agent of `role` is for (added to the runtime's system prompt, which names it)."""
    return role_spec(role).purpose
