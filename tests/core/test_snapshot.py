"""Snapshots in the core: compaction, InstallSnapshot, the SNAPSHOT progress state.

The protocol flows are in tests/scripted/testdata/snapshot_*.txt; these
tests pin the rules at the edges (misuse, restart, bad input)."""

from __future__ import annotations

import random

import pytest

from drafty.core import (
    AppendResponse,
    Config,
    CoreMisuse,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    RawNode,
    SnapshotMeta,
    StateError,
)
from drafty.core.log import RaftLog
from drafty.core.progress import Progress, ProgressState

VOTERS = (1, 2, 3)


def _log(n: int, applied: int) -> RaftLog:
    return RaftLog([Entry(i, 1) for i in range(1, n + 1)], committed=applied, applied=applied)


def test_compaction_drops_only_an_applied_prefix() -> None:
    log = _log(5, applied=3)
    log.compact(2)
    assert (log.offset, log.offset_term, log.term(2), log.term(3)) == (2, 1, 1, 1)
    assert log.term(1) is None and log.last_index() == 5
    log.compact(1)  # already compacted: nothing happens
    assert log.offset == 2
    with pytest.raises(CoreMisuse):
        log.compact(4)


def test_raw_node_compacts_only_behind_a_snapshot_it_was_told_about() -> None:
    raw = RawNode(Config(1, VOTERS), random.Random(0), hard_state=HardState(1, 0, 3),
                  entries=[Entry(i, 1) for i in (1, 2, 3)], applied=3)  # fmt: skip
    with pytest.raises(CoreMisuse):
        raw.compact(2)
    with pytest.raises(CoreMisuse):
        raw.snapshot_taken(SnapshotMeta(4, 1, VOTERS))  # beyond applied
    with pytest.raises(CoreMisuse):
        raw.snapshot_taken(SnapshotMeta(2, 7, VOTERS))  # wrong term
    raw.snapshot_taken(SnapshotMeta(2, 1, VOTERS))
    raw.compact(2)
    assert raw.raft.log.offset == 2 and raw.raft.snapshot == SnapshotMeta(2, 1, VOTERS)
    raw.snapshot_taken(SnapshotMeta(1, 1, VOTERS))  # older: ignored
    assert raw.raft.snapshot is not None and raw.raft.snapshot.index == 2


def test_restart_from_a_snapshot_and_the_log_after_it() -> None:
    snap = SnapshotMeta(10, 2, VOTERS)
    raw = RawNode(Config(1, VOTERS), random.Random(0), hard_state=HardState(3, 0, 11),
                  entries=[Entry(11, 3)], offset=10, offset_term=2, applied=10,
                  snapshot=snap)  # fmt: skip
    rd = raw.ready()
    assert [e.index for e in rd.committed_entries] == [11] and rd.snapshot is None
    with pytest.raises(StateError):
        RawNode(Config(1, VOTERS), random.Random(0), offset=10, offset_term=2,
                hard_state=HardState(3, 0, 10), applied=10,
                snapshot=SnapshotMeta(9, 2, VOTERS))  # fmt: skip


def test_a_follower_installs_a_snapshot_and_hands_it_out_once() -> None:
    raw = RawNode(Config(2, VOTERS), random.Random(0))
    raw.step(InstallSnapshot(1, 2, 3, SnapshotMeta(7, 2, VOTERS)))
    rd = raw.ready()
    assert rd.snapshot == SnapshotMeta(7, 2, VOTERS) and rd.must_persist()
    assert rd.hard_state is not None and rd.hard_state.commit == 7
    assert rd.messages_after_persist == (AppendResponse(2, 1, 3, True, 7),)
    raw.advance(rd)
    raw.on_persisted(rd.number)
    assert not raw.has_ready()
    st = raw.status()
    assert (st.commit, st.applied, st.last_index) == (7, 7, 7)


@pytest.mark.parametrize(
    "meta",
    [SnapshotMeta(0, 1, VOTERS), SnapshotMeta(5, 0, VOTERS), SnapshotMeta(5, 9, VOTERS),
     SnapshotMeta(5, 1, ()), SnapshotMeta(5, 1, (0, 1))],
)  # fmt: skip
def test_impossible_snapshots_are_dropped_and_counted(meta: SnapshotMeta) -> None:
    raw = RawNode(Config(2, VOTERS), random.Random(0))
    raw.step(InstallSnapshot(1, 2, 3, meta))
    assert raw.status().counters["invalid_message"] == 1
    assert raw.raft.log.offset == 0


def test_progress_in_snapshot_state_sends_nothing_and_ignores_rejections() -> None:
    pr = Progress(5, 4)
    pr.become_snapshot(9)
    assert pr.state is ProgressState.SNAPSHOT and pr.is_paused()
    assert not pr.maybe_decrease(4, 1)
    pr.maybe_update(9)
    pr.become_probe()
    assert (pr.state, pr.next, pr.pending_snapshot) == (ProgressState.PROBE, 10, 0)


def test_a_restart_from_a_snapshot_ahead_of_the_durable_commit_lifts_the_commit() -> None:
    """A snapshot saved before the hard state carrying its commit index was
    fsynced: the snapshot's index was applied, so it was committed."""
    entries = [Entry(i, 1, EntryKind.NORMAL, b"x") for i in range(1, 11)]
    meta = SnapshotMeta(8, 1, (1, 2, 3))
    raw = RawNode(
        Config(1, (1, 2, 3)), random.Random(1), hard_state=HardState(1, 1, 5),
        entries=entries[3:], offset=3, offset_term=1, applied=8, snapshot=meta,
    )  # fmt: skip
    log = raw.raft.log
    assert (log.committed, log.applied, log.offset) == (8, 8, 3)
    installed = RawNode(
        Config(1, (1, 2, 3)), random.Random(1), hard_state=HardState(1, 1, 2),
        offset=8, offset_term=1, applied=8, snapshot=meta,
    )  # fmt: skip
    assert installed.raft.log.committed == 8
