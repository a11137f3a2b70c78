"""Opening an aiosqlite connection whose thread is gone when the opening fails.

When `sqlite3.connect` fails (a folder given as the file, a file it may not
open), aiosqlite queues its worker thread's stop and returns the error
without waiting for it. The thread then reports that stop to the event loop
that asked: if the loop has closed meanwhile (a CLI that exits on the error,
a test that ends), the thread dies printing "RuntimeError: Event loop is
closed" on stderr (omnilib/aiosqlite#241, #387: no public join yet). So a
failed opening waits here for the thread to end.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import aiosqlite

__all__ = ["connect"]


async def connect(database: str | Path, **kwargs: Any) -> aiosqlite.Connection:
    """`await aiosqlite.connect(database, **kwargs)`; on failure, its thread has ended."""
    conn = aiosqlite.connect(database, **kwargs)
    try:
        return await conn
    except BaseException:
        thread = getattr(conn, "_thread", None)  # private in aiosqlite 0.22; checked
        if isinstance(thread, threading.Thread) and thread.is_alive():
            # Shielded: a cancelled caller still leaves no thread behind.
            await asyncio.shield(asyncio.to_thread(thread.join))
        raise
