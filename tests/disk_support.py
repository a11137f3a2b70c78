"""A real full disk for tests: a small tmpfs (the `small_disk` fixture, tests/conftest.py)
filled with a file until the kernel says ENOSPC, then emptied by deleting the file."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def fill(folder: Path) -> Path:
    """Write `folder/filler` until the disk is full; returns it (unlink it to free the disk)."""
    filler = folder / "filler"
    for block in (65536, 512):  # then the last partial block, if it fits
        try:
            with filler.open("ab") as handle:
                while True:
                    handle.write(b"\0" * block)
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    return filler
