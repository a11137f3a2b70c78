"""The one place where asyncpg's errors become fleet's.

Every statement the backend sends runs inside `translated(...)`, so callers
only ever see `events.errors`: a server that cannot be reached, that went
away or that did not answer in time, a read-only transaction, or a lock held
elsewhere past `lock_timeout` is `StoreUnavailable`, a database that does not
exist is `LogNotFound`, anything else a `StoreError` naming what was being
done. The driver's exception is kept as the `__cause__`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from ..errors import FleetError, LogNotFound, StoreError, StoreUnavailable

__all__ = ["store_error", "translated"]


def store_error(error: BaseException, doing: str, location: str) -> StoreError:
    """The fleet error for a driver error met while `doing` (e.g. "appending to") `location`."""
    if isinstance(error, asyncpg.LockNotAvailableError):
        # The statement was rolled back, and the lock ends (a `LOCK TABLE` left open in
        # psql, a migration, `VACUUM FULL`): an outage to wait out, as a restart is.
        return StoreUnavailable(
            f"{doing} {location} failed: another session held a lock on the log longer "
            f"than lock_timeout ({error})"
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        # Even a writer does not create a database (it needs rights a log's user need not
        # have): say so, not "read-only", which `fleet serve` or `fleet run` are not.
        return LogNotFound(
            location, f"{error}: fleet makes its tables, not the database; create it first"
        )
    if isinstance(error, asyncpg.ReadOnlySQLTransactionError):
        return StoreUnavailable(f"{location} is read-only ({error})")
    if isinstance(error, asyncpg.DiskFullError):
        return StoreUnavailable(f"the disk holding {location} is full ({error})")
    if isinstance(
        error, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return StoreUnavailable(
            f"{doing} {location} failed: the server refused the login ({error})"
        )
    if isinstance(error, asyncpg.ClientConfigurationError):  # an InterfaceError: first
        return StoreError(f"{doing} {location} failed: a setting of the URL is wrong ({error})")
    if isinstance(error, TimeoutError):
        # An OSError, so first: asyncpg's `command_timeout` (or its `timeout` to connect)
        # passed with no answer: a network that drops packets silently, a hung server
        # (`_store.py`, note 7). A statement's effect is then unknown.
        return StoreUnavailable(
            f"{doing} {location} failed: the server did not answer in time "
            f"(command_timeout): the network or the server is down"
        )
    if isinstance(
        error,
        OSError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError,
    ):
        return StoreUnavailable(f"{doing} {location} failed: the server is unreachable ({error})")
    if isinstance(error, asyncpg.InternalClientError):
        # What asyncpg says of a pooled connection the server closed while it sat idle, when
        # it is used before asyncpg has seen the socket close ("cannot switch to state 12;
        # another operation (2) is in progress"): the statement was not sent.
        return StoreUnavailable(f"{doing} {location} failed: the connection was lost ({error})")
    return StoreError(f"{doing} {location} failed: {error}")


@contextmanager
def translated(doing: str, location: str) -> Iterator[None]:
    """Raise the fleet error for any driver error in the block (`raise ... from e`)."""
    try:
        yield
    except FleetError:
        raise
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,  # TimeoutError too
    ) as e:
        raise store_error(e, doing, location) from e
