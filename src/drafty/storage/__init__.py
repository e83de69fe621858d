"""Durable storage for a Raft node: write-ahead log, hard state, snapshots.

Plain blocking file I/O (``os.write``, ``os.fdatasync``), no asyncio: the
driver calls :meth:`WriteAheadLog.sync` from a worker thread while its event
loop keeps appending.

- :class:`NodeStorage`: a node's data directory (meta file + log + snapshots).
- :class:`WriteAheadLog`: segmented, checksummed log with group commit; hard
  state lives in it as records (one fsync covers entries and hard state).
- :class:`SnapshotStore`: atomically written, checksummed snapshot files.
- Errors: :class:`StorageError` and its children.

Each module's docstring gives its on-disk format and recovery rules:
:mod:`.record` (record framing), :mod:`.segment` (recovery), :mod:`.wal`
(durability and threads), :mod:`.snapshot`, :mod:`.meta`, :mod:`.node`.
"""

from .errors import (
    CompactedError,
    CorruptionError,
    LogMisuseError,
    StorageError,
    StorageFailedError,
    UnavailableError,
    WrongNodeError,
)
from .meta import Meta
from .node import NodeStorage
from .snapshot import Snapshot, SnapshotFile, SnapshotMeta, SnapshotStore
from .state import SegmentInfo
from .wal import DEFAULT_SEGMENT_SIZE, WriteAheadLog

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "CompactedError",
    "CorruptionError",
    "LogMisuseError",
    "Meta",
    "NodeStorage",
    "SegmentInfo",
    "Snapshot",
    "SnapshotFile",
    "SnapshotMeta",
    "SnapshotStore",
    "StorageError",
    "StorageFailedError",
    "UnavailableError",
    "WriteAheadLog",
    "WrongNodeError",
]
