"""What a person types that the API and the `fleet` command line both check, and the rules.

Standard library only (nothing at all): `api.cli` imports it on every start
(`api/cli/__init__.py`, note 1). `api._models` builds its fields from it and the
CLI's argparse types call the same checks, so `fleet approve --as` refuses what
`POST /v1/approvals/{id}` refuses.
"""

ACTOR_MAX_CHARS = 128
"""Who does something (a command's `by`, an approval's `who`, a message's `author`)."""

REASON_MAX_CHARS = 10_000
"""Why a person decided as they did (an approval's `reason`: the agent is told it)."""


def actor(value: str) -> str:
    """`value` as who did something: it is recorded and shown, so a blank one ("\\n", "")
    said nobody did it. Raises `ValueError` for a blank or overlong one."""
    if not value.strip():
        raise ValueError("must name someone, not be blank")
    if len(value) > ACTOR_MAX_CHARS:
        raise ValueError(f"{len(value)} characters: a name is at most {ACTOR_MAX_CHARS}")
    return value


def reason(value: str) -> str:
    """`value` as why a person decided so: the agent is told it, so a blank one told it
    nothing. Raises `ValueError` for a blank or overlong one."""
    if not value.strip():
        raise ValueError("must say why, not be blank")
    if len(value) > REASON_MAX_CHARS:
        raise ValueError(f"{len(value)} characters: a reason is at most {REASON_MAX_CHARS}")
    return value
