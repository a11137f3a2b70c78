"""Projection states between runs: their encoding, and snapshots for time travel.

Checkpoints are kept by the log's checkpoint store (`events.CheckpointStore`,
the store's `checkpoints`): `(name, version, position, state)` with the
state as `encode_state` text, state and position written in one
transaction, so after any crash a projection resumes exactly after the last
event its stored state contains: no event is applied twice or skipped.

Snapshots make time travel fast: a compressed copy of a projection's state
at every `spacing`-th position, thinned (every other one dropped, spacing
doubled) when there are more than the limit. A long fold takes them further
apart (`plan`), so a rebuild of a long log does not spend its time copying
states. They are persisted in the log's checkpoint store (note 2), so a
restarted server travels in time from the nearest one instead of from 0.

Notes (do not fix without reading this):
1. Snapshots are pickled (protocol 5) and compressed, not JSON-encoded:
   they never leave fleet's own files, and pickle dumps a state five times
   faster than `json` (marshal, tried, was three times slower than pickle on
   a folded state: its reference table is slow when the state's strings are
   shared, as they are). A log file may come from anyone, and loading a
   pickle may run whatever code it names: snapshots are loaded by an
   unpickler that refuses every global (`_PlainData`), so only plain data
   (dicts, lists, strings, numbers) loads. A blob that does not load
   (corrupt, or naming a class) is a missing snapshot.
   Checkpoints stay JSON text (`encode_state`), written with pydantic-core's
   serializer: four times faster than `json.dumps`, the same JSON.
2. Persistence: `Snapshots` only keeps the books (`changes`: what to write,
   what thinning or a rebuild made obsolete); the runner writes them with its
   checkpoints, and a written blob is dropped from memory (the entry stays,
   with no blob: `best` says where it is, the store has it). A restarted
   runner `restore`s the stored positions. Snapshots are a cache: one lost
   (a failed write, another process thinning) only makes a fold longer.
3. Compression is Zstandard (level 3): on the agents state at 1M events it
   compressed 7x faster than zlib at level 6 and decompressed 2x faster, to
   the same size (`BENCHMARKS.md`). It releases the GIL while it works: a
   fold hands each page's snapshots, pickled, to a thread to compress
   (`compress_all`) and goes on folding (`_folding.py`, note 8). Blobs an
   earlier fleet wrote with zlib still load (told apart by the frame's magic
   number).
4. A long fold from position 0 (the first start on a log, a new projection
   version, a rebuild) takes no snapshots: a snapshot is a copy of the whole
   state, so a fold of N events taking one every `every` costs O(N^2) (half of
   a rebuild's time at a million events). The runner makes them behind it
   instead (`_backfill.py`): `first_gap` says where the snapshots a fold from
   0 would have taken start to be missing, and a background fold from there
   takes them, while the runner already serves.
"""

from __future__ import annotations

import bisect
import io
import json
import pickle
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
import zstandard

__all__ = [
    "SnapshotChanges",
    "SnapshotUnreadable",
    "Snapshots",
    "compress_all",
    "copy_state",
    "decode_state",
    "encode_state",
]


_ZSTD_LEVEL = 3
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# A state's pickle larger than this is not a snapshot of ours (a hostile frame's
# declared size would otherwise be allocated before anything is checked).
_MAX_RAW_BYTES = 4 * 2**30


class SnapshotUnreadable(ValueError):
    """A snapshot blob that does not load: treat it as missing (note 1)."""


class _PlainData(pickle.Unpickler):
    """Loads plain data only: any class or function a pickle names is refused (note 1)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a snapshot holds plain data only, not {module}.{name}")


class _Frames:
    """The pickle's bytes, read by the unpickler a frame (64 KiB) at a time through Python
    methods: between two, the interpreter may switch threads (it never does inside the
    C unpickler), so a large state loading on a thread leaves the event loop its turns."""

    def __init__(self, raw: bytes) -> None:
        self._raw = io.BytesIO(raw)

    def read(self, n: int = -1) -> bytes:
        return self._raw.read(n)

    def readinto(self, buffer: Any) -> int:
        return self._raw.readinto(buffer)

    def readline(self) -> bytes:
        return self._raw.readline()


def encode_state(data: Any) -> str:
    """A dumped state as compact JSON text (note 1)."""
    return pydantic_core.to_json(data).decode()


def copy_state(data: Any) -> Any:
    """A deep copy of a dumped state (plain data), as a snapshot would give it back."""
    return pickle.loads(pickle.dumps(data, protocol=5))  # our own bytes: nothing to refuse


_compressors = threading.local()


def compress(raw: bytes) -> bytes:
    """A pickled state compressed (note 3).

    One compressor a thread (one is not to be shared between threads, and
    the loop and the packing threads all compress), streamed out in small
    chunks: a compressor made per call, and one output buffer the size of
    the input, left the threads' malloc arenas holding tens of MB (peak RSS
    of a 500k rebuild and its snapshots 209 MB, against 166 MB this way).
    """
    compressor = getattr(_compressors, "zstd", None)
    if compressor is None:
        compressor = _compressors.zstd = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    stream = compressor.compressobj(size=len(raw))  # the frame says its size
    return stream.compress(raw) + stream.flush()


def decompress(blob: bytes) -> bytes:
    """The pickled state in `blob`, Zstandard or (written by an earlier fleet) zlib."""
    if not blob.startswith(_ZSTD_MAGIC):
        return zlib.decompress(blob)
    size = zstandard.frame_content_size(blob)
    if not 0 <= size <= _MAX_RAW_BYTES:
        raise ValueError(f"a frame of {size} bytes is not a snapshot")
    return zstandard.ZstdDecompressor().decompress(blob)


def compress_all(
    snapshots: list[tuple[str, int, bytes]],
) -> list[tuple[str, int, bytes]]:
    """`(name, position, pickled state)` with each state compressed, for a thread (note 3)."""
    return [(name, position, compress(raw)) for name, position, raw in snapshots]


def decode_state(text: str | bytes) -> Any:
    """The dumped state back from `encode_state`'s text."""
    return json.loads(text)


