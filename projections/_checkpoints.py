"""Projection states between runs: their encoding, and snapshots for time travel.

Checkpoints are kept by the log's checkpoint store (`events.CheckpointStore`,
the store's `checkpoints`): `(name, version, position, state)` with the
state as `encode_state` text, state and position written in one
transaction, so after any crash a projection resumes exactly after the last
event its stored state contains: no event is applied twice or skipped.

Snapshots make time travel fast: a compressed copy of a projection's state
at every `spacing`-th position, kept in memory and thinned (every other one
dropped, spacing doubled) when there are more than the limit. A long fold
takes them further apart (`plan`), so a rebuild of a long log does not spend
its time copying states. (The checkpoint store can persist snapshots too,
`save_snapshots`/`best_snapshot`; this policy does not use that yet.)

Notes (do not fix without reading this):
1. Snapshots are pickled, not JSON-encoded: they never leave the process,
   and pickle (protocol 5) dumps a state five times faster than `json`.
"""

from __future__ import annotations

import bisect
import json
import pickle
import zlib
from typing import Any

__all__ = ["Snapshots", "decode_state", "encode_state"]


def encode_state(data: Any) -> str:
    """A dumped state as compact JSON text."""
    return json.dumps(data, separators=(",", ":"), check_circular=False)  # states are trees


def decode_state(text: str | bytes) -> Any:
    """The dumped state back from `encode_state`'s text."""
    return json.loads(text)


class Snapshots:
    """Compressed in-memory states of each projection at evenly spaced positions."""

    def __init__(self, every: int, limit: int) -> None:
        self.every = every
        self.limit = limit
        self._spacing: dict[str, int] = {}
        self._positions: dict[str, list[int]] = {}
        self._blobs: dict[str, dict[int, bytes]] = {}

    def spacing(self, name: str) -> int:
        """Positions that are multiples of this get a snapshot of `name` (0: never)."""
        return self._spacing.get(name, self.every)

    def plan(self, name: str, start: int, until: int) -> int:
        """The spacing for a fold of `name` from `start` to `until`: at most limit/2 snapshots."""
        spacing = self.spacing(name)
        if spacing > 0:
            while (until - start) // spacing > max(1, self.limit // 2):
                spacing *= 2
        return spacing

    def add(self, name: str, position: int, blob: bytes) -> None:
        """Keep `blob` (from `pack`) as the state of `name` at `position`."""
        spacing = self.spacing(name)
        if spacing <= 0 or position % spacing:
            return  # taken before a thinning, no longer wanted
        blobs = self._blobs.setdefault(name, {})
        positions = self._positions.setdefault(name, [])
        if position not in blobs:
            bisect.insort(positions, position)
        blobs[position] = blob
        while len(positions) > self.limit:
            spacing *= 2
            self._spacing[name] = spacing
            for p in [p for p in positions if p % spacing]:
                del blobs[p]
            positions[:] = [p for p in positions if p % spacing == 0]

    def best(self, name: str, position: int) -> tuple[int, bytes] | None:
        """The latest snapshot of `name` at or before `position`, if any."""
        positions = self._positions.get(name)
        if not positions:
            return None
        i = bisect.bisect_right(positions, position)
        if i == 0:
            return None
        found = positions[i - 1]
        return found, self._blobs[name][found]

    def clear(self, name: str) -> None:
        """Forget every snapshot of `name` (its fold changed)."""
        self._positions.pop(name, None)
        self._blobs.pop(name, None)
        self._spacing.pop(name, None)

    def size(self) -> int:
        """Bytes held by all snapshots."""
        return sum(len(b) for blobs in self._blobs.values() for b in blobs.values())

    @staticmethod
    def pack(data: Any) -> bytes:
        """A dumped state compressed for keeping (note 1)."""
        return zlib.compress(pickle.dumps(data, protocol=5), 1)

    @staticmethod
    def unpack(blob: bytes) -> Any:
        """The dumped state back from `pack`: a new object."""
        return pickle.loads(zlib.decompress(blob))
