"""Snapshot files: one file per snapshot, written atomically, checksummed.

On-disk format (integers little-endian)::

    offset     size      field
    0          8         magic b"DRFTSNAP"
    8          2         version = 2
    10         2         flags = 0
    12         4         voter count v
    16         8         last included index
    24         8         last included term
    32         8         payload length p
    40         8*v       voter ids (u64 each): the cluster configuration
    40+8v      e         with flag 1 only: learner count l (u32), outgoing-voter
                         count o (u32), then l + o ids (u64): e = 8 + 8*(l+o)
    40+8v+e    p         payload (the state machine's bytes)
    40+8v+e+p  4         crc32 of the payload, continued over header + ids

Flag 1 is set only when the membership has learners or a joint change's
outgoing voters, so files of a fixed-voter cluster stay readable by older
versions.

(The checksum covers the payload first so that a snapshot can be written as
a stream whose length is known only at its end: the header is written last,
at offset 0.)

Name: ``snap-<index>-<term>.snap`` (16-digit decimals), so name order is
index order. Saving writes ``<name>.tmp`` (:meth:`SnapshotStore.save`, or
:meth:`SnapshotStore.save_stream` piece by piece), fsyncs it, renames it
into place and fsyncs the directory; only then are older snapshot files
removed (keeping ``keep - 1`` older ones). A snapshot received from a leader
is written by a :class:`SnapshotReceiver` to ``<name>.recv``, checked whole,
and then made durable and renamed the same way. A leftover ``.tmp`` or
``.recv`` is an interrupted save or transfer and is deleted on open.

Recovery: :meth:`SnapshotStore.latest` returns the newest snapshot whose
checksum, size and name all agree. A file that fails is never used: it is
logged (a warning on ``drafty.storage``) and listed in ``problems``, and the
next older valid one is considered; whether that is enough (the log must not
be compacted past it) is checked by :class:`drafty.storage.node.NodeStorage`.

Invariants
----------
- a file named ``snap-*.snap`` was complete and fsynced before it got that name.
- ``latest()`` never returns data whose checksum does not match.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from drafty.core.types import SnapshotMeta as SnapshotMeta

from .errors import CorruptionError, LogMisuseError, StorageError
from .fsutil import atomic_write, make_dir, sync_data, sync_dir, write_all

logger = logging.getLogger("drafty.storage")

SNAP_MAGIC = b"DRFTSNAP"
SNAP_VERSION = 2
SNAP_HEADER = struct.Struct("<8sHHIQQQ")
_CRC = struct.Struct("<I")
SNAP_RE = re.compile(r"^snap-(\d{16,20})-(\d{16,20})\.snap$")
_LEFTOVERS = ("snap-*.snap.tmp", "snap-*.snap.recv")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified snapshot: ``data`` is its payload (a view into the file's bytes)."""

    meta: SnapshotMeta
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """A snapshot file as listed by name (not yet verified)."""

    path: Path
    index: int
    term: int


def snapshot_name(index: int, term: int) -> str:
    return f"snap-{index:016d}-{term:016d}.snap"


_FLAG_MEMBERSHIP = 1
_COUNTS = struct.Struct("<II")


def _head(meta: SnapshotMeta, payload_len: int) -> bytes:
    extra = (*meta.learners, *meta.outgoing)
    flags = _FLAG_MEMBERSHIP if extra else 0
    try:
        head = SNAP_HEADER.pack(
            SNAP_MAGIC, SNAP_VERSION, flags, len(meta.voters), meta.index, meta.term, payload_len
        ) + struct.pack(f"<{len(meta.voters)}Q", *meta.voters)
        if flags:
            head += _COUNTS.pack(len(meta.learners), len(meta.outgoing))
            head += struct.pack(f"<{len(extra)}Q", *extra)
        return head
    except struct.error as exc:
        raise LogMisuseError(f"snapshot metadata cannot be encoded: {exc}") from exc


