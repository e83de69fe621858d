"""ReadIndex (drafty.core.readonly): rounds, quorum, bounds, refusals."""

from __future__ import annotations

import random

import pytest

from drafty.core import (
    Config,
    ConfigError,
    Heartbeat,
    NotLeader,
    RawNode,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
)
from drafty.core.membership import Membership
from drafty.core.readonly import ReadQueue


def test_a_round_confirms_only_reads_recorded_before_it() -> None:
    q = ReadQueue(1, max_reads=10)
    assert q.add(b"a", 1, 5) and q.add(b"b", 1, 5)
    assert q.next_round(0) == 1
    assert q.next_round(0) == 0  # nothing new to confirm
    assert q.add(b"c", 1, 6)
    assert q.next_round(0) == 2
    voters = Membership.of((1, 2, 3, 4, 5))
    assert q.ack(2, 2, voters) == []  # 2 of 5: no majority yet
    done = q.ack(3, 1, voters)  # node 3's round 1 with node 2's round 2: round 1 has 3 of 5
    assert [(r.ctx, r.index) for r in done] == [(b"a", 5), (b"b", 5)]
    assert q.ack(3, 1, voters) == []  # a duplicate answer counts once
    assert [r.ctx for r in q.ack(4, 2, voters)] == [b"c"]
    assert len(q) == 0


def test_reads_wait_for_an_entry_of_the_term_and_are_bounded() -> None:
    q = ReadQueue(1, max_reads=2)
    assert q.add(b"a", 1, None)
    assert q.next_round(0) == 0  # no index yet: no round either
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


def test_the_lease_runs_from_the_newest_round_a_majority_answered() -> None:
    q = ReadQueue(1, max_reads=10, lease=True)
    voters = Membership.of((1, 2, 3, 4, 5))
    for tick in (10, 11, 12):
        q.next_round(tick, force=True)  # rounds 1, 2, 3 sent at ticks 10, 11, 12
    assert q.sent_at == {1: 10, 2: 11, 3: 12} and q.lease_from is None
    q.ack(2, 3, voters)
    assert q.lease_from is None  # 2 of 5 answered round 3
    q.ack(3, 2, voters)  # round 2 has 3 of 5 (1, 2, 3)
    assert q.lease_from == 11 and q.sent_at == {3: 12}  # answered rounds are forgotten
    q.ack(4, 3, voters)
    assert q.lease_from == 12 and q.sent_at == {}
    q.drop_all()  # leadership ended: the lease with it
    assert q.lease_from is None and q.sent_at == {}
    assert ReadQueue(1, max_reads=10).next_round(5, force=True) == 1  # no lease: no record


def test_lease_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="requires check_quorum"):
        Config(1, (1, 2, 3), lease_reads=True, check_quorum=False)
    with pytest.raises(ConfigError, match="must exceed heartbeat_ticks"):
        Config(1, (1, 2, 3), lease_reads=True, election_ticks=5, lease_drift_ticks=3)
    with pytest.raises(ConfigError, match="lease_drift_ticks"):
        Config(1, (1, 2, 3), lease_drift_ticks=-1)
    assert Config(1, (1, 2, 3), lease_reads=True).lease_ticks == 7


def settle(nodes: dict[int, RawNode]) -> list[ReadState]:
    """Run every node's Readies and deliver every message until all are quiet;
    the read states node 1 handed out meanwhile."""
    states: list[ReadState] = []
    busy = True
    while busy:
        busy = False
        for n in nodes.values():
            while n.has_ready():
                busy = True
                rd = n.ready()
                states.extend(rd.read_states if n is nodes[1] else ())
                n.advance(rd)
                n.on_persisted(rd.number)
                for m in rd.messages + rd.messages_after_persist:
                    nodes[m.dst].step(m)
    return states


def test_a_lease_never_serves_before_a_round_or_after_a_step_down() -> None:
    cfg = {i: Config(i, (1, 2, 3), lease_reads=True) for i in (1, 2, 3)}
    nodes = {i: RawNode(cfg[i], random.Random(i)) for i in (1, 2, 3)}
    nodes[1].campaign()
    settle(nodes)
    assert nodes[1].status().role.name == "LEADER"
    nodes[1].read_index(b"a")  # no round answered yet: the read needs one
    assert nodes[1].raft.counters["reads_lease"] == 0
    assert settle(nodes) == [ReadState(b"a", 1)]
    nodes[1].read_index(b"b")  # the round that confirmed "a" holds the lease
    assert nodes[1].ready().read_states == (ReadState(b"b", 1),)
    # Cut off: after 2 * election_ticks without answers it steps down; the
    # lease ran out long before, and a read now is refused, not served.
    for _ in range(20):
        nodes[1].tick()
    assert nodes[1].status().role.name == "FOLLOWER"
    with pytest.raises(NotLeader):
        nodes[1].read_index(b"c")


def test_a_leader_handing_over_stops_serving_reads_from_its_lease() -> None:
    """The target of a transfer campaigns past the voters' lease on votes, so
    the old leader must not answer from its read lease once it hands over."""
    cfg = {i: Config(i, (1, 2, 3), lease_reads=True) for i in (1, 2, 3)}
    nodes = {i: RawNode(cfg[i], random.Random(i)) for i in (1, 2, 3)}
    nodes[1].campaign()
    settle(nodes)
    nodes[1].tick()  # a heartbeat round, answered: the lease holds
    settle(nodes)
    assert nodes[1].raft.lease_valid()
    nodes[1].transfer_leadership(2)  # node 2 is up to date: TimeoutNow goes at once
    assert not nodes[1].raft.lease_valid() and nodes[1].raft.reads.lease_from is None
    settle(nodes)
    assert nodes[2].status().role.name == "LEADER" and nodes[1].status().transferee == 0
    assert nodes[2].raft.counters["transfers_received"] == 1
