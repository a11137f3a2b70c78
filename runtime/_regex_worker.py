"""Search blocks of text with Python's `re`, in a process of its own that can be killed.

    python -I -S _regex_worker.py

Started by `_search.py` for a pattern RE2 refuses (backreferences,
look-around), never imported by fleet; standard library only. Protocol on
stdin and stdout, each frame an 8-byte big-endian length and its bytes: the
first frame in is the pattern (UTF-8) after one flag byte ("i" to ignore case,
"-" not to); then each frame in is a block of lines, and its answer is the
indices (0-based, comma-separated, ASCII) of the lines of that block that
match, a line being what lies between two "\\n". EOF on stdin ends it.
"""

from __future__ import annotations

import re
import sys
from typing import IO

_LENGTH = 8


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One frame, or None at the end of the stream."""
    head = stream.read(_LENGTH)
    if len(head) < _LENGTH:
        return None
    size = int.from_bytes(head, "big")
    data = stream.read(size)
    return data if len(data) == size else None


def write_frame(stream: IO[bytes], data: bytes) -> None:
    stream.write(len(data).to_bytes(_LENGTH, "big") + data)
    stream.flush()


def matching_lines(regex: re.Pattern[str], block: bytes) -> list[int]:
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    return [
        i for i, line in enumerate(lines) if regex.search(line.decode("utf-8", errors="replace"))
    ]


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    header = read_frame(stdin)
    if header is None:
        return 2
    flags = re.IGNORECASE if header[:1] == b"i" else 0
    regex = re.compile(header[1:].decode("utf-8"), flags)
    while (block := read_frame(stdin)) is not None:
        write_frame(stdout, ",".join(map(str, matching_lines(regex, block))).encode("ascii"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
