"""Minimal reproductions of core bugs the simulator found (seeds in regression_seeds.txt).

Fixed bugs are plain tests (they must stay fixed); open ones are strict xfails
that start failing the day the core is fixed, so the marker gets removed.
"""

from __future__ import annotations

import random

import pytest

from drafty.core import (
    AppendEntries,
    Config,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    NotLeader,
    RawNode,
    Role,
    VoteRequest,
)
from drafty.core.membership import ConfChange, Membership, encode
from drafty.node import DiskWrite
from drafty.sim import MemoryCluster, SimDisk


def _leader_cluster(**overrides: object) -> MemoryCluster:
    c = MemoryCluster(3, seed=1, config_overrides=overrides)
    c.nodes[1].raw.campaign()
    c.stabilize()
    assert c.leader() == 1
    c.nodes[1].raw.propose(b"a")
    c.stabilize()  # node 3 is now in REPLICATE
    return c


def test_full_inflight_window_drains_after_lost_appends() -> None:
    """Seeds 4, 8, 48, 68 (fixed in 57fd412): lost appends filled the window for good."""
    c = _leader_cluster(max_inflight=2)
    c.cut.add((1, 3))
    for d in (b"b", b"c"):
        c.nodes[1].raw.propose(d)
        c.stabilize()
    c.heal()
    for _ in range(30):
        c.tick(1)
        c.stabilize()
    assert c.nodes[3].raw.status().last_index == c.nodes[1].raw.status().last_index == 4


def test_idle_leader_resends_a_lost_append() -> None:
    """Fixed in 57fd412: with no new proposal, a lost append was never resent."""
    c = _leader_cluster()
    c.cut.add((1, 3))
    c.nodes[1].raw.propose(b"b")
    c.stabilize()
    c.heal()
    for _ in range(30):
        c.tick(1)
        c.stabilize()
    assert c.nodes[3].raw.status().last_index == 3


def test_restart_after_a_crash_between_entries_and_hard_state() -> None:
    cfg = Config(2, (1, 2, 3))
    raw = RawNode(cfg, random.Random(0))
    raw.step(AppendEntries(1, 2, 1, 0, 0, (Entry(1, 1),), 0))  # new term and an entry
    rd = raw.ready()
    assert rd.entries and rd.hard_state is not None and rd.hard_state.term == 1
    disk = SimDisk()
    disk.write(DiskWrite(1, rd.entries, rd.hard_state))
    disk.crash(keep=1)  # the entries record reached the disk, the hard state did not
    assert disk.hard_state == HardState() and disk.entries == [Entry(1, 1)]
    RawNode(cfg, random.Random(0), hard_state=disk.hard_state, entries=disk.entries)


def test_a_rejected_vote_does_not_reset_the_election_timer() -> None:
    cfg = Config(1, (1, 2, 3), prevote=False)
    raw = RawNode(cfg, random.Random(0), hard_state=HardState(1, 0, 0), entries=[Entry(1, 1)])
    for _ in range(raw.raft.timeout - 1):
        raw.tick()
    raw.step(VoteRequest(2, 1, 2, 0, 0))  # a candidate with an empty log: rejected
    rd = raw.ready()
    assert [m.granted for m in rd.messages_after_persist] == [False]  # type: ignore[union-attr]
    raw.tick()
    assert raw.raft.role is Role.CANDIDATE


