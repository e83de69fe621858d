"""Snapshot files: round trip, checksum failures reported not used, rotation, temp files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from drafty.storage import CorruptionError, SnapshotMeta, SnapshotStore
from drafty.storage.snapshot import SNAP_HEADER, encode_snapshot, snapshot_name

from .helpers import FakeDisk


def test_round_trip_and_layout(tmp_path: Path) -> None:
    store = SnapshotStore.open(tmp_path)
    meta = SnapshotMeta(120, 4, (1, 2, 3))
    path = store.save(meta, b"state machine bytes")
    assert path.name == "snap-0000000000000120-0000000000000004.snap"
    raw = path.read_bytes()
    assert raw[:8] == b"DRFTSNAP"
    assert len(raw) == SNAP_HEADER.size + 3 * 8 + len(b"state machine bytes") + 4
    snap = store.latest()
    assert snap is not None and snap.meta == meta and snap.data == b"state machine bytes"
    assert store.problems == []


def test_save_is_durable_before_it_is_visible(tmp_path: Path) -> None:
    disk = FakeDisk()
    store = SnapshotStore.open(tmp_path)
    with disk.installed():
        path = store.save(SnapshotMeta(5, 1, (1,)), b"x" * 1000)
    assert disk.durable[path.stat().st_ino] == path.stat().st_size  # fsynced, then renamed
    assert not list(tmp_path.glob("*.tmp"))


def test_every_flipped_byte_is_detected(tmp_path: Path) -> None:
    store = SnapshotStore.open(tmp_path)
    path = store.save(SnapshotMeta(7, 2, (1, 2)), b"payload")
    good = path.read_bytes()
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x10
        path.write_bytes(bad)
        with pytest.raises(CorruptionError) as info:
            store.load(path)
        assert info.value.path == path


def test_damaged_newest_is_reported_and_older_valid_one_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SnapshotStore.open(tmp_path, keep=2)
    store.save(SnapshotMeta(10, 1, (1, 2, 3)), b"old")
    newest = store.save(SnapshotMeta(20, 2, (1, 2, 3)), b"new")
    raw = bytearray(newest.read_bytes())
    raw[-6] ^= 1  # inside the payload
    newest.write_bytes(raw)
    with caplog.at_level(logging.WARNING, logger="drafty.storage"):
        snap = store.latest()
    assert snap is not None and snap.meta.index == 10 and snap.data == b"old"
    assert len(store.problems) == 1 and store.problems[0].path == newest
    assert "checksum mismatch" in caplog.text and newest.name in caplog.text


def test_all_damaged_gives_none_with_problems(tmp_path: Path) -> None:
    (tmp_path / snapshot_name(3, 1)).write_bytes(b"DRFTSNAP-not-really")
    store = SnapshotStore.open(tmp_path)
    assert store.latest() is None
    assert len(store.problems) == 1


def test_header_must_match_the_name(tmp_path: Path) -> None:
    (tmp_path / snapshot_name(3, 1)).write_bytes(encode_snapshot(SnapshotMeta(4, 1, ()), b""))
    with pytest.raises(CorruptionError, match="unlike the name"):
        SnapshotStore.open(tmp_path).load(tmp_path / snapshot_name(3, 1))


def test_rotation_removes_older_only_after_the_newer_is_in_place(tmp_path: Path) -> None:
    store = SnapshotStore.open(tmp_path)
    for i in range(1, 5):
        store.save(SnapshotMeta(i * 10, 1, (1,)), b"s%d" % i)
        assert [f.index for f in store.files()] == [i * 10]
    keep3 = SnapshotStore.open(tmp_path, keep=3)
    for i in range(5, 9):
        keep3.save(SnapshotMeta(i * 10, 1, (1,)), b"s")
    assert [f.index for f in keep3.files()] == [80, 70, 60]
    keep3.save(SnapshotMeta(65, 1, (1,)), b"late")  # an older index: newer ones stay
    assert [f.index for f in keep3.files()] == [80, 70, 65, 60]
    latest = keep3.latest()
    assert latest is not None and latest.meta.index == 80


def test_interrupted_save_is_cleaned_up_on_open(tmp_path: Path) -> None:
    store = SnapshotStore.open(tmp_path)
    store.save(SnapshotMeta(10, 1, (1,)), b"done")
    tmp = tmp_path / (snapshot_name(20, 1) + ".tmp")
    tmp.write_bytes(b"half written")
    store = SnapshotStore.open(tmp_path)
    assert not tmp.exists()
    snap = store.latest()
    assert snap is not None and snap.meta.index == 10
    assert os.listdir(tmp_path) == [snapshot_name(10, 1)]


def test_a_membership_with_learners_and_outgoing_voters_round_trips(tmp_path: Path) -> None:
    store = SnapshotStore.open(tmp_path)
    meta = SnapshotMeta(9, 3, (1, 2, 4), learners=(5, 6), outgoing=(1, 2, 3))
    path = store.save(meta, b"state")
    raw = path.read_bytes()
    assert raw[10] == 1  # flag 1: the membership extension follows the voters
    assert len(raw) == SNAP_HEADER.size + 3 * 8 + 8 + 5 * 8 + len(b"state") + 4
    got = store.load(path)
    assert got.meta == meta and got.data == b"state"
    # Every flipped byte of the extension is caught too.
    for i in range(SNAP_HEADER.size + 24, SNAP_HEADER.size + 24 + 48):
        bad = bytearray(raw)
        bad[i] ^= 0x10
        path.write_bytes(bad)
        with pytest.raises(CorruptionError):
            store.load(path)
    # A fixed-voter membership writes no extension: older versions read it.
    plain = store.save(SnapshotMeta(10, 3, (1, 2, 3)), b"state")
    assert plain.read_bytes()[10] == 0
