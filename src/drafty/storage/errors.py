"""Exceptions raised by :mod:`drafty.storage`; all derive from :class:`StorageError`.

Three families:

- what is on disk cannot be trusted: :class:`CorruptionError` (names the file,
  byte offset and reason) and :class:`WrongNodeError` (the directory belongs to
  another cluster or node). A node must refuse to start on either.
- the program broke the storage contract: :class:`LogMisuseError` (e.g. an
  append that leaves a gap, or a call after close). These are bugs in the caller.
- normal Raft conditions on reads: :class:`CompactedError` (the entry is only in
  a snapshot now) and :class:`UnavailableError` (the entry was never written).

:class:`StorageFailedError` means an ``fsync`` or write failed; after a failed
fsync the kernel may have dropped dirty pages, so the log refuses every further
call and the process must restart and recover from what is really on disk.
"""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Root of every exception raised on purpose by drafty.storage."""


class CorruptionError(StorageError):
    """Durable data is damaged or inconsistent: refuse to start.

    ``path`` is the file (or directory) at fault, ``offset`` the byte offset in
    it (0 when the problem concerns the whole file), ``reason`` what is wrong.
    """

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"corruption in {self.path} at offset {offset}: {reason}")


class WrongNodeError(StorageError):
    """The data directory was created for another cluster id or node id."""

    def __init__(self, path: Path | str, expected: str, found: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.found = found
        super().__init__(
            f"{self.path} belongs to {found}, not {expected}: refusing to use another "
            "node's data (wrong --data-dir?)"
        )


class LogMisuseError(StorageError):
    """The caller broke the storage contract (a bug in the calling program)."""


class CompactedError(StorageError):
    """The requested entry was compacted away; it lives only in a snapshot."""


class UnavailableError(StorageError):
    """The requested entry is beyond the last index of the log."""


class StorageFailedError(StorageError):
    """A write or fsync failed; the log is unusable until the process restarts."""
