"""WriteAheadLog API: appends, reads, sequences, truncation, compaction, rolls, threads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from drafty.core.types import Entry, EntryKind, HardState
from drafty.storage import (
    CompactedError,
    LogMisuseError,
    StorageFailedError,
    UnavailableError,
    WriteAheadLog,
)

from .helpers import FakeDisk, image, make_entries, segment_files


def test_empty_log(tmp_path: Path) -> None:
    with WriteAheadLog.open(tmp_path / "wal") as log:
        assert (log.first_index, log.last_index, log.base_index) == (1, 0, 0)
        assert log.term(0) == 0
        assert log.hard_state == HardState()
        assert log.entries(1, 0) == []
        assert (log.written_seq, log.synced_seq) == (0, 0)
    assert [p.name for p in segment_files(tmp_path / "wal")] == [
        "wal-0000000000000001-0000000000000001.log"
    ]


def test_append_read_reopen(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    batch = [*make_entries(1, 5, term=2), Entry(6, 3, EntryKind.NOOP, b"")]
    with WriteAheadLog.open(d) as log:
        s1 = log.append(batch, HardState(3, 2, 4))
        s2 = log.set_hard_state(HardState(3, 2, 6))
        assert (s1, s2) == (1, 2)
        assert log.sync() == 2
        assert log.entries(1, 6) == batch
        assert log.entries(2, 3) == batch[1:3]
        assert log.term(6) == 3 and log.term(1) == 2
    with WriteAheadLog.open(d) as log:
        assert log.entries(1, 6) == batch
        assert log.hard_state == HardState(3, 2, 6)
        assert log.written_seq == 0  # sequences are per open


def test_entries_max_bytes_returns_at_least_one(tmp_path: Path) -> None:
    with WriteAheadLog.open(tmp_path) as log:
        log.append(make_entries(1, 10, size=10))
        assert len(log.entries(1, 10, max_bytes=0)) == 1
        assert len(log.entries(1, 10, max_bytes=2 * (10 + 24))) == 2
        assert len(log.entries(1, 10, max_bytes=10_000)) == 10


def test_append_replaces_suffix(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WriteAheadLog.open(d) as log:
        log.append(make_entries(1, 10, term=1))
        log.append(make_entries(6, 2, term=2))
        assert log.last_index == 7
        assert [e.term for e in log.entries(1, 7)] == [1] * 5 + [2, 2]
    with WriteAheadLog.open(d) as log:
        assert log.last_index == 7
        assert log.entries(5, 7) == make_entries(5, 1, 1) + make_entries(6, 2, 2)


def test_truncate_suffix_is_recorded(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WriteAheadLog.open(d) as log:
        log.append(make_entries(1, 10))
        size = os.path.getsize(segment_files(d)[0])
        log.truncate_suffix(4)
        assert log.last_index == 3
        assert os.path.getsize(segment_files(d)[0]) > size  # a record, not a rewrite
        with pytest.raises(UnavailableError):
            log.term(4)
    with WriteAheadLog.open(d) as log:
        assert log.last_index == 3
        assert log.entries(1, 3) == make_entries(1, 3)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda log: log.append(make_entries(12, 1)), "index gap"),
        (lambda log: log.append([*make_entries(11, 1), *make_entries(13, 1)]), "contiguous"),
        (lambda log: log.append(make_entries(3, 1)), "committed"),
        (lambda log: log.truncate_suffix(5), "committed"),
        (lambda log: log.truncate_suffix(20), "outside the log"),
        (lambda log: log.set_hard_state(HardState(1, 1, 5)), "goes back"),
        (lambda log: log.set_hard_state(HardState(2, 3, 5)), "double vote"),
        (lambda log: log.set_hard_state(HardState(2, 2, 11)), "past the last"),
        (lambda log: log.append([Entry(11, 1, 7, b"")]), "unknown entry kind"),  # type: ignore[arg-type]
        (lambda log: log.append([Entry(11, 1, EntryKind.NORMAL, "str")]), "cannot be encoded"),  # type: ignore[arg-type]
        (lambda log: log.compact(11), "needs the term"),
        (lambda log: log.compact(4, term=9), "committed"),
    ],
)
def test_misuse_is_refused_and_changes_nothing(
    tmp_path: Path, action: object, message: str
) -> None:
    with WriteAheadLog.open(tmp_path) as log:
        log.append(make_entries(1, 10), HardState(2, 2, 5))
        before = image(log)
        size = sum(p.stat().st_size for p in segment_files(tmp_path))
        with pytest.raises(LogMisuseError, match=message):
            action(log)  # type: ignore[operator]
        assert image(log) == before
        assert sum(p.stat().st_size for p in segment_files(tmp_path)) == size


def test_closed_log_refuses(tmp_path: Path) -> None:
    log = WriteAheadLog.open(tmp_path)
    log.close()
    with pytest.raises(LogMisuseError, match="closed"):
        log.append(make_entries(1, 1))
    with pytest.raises(LogMisuseError, match="closed"):
        log.sync()


def test_reads_outside_the_log(tmp_path: Path) -> None:
    with WriteAheadLog.open(tmp_path) as log:
        log.append(make_entries(1, 10))
        log.compact(4)
        assert log.term(4) == 1 and log.first_index == 5
        with pytest.raises(CompactedError):
            log.term(3)
        with pytest.raises(CompactedError):
            log.entries(4, 6)
        with pytest.raises(UnavailableError):
            log.entries(5, 11)


def test_segments_roll_and_survive_reopen(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WriteAheadLog.open(d, segment_size=1024) as log:
        for i in range(1, 201, 10):
            log.append(make_entries(i, 10, size=20), HardState(1, 1, i))
        segs = log.segments
        assert len(segs) >= 4
        assert [s.seq for s in segs] == list(range(1, len(segs) + 1))
        assert all(s.size <= 1024 for s in segs[:-1])
        names = [p.name for p in segment_files(d)]
        assert names == [s.path.name for s in segs]
        # the name's first index is the log's last index + 1 when it was created
        assert all(int(s.path.name.split("-")[2][:-4]) == s.first_index for s in segs)
    with WriteAheadLog.open(d, segment_size=1024) as log:
        assert log.entries(1, 200) == [
            e for i in range(1, 201, 10) for e in make_entries(i, 10, size=20)
        ]
        assert log.hard_state == HardState(1, 1, 191)


def test_roll_seals_the_old_segment(tmp_path: Path) -> None:
    disk = FakeDisk()
    with disk.installed(), WriteAheadLog.open(tmp_path, segment_size=1024) as log:
        log.append(make_entries(1, 30, size=20))
        seq = log.append(make_entries(31, 30, size=20))  # rolls: old segment fsynced
        old = log.segments[0].path
        assert disk.durable[old.stat().st_ino] == old.stat().st_size
        assert log.synced_seq == seq - 1


def test_compaction_deletes_segments_only_after_sync(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WriteAheadLog.open(d, segment_size=1024) as log:
        for i in range(1, 301, 10):
            log.append(make_entries(i, 10, size=20))
        log.sync()
        n = len(segment_files(d))
        keep_from = log.segments[3]
        log.compact(keep_from.min_index - 1)
        assert len(segment_files(d)) == n  # the COMPACT record is not durable yet
        log.sync()
        files = segment_files(d)
        assert files[0] == keep_from.path and len(files) == n - 3
        assert log.first_index == keep_from.min_index
    with WriteAheadLog.open(d, segment_size=1024) as log:
        assert log.first_index == keep_from.min_index and log.last_index == 300
        assert (
            log.entries(log.first_index, 300)
            == [e for i in range(1, 301, 10) for e in make_entries(i, 10, size=20)][
                log.first_index - 1 :
            ]
        )


def test_compaction_interrupted_before_delete_is_finished_on_open(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    log = WriteAheadLog.open(d, segment_size=1024)
    for i in range(1, 301, 10):
        log.append(make_entries(i, 10, size=20))
    log.compact(250)
    n = len(segment_files(d))
    log.close(sync=False)  # the COMPACT record reached the OS, the deletes never ran
    assert len(segment_files(d)) == n
    with WriteAheadLog.open(d, segment_size=1024) as log:
        assert (log.base_index, log.last_index) == (250, 300)
        assert len(segment_files(d)) < n


def test_compact_with_term_keeps_matching_suffix_or_resets(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    with WriteAheadLog.open(d) as log:
        log.append(make_entries(1, 10, term=2))
        log.compact(5, term=2)  # the log holds (5, 2): keep 6..10
        assert (log.first_index, log.last_index) == (6, 10)
        log.compact(8, term=3)  # mismatch: discard everything (paper section 7)
        assert (log.first_index, log.last_index, log.term(8)) == (9, 8, 3)
        log.compact(20, term=4)  # beyond the end: reset
        assert (log.base_index, log.base_term, log.last_index) == (20, 4, 20)
        log.append(make_entries(21, 2, term=4))
        assert log.compact(3) == log.written_seq  # not past the base: no-op
    with WriteAheadLog.open(d) as log:
        assert (log.base_index, log.base_term, log.last_index) == (20, 4, 22)
        assert log.entries(21, 22) == make_entries(21, 2, term=4)


def test_sync_from_another_thread_while_appending(tmp_path: Path) -> None:
    log = WriteAheadLog.open(tmp_path, segment_size=4096)
    seen: list[int] = []
    stop = threading.Event()

    def syncer() -> None:
        while not stop.is_set():
            seen.append(log.sync())

    t = threading.Thread(target=syncer)
    t.start()
    seqs = [log.append(make_entries(i, 4, size=30)) for i in range(1, 2001, 4)]
    stop.set()
    t.join()
    assert seqs == list(range(1, 501))
    assert seen == sorted(seen) and seen[-1] <= 500
    assert log.sync() == 500
    log.close()
    with WriteAheadLog.open(tmp_path, segment_size=4096) as again:
        assert again.last_index == 2000
        assert again.entries(1997, 2000) == make_entries(1997, 4, size=30)


def test_appends_continue_while_fsync_is_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = WriteAheadLog.open(tmp_path)
    entered, release = threading.Event(), threading.Event()
    real = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        entered.set()
        release.wait(5)
        real(fd)

    log.append(make_entries(1, 1))
    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(log.sync()))
    t.start()
    assert entered.wait(5)
    t0 = time.monotonic()
    seq = log.append(make_entries(2, 1))  # must not wait for the fsync
    assert time.monotonic() - t0 < 1.0 and seq == 2
    release.set()
    t.join()
    monkeypatch.setattr(os, "fdatasync", real)
    assert result == [1]  # the batch written during the fsync is not reported durable
    assert log.sync() == 2
    log.close()


def test_failed_fsync_poisons_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = WriteAheadLog.open(tmp_path)
    log.append(make_entries(1, 1))

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "fdatasync", broken)
        with pytest.raises(StorageFailedError):
            log.sync()
    with pytest.raises(StorageFailedError):
        log.append(make_entries(2, 1))
    log.close()


def test_failed_write_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = WriteAheadLog.open(tmp_path)
    log.append(make_entries(1, 3), HardState(1, 1, 2))
    seg = segment_files(tmp_path)[0]
    size = seg.stat().st_size
    real_writev = os.writev

    def half_then_enospc(fd: int, parts: list[bytes]) -> int:
        real_writev(fd, [b"".join(bytes(p) for p in parts)[:10]])
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "writev", half_then_enospc)
        with pytest.raises(StorageFailedError, match="No space left"):
            log.append(make_entries(4, 5))
    assert seg.stat().st_size == size  # the 10 stray bytes were cut off again
    with pytest.raises(StorageFailedError):
        log.append(make_entries(4, 1))
    log.close()
    with WriteAheadLog.open(tmp_path) as again:
        assert again.last_index == 3 and again.hard_state == HardState(1, 1, 2)


def test_forget_data_keeps_terms_and_sizes_but_not_the_bytes(tmp_path: Path) -> None:
    """After recovery hands the log to the core, the log keeps only what it
    needs to check further writes: terms, kinds and sizes."""
    with WriteAheadLog.open(tmp_path / "wal") as wal:
        wal.append([Entry(i, 1, EntryKind.NORMAL, b"x" * 10) for i in range(1, 6)])
        wal.forget_data()
        assert wal.data_bytes == 50
        wal.append([Entry(6, 2, EntryKind.NORMAL, b"y" * 7)])
        assert wal.data_bytes == 57 and wal.term(6) == 2
        wal.truncate_suffix(6)
        assert wal.data_bytes == 50 and wal.last_index == 5
        wal.compact(3)
        assert wal.data_bytes == 20 and wal.first_index == 4
        with pytest.raises(UnavailableError):
            wal.entries(4, 5)
        wal.sync()
    with WriteAheadLog.open(tmp_path / "wal") as again:  # the disk still has everything
        assert [e.data for e in again.entries(4, 5)] == [b"x" * 10] * 2
