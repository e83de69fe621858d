"""Membership (drafty.core.membership): joint quorums, change planning, encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drafty.core.membership import (
    MAX_CONTEXT_BYTES,
    UNKNOWN,
    ConfChange,
    ConfChangeError,
    Membership,
    MembershipDecodeError,
    MembershipLog,
    decode,
    decode_context,
    encode,
    leave_joint,
    plan,
)
from drafty.core.quorum import VoteResult


def test_a_joint_membership_needs_a_majority_of_both_halves() -> None:
    m = Membership.of(voters=[1, 2, 4], outgoing=[1, 2, 3])
    assert m.joint and m.all_voters == {1, 2, 3, 4}
    # 1, 2 and 3 stored index 9 (a majority of the old voters), 4 only 5:
    # the new voters' majority (1, 2) has 9 too, so 9 is committed.
    assert m.committed_index({1: 9, 2: 9, 3: 9, 4: 5}) == 9
    # 3 and 4 ahead, 1 and 2 behind: each half has only one of them.
    assert m.committed_index({1: 2, 2: 2, 3: 9, 4: 9}) == 2
    # 1 and 3 are a majority of the old voters, but of the new ones only 1 has 9.
    assert m.committed_index({1: 9, 2: 2, 3: 9, 4: 2}) == 2
    assert m.vote_result({1: True, 3: True}) is VoteResult.PENDING  # new half: 1 of 3
    assert m.vote_result({1: True, 3: True, 4: True}) is VoteResult.WON
    assert m.vote_result({1: True, 2: False, 4: False}) is VoteResult.LOST  # new half lost
    assert m.has_quorum({1, 2}) and not m.has_quorum({1, 3}) and not m.has_quorum({2, 4})


def test_the_new_half_alone_decides_nothing_while_joint() -> None:
    m = Membership.of(voters=[4, 5, 6], outgoing=[1, 2, 3])
    assert m.committed_index({4: 7, 5: 7, 6: 7}) == 0
    assert m.vote_result({4: True, 5: True, 6: True}) is VoteResult.PENDING
    assert not m.has_quorum({4, 5, 6})


def test_learners_never_count() -> None:
    m = Membership.of(voters=[1, 2, 3], learners=[4, 5])
    assert m.members == {1, 2, 3, 4, 5} and not m.is_voter(4)
    assert m.committed_index({1: 3, 4: 9, 5: 9}) == 0
    assert m.vote_result({4: True, 5: True, 1: True}) is VoteResult.PENDING


def test_plan_gives_a_joint_membership_for_voter_changes_and_a_direct_one_for_learners() -> None:
    cur = Membership.of([1, 2, 3])
    assert plan(cur, ConfChange(add_learners=(4,))) == Membership.of([1, 2, 3], [4])
    joint = plan(Membership.of([1, 2, 3], [4]), ConfChange(promote=(4,), remove=(1,)))
    assert joint == Membership.of([2, 3, 4], outgoing=[1, 2, 3])
    assert leave_joint(joint) == Membership.of([2, 3, 4])
    grown = plan(cur, ConfChange(add_voters=(4, 5)))
    assert grown == Membership.of([1, 2, 3, 4, 5], outgoing=[1, 2, 3])
    assert plan(cur, ConfChange(remove=(3,))) == Membership.of([1, 2], outgoing=[1, 2, 3])
    assert plan(Membership.of([1, 2, 3], [4]), ConfChange(remove=(4,))) == cur


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (ConfChange(), "empty"),
        (ConfChange(add_voters=(2,)), "node 2 is already a member"),
        (ConfChange(add_learners=(4,)), "node 4 is already a member"),
        (ConfChange(promote=(2,)), "node 2 is not a learner"),
        (ConfChange(remove=(9,)), "node 9 is not a member"),
        (ConfChange(remove=(1, 2)), "at least one voter"),
        (ConfChange(add_voters=(5,), remove=(5,)), "only once"),
        (ConfChange(add_voters=(0,)), "positive"),
    ],
)
def test_bad_changes_say_what_is_wrong(change: ConfChange, problem: str) -> None:
    with pytest.raises(ConfChangeError, match=problem):
        plan(Membership.of([1, 2], [4]), change)


def test_no_change_while_joint() -> None:
    joint = Membership.of([1, 2, 4], outgoing=[1, 2, 3])
    with pytest.raises(ConfChangeError, match="still in progress"):
        plan(joint, ConfChange(add_learners=(7,)))
    with pytest.raises(ConfChangeError, match="not in a joint"):
        leave_joint(Membership.of([1]))


def test_memberships_refuse_inconsistent_shapes() -> None:
    for bad in (
        lambda: Membership((), learners=(1,)),
        lambda: Membership((), outgoing=(1,)),
        lambda: Membership((2, 1)),
        lambda: Membership((1, 1)),
        lambda: Membership((1,), learners=(1,)),
        lambda: Membership((1, 2), outgoing=(1, 2)),
        lambda: Membership((0,)),
    ):
        with pytest.raises(ValueError):
            bad()


@given(
    voters=st.sets(st.integers(1, 2**63), min_size=1, max_size=9),
    learners=st.sets(st.integers(1, 2**63), max_size=5),
    outgoing=st.sets(st.integers(1, 2**63), max_size=9),
)
def test_encoding_round_trips(voters: set[int], learners: set[int], outgoing: set[int]) -> None:
    learners -= voters | outgoing
    if outgoing == voters:
        outgoing = set()
    m = Membership.of(voters, learners, outgoing)
    assert decode(encode(m)) == m


def test_context_travels_after_the_membership() -> None:
    m = Membership.of([1, 2], learners=[3])
    data = encode(m, b"addr 3=host:7000")
    assert decode(data) == m and decode_context(data) == b"addr 3=host:7000"
    assert decode_context(encode(m)) == b""
    with pytest.raises(ConfChangeError, match="context"):
        plan(m, ConfChange(add_learners=(4,), context=bytes(MAX_CONTEXT_BYTES + 1)))
    with pytest.raises(ConfChangeError, match="does not know"):
        plan(UNKNOWN, ConfChange(add_learners=(4,)))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02\x00\x01\x00\x00\x00\x00" + bytes(8), encode(Membership.of([1]))[:-1],
     encode(Membership.of([1])) + bytes(MAX_CONTEXT_BYTES + 1), b"\x01\x00\x00\x00\x00\x00\x00"],
)  # fmt: skip
def test_garbage_entries_do_not_decode(data: bytes) -> None:
    with pytest.raises(MembershipDecodeError):
        decode(data)


def test_the_membership_log_follows_appends_truncations_and_compactions() -> None:
    a, b, c = (
        Membership.of([1, 2, 3]),
        Membership.of([1, 2, 3, 4], outgoing=[1, 2, 3]),
        (Membership.of([1, 2, 3, 4])),
    )
    log = MembershipLog(a)
    log.appended(5, b)
    log.appended(8, c)
    assert log.current == c and log.at(7) == b and log.at(4) == a
    assert log.truncated(6) and log.current == b  # entry 8 was overwritten
    assert not log.truncated(6)
    log.compacted(5)
    assert log.base == b and log.base_index == 5 and log.changes == []
    with pytest.raises(ValueError):
        log.appended(5, c)


def test_a_restart_takes_the_membership_from_the_snapshot_and_the_log_after_it() -> None:
    """cluster.toml only seeds: a node restarting from a snapshot whose log
    tail still holds the configuration entries before the snapshot's index
    (kept behind it for slow followers) takes the snapshot's membership and
    the changes after it, not the configured voters."""
    import random

    from drafty.core import Config, Entry, EntryKind, HardState, RawNode, SnapshotMeta

    joint = Membership.of([1, 2], outgoing=[1, 2, 3])
    after = Membership.of([1, 2])
    grown = Membership.of([1, 2], learners=[3])
    entries = [
        Entry(1, 1, EntryKind.NOOP),
        Entry(2, 1, EntryKind.CONFIG, encode(joint)),
        Entry(3, 1, EntryKind.CONFIG, encode(after)),
        Entry(4, 1, EntryKind.CONFIG, encode(grown)),
    ]
    raw = RawNode(Config(1, (1, 2, 3)), random.Random(1), hard_state=HardState(1, 1, 4),
                  entries=entries, applied=3, snapshot=SnapshotMeta(3, 1, (1, 2)))  # fmt: skip
    r = raw.raft
    assert r.members.base == after and r.members.base_index == 3
    assert r.membership == grown and r.peers == (2, 3)
    assert r.snapshot_meta(3, 1) == SnapshotMeta(3, 1, (1, 2))
    raw = RawNode(Config(1, (1, 2, 3)), random.Random(1), hard_state=HardState(1, 1, 4),
                  entries=entries)  # fmt: skip
    assert raw.raft.membership == grown and raw.raft.members.at(2) == joint