def encode_snapshot(meta: SnapshotMeta, data: bytes) -> bytes:
    """The complete file contents for ``meta`` and ``data``."""
    head = _head(meta, len(data))
    crc = zlib.crc32(head, zlib.crc32(data))
    return b"".join((head, data, _CRC.pack(crc)))


def decode_snapshot(path: Path, raw: bytes) -> Snapshot:
    """Parse and verify a snapshot file's bytes; CorruptionError names what is wrong.

    The payload is returned as a view into ``raw`` (no copy)."""
    if len(raw) < SNAP_HEADER.size + _CRC.size:
        raise CorruptionError(path, 0, f"snapshot file too short ({len(raw)} bytes)")
    magic, version, flags, nvoters, index, term, plen = SNAP_HEADER.unpack_from(raw, 0)
    if magic != SNAP_MAGIC:
        raise CorruptionError(path, 0, "not a snapshot file (bad magic)")
    if version != SNAP_VERSION or flags not in (0, _FLAG_MEMBERSHIP):
        raise CorruptionError(path, 8, f"snapshot version {version} flags {flags} not supported")
    body = SNAP_HEADER.size + 8 * nvoters
    nlearners = noutgoing = 0
    if flags:
        if body + _COUNTS.size > len(raw):
            raise CorruptionError(path, body, "snapshot membership counts cut short")
        nlearners, noutgoing = _COUNTS.unpack_from(raw, body)
        body += _COUNTS.size + 8 * (nlearners + noutgoing)
    if body + plen + _CRC.size != len(raw):
        raise CorruptionError(path, 32, "snapshot sizes in the header do not match the file")
    view = memoryview(raw)
    (crc,) = _CRC.unpack_from(raw, len(raw) - _CRC.size)
    if zlib.crc32(view[:body], zlib.crc32(view[body : body + plen])) != crc:
        raise CorruptionError(path, len(raw) - _CRC.size, "snapshot checksum mismatch")
    voters = struct.unpack_from(f"<{nvoters}Q", raw, SNAP_HEADER.size)
    ids_at = SNAP_HEADER.size + 8 * nvoters + _COUNTS.size
    extra = struct.unpack_from(f"<{nlearners + noutgoing}Q", raw, ids_at) if flags else ()
    m = SNAP_RE.match(path.name)
    if m and (int(m.group(1)), int(m.group(2))) != (index, term):
        raise CorruptionError(path, 16, f"header says index {index} term {term}, unlike the name")
    meta = SnapshotMeta(index, term, tuple(voters), tuple(extra[:nlearners]),
                        tuple(extra[nlearners:]))  # fmt: skip
    return Snapshot(meta, view[body : body + plen])


