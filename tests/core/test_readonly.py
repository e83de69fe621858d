"""ReadIndex (drafty.core.readonly): rounds, quorum, bounds, refusals."""

from __future__ import annotations

import random

import pytest

from drafty.core import (
    Config,
    Heartbeat,
    NotLeader,
    RawNode,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
)
from drafty.core.readonly import ReadQueue


def test_a_round_confirms_only_reads_recorded_before_it() -> None:
    q = ReadQueue(1, max_reads=10)
    assert q.add(b"a", 1, 5) and q.add(b"b", 1, 5)
    assert q.next_round() == 1
    assert q.next_round() == 0  # nothing new to confirm
    assert q.add(b"c", 1, 6)
    assert q.next_round() == 2
    voters = (1, 2, 3, 4, 5)
    assert q.ack(2, 2, voters) == []  # 2 of 5: no majority yet
    done = q.ack(3, 1, voters)  # node 3's round 1 with node 2's round 2: round 1 has 3 of 5
    assert [(r.ctx, r.index) for r in done] == [(b"a", 5), (b"b", 5)]
    assert q.ack(3, 1, voters) == []  # a duplicate answer counts once
    assert [r.ctx for r in q.ack(4, 2, voters)] == [b"c"]
    assert len(q) == 0


def test_reads_wait_for_an_entry_of_the_term_and_are_bounded() -> None:
    q = ReadQueue(1, max_reads=2)
    assert q.add(b"a", 1, None)
    assert q.next_round() == 0  # no index yet: no round either
    assert q.add(b"b", 2, 7)
    assert not q.add(b"c", 1, 7)  # full
    q.committed(9)
    assert [(r.ctx, r.index) for r in q.pending] == [(b"b", 7), (b"a", 9)]
    assert [r.ctx for r in q.drop_all()] == [b"b", b"a"] and len(q) == 0


def test_a_single_voter_confirms_at_once_and_a_full_queue_refuses() -> None:
    raw = RawNode(Config(1, (1,), max_pending_reads=1), random.Random(1))
    raw.campaign()
    while raw.has_ready():
        rd = raw.ready()
        raw.advance(rd)
        raw.on_persisted(rd.number)
    raw.read_index(b"x")
    rd = raw.ready()
    assert rd.read_states == (ReadState(b"x", 1),)
    with pytest.raises(NotLeader):
        RawNode(Config(2, (1, 2, 3)), random.Random(1)).read_index(b"y")


def test_a_follower_refuses_a_read_request_meant_for_a_leader() -> None:
    raw = RawNode(Config(2, (1, 2, 3)), random.Random(1))
    raw.step(Heartbeat(1, 2, 1, 0))  # node 1 leads term 1
    raw.step(ReadIndexRequest(3, 2, 1, b"r"))  # node 3 thinks node 2 leads
    rd = raw.ready()
    assert ReadIndexResponse(2, 3, 1, b"r", 0) in rd.messages


def test_a_follower_read_is_refused_when_its_leader_changes() -> None:
    raw = RawNode(Config(2, (1, 2, 3)), random.Random(1))
    raw.step(Heartbeat(1, 2, 1, 0))
    raw.read_index(b"r")
    assert ReadIndexRequest(2, 1, 1, b"r") in raw.ready().messages
    raw.step(ReadIndexResponse(3, 2, 1, b"r", 9))  # not from the leader it asked
    assert raw.raft.counters["stale_read_response"] == 1
    raw.step(Heartbeat(3, 2, 2, 0))  # term 2, another leader: the read is refused
    assert ReadState(b"r", 0) in raw.raft.read_states
