"""A node's data directory: meta file, write-ahead log and snapshots together.

Layout::

    DIR/meta.json   cluster id and node id (see drafty.storage.meta)
    DIR/wal/        write-ahead log segments (see drafty.storage.wal)
    DIR/snap/       snapshot files (see drafty.storage.snapshot)
    DIR/incarnation the number of the latest life (see drafty.storage.incarnation)

Creation order makes a half-created directory recognisable: the log's first
segment and the snapshot directory are made durable first, the meta file last.
A directory without meta.json whose log is empty is such a crash and is simply
initialised again; one without meta.json whose log holds anything raises
:class:`CorruptionError` (something deleted the meta file).

On open, after each part recovers on its own, one cross-check: the log must
not be compacted past the newest valid snapshot (else entries are lost), and
where they meet the terms must agree.

What the driver does on restart: :meth:`NodeStorage.finish_install` (a crash
between saving an installed snapshot and resetting the log leaves a log that
does not reach the snapshot); restore ``snapshot`` (if any) into the state
machine; then hand ``log.hard_state`` and ``log.entries(log.first_index,
log.last_index)`` to the core. A log that holds the snapshot's last entry
keeps the entries before it: the tail kept for followers a little behind.
To take a snapshot: ``save_snapshot`` (durable on return), then
``log.compact(index)``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from drafty.core.types import HardState

from .errors import CorruptionError, StorageError
from .fsutil import make_dir
from .incarnation import next_incarnation
from .meta import META_NAME, Meta, check_meta, read_meta, write_meta
from .segment import list_segments, replay_dir
from .snapshot import Snapshot, SnapshotMeta, SnapshotStore
from .wal import DEFAULT_SEGMENT_SIZE, WriteAheadLog

WAL_DIR = "wal"
SNAP_DIR = "snap"


class NodeStorage:
    """The durable state of one Raft node. Build with :meth:`open`."""

    def __init__(
        self,
        directory: Path,
        meta: Meta,
        log: WriteAheadLog,
        snapshots: SnapshotStore,
        snapshot: Snapshot | None,
    ) -> None:
        self.directory = directory
        self.meta = meta
        self.log = log
        self.snapshots = snapshots
        self.snapshot = snapshot
        """The newest valid snapshot found at open (None if none)."""

    @classmethod
    def open(
        cls,
        directory: Path | str,
        *,
        cluster_id: str,
        node_id: int,
        create: bool = True,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        keep_snapshots: int = 1,
        seed_voters: tuple[int, ...] | None = None,
    ) -> NodeStorage:
        """Open (or, if ``create``, initialise) the data directory of one node.

        ``seed_voters`` is recorded when the directory is created (see
        :mod:`drafty.storage.meta`); ``meta`` then holds what the directory
        records, not what was asked.

        Raises WrongNodeError if it belongs to another cluster or node,
        CorruptionError if any part is damaged beyond a crash tail.
        """
        directory = Path(directory)
        expected = Meta(cluster_id, node_id, seed_voters)
        found = read_meta(directory) if directory.is_dir() else None
        if found is None:
            if not create:
                raise StorageError(f"{directory} is not a drafty data directory (no {META_NAME})")
            _check_uninitialised(directory)
            make_dir(directory)
            WriteAheadLog.open(directory / WAL_DIR, create=True).close()
            SnapshotStore.open(directory / SNAP_DIR, create=True)
            write_meta(directory, expected)
        else:
            check_meta(directory, found, expected)
            expected = found
        log = WriteAheadLog.open(directory / WAL_DIR, create=False, segment_size=segment_size)
        try:
            snapshots = SnapshotStore.open(directory / SNAP_DIR, create=True, keep=keep_snapshots)
            snapshot = snapshots.latest()
            _cross_check(log, snapshots, snapshot)
        except BaseException:
            log.close(sync=False)
            raise
        return cls(directory, expected, log, snapshots, snapshot)

    @property
    def hard_state(self) -> HardState:
        return self.log.hard_state

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> Path:
        """Write a snapshot durably (older ones are then removed); see the module doc."""
        path = self.snapshots.save(meta, data)
        self.snapshot = Snapshot(meta, data)
        return path

    def finish_install(self) -> bool:
        """If the log does not hold the newest snapshot's last entry (an install
        a crash cut short), reset it to start after the snapshot, durably.
        Whether it had to."""
        snap = self.snapshot
        if snap is None or self.log.holds(snap.meta.index, snap.meta.term):
            return False
        self.log.compact(snap.meta.index, snap.meta.term)
        self.log.sync()
        return True

    def next_incarnation(self, wall_ms: int) -> int:
        """This life's incarnation, durable on return (see :mod:`.incarnation`)."""
        return next_incarnation(self.directory, wall_ms)

    def close(self, *, sync: bool = True) -> None:
        self.log.close(sync=sync)

    def __enter__(self) -> NodeStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(sync=exc is None)


def _check_uninitialised(directory: Path) -> None:
    """Refuse to initialise a directory (without meta) that holds log data or snapshots."""
    wal = directory / WAL_DIR
    meta_path = directory / META_NAME
    if wal.is_dir() and list_segments(wal):
        replay = replay_dir(wal, strict=False)
        state = replay.state
        if (
            replay.problems
            or len(replay.scanned) > 1
            or state.log.last_index
            or state.hard_state != HardState()
        ):
            raise CorruptionError(meta_path, 0, f"{META_NAME} is missing but {wal} holds data")
    snap = directory / SNAP_DIR
    if snap.is_dir() and SnapshotStore(snap).files():
        raise CorruptionError(meta_path, 0, f"{META_NAME} is missing but {snap} holds snapshots")


def cross_check(base_index: int, base_term: int, snap: SnapshotMeta | None) -> str | None:
    """Why a log compacted through (base_index, base_term) cannot go with ``snap``, or None."""
    snap_index = snap.index if snap is not None else 0
    if base_index > snap_index:
        return (
            f"the log is compacted through index {base_index} but the newest valid snapshot "
            f"covers only {snap_index}: entries {snap_index + 1}..{base_index} are lost"
        )
    if snap is not None and base_index == snap_index and base_term != snap.term:
        return (
            f"log base (index {base_index}, term {base_term}) disagrees with the snapshot's "
            f"term {snap.term}"
        )
    return None


def _cross_check(log: WriteAheadLog, store: SnapshotStore, snap: Snapshot | None) -> None:
    why = cross_check(log.base_index, log.base_term, snap.meta if snap is not None else None)
    if why is not None:
        raise CorruptionError(store.directory, 0, why)