class SnapshotStore:
    """The snapshot files of one node, in one directory."""

    def __init__(self, directory: Path, keep: int = 1) -> None:
        if keep < 1:
            raise LogMisuseError("keep must be at least 1")
        self.directory = directory
        self.keep = keep
        self.problems: list[CorruptionError] = []
        """Snapshot files that failed verification (found by :meth:`latest`)."""

    @classmethod
    def open(cls, directory: Path | str, *, create: bool = True, keep: int = 1) -> SnapshotStore:
        """Open (and create if asked) a snapshot directory; removes interrupted saves."""
        directory = Path(directory)
        if create:
            make_dir(directory)
        for pattern in _LEFTOVERS:
            for tmp in directory.glob(pattern):
                tmp.unlink()
        return cls(directory, keep)

    def path_of(self, meta: SnapshotMeta) -> Path:
        return self.directory / snapshot_name(meta.index, meta.term)

    def files(self) -> list[SnapshotFile]:
        """Snapshot files by name, newest (highest index, then term) first."""
        found = []
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                m = SNAP_RE.match(p.name)
                if m:
                    found.append(SnapshotFile(p, int(m.group(1)), int(m.group(2))))
        found.sort(key=lambda f: (f.index, f.term), reverse=True)
        return found

    def load(self, path: Path) -> Snapshot:
        """Read and verify one snapshot file (CorruptionError if it fails)."""
        return decode_snapshot(path, path.read_bytes())

    def latest(self) -> Snapshot | None:
        """The newest valid snapshot; invalid newer ones are reported, never used."""
        for f in self.files():
            try:
                return self.load(f.path)
            except CorruptionError as exc:
                logger.warning("ignoring damaged snapshot: %s", exc)
                self.problems.append(exc)
        return None

    def save(self, meta: SnapshotMeta, data: bytes) -> Path:
        """Write a snapshot durably, then remove the older ones; returns its path."""
        path = self.path_of(meta)
        atomic_write(path, encode_snapshot(meta, data))
        self._remove_older(meta)
        return path

    def save_stream(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> tuple[Path, int]:
        """Like :meth:`save` for a payload given in pieces (never joined in memory).

        Returns the path and the file's size. On any failure the temporary
        file is removed and the error propagates (OSError, or whatever the
        pieces raised)."""
        path = self.path_of(meta)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            placeholder = _head(meta, 0)
            write_all(fd, placeholder)
            crc, size = 0, 0
            for piece in chunks:
                crc = zlib.crc32(piece, crc)
                size += len(piece)
                write_all(fd, piece)
            head = _head(meta, size)
            write_all(fd, _CRC.pack(zlib.crc32(head, crc)))
            os.pwrite(fd, head, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        sync_dir(self.directory)
        self._remove_older(meta)
        return path, len(head) + size + _CRC.size

    def read_range(self, meta: SnapshotMeta, offset: int, size: int) -> bytes:
        """Bytes ``offset .. offset + size`` of snapshot ``meta``'s file (fewer at its end)."""
        with open(self.path_of(meta), "rb") as f:
            f.seek(offset)
            return f.read(size)

    def file_size(self, meta: SnapshotMeta) -> int:
        """The size of snapshot ``meta``'s file (OSError if it is gone)."""
        return self.path_of(meta).stat().st_size

    def _remove_older(self, meta: SnapshotMeta) -> None:
        older = [f for f in self.files() if (f.index, f.term) < (meta.index, meta.term)]
        for f in older[self.keep - 1 :]:
            f.path.unlink(missing_ok=True)
        if older[self.keep - 1 :]:
            sync_dir(self.directory)


class SnapshotReceiver:
    """One snapshot file arriving from a leader, written in order to ``<name>.recv``.

    :meth:`write` takes each next piece, :meth:`finish` checks the whole
    file, makes it durable and renames it into place (a :class:`Snapshot` on
    success, CorruptionError otherwise), :meth:`abort` throws it away. Never
    more than ``total`` bytes are written.
    """

    def __init__(self, store: SnapshotStore, meta: SnapshotMeta, total: int) -> None:
        self.store = store
        self.meta = meta
        self.total = total
        self.path = store.path_of(meta)
        self.tmp = self.path.with_name(self.path.name + ".recv")
        self.received = 0
        self._fd: int | None = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, offset: int, data: bytes) -> None:
        if self._fd is None:
            raise StorageError("snapshot receiver is closed")
        if offset != self.received or offset + len(data) > self.total:
            raise StorageError(
                f"snapshot piece at {offset} (+{len(data)}) does not follow {self.received} "
                f"within {self.total}"
            )
        write_all(self._fd, data)
        self.received += len(data)

    def finish(self) -> Snapshot:
        """Check, fsync and rename the complete file; the verified snapshot."""
        fd = self._fd
        if fd is None or self.received != self.total:
            raise StorageError(f"snapshot incomplete: {self.received} of {self.total} bytes")
        try:
            sync_data(fd)
            raw = self.tmp.read_bytes()
            snap = decode_snapshot(self.path, raw)
            if snap.meta != self.meta:
                raise CorruptionError(self.tmp, 16, f"file holds {snap.meta}, not {self.meta}")
        except BaseException:
            self.abort()
            raise
        os.close(fd)
        self._fd = None
        os.replace(self.tmp, self.path)
        sync_dir(self.store.directory)
        self.store._remove_older(self.meta)
        return snap

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.tmp.unlink(missing_ok=True)
