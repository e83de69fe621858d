"""Unit tests of the oracle: each invariant fires on a hand-made violation."""

from __future__ import annotations

import random

import pytest

from drafty.core import (
    Config,
    Entry,
    HardState,
    RawNode,
    Ready,
    Role,
    SoftState,
    VoteResponse,
)
from drafty.sim import Oracle, SimDisk, Violation

VOTERS = (1, 2, 3)


def _e(index: int, term: int, data: str = "") -> Entry:
    return Entry(index, term, data=(data or f"{term}/{index}").encode())


def _rd(
    entries: tuple[Entry, ...] = (),
    hs: HardState | None = None,
    role: Role | None = None,
    node: int = 1,
) -> Ready:
    soft = None if role is None else SoftState(role, node if role is Role.LEADER else 0)
    return Ready(1, soft, hs, entries, (), (), ())


def _raw(node: int, disk: SimDisk) -> RawNode:
    return RawNode(
        Config(node, VOTERS), random.Random(0), hard_state=disk.hard_state, entries=disk.entries
    )


class World:
    """Three started nodes with durable disks, and an oracle watching them."""

    def __init__(self) -> None:
        self.oracle = Oracle()
        self.disks = {i: SimDisk() for i in VOTERS}
        self.raws = {i: _raw(i, self.disks[i]) for i in VOTERS}
        for i in VOTERS:
            self.oracle.on_start(i, self.raws[i], self.disks[i])

    def store(self, node: int, *entries: Entry, hs: HardState | None = None) -> None:
        """Node ``node`` appends and syncs ``entries`` (and a hard state)."""
        rd = _rd(entries, hs)
        self.oracle.on_ready(node, rd)
        self.disks[node].write_ready(rd)
        self.disks[node].complete_sync(self.disks[node].written)
        self.oracle.on_durable(node, self.disks[node])

    def lead(self, node: int, term: int) -> None:
        r = self.raws[node].raft
        r.role, r.term, r.leader = Role.LEADER, term, node
        self.oracle.after_event(node, self.raws[node])


def _fires(invariant: str) -> pytest.RaisesExc[Violation]:
    return pytest.raises(Violation, match=f"^{invariant}")


def test_a_clean_history_passes() -> None:
    w = World()
    w.lead(1, 1)
    for i in VOTERS:
        w.store(i, _e(1, 1), _e(2, 1), hs=HardState(1, 1, 0))
    for i in VOTERS:
        w.oracle.on_applied(i, _e(1, 1), 1, w.disks[i])
        w.oracle.on_applied(i, _e(2, 1), 1, w.disks[i])
    w.oracle.on_ack(2)
    assert w.oracle.commit_index() == 2 and w.oracle.stats.elections == 1


def test_two_leaders_in_one_term() -> None:
    w = World()
    w.lead(1, 2)
    w.lead(1, 2)  # the same leader seen again is fine
    with _fires("election safety"):
        w.lead(2, 2)


def test_log_matching() -> None:
    w = World()
    w.store(1, _e(1, 1, "a"), _e(2, 1, "b"))
    w.store(2, _e(1, 1, "a"), _e(2, 1, "b"))
    with _fires("log matching"):
        w.store(3, _e(1, 1, "other"))


def test_log_matching_looks_at_the_whole_prefix() -> None:
    w = World()
    w.store(1, _e(1, 1, "a"), _e(2, 2, "b"))
    w.store(2, _e(1, 2, "x"))  # another (index, term): no conflict yet
    with _fires("log matching"):  # same entry at 2, different prefix
        w.store(2, _e(2, 2, "b"))


def test_leader_append_only() -> None:
    w = World()
    w.oracle.on_ready(1, _rd((_e(1, 2), _e(2, 2)), HardState(2, 1, 0), Role.LEADER))
    w.oracle.on_ready(1, _rd((_e(3, 2),)))
    with _fires("leader append-only"):
        w.oracle.on_ready(1, _rd((_e(3, 2, "again"),)))


def test_follower_may_overwrite() -> None:
    w = World()
    w.oracle.on_ready(1, _rd((_e(1, 1), _e(2, 1))))
    w.oracle.on_ready(1, _rd((_e(2, 2),), HardState(2, 0, 0)))


