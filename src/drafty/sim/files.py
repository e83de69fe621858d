"""The simulated disk's snapshot files: the node's SnapshotFiles port, in memory.

Theory of operation
-------------------
A snapshot "file" is the exact byte string the real store writes
(:func:`drafty.storage.snapshot.encode_snapshot`: header, payload,
checksum), kept in :attr:`SimDisk.snapshots`. Saving happens inside the
:class:`~drafty.node.ports.SaveSnapshot` job, which the simulation runs
when its virtual delay is over: the state machine's view is therefore
serialised *later* than it was taken, with more entries applied in between,
exactly the situation copy-on-write must get right. A received file is
collected in memory (lost by a crash) and checked with the real decoder
when its :class:`~drafty.node.ports.FinishReceive` job runs.

Invariants
----------
- A file in :attr:`SimDisk.snapshots` was complete and checked when stored.
- Reads serve exactly the stored bytes; a file that is gone raises
  :class:`~drafty.node.ports.SnapshotIOError`, as the real port does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..core import SnapshotMeta
from ..node.ports import SnapshotIOError
from ..storage.errors import CorruptionError
from ..storage.snapshot import decode_snapshot, encode_snapshot, snapshot_name
from .disk import SimDisk


class SimIncoming:
    """A snapshot file arriving, in memory."""

    def __init__(self, files: SimFiles, meta: SnapshotMeta, total: int) -> None:
        self.files = files
        self.meta = meta
        self.total = total
        self.data = bytearray()
        self.open = True

    def write(self, offset: int, data: bytes) -> None:
        if not self.open or offset != len(self.data) or offset + len(data) > self.total:
            raise SnapshotIOError(f"piece at {offset} does not follow {len(self.data)}")
        self.data += data

    def finish(self) -> memoryview:
        if not self.open or len(self.data) != self.total:
            raise SnapshotIOError("snapshot incomplete")
        self.open = False
        raw = bytes(self.data)
        name = Path(snapshot_name(self.meta.index, self.meta.term))
        try:
            snap = decode_snapshot(name, raw)
        except CorruptionError as e:
            raise SnapshotIOError(str(e)) from None
        if snap.meta != self.meta:
            raise SnapshotIOError(f"file holds {snap.meta}, not {self.meta}")
        self.files.disk.save_snapshot(self.meta.index, self.meta.term, raw)
        return memoryview(snap.data)

    def abort(self) -> None:
        self.open = False
        self.data = bytearray()


class SimFiles:
    """:class:`~drafty.node.ports.SnapshotFiles` over a :class:`SimDisk`."""

    def __init__(self, disk: SimDisk) -> None:
        self.disk = disk

    def save(self, meta: SnapshotMeta, pieces: Iterable[bytes]) -> int:
        raw = encode_snapshot(meta, b"".join(pieces))
        self.disk.save_snapshot(meta.index, meta.term, raw)
        return len(raw)

    def _file(self, meta: SnapshotMeta) -> bytes:
        raw = self.disk.snapshots.get((meta.index, meta.term))
        if raw is None:
            raise SnapshotIOError(f"no snapshot file for {meta.index}/{meta.term}")
        return raw

    def size(self, meta: SnapshotMeta) -> int:
        return len(self._file(meta))

    def read(self, meta: SnapshotMeta, offset: int, size: int) -> bytes:
        return self._file(meta)[offset : offset + size]

    def receive(self, meta: SnapshotMeta, total: int) -> SimIncoming:
        return SimIncoming(self, meta, total)


def load_newest(disk: SimDisk) -> tuple[SnapshotMeta, memoryview] | None:
    """The newest snapshot on ``disk``, checked (what a restart starts from)."""
    raw = disk.newest_snapshot()
    if raw is None:
        return None
    index, term = max(disk.snapshots)
    snap = decode_snapshot(Path(snapshot_name(index, term)), raw)
    return snap.meta, memoryview(snap.data)
