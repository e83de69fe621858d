"""Reads without the log (drafty.node.reads) on a one-node cluster."""

from __future__ import annotations

import random

import pytest

from drafty.core import Config, CoreMisuse, RawNode
from drafty.node import Instant, Node, NodeOptions, Refused
from drafty.node.ticks import TickClock
from drafty.service.kv import KVStore, encode_command

T0 = 1_800_000_000_000


def pump(node: Node) -> list[object]:
    out: list[object] = []
    while True:
        a = node.take()
        if not a:
            return out
        out += list(a.replies)
        if a.sync:
            node.synced(a.sync)


def test_a_read_is_answered_from_the_state_and_adds_nothing_to_the_log() -> None:
    kv = KVStore()
    raw = RawNode(Config(1, (1,)), random.Random(1))
    node = Node(raw, kv, incarnation=1, now=Instant(0, T0))
    raw.campaign()
    pump(node)
    node.submit(encode_command([b"SET", b"k", b"v"]), Instant(1, T0))
    pump(node)
    last = raw.raft.log.last_index()
    rid = node.read(encode_command([b"GET", b"k"]), Instant(2, T0))
    (reply,) = pump(node)
    assert reply.request == rid and reply.value == b"v" and reply.read_at == node.applied  # type: ignore[attr-defined]
    assert raw.raft.log.last_index() == last  # no entry
    rid = node.read(encode_command([b"SET", b"k", b"w"]), Instant(3, T0))
    (reply,) = pump(node)
    assert b"read-only" in reply.value.text.encode() and kv.data[b"k"] == b"v"  # type: ignore[attr-defined]


def test_a_read_with_no_leader_or_past_its_deadline_is_refused() -> None:
    raw = RawNode(Config(1, (1, 2, 3)), random.Random(1))
    node = Node(raw, KVStore(), incarnation=1, now=Instant(0, T0))
    node.read(encode_command([b"GET", b"k"]), Instant(0, T0))
    (reply,) = pump(node)
    assert isinstance(reply.error, Refused)  # type: ignore[attr-defined]
    raw.raft.leader = 2  # a follower that knows a leader: the read goes there
    node.read(encode_command([b"GET", b"k"]), Instant(0, T0), timeout_ms=50)
    assert pump(node) == []
    node.tick(Instant(60, T0))
    (reply,) = pump(node)
    assert isinstance(reply.error, Refused) and "deadline" in str(reply.error)  # type: ignore[attr-defined]
    assert node.pending == 0


def test_a_state_machine_without_query_cannot_read() -> None:
    class Plain:
        def apply(self, command: bytes) -> None: ...
        def snapshot(self) -> bytes:
            return b""

        def restore(self, data: bytes) -> None: ...

    node = Node(RawNode(Config(1, (1,)), random.Random(1)), Plain(), incarnation=1,
                now=Instant(0, T0), options=NodeOptions())  # fmt: skip
    with pytest.raises(CoreMisuse):
        node.read(b"x", Instant(0, T0))


def test_stale_reads_answer_from_local_state_even_without_a_leader() -> None:
    kv = KVStore()
    kv.data[b"k"] = b"old"
    raw = RawNode(Config(1, (1, 2, 3)), random.Random(1))
    node = Node(raw, kv, incarnation=1, now=Instant(0, T0))
    assert node.read_stale(encode_command([b"GET", b"k"])) == b"old"  # no leader known
    assert node.reads.served_stale == 1 and pump(node) == []
    node.stop()
    with pytest.raises(Refused):
        node.read_stale(encode_command([b"GET", b"k"]))


def test_the_tick_clock_keeps_ticks_in_step_with_the_clock() -> None:
    clock = TickClock(tick_ms=50, max_catch_up=22)
    assert clock.due(1000) == 0  # the first reading is the origin
    assert clock.due(1049) == 0
    assert clock.due(1050) == 1
    assert clock.due(1060) == 0  # this period's tick was delivered
    assert clock.due(1251) == 4  # a stall: the missed ticks come at once
    assert clock.due(1000 + 50 * 100) == 22 and clock.skipped == 100 - 5 - 22
    assert clock.due(1000 + 50 * 101) == 1  # in step again after a long freeze
    with pytest.raises(ValueError):
        TickClock(tick_ms=0, max_catch_up=1)


def test_with_leases_a_frozen_leader_catches_up_its_ticks_before_it_reads() -> None:
    """A leader frozen for seconds wakes, and a read arrives before its ticker
    fires: the node delivers the missed ticks first, so the lease it earned
    before the freeze has run out and the read needs a heartbeat round."""
    cfg = Config(1, (1, 2, 3), lease_reads=True)
    with pytest.raises(CoreMisuse, match="tick_ms"):
        Node(RawNode(cfg, random.Random(1)), KVStore(), incarnation=1, now=Instant(0, T0))
    raw = RawNode(cfg, random.Random(1))
    node = Node(raw, KVStore(), incarnation=1, now=Instant(0, T0), options=NodeOptions(tick_ms=50))
    r = raw.raft
    r.become_candidate()
    r.become_leader()
    r.log.commit_to(r.log.last_index())  # its no-op committed: reads may be served
    r.reads.lease_from = r.ticks  # a majority just answered a round sent now
    assert r.lease_valid()
    node.read(encode_command([b"GET", b"k"]), Instant(100, T0))
    assert r.counters["reads_lease"] == 1  # 2 ticks in: served from the lease
    node.read(encode_command([b"GET", b"k"]), Instant(5_000, T0))  # woke up 5 s later
    assert r.ticks >= 2 * cfg.election_ticks  # the missed ticks were delivered first
    assert r.counters["reads_lease"] == 1  # ... so this read was not served from the lease