def test_apply_order_and_durability() -> None:
    w = World()
    w.store(1, _e(1, 1), _e(2, 1))
    with _fires("apply order"):
        w.oracle.on_applied(1, _e(2, 1), 1, w.disks[1])
    w = World()
    w.oracle.on_ready(1, _rd((_e(1, 1),)))  # written, never synced
    with _fires("applied before durable"):
        w.oracle.on_applied(1, _e(1, 1), 1, w.disks[1])


def test_applying_an_entry_not_in_the_log() -> None:
    w = World()
    w.store(1, _e(1, 1))
    with _fires("apply order"):
        w.oracle.on_applied(1, _e(1, 1, "different"), 1, w.disks[1])


def test_state_machine_safety() -> None:
    w = World()
    w.store(1, _e(1, 2, "a"))
    w.store(3, _e(1, 2, "a"))
    w.store(2, _e(1, 1, "b"))
    w.oracle.on_applied(1, _e(1, 2, "a"), 2, w.disks[1])
    with _fires("state machine safety"):
        w.oracle.on_applied(2, _e(1, 1, "b"), 2, w.disks[2])


def test_term_and_vote_never_go_back() -> None:
    w = World()
    w.oracle.on_ready(1, _rd(hs=HardState(3, 2, 0)))
    with _fires("term monotonic"):
        w.oracle.on_ready(1, _rd(hs=HardState(2, 2, 0)))
    with _fires("vote monotonic"):
        w.oracle.on_ready(1, _rd(hs=HardState(3, 3, 0)))
    w.oracle.on_ready(1, _rd(hs=HardState(4, 0, 0)))  # a new term resets the vote


def test_durable_hard_state_is_monotonic_across_restarts() -> None:
    w = World()
    w.store(1, hs=HardState(3, 2, 0))
    w.oracle.on_crash(1, w.disks[1])
    forgot = RawNode(Config(1, VOTERS), random.Random(0), hard_state=HardState(3, 0, 0))
    with _fires("vote monotonic"):
        w.oracle.on_start(1, forgot, w.disks[1])


def test_promises_must_survive_a_crash() -> None:
    w = World()
    w.oracle.on_ready(1, _rd(hs=HardState(3, 2, 0)))
    w.oracle.on_send(VoteResponse(1, 2, 3, True))  # left before the hard state was synced
    w.disks[1].crash()
    w.oracle.on_crash(1, w.disks[1])
    with _fires("promise durable"):
        w.oracle.on_start(1, _raw(1, w.disks[1]), w.disks[1])


def test_pre_votes_promise_nothing() -> None:
    w = World()
    w.oracle.on_send(VoteResponse(1, 2, 3, True, pre=True))
    w.oracle.on_crash(1, w.disks[1])
    w.oracle.on_start(1, _raw(1, w.disks[1]), w.disks[1])


def test_commit_safety_catches_an_unprotected_commit() -> None:
    """Figure 8: index 1 of term 1 committed while node 3 holds a term-2 entry there."""
    w = World()
    w.store(1, _e(1, 1, "a"), hs=HardState(3, 1, 0))
    w.store(2, _e(1, 1, "a"), hs=HardState(3, 1, 0))
    w.store(3, _e(1, 2, "b"), hs=HardState(2, 3, 0))
    with _fires("commit safety"):
        w.oracle.on_applied(1, _e(1, 1, "a"), 3, w.disks[1])


def test_commit_safety_accepts_a_lagging_node() -> None:
    w = World()
    w.store(1, _e(1, 1), _e(2, 1))
    w.store(2, _e(1, 1), _e(2, 1))
    w.store(3, _e(1, 1))
    w.oracle.on_applied(1, _e(1, 1), 1, w.disks[1])
    w.oracle.on_applied(1, _e(2, 1), 1, w.disks[1])


def test_leader_completeness() -> None:
    w = World()
    w.store(1, _e(1, 1))
    w.store(2, _e(1, 1))
    w.oracle.on_applied(1, _e(1, 1), 1, w.disks[1])
    with _fires("leader completeness"):
        w.lead(3, 2)


def test_leader_completeness_skips_entries_committed_in_later_terms() -> None:
    w = World()
    w.store(1, _e(1, 1))
    w.store(2, _e(1, 1))
    w.oracle.on_applied(1, _e(1, 1), 5, w.disks[1])  # first seen applied in term 5
    w.lead(3, 2)  # a late leader of term 2 need not hold it (commit safety still would)
