"""What the node asks of its platform for snapshots: the files port and the jobs.

Theory of operation
-------------------
The node layer does no I/O, but snapshots are files: a leader reads its
snapshot's file to stream it to a follower, a follower writes the pieces it
receives, and taking or finishing a snapshot writes and fsyncs a whole file.
:class:`SnapshotFiles` is the port through which the node does that; the
asyncio driver implements it with real files (:mod:`drafty.storage.snapshot`)
and the simulator in memory, so both run the same transfer logic.

Port calls made on the event loop are small (one piece read or written).
The two that are not, saving a whole snapshot and checking a received one,
are *jobs*: the node hands a :class:`SaveSnapshot` or :class:`FinishReceive`
out in :attr:`~drafty.node.node.Actions.jobs`; the platform calls its
``run`` off the loop (a thread; in the simulator, after a virtual delay) and
reports back with :meth:`~drafty.node.node.Node.job_done`, passing the result
or the exception ``run`` raised. A job reported after its node restarted is
the platform's to drop.

Errors: a port method that fails for a reason outside the node (a disk error,
a file gone, a damaged file) raises :class:`SnapshotIOError`; the node turns
it into a failed transfer or a failed snapshot, never into a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ..core import DraftyError, SnapshotMeta


class SnapshotIOError(DraftyError):
    """A snapshot file could not be read, written or checked (reason in the message)."""


class Incoming(Protocol):
    """A snapshot file being received, written in order."""

    def write(self, offset: int, data: bytes) -> None:
        """Append the piece at ``offset`` (on the loop; SnapshotIOError on failure)."""
        ...

    def finish(self) -> bytes | memoryview:
        """Check the whole file, make it durable and keep it as the newest snapshot;
        return its payload (off the loop: a job). Raises on any failure."""
        ...

    def abort(self) -> None:
        """Throw the partial file away (on the loop; never raises)."""
        ...


class SnapshotFiles(Protocol):
    """A node's snapshot files."""

    def save(self, meta: SnapshotMeta, pieces: Iterable[bytes]) -> int:
        """Write a snapshot of ``meta`` whose payload is ``pieces`` joined; durable
        on return, older snapshots then removed; returns the file's size (a job)."""
        ...

    def size(self, meta: SnapshotMeta) -> int:
        """The size of snapshot ``meta``'s file (SnapshotIOError if it is gone)."""
        ...

    def read(self, meta: SnapshotMeta, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of snapshot ``meta``'s file from ``offset``."""
        ...

    def receive(self, meta: SnapshotMeta, total: int) -> Incoming:
        """Start receiving snapshot ``meta``, a file of ``total`` bytes."""
        ...


@dataclass(eq=False)
class SaveSnapshot:
    """Serialise and save the snapshot ``meta`` (the state at its index)."""

    meta: SnapshotMeta
    files: SnapshotFiles
    pieces: Iterator[bytes]

    def run(self) -> int:
        return self.files.save(self.meta, self.pieces)


@dataclass(eq=False)
class FinishReceive:
    """Check and keep the received snapshot ``meta``; its payload."""

    meta: SnapshotMeta
    incoming: Incoming

    def run(self) -> bytes | memoryview:
        return self.incoming.finish()


Job = SaveSnapshot | FinishReceive
