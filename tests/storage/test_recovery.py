"""Recovery: crash tails are truncated with one warning; everything else refuses to start."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from drafty.core.types import HardState
from drafty.storage import CorruptionError, WriteAheadLog
from drafty.storage.record import (
    HARD_STATE_PAYLOAD,
    RecordBuffer,
    RecordType,
    add_entries_record,
    encode_entries,
    scan,
)
from drafty.storage.segment import segment_name

from .helpers import FakeDisk, LogImage, Model, image, make_entries, segment_files

WARN = "drafty.storage"


@pytest.fixture(autouse=True)
def fast_disk() -> Iterator[FakeDisk]:
    """No real fsync in these tests: they reopen logs thousands of times."""
    disk = FakeDisk(real=False)
    with disk.installed():
        yield disk


def build_log(d: Path) -> tuple[int, list[LogImage]]:
    """A log whose last records cover every record type; returns
    (size of the synced prefix, model image after each record of the tail)."""
    m = Model()
    with WriteAheadLog.open(d) as log:
        batch = make_entries(1, 3)
        log.append(batch)
        m.append(batch)
        log.sync()
        durable = segment_files(d)[0].stat().st_size
        images = [m.image()]
        batch = make_entries(4, 2)
        log.append(batch, HardState(1, 1, 3))  # two records: entries, then hard state
        m.append(batch)
        images.append(m.image())
        m.hs = HardState(1, 1, 3)
        images.append(m.image())
        log.set_hard_state(HardState(2, 0, 3))
        m.hs = HardState(2, 0, 3)
        images.append(m.image())
        batch = make_entries(5, 3, term=2)
        log.append(batch)  # replaces 5
        m.append(batch)
        images.append(m.image())
        log.truncate_suffix(7)
        m.truncate(7)
        images.append(m.image())
        log.compact(2)
        m.compact(2)
        images.append(m.image())
        assert image(log) == m.image()
    return durable, images


def record_ends(path: Path) -> list[int]:
    return [end for _, _, end in scan(path.read_bytes()).records]


def test_crash_at_every_byte_offset_of_the_last_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    durable, images = build_log(src)
    seg = segment_files(src)[0]
    data = seg.read_bytes()
    ends = record_ends(seg)
    assert ends[-len(images)] == durable and ends[-1] == len(data)
    work = tmp_path / "work"
    for cut in range(durable, len(data) + 1):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        (work / seg.name).write_bytes(data[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=WARN), WriteAheadLog.open(work) as log:
            complete = sum(1 for e in ends if e <= cut) - (len(ends) - len(images))
            assert image(log) == images[complete - 1], cut
            boundary = cut in ends
            warnings = [r for r in caplog.records if r.name == WARN]
            if boundary:
                assert warnings == []
            else:
                assert len(warnings) == 1
                msg = warnings[0].getMessage()
                assert seg.name in msg and f"offset {max(e for e in ends if e <= cut)}" in msg
            assert (work / seg.name).stat().st_size == max(e for e in ends if e <= cut)
        # the recovered log keeps working after the truncated tail
        if cut % 17 == 0:
            with WriteAheadLog.open(work) as log:
                nxt = make_entries(log.last_index + 1, 2, term=3)
                log.append(nxt)
            with WriteAheadLog.open(work) as log:
                assert log.entries(log.last_index - 1, log.last_index) == nxt


def three_records(d: Path) -> tuple[Path, list[tuple[int, int]]]:
    """A one-segment log: header, entries, hard state, entries. Returns (file, [(start, end)])."""
    with WriteAheadLog.open(d) as log:
        log.append(make_entries(1, 2))
        log.set_hard_state(HardState(1, 1, 1))
        log.append(make_entries(3, 2))
    seg = segment_files(d)[0]
    recs = [(off, end) for off, _, end in scan(seg.read_bytes()).records]
    assert len(recs) == 4
    return seg, recs


def flipped(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def test_bit_flip_in_a_record_followed_by_valid_ones_is_corruption(tmp_path: Path) -> None:
    seg, recs = three_records(tmp_path / "src")
    data = seg.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    target = work / seg.name
    for rec in (1, 2, 0):  # entries, hard state, and the segment header itself
        start, end = recs[rec]
        for bit in range(start * 8, end * 8):
            target.write_bytes(flipped(data, bit))
            with pytest.raises(CorruptionError) as info:
                WriteAheadLog.open(work)
            err = info.value
            assert (err.path, err.offset) == (target, start), bit
            assert str(target) in str(err) and f"offset {start}" in str(err)
            assert target.read_bytes() == flipped(data, bit)  # never "repaired"


def test_bit_flip_in_the_last_record_is_a_torn_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seg, recs = three_records(tmp_path / "src")
    data = seg.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    target = work / seg.name
    start, end = recs[3]
    for bit in range(start * 8, end * 8):
        target.write_bytes(flipped(data, bit))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=WARN), WriteAheadLog.open(work) as log:
            assert log.last_index == 2 and log.hard_state == HardState(1, 1, 1)
            assert log.entries(1, 2) == make_entries(1, 2)
        warnings = [r.getMessage() for r in caplog.records if r.name == WARN]
        assert len(warnings) == 1 and f"offset {start}" in warnings[0] and seg.name in warnings[0]
        assert target.stat().st_size == start


def test_zero_filled_tail_is_a_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seg, recs = three_records(tmp_path)
    with seg.open("ab") as f:
        f.write(bytes(8192))
    with caplog.at_level(logging.WARNING, logger=WARN), WriteAheadLog.open(tmp_path) as log:
        assert log.last_index == 4
    warnings = [r.getMessage() for r in caplog.records if r.name == WARN]
    assert len(warnings) == 1 and "zero-filled tail" in warnings[0]
    assert seg.stat().st_size == recs[-1][1]


def multi_segment(d: Path) -> list[Path]:
    with WriteAheadLog.open(d, segment_size=1024) as log:
        for i in range(1, 201, 10):
            log.append(make_entries(i, 10, size=20), HardState(1, 1, i))
    files = segment_files(d)
    assert len(files) >= 4
    return files


def test_damage_at_the_end_of_an_older_segment_is_corruption(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    data = files[1].read_bytes()
    last_start = scan(data).records[-1][0]
    files[1].write_bytes(data[:-1])  # a torn tail, but in a sealed segment
    with pytest.raises(CorruptionError, match="sealed") as info:
        WriteAheadLog.open(tmp_path)
    assert (info.value.path, info.value.offset) == (files[1], last_start)
    assert files[1].stat().st_size == len(data) - 1


def test_missing_middle_segment(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    files[1].unlink()
    with pytest.raises(CorruptionError, match="missing segment") as info:
        WriteAheadLog.open(tmp_path)
    assert info.value.path == files[2]


def test_missing_oldest_segment(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    files[0].unlink()
    with pytest.raises(CorruptionError, match=r"entries 1\.\.\d+ are missing"):
        WriteAheadLog.open(tmp_path)


def test_renamed_segment_is_detected(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    seq, first = (int(x) for x in files[1].name[4:-4].split("-"))
    files[1].rename(tmp_path / segment_name(seq, first + 1))
    with pytest.raises(CorruptionError, match="file name says otherwise"):
        WriteAheadLog.open(tmp_path)


def test_index_gap_is_corruption(tmp_path: Path) -> None:
    seg, recs = three_records(tmp_path)
    buf = RecordBuffer()
    add_entries_record(buf, encode_entries(make_entries(6, 1)))  # log ends at 4
    with seg.open("ab") as f:
        f.write(bytes(buf))
    with pytest.raises(CorruptionError, match="index gap") as info:
        WriteAheadLog.open(tmp_path)
    assert info.value.offset == recs[-1][1]


def test_unknown_record_type_at_the_tail_is_not_taken_for_a_crash(tmp_path: Path) -> None:
    seg, _ = three_records(tmp_path)
    buf = RecordBuffer()
    buf.add(99, b"from the future")
    with seg.open("ab") as f:
        f.write(bytes(buf))
    with pytest.raises(CorruptionError, match="unexpected record type 99"):
        WriteAheadLog.open(tmp_path)


def test_commit_past_the_log_is_corruption(tmp_path: Path) -> None:
    seg, _ = three_records(tmp_path)
    buf = RecordBuffer()
    buf.add(RecordType.HARD_STATE, HARD_STATE_PAYLOAD.pack(1, 1, 9))
    with seg.open("ab") as f:
        f.write(bytes(buf))
    with pytest.raises(CorruptionError, match="commit 9 is past the last log index 4"):
        WriteAheadLog.open(tmp_path)


def test_segment_without_header_is_corruption_and_tmp_leftover_is_removed(tmp_path: Path) -> None:
    files = multi_segment(tmp_path)
    leftover = tmp_path / (files[-1].name + ".tmp")
    leftover.write_bytes(b"half a header")
    with WriteAheadLog.open(tmp_path, segment_size=1024) as log:
        assert log.last_index == 200
    assert not leftover.exists()
    files[-1].write_bytes(b"")
    with pytest.raises(CorruptionError, match="no header"):
        WriteAheadLog.open(tmp_path)


def test_no_segments_without_create(tmp_path: Path) -> None:
    with pytest.raises(CorruptionError, match="no log segment files"):
        WriteAheadLog.open(tmp_path, create=False)
