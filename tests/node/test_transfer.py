"""Snapshot transfers (drafty.node.transfer): chunks, window, resends, refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from drafty.core import InstallSnapshot, SnapshotAck, SnapshotChunk, SnapshotMeta
from drafty.core.messages import ACK_INSTALLED, ACK_PROGRESS, ACK_REFUSED
from drafty.node import FinishReceive, SnapshotIOError, TransferLimits
from drafty.node.transfer import Transfers
from drafty.sim.disk import SimDisk
from drafty.sim.files import SimFiles

META = SnapshotMeta(40, 3, (1, 2, 3))
PAYLOAD = bytes(range(256)) * 7  # 1792 bytes
LIMITS = TransferLimits(chunk_bytes=100, window_chunks=3, ack_timeout_ms=50, max_resends=2,
                        receive_idle_ms=500)  # fmt: skip


def leader() -> Transfers:
    disk = SimDisk()
    files = SimFiles(disk)
    files.save(META, [PAYLOAD])
    return Transfers(1, 7, files, LIMITS)


def follower() -> Transfers:
    return Transfers(2, 9, SimFiles(SimDisk()), LIMITS)


def always(meta: SnapshotMeta) -> bool:
    return True


def chunks(t: Transfers) -> list[SnapshotChunk]:
    out = [m for m in t.messages if isinstance(m, SnapshotChunk)]
    t.messages.clear()
    return out


def acks(t: Transfers) -> list[SnapshotAck]:
    out = [m for m in t.messages if isinstance(m, SnapshotAck)]
    t.messages.clear()
    return out


def feed(f: Transfers, cs: list[SnapshotChunk], needed: Callable[[SnapshotMeta], bool] = always,
         now: int = 0) -> list[SnapshotAck]:  # fmt: skip
    for c in cs:
        f.on_chunk(c, now, term=5, follower=True, needed=needed)
    return acks(f)


def test_a_whole_transfer_in_a_window_of_three_chunks() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    first = chunks(lead)
    assert [c.offset for c in first] == [0, 100, 200]  # the window holds three
    total = first[0].total
    assert total > len(PAYLOAD) and all(len(c.data) == 100 for c in first)
    got = bytearray()
    pending = first
    rounds = 0
    while pending:
        rounds += 1
        for c in pending:
            got += c.data
        for a in feed(fol, pending):
            assert a.status == ACK_PROGRESS
            lead.on_ack(a, now_ms=rounds)
        pending = chunks(lead)
        assert sum(len(c.data) for c in pending) <= 300
    assert len(got) == total and fol.receiving == (total, total)
    assert len(fol.jobs) == 1 and isinstance(fol.jobs[0], FinishReceive)
    job = fol.jobs.pop()
    payload = job.run()
    installable = fol.finished(job, payload, None)
    assert installable is not None and bytes(installable.payload) == PAYLOAD
    assert installable.meta == META and installable.term == 5
    fol.installed(installable)
    (done,) = acks(fol)
    assert done.status == ACK_INSTALLED
    lead.on_ack(done, now_ms=99)
    assert lead.reports == [(2, True)] and lead.sending() == {}


def test_a_lost_chunk_is_resent_after_the_ack_timeout() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    c0, _lost, c2 = chunks(lead)
    for a in feed(fol, [c0, c2]):  # c1 lost: c2 is out of order, answered with 100
        lead.on_ack(a, now_ms=1)
    assert fol.receiving is not None and fol.receiving[0] == 100
    more = chunks(lead)
    assert [c.offset for c in more] == [300]  # the window slid by the one acknowledged chunk
    lead.tick(now_ms=10)
    assert chunks(lead) == []  # not yet
    lead.tick(now_ms=60)
    resent = chunks(lead)
    assert [c.offset for c in resent][:1] == [100]  # back to the last acknowledged byte
    assert lead.counters["snapshot_resends"] == 1


def test_the_sender_gives_up_after_max_resends() -> None:
    lead = leader()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    for t in (50, 100, 150):
        lead.tick(now_ms=t)
    assert lead.reports == [(2, False)] and lead.sending() == {}
    assert lead.counters["snapshot_send_timeouts"] == 1


def test_a_window_delivered_in_reverse_order_still_completes() -> None:
    # Seed 6480 (3 nodes, members on, reordering network): a later chunk that
    # overtook chunk 0 was refused, which ended the transfer; the next one,
    # reordered too, ended alike, and a new learner never got its snapshot.
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    window = chunks(lead)
    (a2, a1, a0) = feed(fol, window[::-1])
    assert (a2.status, a2.received) == (ACK_PROGRESS, 0)  # "none of it here yet"
    assert (a1.status, a1.received) == (ACK_PROGRESS, 0)
    assert (a0.status, a0.received) == (ACK_PROGRESS, 100)  # chunk 0 starts the receive
    assert fol.counters["snapshot_chunk_unknown_transfer"] == 2
    now = 0
    for a in (a2, a1, a0):
        lead.on_ack(a, now_ms=now)
    assert lead.reports == [] and lead.counters["snapshot_send_restarts"] == 0
    pending = chunks(lead)  # the window slid by one chunk
    while fol.receiving is not None and fol.receiving[0] < window[0].total:
        now += 60
        for a in feed(fol, pending, now=now):
            lead.on_ack(a, now_ms=now)
        pending = chunks(lead)
        if not pending:
            lead.tick(now_ms=now + 60)  # the gap left by chunks 1 and 2: resent
            pending = chunks(lead)
    assert fol.receiving == (window[0].total, window[0].total) and lead.reports == []


def test_a_follower_that_lost_an_acknowledged_transfer_gets_it_again_from_byte_zero() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    c0, c1, c2 = chunks(lead)
    for a in feed(fol, [c0, c1]):
        lead.on_ack(a, now_ms=1)
    assert lead.sending() == {2: (200, c0.total)}
    chunks(lead)
    fol.close()  # the follower restarted: its partial file is gone
    (a,) = feed(fol, [c2])
    lead.on_ack(a, now_ms=2)
    assert lead.counters["snapshot_send_restarts"] == 1 and lead.reports == []
    again = chunks(lead)
    assert [c.offset for c in again] == [0, 100, 200] and again[0].transfer == c0.transfer
    feed(fol, again)
    assert fol.receiving == (300, c0.total)


def test_an_overtaken_chunk_zero_of_an_older_transfer_does_not_replace_the_receive() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    old0 = chunks(lead)[0]
    lead.tick(now_ms=50)
    lead.tick(now_ms=100)
    lead.tick(now_ms=150)  # given up
    assert lead.reports == [(2, False)]
    chunks(lead)  # the resends
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=200)
    new = chunks(lead)
    assert new[0].transfer > old0.transfer
    feed(fol, new[:2])
    assert feed(fol, [old0]) == []
    assert fol.receiving == (200, new[0].total)
    assert fol.counters["snapshot_chunk_stale"] == 1


def test_chunks_of_another_term_or_to_a_non_follower_are_ignored() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    c0 = chunks(lead)[0]
    fol.on_chunk(c0, 0, term=6, follower=True, needed=always)
    fol.on_chunk(c0, 0, term=5, follower=False, needed=always)
    assert fol.messages == [] and fol.receiving is None
    assert fol.counters["snapshot_chunk_other_term"] == 2


def test_a_snapshot_not_needed_is_not_transferred() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    c0 = chunks(lead)[0]
    meta = fol.on_chunk(c0, 0, term=5, follower=True, needed=lambda m: False)
    assert meta == META  # straight to the core, without bytes
    (a,) = acks(fol)
    assert a.status == ACK_INSTALLED and fol.receiving is None


def test_a_damaged_file_is_refused_and_nothing_is_kept() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    pending = chunks(lead)
    while pending:
        bad = [
            SnapshotChunk(c.src, c.dst, c.term, c.meta, c.transfer, c.offset, c.total,
                          c.data[:-1] + bytes([c.data[-1] ^ 1]) if c.offset == 500 else c.data)
            for c in pending
        ]  # fmt: skip
        for a in feed(fol, bad):
            lead.on_ack(a, now_ms=1)
        pending = chunks(lead)
    job = fol.jobs.pop()
    assert isinstance(job, FinishReceive)
    with pytest.raises(SnapshotIOError):
        job.run()
    assert fol.finished(job, None, SnapshotIOError("checksum")) is None
    (a,) = acks(fol)
    assert a.status == ACK_REFUSED
    assert isinstance(fol.files, SimFiles) and fol.files.disk.snapshots == {}


def test_a_too_big_snapshot_is_refused_before_anything_is_written() -> None:
    fol = Transfers(2, 9, SimFiles(SimDisk()), TransferLimits(max_bytes=1000))
    c = SnapshotChunk(1, 2, 5, META, 77, 0, 5000, b"x" * 10)
    fol.on_chunk(c, 0, term=5, follower=True, needed=always)
    (a,) = acks(fol)
    assert a.status == ACK_REFUSED and fol.receiving is None


def test_an_idle_partial_transfer_is_dropped() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    feed(fol, chunks(lead)[:1], now=0)
    assert fol.receiving is not None
    fol.tick(now_ms=499)
    assert fol.receiving is not None
    fol.tick(now_ms=500)
    assert fol.receiving is None and fol.counters["snapshot_receive_timeouts"] == 1


def test_a_new_transfer_replaces_a_partial_one() -> None:
    lead, fol = leader(), follower()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    feed(fol, chunks(lead)[:1])
    lead.cancel_sends()
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=5)
    second = chunks(lead)
    assert second[0].transfer != 0
    feed(fol, second[:1])
    assert fol.counters["snapshot_receive_replaced"] == 1
    assert fol.receiving == (100, second[0].total)


def test_a_missing_snapshot_file_fails_the_transfer_at_once() -> None:
    lead = Transfers(1, 7, SimFiles(SimDisk()), LIMITS)
    lead.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    assert lead.reports == [(2, False)] and lead.messages == []


def test_transfer_numbers_differ_across_lives() -> None:
    a, b = leader(), leader()
    b.incarnation = 8
    a.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    b.send(InstallSnapshot(1, 2, 5, META), now_ms=0)
    assert chunks(a)[0].transfer != chunks(b)[0].transfer
