"""The write-ahead log: segmented, checksummed, group-committed, crash-safe.

Theory of operation
-------------------
A log directory holds segment files ``wal-<seq>-<first index>.log`` (format in
:mod:`drafty.storage.record`, naming and recovery rules in
:mod:`drafty.storage.segment`). Every change is one record appended to the
newest segment with a single ``os.write``:

- ``append(entries, hard_state)`` writes one ENTRIES record (the whole batch)
  then, if given, one HARD_STATE record, in that order, so a recovered commit
  index never points past the recovered log. An entry at index i replaces
  every stored entry at index >= i (the record implies the truncation).
- ``truncate_suffix(i)`` writes a TRUNCATE record; ``compact(i)`` a COMPACT
  record; nothing is ever rewritten in place.

Each call returns a *write sequence number* (1, 2, 3... per open log). The
bytes are only handed to the OS; ``sync()`` fsyncs (``fdatasync``) and returns
the highest sequence now durable, so one fsync covers every batch written
before it (group commit) and callers learn in order which batches are durable.

Threads: exactly one thread (the owner, e.g. the event loop) calls append,
set_hard_state, truncate_suffix, compact, close and the reads; one other thread
may call ``sync()`` concurrently. The fsync runs holding only ``_sync_mutex``,
never ``_lock`` (the lock the owner takes to publish a sequence number), so
appends continue while an fsync is in flight. ``_sync_mutex`` also guards the
file descriptor: a segment roll (every ``segment_size`` bytes) takes it, seals
the old segment with an fsync, creates the next one (temp name, fsync, rename,
directory fsync) and swaps the descriptor, so the owner blocks for about three
fsyncs once per segment.

Driver rule: term and vote must be durable before any vote or append response
that depends on them leaves the node, i.e. send such a message only once
``sync()`` has returned a sequence >= the one returned by the call that wrote
them. The same holds for entries an append response acknowledges.

Compaction (after a snapshot is durable) drops whole old segments: the COMPACT
record is written, the segments holding nothing live are queued, and the
first ``sync()`` that makes the record durable deletes them, oldest first, with
a directory fsync after each; a crash part-way leaves a prefix of them, which
recovery covers with the durable COMPACT record (or deletes again on open).

Recovery (``open``): replay every segment; a torn or zero-filled tail of the
newest segment is truncated with ONE warning on the ``drafty.storage`` logger;
anything else wrong raises :class:`CorruptionError`. Then the newest segment
is fsynced, because what recovery read from the page cache may never have
reached the disk and must be durable before the node acts on it.

Memory: every entry since the last compaction is kept in memory (columns, see
:mod:`drafty.storage.state`); reads never touch the disk.

Invariants
----------
- ``synced_seq <= written_seq``; both only grow.
- only the newest segment can hold bytes that were never fsynced.
- a failed write or fsync makes the log refuse every later call
  (:class:`StorageFailedError`): after a failed fsync the kernel may have
  dropped the dirty pages, so only a restart (recovery from disk) is safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from drafty.core.types import Entry, HardState

from .errors import LogMisuseError, StorageError, StorageFailedError
from .fsutil import make_dir, sync_data, sync_dir, write_all
from .record import (
    COMPACT_KEEP,
    COMPACT_PAYLOAD,
    COMPACT_RESET,
    KIND_OF,
    TRUNCATE_PAYLOAD,
    RecordBuffer,
    RecordType,
    SegmentHeader,
    add_entries_record,
    add_hard_state_record,
    add_one_entry_record,
    encode_entries,
    segment_header_bytes,
)
from .segment import list_segments, replay_dir, segment_name
from .state import LogState, LogStateError, SegmentInfo

logger = logging.getLogger("drafty.storage")
_T = TypeVar("_T")

DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024
MIN_SEGMENT_SIZE = 1024


def _create_segment(directory: Path, header: SegmentHeader) -> tuple[Path, int, int]:
    """Create a complete segment file atomically; returns (path, fd, size)."""
    path = directory / segment_name(header.seq, header.first_index)
    if path.exists():
        raise StorageFailedError(f"{path} already exists")
    tmp = path.with_name(path.name + ".tmp")
    data = segment_header_bytes(header)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        write_all(fd, data)
        sync_data(fd)
        os.rename(tmp, path)
        sync_dir(directory)
    except BaseException:
        os.close(fd)
        raise
    return path, fd, len(data)


class WriteAheadLog:
    """A durable Raft log; see the module docstring. Build with :meth:`open`."""

    def __init__(self, directory: Path, state: LogState, fd: int, segment_size: int) -> None:
        self._dir = directory
        self._state = state
        self._fd = fd
        self._segment_size = segment_size
        self._lock = threading.Lock()
        self._sync_mutex = threading.Lock()
        self._written_seq = 0
        self._synced_seq = 0
        self._pending_deletes: list[tuple[int, list[Path]]] = []
        self._closed = False
        self._failed: BaseException | None = None

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path | str,
        *,
        create: bool = True,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> WriteAheadLog:
        """Recover the log in ``directory`` (creating an empty one if ``create``).

        Raises CorruptionError if the directory holds damage that is not a
        crash tail, StorageError if it does not exist and ``create`` is false.
        """
        if segment_size < MIN_SEGMENT_SIZE:
            raise LogMisuseError(f"segment_size must be at least {MIN_SEGMENT_SIZE} bytes")
        directory = Path(directory)
        if create:
            make_dir(directory)
        elif not directory.is_dir():
            raise StorageError(f"{directory}: no such log directory")
        for tmp in directory.glob("wal-*.log.tmp"):  # crash while creating a segment
            tmp.unlink()
        if create and not list_segments(directory):
            _, fd, _ = _create_segment(directory, SegmentHeader(1, 1, 0, 0, HardState()))
            os.close(fd)
        replay = replay_dir(directory)
        state = replay.state
        newest = state.segments[-1]
        if replay.torn is not None:
            t = replay.torn
            logger.warning(
                "log segment %s: %s at offset %d: crash in mid-write, truncating the file "
                "to %d bytes",
                t.path,
                t.reason,
                t.offset,
                t.offset,
            )
            os.truncate(t.path, t.offset)
            newest.size = t.offset
        fd = os.open(newest.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.fsync(fd)  # what recovery read must be durable before the node acts on it
            for seg in replay.obsolete:
                seg.path.unlink(missing_ok=True)
                sync_dir(directory)
        except BaseException:
            os.close(fd)
            raise
        return cls(directory, state, fd, segment_size)

    # -- reads (owner thread) ---------------------------------------------

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def first_index(self) -> int:
        """Index of the first entry held (``base_index + 1``)."""
        return self._state.log.base_index + 1

    @property
    def last_index(self) -> int:
        """Index of the last entry (``base_index`` when empty)."""
        return self._state.log.last_index

    @property
    def base_index(self) -> int:
        """Index of the last compacted entry (0: nothing compacted)."""
        return self._state.log.base_index

    @property
    def base_term(self) -> int:
        return self._state.log.base_term

    @property
    def data_bytes(self) -> int:
        """Bytes of entry data in the live log (``first_index..last_index``), in memory."""
        return self._state.log.data_bytes

    @property
    def hard_state(self) -> HardState:
        """The newest hard state written (durable once its sequence is synced)."""
        return self._state.hard_state

    @property
    def written_seq(self) -> int:
        with self._lock:
            return self._written_seq

    @property
    def synced_seq(self) -> int:
        with self._lock:
            return self._synced_seq

    @property
    def segments(self) -> list[SegmentInfo]:
        """Live segment files, oldest first (copies)."""
        return [
            SegmentInfo(
                s.seq,
                s.first_index,
                s.path,
                s.size,
                s.records,
                s.min_index,
                s.max_index,
                s.live_max,
            )
            for s in self._state.segments
        ]

    def term(self, index: int) -> int:
        """Term at ``index`` (``base_index`` included; 0 for index 0).

        Raises CompactedError below ``base_index``, UnavailableError past the end.
        """
        return self._state.log.term(index)

    def holds(self, index: int, term: int) -> bool:
        """Whether the log holds entry ``index`` of ``term`` (its base included):
        then compacting to it keeps the entries after it."""
        return self._state.compact_keeps(index, term)

    def forget_data(self) -> None:
        """Stop keeping entry data in memory: :meth:`entries` is no longer
        available (the Raft core holds the log once recovery handed it over)."""
        self._state.log.forget_data()

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``lo..hi`` INCLUSIVE, cut to ``max_bytes`` as sized by ``Entry.size()``
        (always at least one entry), like the core's ``RaftLog.slice``."""
        return self._state.log.entries(lo, hi, max_bytes)

    # -- writes (owner thread) ----------------------------------------------

    def append(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> int:
        """Write ``entries`` (replacing any stored entry at index >= the first) then
        ``hard_state``; returns the write sequence to wait for with :meth:`sync`.

        Raises LogMisuseError for a gap, an index at or below the compaction
        point or the stored commit index, a term that goes back, a vote that
        changes within a term, or a commit index past the last entry.
        """
        if self._failed is not None or self._closed:
            self._check_usable()
        state = self._state
        log = state.log
        buf = RecordBuffer()
        one = cols = None
        new_last = log.last_index
        if entries:
            first = entries[0].index
            if first <= log.base_index or first > new_last + 1 or first <= state.hard_state.commit:
                self._refuse_entries(first)
            e = entries[0]
            if len(entries) == 1 and type(e.data) is bytes and e.kind in KIND_OF:
                one = e
                add_one_entry_record(buf, e)
                new_last = first
            else:
                cols = encode_entries(entries)
                add_entries_record(buf, cols)
                new_last = first + cols.n - 1
        if hard_state is not None:
            self._check(state.check_hard_state, hard_state)
            if hard_state.commit > new_last:
                raise LogMisuseError(
                    f"commit index {hard_state.commit} is past the last log index {new_last}"
                )
            add_hard_state_record(buf, hard_state)
        if not buf.size:
            return self.written_seq
        self._write(buf)
        if one is not None:
            state.apply_one(one.index, one.term, one.kind, one.data)
        elif cols is not None:
            state.apply_entries(cols.first, cols.n, cols.terms, cols.kinds, cols.lens, cols.blob)
        if hard_state is not None:
            state.apply_hard_state(hard_state)
        return self._publish()

    def _refuse_entries(self, first: int) -> None:
        self._check(self._state.check_entries, first)
        raise LogMisuseError(
            f"entries at {first} would replace committed entries "
            f"(commit index {self._state.hard_state.commit})"
        )

    def set_hard_state(self, hard_state: HardState) -> int:
        """Write a hard state record; returns its write sequence."""
        return self.append((), hard_state)

    def truncate_suffix(self, index: int) -> int:
        """Drop every entry at ``index`` or after; returns the write sequence."""
        self._check_usable()
        state = self._state
        self._check(state.check_truncate, index)
        if index > state.log.last_index:
            return self.written_seq
        if index <= state.hard_state.commit:
            raise LogMisuseError(
                f"truncating at {index} would drop committed entries "
                f"(commit index {state.hard_state.commit})"
            )
        buf = RecordBuffer()
        buf.add(RecordType.TRUNCATE, TRUNCATE_PAYLOAD.pack(index))
        self._write(buf)
        state.apply_truncate(index)
        return self._publish()

    def compact(self, index: int, term: int | None = None) -> int:
        """Drop entries ``<= index`` (they are in a durable snapshot); returns the sequence.

        With ``term`` None, ``index`` must be in the log. With ``term`` given
        (installing a snapshot): if the log holds ``(index, term)`` the entries
        after it are kept, otherwise the whole log is discarded and restarts
        after ``index`` (Raft paper section 7). Old segment files are deleted by
        the ``sync()`` that makes this record durable. A no-op if ``index`` is
        not past the current compaction point.
        """
        self._check_usable()
        state = self._state
        log = state.log
        if index <= log.base_index:
            return self.written_seq
        if term is None:
            if index > log.last_index:
                raise LogMisuseError(
                    f"compact({index}) past the last index {log.last_index} needs the term"
                )
            term = log.term(index)
            reset = False
        else:
            reset = not state.compact_keeps(index, term)
        if reset and index < state.hard_state.commit:
            raise LogMisuseError(
                f"discarding the log at {index} would drop committed entries "
                f"(commit index {state.hard_state.commit})"
            )
        buf = RecordBuffer()
        mode = COMPACT_RESET if reset else COMPACT_KEEP
        buf.add(RecordType.COMPACT, COMPACT_PAYLOAD.pack(index, term, mode))
        self._write(buf)
        dropped = state.apply_compact(index, term, reset)
        seq = self._publish()
        if dropped:
            with self._lock:
                self._pending_deletes.append((seq, [s.path for s in dropped]))
        return seq

    # -- durability (any one thread) ------------------------------------------

    def sync(self) -> int:
        """fsync what was written; return the highest write sequence now durable.

        Safe to call from one thread while the owner keeps appending.
        """
        with self._sync_mutex:
            with self._lock:
                if self._failed is not None or self._closed:
                    self._check_usable()
                target = self._written_seq
                synced = self._synced_seq
                fd = self._fd
            if target > synced:
                try:
                    sync_data(fd)
                except OSError as exc:
                    self._fail(exc)
                    raise StorageFailedError(f"fsync of the log failed: {exc}") from exc
                with self._lock:
                    self._synced_seq = synced = max(self._synced_seq, target)
            if self._pending_deletes:
                self._delete_compacted(synced)
            return synced

    def close(self, *, sync: bool = True) -> None:
        """Close the log (after a final :meth:`sync` unless ``sync`` is false)."""
        if self._closed:
            return
        if sync and self._failed is None:
            self.sync()
        with self._sync_mutex, self._lock:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(sync=exc is None)

    # -- internals ---------------------------------------------------------

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise StorageFailedError(f"the log failed earlier ({self._failed}); restart the node")
        if self._closed:
            raise LogMisuseError("the log is closed")

    @staticmethod
    def _check(check: Callable[[_T], None], arg: _T) -> None:
        try:
            check(arg)
        except LogStateError as exc:
            raise LogMisuseError(str(exc)) from None

    def _fail(self, exc: BaseException) -> None:
        self._failed = exc

    def _publish(self) -> int:
        with self._lock:
            self._written_seq += 1
            return self._written_seq

    def _write(self, buf: RecordBuffer) -> None:
        seg = self._state.segments[-1]
        if seg.size + buf.size > self._segment_size and seg.records > 1:
            self._roll()
            seg = self._state.segments[-1]
        try:
            written = os.writev(self._fd, buf.parts)
            if written != buf.size:  # short write (signal, disk nearly full): finish it
                write_all(self._fd, memoryview(bytes(buf))[written:])
        except OSError as exc:
            with contextlib.suppress(OSError):  # leave no partial record for recovery
                os.ftruncate(self._fd, seg.size)
            self._fail(exc)
            raise StorageFailedError(f"write to {seg.path} failed: {exc}") from exc
        seg.size += buf.size

    def _roll(self) -> None:
        state = self._state
        log = state.log
        with self._sync_mutex:
            old_fd = self._fd
            try:
                sync_data(old_fd)  # seal: only the newest segment may hold unsynced bytes
                with self._lock:
                    self._synced_seq = self._written_seq
                header = SegmentHeader(
                    state.segments[-1].seq + 1,
                    log.last_index + 1,
                    log.base_index,
                    log.base_term,
                    state.hard_state,
                )
                path, fd, size = _create_segment(self._dir, header)
            except OSError as exc:
                self._fail(exc)
                raise StorageFailedError(f"starting a new log segment failed: {exc}") from exc
            with self._lock:
                self._fd = fd
            state.segments.append(SegmentInfo(header.seq, header.first_index, path, size, 1))
            os.close(old_fd)

    def _delete_compacted(self, synced: int) -> None:
        """Delete segments whose COMPACT record is durable (caller holds _sync_mutex)."""
        with self._lock:
            due = [paths for seq, paths in self._pending_deletes if seq <= synced]
            self._pending_deletes = [p for p in self._pending_deletes if p[0] > synced]
        for paths in due:
            for path in paths:
                path.unlink(missing_ok=True)
                sync_dir(self._dir)
