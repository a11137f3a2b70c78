"""How a log's location is shown: never with its password.

A location may be a URL with a password (`postgresql://user:secret@host/db`)
and it is shown in errors and logs, which reach terminals, files and other
people. `without_password` works on text that is not a valid URL too
(`postgresql://user:secret@[::1` makes `urlsplit` raise), because the errors
about such a URL are the ones that show it.
"""

from __future__ import annotations

__all__ = ["without_password"]


def without_password(location: str) -> str:
    """`location` with the password of its user part, if any, as `***`."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return location
    # The authority ends at the first /, ? or # (as urlsplit splits it).
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    userinfo, at, hosts = rest[:end].rpartition("@")
    if not at or ":" not in userinfo:
        return location
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{hosts}{rest[end:]}"
