"""Minimal reproductions of core bugs the simulator found (seeds in regression_seeds.txt).

Fixed bugs are plain tests (they must stay fixed); open ones are strict xfails
that start failing the day the core is fixed, so the marker gets removed.
"""

from __future__ import annotations

import random

from drafty.core import AppendEntries, Config, Entry, HardState, RawNode, Role, VoteRequest
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