@dataclass(slots=True)
class SnapshotChanges:
    """What to persist (note 2): forget every stored snapshot of `cleared` names
    first, then delete `dropped` positions, then write `new` blobs."""

    cleared: set[str] = field(default_factory=set)
    dropped: dict[str, set[int]] = field(default_factory=dict)
    new: dict[str, dict[int, bytes]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.cleared or self.dropped or self.new)


class Snapshots:
    """Compressed states of each projection at evenly spaced positions (in memory
    until persisted, note 2)."""

    def __init__(self, every: int, limit: int) -> None:
        self.every = every
        self.limit = limit
        self._spacing: dict[str, int] = {}
        self._positions: dict[str, list[int]] = {}
        # None: persisted, read it from the checkpoint store.
        self._blobs: dict[str, dict[int, bytes | None]] = {}
        self._changes = SnapshotChanges()

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

    def first_gap(self, name: str, until: int) -> int | None:
        """Where a fold must start to give `name` every snapshot a fold from 0 to `until`
        would take (`plan`): the snapshot before the first one missing, or 0. None when
        none is missing, or snapshots are off (note 4)."""
        spacing = self.plan(name, 0, until)
        if spacing <= 0:
            return None
        have = set(self._positions.get(name, ()))
        for position in range(spacing, until + 1, spacing):
            if position not in have:
                return position - spacing
        return None

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
        self._changes.new.setdefault(name, {})[position] = blob
        self._thin(name)

    def restore(self, name: str, positions: list[int]) -> None:
        """Know of the snapshots of `name` the checkpoint store holds at `positions`."""
        blobs = self._blobs.setdefault(name, {})
        known = self._positions.setdefault(name, [])
        for position in positions:
            if position not in blobs:
                bisect.insort(known, position)
                blobs[position] = None
        self._thin(name)

    def _thin(self, name: str) -> None:
        positions = self._positions[name]
        blobs = self._blobs[name]
        spacing = self.spacing(name)
        while len(positions) > self.limit:
            spacing *= 2
            self._spacing[name] = spacing
            unsaved = self._changes.new.get(name, {})
            for p in [p for p in positions if p % spacing]:
                del blobs[p]
                if unsaved.pop(p, None) is None:
                    self._changes.dropped.setdefault(name, set()).add(p)
            positions[:] = [p for p in positions if p % spacing == 0]

    def unsaved_bytes(self) -> int:
        """Bytes of snapshots taken and not yet handed out by `changes`."""
        return sum(len(b) for blobs in self._changes.new.values() for b in blobs.values())

    def changes(self) -> SnapshotChanges:
        """What to persist since the last call (note 2); the caller writes it."""
        changes, self._changes = self._changes, SnapshotChanges()
        return changes

    def persisted(self, changes: SnapshotChanges) -> None:
        """`changes` were written: drop their blobs from memory (note 2)."""
        for name, new in changes.new.items():
            blobs = self._blobs.get(name, {})
            for position, blob in new.items():
                if blobs.get(position) is blob:
                    blobs[position] = None

    def best(self, name: str, position: int) -> tuple[int, bytes | None] | None:
        """The latest snapshot of `name` at or before `position`, if any; its blob, or
        None when it is in the checkpoint store only."""
        positions = self._positions.get(name)
        if not positions:
            return None
        i = bisect.bisect_right(positions, position)
        if i == 0:
            return None
        found = positions[i - 1]
        return found, self._blobs[name][found]

    def clear(self, name: str) -> None:
        """Forget every snapshot of `name` (its fold changed), stored ones too."""
        self._positions.pop(name, None)
        self._blobs.pop(name, None)
        self._spacing.pop(name, None)
        self._changes.new.pop(name, None)
        self._changes.dropped.pop(name, None)
        self._changes.cleared.add(name)

    def size(self) -> int:
        """Bytes of snapshots held in memory."""
        return sum(len(b) for blobs in self._blobs.values() for b in blobs.values() if b)

    @staticmethod
    def pickled(data: Any) -> bytes:
        """A dumped state as bytes, not compressed yet (`compress_all` does that)."""
        return pickle.dumps(data, protocol=5)

    @staticmethod
    def pack(data: Any) -> bytes:
        """A dumped state compressed for keeping (note 1)."""
        return compress(Snapshots.pickled(data))

    @staticmethod
    def unpack(blob: bytes) -> Any:
        """The dumped state back from `pack`: a new object.

        Raises `SnapshotUnreadable` for a blob that does not load (note 1).
        """
        try:
            return _PlainData(_Frames(decompress(blob))).load()
        except Exception as e:  # any way a foreign or damaged blob fails: a cache miss
            raise SnapshotUnreadable(f"snapshot does not load: {e}") from e