def test_a_node_outside_its_membership_does_not_forward() -> None:
    """Membership seed 19 (5 nodes, --members on): a joiner removed before it got any
    entry still knew the leader, forwarded clients' proposals and reads there, and the
    leader dropped them (not a member): every request hung until its deadline
    (-UNCERTAIN), and a client retrying at that node never got through. Now such a
    node points the caller at the leader instead."""
    cfg = Config(6, (), forward_proposals=True)
    raw = RawNode(cfg, random.Random(0))
    raw.step(Heartbeat(2, 6, 13, 0, 1))  # a leader that reached it, then forgot it
    raw.ready()
    assert raw.raft.leader == 2 and not raw.raft.membership.known
    with pytest.raises(NotLeader) as e:
        raw.propose(b"x")
    assert e.value.leader == 2
    with pytest.raises(NotLeader):
        raw.read_index(b"ctx")
    member = RawNode(Config(2, (1, 2, 3), forward_proposals=True), random.Random(0))
    member.step(Heartbeat(1, 2, 1, 0, 1))
    assert member.propose(b"x") is None  # a member still forwards


def test_a_leader_removed_by_its_pending_entry_may_still_campaign() -> None:
    """Membership seeds 1239 and 1769 (3 nodes): leader 1, removing itself, appended
    the entry leaving the joint membership ({2} + {1, 2}) and lost leadership before
    anyone stored it. Node 2, still joint, needs 1's vote; 1 refuses it (its log is
    longer) and, no voter in its own membership, never campaigned: no leader ever
    again. Now a node whose pending configuration entry removed it campaigns by that
    entry's membership, wins, commits the entry, and steps down."""
    c = MemoryCluster(2, seed=1, config_overrides={"prevote": False})
    c.nodes[1].raw.campaign()
    c.stabilize()
    assert c.leader() == 1
    c.nodes[1].raw.propose(b"a")
    c.stabilize()
    c.nodes[1].raw.propose_conf_change(ConfChange(remove=(1,)))
    c.process_ready(1)  # the joint entry goes to 2
    c.deliver(2)
    c.process_ready(2)  # 2 acknowledges it
    c.deliver(1)
    c.cut.add((1, 2))  # the commit and the entry leaving the joint membership are lost
    c.stabilize()
    r1, r2 = c.nodes[1].raw.raft, c.nodes[2].raw.raft
    assert r2.membership.joint and not r1.membership.is_voter(1)
    assert r1.log.last_index() > r2.log.last_index()  # 1 holds the entry leaving it
    for _ in range(25):  # 1 loses its quorum ({2}) and steps down
        c.tick_all()
        c.stabilize()
    assert c.leader() is None
    c.heal()
    for _ in range(40):
        c.tick_all()
        c.stabilize()
    assert c.leader() == 2
    assert r2.membership == Membership.of((2,)) and not r2.membership.joint
    assert r1.role is Role.FOLLOWER


def test_a_single_voter_leads_only_a_term_it_has_stored() -> None:
    """Seed 3591 (3 nodes, members auto; found by the sweep after the split-vote
    changes moved its random stream): node 2, the only voter, won its election at
    once and sent entries of the new term to a member it still replicated to
    before the term was durable. A crash before the fsync lost the term, and after
    the restart node 2 led the same term again with other entries: two different
    entries of one term at one index (log matching). Now a candidate counts its
    own vote only once its hard state is durable."""
    ids = Membership.of([1], [2])
    log = [Entry(1, 1, EntryKind.CONFIG, encode(ids))]

    def start() -> RawNode:
        return RawNode(Config(1, (1,)), random.Random(1), hard_state=HardState(1, 1, 1),
                       entries=log, applied=1)  # fmt: skip

    raw = start()
    raw.campaign()
    rd = raw.ready()
    assert rd.hard_state is not None and rd.hard_state.term == 2
    assert rd.messages == rd.entries == ()  # nothing of term 2 before it is stored
    assert raw.status().role is Role.CANDIDATE
    raw.advance(rd)
    raw = start()  # crashed before the fsync: term 2 is lost, and nobody saw it
    raw.campaign()
    rd = raw.ready()
    raw.advance(rd)
    raw.on_persisted(rd.number)
    assert raw.status().role is Role.LEADER and raw.status().term == 2
    rd = raw.ready()
    assert [type(m) for m in rd.messages] == [AppendEntries]
    assert [e.kind for e in rd.entries] == [EntryKind.NOOP]
