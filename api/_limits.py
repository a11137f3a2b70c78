"""Limits on what a person types that the API and the `fleet` command line both check.

Standard library only (nothing at all): `api.cli` imports it on every start
(`api/cli/__init__.py`, note 1), and `api._models` builds its fields from it, so
`fleet approve --as` refuses what `POST /v1/approvals/{id}` refuses.
"""

ACTOR_MAX_CHARS = 128
"""Who does something (a command's `by`, an approval's `who`, a message's `author`)."""

REASON_MAX_CHARS = 10_000
"""Why a person decided as they did (an approval's `reason`: the agent is told it)."""
