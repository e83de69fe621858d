"""Snapshot files: one file per snapshot, written atomically, checksummed.

On-disk format (integers little-endian)::

    offset     size      field
    0          8         magic b"DRFTSNAP"
    8          2         version = 1
    10         2         flags = 0
    12         4         voter count v
    16         8         last included index
    24         8         last included term
    32         8         payload length p
    40         8*v       voter ids (u64 each): the cluster configuration
    40+8v      p         payload (the state machine's bytes)
    40+8v+p    4         crc32 of every byte before it (header + voters + payload)

Name: ``snap-<index>-<term>.snap`` (16-digit decimals), so name order is
index order. Saving writes ``<name>.tmp``, fsyncs it, renames it into place and
fsyncs the directory; only then are older snapshot files removed (keeping
``keep - 1`` older ones). A leftover ``.tmp`` is an interrupted save and is
deleted on open.

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
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import CorruptionError, LogMisuseError
from .fsutil import atomic_write, make_dir, sync_dir

logger = logging.getLogger("drafty.storage")

SNAP_MAGIC = b"DRFTSNAP"
SNAP_VERSION = 1
SNAP_HEADER = struct.Struct("<8sHHIQQQ")
_CRC = struct.Struct("<I")
SNAP_RE = re.compile(r"^snap-(\d{16,20})-(\d{16,20})\.snap$")


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers: the last included entry and the voters then."""

    index: int
    term: int
    voters: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """A snapshot file as listed by name (not yet verified)."""

    path: Path
    index: int
    term: int


def snapshot_name(index: int, term: int) -> str:
    return f"snap-{index:016d}-{term:016d}.snap"


def encode_snapshot(meta: SnapshotMeta, data: bytes) -> bytes:
    """The complete file contents for ``meta`` and ``data``."""
    try:
        head = SNAP_HEADER.pack(
            SNAP_MAGIC, SNAP_VERSION, 0, len(meta.voters), meta.index, meta.term, len(data)
        ) + struct.pack(f"<{len(meta.voters)}Q", *meta.voters)
    except struct.error as exc:
        raise LogMisuseError(f"snapshot metadata cannot be encoded: {exc}") from exc
    crc = zlib.crc32(data, zlib.crc32(head))
    return b"".join((head, data, _CRC.pack(crc)))


def decode_snapshot(path: Path, raw: bytes) -> Snapshot:
    """Parse and verify a snapshot file's bytes; CorruptionError names what is wrong."""
    if len(raw) < SNAP_HEADER.size + _CRC.size:
        raise CorruptionError(path, 0, f"snapshot file too short ({len(raw)} bytes)")
    magic, version, flags, nvoters, index, term, plen = SNAP_HEADER.unpack_from(raw, 0)
    if magic != SNAP_MAGIC:
        raise CorruptionError(path, 0, "not a snapshot file (bad magic)")
    (crc,) = _CRC.unpack_from(raw, len(raw) - _CRC.size)
    if zlib.crc32(memoryview(raw)[: len(raw) - _CRC.size]) != crc:
        raise CorruptionError(path, len(raw) - _CRC.size, "snapshot checksum mismatch")
    if version != SNAP_VERSION or flags != 0:
        raise CorruptionError(path, 8, f"snapshot version {version} flags {flags} not supported")
    body = SNAP_HEADER.size + 8 * nvoters
    if body + plen + _CRC.size != len(raw):
        raise CorruptionError(path, 32, "snapshot sizes in the header do not match the file")
    voters = struct.unpack_from(f"<{nvoters}Q", raw, SNAP_HEADER.size)
    m = SNAP_RE.match(path.name)
    if m and (int(m.group(1)), int(m.group(2))) != (index, term):
        raise CorruptionError(path, 16, f"header says index {index} term {term}, unlike the name")
    return Snapshot(SnapshotMeta(index, term, tuple(voters)), raw[body : body + plen])


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
        for tmp in directory.glob("snap-*.snap.tmp"):
            tmp.unlink()
        return cls(directory, keep)

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
        path = self.directory / snapshot_name(meta.index, meta.term)
        atomic_write(path, encode_snapshot(meta, data))
        older = [f for f in self.files() if (f.index, f.term) < (meta.index, meta.term)]
        for f in older[self.keep - 1 :]:
            f.path.unlink(missing_ok=True)
        if older[self.keep - 1 :]:
            sync_dir(self.directory)
        return path
