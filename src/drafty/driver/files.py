"""DiskSnapshotFiles: the node's snapshot files port, on real files.

Theory of operation
-------------------
The node layer reaches snapshot files only through the
:class:`~drafty.node.ports.SnapshotFiles` port (:mod:`drafty.node.ports`);
this module implements it over a :class:`~drafty.storage.SnapshotStore`,
the ``snap/`` directory of a node's data directory:

- ``save`` streams a snapshot's pieces to ``<name>.tmp``, fsyncs it and
  renames it into place (:meth:`SnapshotStore.save_stream`); it is a job,
  run in the driver's snapshot thread, never on the event loop;
- ``size`` and ``read`` serve a leader's transfer, one chunk at a time, on
  the loop (a small ``pread`` each, of a file that no longer changes);
- ``receive`` starts a :class:`~drafty.storage.snapshot.SnapshotReceiver`
  writing ``<name>.recv`` in order; its ``finish`` (a job, off the loop)
  checks the whole file, makes it durable, renames it and returns the
  verified payload.

Errors cross into the node at this one boundary: ``OSError`` and the
storage layer's ``StorageError`` (``CorruptionError`` included) become
:class:`~drafty.node.SnapshotIOError`, with a message naming the file; the
node turns that into a failed snapshot or transfer, never a crash. Anything
else (a state machine failing to serialise itself inside the pieces)
passes through unchanged: it is not a file problem. A receive that fails
or is aborted leaves no ``.recv`` file behind.

Threads: the node hands out at most one job per file, and never calls a
loop-side method of an :class:`Incoming` while its ``finish`` runs, so
nothing here needs a lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from ..core import SnapshotMeta
from ..node import Incoming, SnapshotIOError
from ..storage import SnapshotStore, StorageError
from ..storage.snapshot import SnapshotReceiver

_FILE_ERRORS = (OSError, StorageError)


def _io_error(what: str, path: Path, exc: BaseException) -> SnapshotIOError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return SnapshotIOError(f"{what} snapshot file {path}: {reason}")


class DiskSnapshotFiles:
    """A :class:`~drafty.node.SnapshotFiles` over the snapshot files of ``store``."""

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store

    def save(self, meta: SnapshotMeta, pieces: Iterable[bytes]) -> int:
        """Write snapshot ``meta`` durably; the file's size (blocking: a job)."""
        try:
            _, size = self.store.save_stream(meta, pieces)
        except _FILE_ERRORS as e:
            raise _io_error("cannot save", self.store.path_of(meta), e) from e
        return size

    def size(self, meta: SnapshotMeta) -> int:
        try:
            return self.store.file_size(meta)
        except _FILE_ERRORS as e:
            raise _io_error("cannot stat", self.store.path_of(meta), e) from e

    def read(self, meta: SnapshotMeta, offset: int, size: int) -> bytes:
        try:
            return self.store.read_range(meta, offset, size)
        except _FILE_ERRORS as e:
            raise _io_error(f"cannot read {size} bytes at {offset} of", self.store.path_of(meta),
                            e) from e  # fmt: skip

    def receive(self, meta: SnapshotMeta, total: int) -> Incoming:
        try:
            return _DiskIncoming(SnapshotReceiver(self.store, meta, total))
        except _FILE_ERRORS as e:
            raise _io_error("cannot create", self.store.path_of(meta), e) from e


class _DiskIncoming:
    """An :class:`~drafty.node.Incoming` writing a :class:`SnapshotReceiver`'s file."""

    def __init__(self, receiver: SnapshotReceiver) -> None:
        self.receiver = receiver

    def write(self, offset: int, data: bytes) -> None:
        try:
            self.receiver.write(offset, data)
        except _FILE_ERRORS as e:
            raise _io_error("cannot write", self.receiver.tmp, e) from e

    def finish(self) -> bytes | memoryview:
        """Check, fsync and keep the file; its payload (blocking: a job)."""
        r = self.receiver
        try:
            return r.finish().data
        except BaseException as e:
            self.abort()
            r.tmp.unlink(missing_ok=True)  # abort() only removes a still-open file
            if isinstance(e, _FILE_ERRORS):
                raise _io_error("cannot keep received", r.tmp, e) from e
            raise

    def abort(self) -> None:
        try:
            self.receiver.abort()
        except OSError:
            with contextlib.suppress(OSError):
                self.receiver.tmp.unlink(missing_ok=True)
