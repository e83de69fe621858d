"""The incarnation file: a number that grows with every life of a node.

``DIR/incarnation`` holds one decimal integer and a newline, replaced
atomically (temp file, fsync, rename, directory fsync). Each start of a node
takes ``max(stored + 1, wall clock in ms)``, stores it, and only then uses it
to stamp its requests (see :mod:`drafty.node.dedupe`): a later life of the
same directory always has a larger number, and the wall clock keeps the
numbers growing even for a node whose data directory was wiped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from .errors import CorruptionError
from .fsutil import atomic_write

INCARNATION_NAME: Final = "incarnation"
MAX_INCARNATION: Final = (1 << 64) - 1


def read_incarnation(directory: Path) -> int:
    """The stored incarnation (0 if none); CorruptionError if unreadable."""
    path = directory / INCARNATION_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return 0
    text = raw.decode("ascii", errors="replace")
    if not text.endswith("\n") or not text[:-1].isdigit() or len(text) > 21:
        raise CorruptionError(path, 0, f"not an incarnation number: {raw[:40]!r}")
    return int(text)


def next_incarnation(directory: Path, wall_ms: int) -> int:
    """Store and return the incarnation of a new life (see the module docstring)."""
    value = max(read_incarnation(directory) + 1, wall_ms, 1)
    if value > MAX_INCARNATION:
        raise CorruptionError(directory / INCARNATION_NAME, 0, "incarnation out of range")
    atomic_write(directory / INCARNATION_NAME, f"{value}\n".encode())
    return value
