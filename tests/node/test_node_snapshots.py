"""The node layer's snapshot policy on one node: thresholds, BGSAVE, compaction."""

from __future__ import annotations

import random

from drafty.core import Config, RawNode
from drafty.node import DiskWrite, Instant, Node, NodeOptions, SaveSnapshot, StateMachine
from drafty.node import snapshot as payload
from drafty.node.dedupe import DuplicateFilter
from drafty.node.sessions import SessionTable
from drafty.service.kv import KVStore, encode_command
from drafty.sim.disk import SimDisk
from drafty.sim.files import SimFiles, load_newest

T0 = 1_800_000_000_000


class One:
    """A one-node cluster whose writes are synced at once."""

    def __init__(self, options: NodeOptions, machine: StateMachine | None = None) -> None:
        self.disk = SimDisk()
        self.ms = 0
        raw = RawNode(Config(1, (1,)), random.Random(1))
        self.kv = KVStore()
        self.node = Node(raw, machine or self.kv, incarnation=1, now=self.now(),
                         options=options, files=SimFiles(self.disk))  # fmt: skip
        self.jobs: list[SaveSnapshot] = []
        self.writes: list[DiskWrite] = []
        self.written = 0
        raw.campaign()
        self.pump()

    def now(self) -> Instant:
        return Instant(self.ms, T0 + self.ms)

    def pump(self) -> None:
        while True:
            a = self.node.take()
            if not a:
                return
            for w in a.writes:
                self.disk.write(w)
                self.writes.append(w)
            for job in a.jobs:
                assert isinstance(job, SaveSnapshot)
                self.jobs.append(job)
            if a.sync:
                self.disk.sync_seq(a.sync)
                self.node.synced(a.sync)

    def set(self, n: int) -> None:
        for _ in range(n):
            i, self.written = self.written, self.written + 1
            self.ms += 1
            self.node.submit(encode_command([b"SET", b"k%d" % (i % 7), b"v%d" % i]), self.now())
            self.pump()

    def finish_jobs(self) -> None:
        while self.jobs:
            job = self.jobs.pop(0)
            self.node.job_done(job, job.run(), None, self.now())
            self.pump()


def test_a_snapshot_is_taken_at_the_threshold_and_the_log_compacted_behind_a_tail() -> None:
    one = One(NodeOptions(snapshot_entries=10, snapshot_keep_entries=4, snapshot_bytes=0))
    one.set(8)
    assert one.jobs == []  # the leader's no-op and 8 writes: 9 applied
    one.set(1)
    assert len(one.jobs) == 1
    meta = one.jobs[0].meta
    assert meta.index == one.node.applied == 10
    one.set(3)  # applied while the save is under way: not in the snapshot
    assert len(one.jobs) == 1  # one save at a time
    one.finish_jobs()
    assert one.node.snapshot_index == 10 and one.node.last_saved is not None
    assert one.node.last_saved[0] == meta
    compaction = [w.compact for w in one.writes if w.compact is not None]
    assert compaction == [(6, 1)]  # 10 - 4 kept
    assert one.node.raw.raft.log.offset == 6 and one.disk.base_index == 6
    saved = load_newest(one.disk)
    assert saved is not None and saved[0] == meta
    fresh = KVStore()
    payload.decode(saved[1], fresh, SessionTable(), DuplicateFilter())
    # As of index 10 (writes 0..8), not the three applied while it was saved.
    assert fresh.data[b"k0"] == b"v7" and fresh.data[b"k1"] == b"v8" and fresh.data[b"k2"] == b"v2"
    assert one.kv.data[b"k2"] == b"v9" and one.kv.data[b"k4"] == b"v11"


def test_bgsave_takes_one_now_whatever_the_thresholds() -> None:
    one = One(NodeOptions(snapshot_entries=0, snapshot_bytes=0))
    one.set(5)
    assert one.jobs == []
    assert one.node.request_snapshot()
    assert not one.node.request_snapshot()  # one is being saved
    one.pump()
    assert len(one.jobs) == 1
    one.finish_jobs()
    assert one.node.snapshot_index == one.node.applied
    assert not one.node.request_snapshot()  # nothing new applied


def test_a_failed_save_is_retried_only_after_the_retry_period() -> None:
    one = One(NodeOptions(snapshot_entries=3, snapshot_keep_entries=0, snapshot_retry_ms=50))
    one.set(3)
    job = one.jobs.pop()
    one.node.job_done(job, None, OSError("disk full"), one.now())
    one.pump()
    assert one.node.snapshot_index == 0
    assert one.node.raw.raft.counters["snapshot_save_failed"] == 1
    one.set(5)
    assert one.jobs == []  # within the retry period
    one.ms += 60
    one.set(1)
    assert len(one.jobs) == 1


def test_the_kept_tail_is_bounded_in_bytes_as_well() -> None:
    one = One(NodeOptions(snapshot_entries=10, snapshot_keep_entries=8, snapshot_keep_bytes=100))
    one.set(9)
    one.finish_jobs()
    entry = one.node.raw.raft.log.entries[-1]
    per_entry = len(entry.data)
    assert 100 // per_entry < 8  # the byte bound is the tighter one here
    kept = one.node.raw.raft.log.last_index() - one.node.raw.raft.log.offset
    assert kept == 100 // per_entry


class Counter:
    """A state machine with only snapshot() and restore(): no streaming view."""

    def __init__(self) -> None:
        self.value = 0

    def apply(self, command: bytes) -> int:
        self.value += 1
        return self.value

    def snapshot(self) -> bytes:
        return str(self.value).encode()

    def restore(self, data: bytes) -> None:
        assert type(data) is bytes  # the plain protocol gets bytes, never a view
        self.value = int(data)


def test_a_state_machine_without_views_snapshots_on_the_loop_and_restores_from_bytes() -> None:
    counter = Counter()
    one = One(NodeOptions(snapshot_entries=0, snapshot_bytes=0), counter)
    one.set(5)
    assert counter.value == 5
    assert one.node.request_snapshot()
    one.pump()
    counter.value = 99  # serialised at once, on the loop: later changes are not in it
    one.finish_jobs()
    saved = load_newest(one.disk)
    assert saved is not None and saved[0].index == one.node.applied
    restored = Counter()
    payload.decode(saved[1], restored, SessionTable(), DuplicateFilter())
    assert restored.value == 5
