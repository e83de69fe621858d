"""Membership changes at the node layer and the address book (drafty.node.members)."""

from __future__ import annotations

import random

import pytest

from drafty.core import Config, Entry, EntryKind, RawNode
from drafty.core.membership import ConfChange, ConfChangeError, Membership, encode
from drafty.node import Node, Refused
from drafty.node import snapshot as payload
from drafty.node.dedupe import DuplicateFilter
from drafty.node.members import (
    MAX_BOOK_ENTRIES,
    AddressBook,
    AddressError,
    MemberAddress,
    decode_book,
    encode_book,
    from_rows,
)
from drafty.node.sessions import SessionTable

from .test_node import Cluster, Counter, Member

A = {i: MemberAddress(f"10.0.0.{i}:7000", f"10.0.0.{i}:6379") for i in range(1, 6)}


def seeded(n: int = 3) -> Cluster:
    """A cluster whose nodes start with the seed addresses of 1..n."""
    c = Cluster(n)
    for i in c.ids:
        c.node(i).addresses.update({k: A[k] for k in c.ids})
    return c


def join(c: Cluster, i: int) -> Member:
    """Start node ``i`` as a joiner: empty, knowing no membership or address."""
    raw = RawNode(Config(i, (), prevote=False, check_quorum=False), random.Random(i))
    m = Member(Node(raw, Counter(), incarnation=1, now=c.now(1)), Counter())
    c.members[i] = m
    c.replies[i] = []
    c.ids = (*c.ids, i)
    return m


def test_the_address_book_grows_bounded_and_counts_its_versions() -> None:
    book = AddressBook({1: A[1]})
    assert book.version == 1 and 1 in book and len(book) == 1
    assert not book.update({1: A[1]}) and book.version == 1  # nothing new: same version
    assert book.update({2: A[2], 1: A[3]}) and book.version == 2
    assert book.get(1) == A[3] and book.subset([2, 9]) == {2: A[2]}
    book.prune([2])
    assert book.items() == [(2, A[2])] and book.version == 3
    with pytest.raises(AddressError, match="at most"):
        book.update({i: A[1] for i in range(3, MAX_BOOK_ENTRIES + 3)})
    assert len(book) == 1  # refused whole
    with pytest.raises(AddressError):
        MemberAddress("", "x:1")
    with pytest.raises(AddressError):
        MemberAddress("x" * 300, "x:1")


def test_a_context_round_trips_and_garbage_is_an_address_error() -> None:
    book = {1: A[1], 4: A[4]}
    assert decode_book(encode_book(book)) == book
    assert decode_book(b"") == {}
    for bad in (b"{", b"[]", b'{"addresses": []}', b'{"addresses": {"x": ["a", "b"]}}',
                b'{"addresses": {"0": ["a", "b"]}}', b'{"addresses": {"1": ["a"]}}',
                b'{"addresses": {"1": ["", "b"]}}', b'{"addresses": {"1": [1, "b"]}}'):  # fmt: skip
        with pytest.raises(AddressError):
            decode_book(bad)
    assert from_rows([[1, "a:1", "b:2"]]) == {1: MemberAddress("a:1", "b:2")}
    for rows in ([[0, "a", "b"]], [[1, "a"]], "x", [[True, "a", "b"]]):
        with pytest.raises(AddressError):
            from_rows(rows)


def test_adding_a_learner_answers_with_its_membership_and_spreads_addresses() -> None:
    c = seeded()
    c.elect(1)
    join(c, 4)
    rid = c.node(1).change_membership(ConfChange(add_learners=(4,)), c.now(1), addresses={4: A[4]})
    c.pump()
    reply = c.outcome(1, rid)
    assert reply.error is None and reply.value == Membership.of([1, 2, 3], learners=[4])
    assert reply.index == 2  # the configuration entry, after the leader's no-op
    for i in (1, 2, 3, 4):
        # Every member, the joiner included, can now reach every other one.
        assert c.node(i).addresses.subset([1, 2, 3, 4]) == {k: A[k] for k in (1, 2, 3, 4)}, i
        assert c.node(i).status().membership.learners == (4,)
    assert c.node(4).applied == c.node(1).applied  # the joiner caught up


def test_a_refused_change_says_why_and_a_follower_points_at_the_leader() -> None:
    c = seeded()
    c.elect(1)
    rid = c.node(2).change_membership(ConfChange(remove=(3,)), c.now(2))
    c.pump()
    r = c.outcome(2, rid)
    assert isinstance(r.error, Refused) and r.error.leader == 1
    before = c.node(1).raw.raft.log.last_index()
    rid = c.node(1).change_membership(ConfChange(add_voters=(2,)), c.now(1))
    c.pump()
    r = c.outcome(1, rid)
    assert isinstance(r.error, ConfChangeError) and "already a member" in str(r.error)
    assert c.node(1).raw.raft.log.last_index() == before  # nothing appended


def test_a_change_replaced_by_a_new_leader_is_refused_not_answered() -> None:
    c = seeded()
    c.elect(1)
    c.hold.add(1)  # node 1's entry never leaves it
    rid = c.node(1).change_membership(ConfChange(remove=(3,)), c.now(1))
    c.pump()
    c.hold.clear()
    c.elect(2)
    c.submit(2, b"1")
    c.pump()
    r = c.outcome(1, rid)
    assert isinstance(r.error, Refused), r  # its entry was overwritten: no effect
    assert c.node(1).status().membership == Membership.of([1, 2, 3])


def test_snapshots_carry_the_address_book_and_old_payloads_still_read() -> None:
    c = seeded()
    c.elect(1)
    _, data = c.node(1).capture()
    sessions, dedupe = SessionTable(), DuplicateFilter()
    assert payload.decode(data, Counter(), sessions, dedupe) == {k: A[k] for k in (1, 2, 3)}
    old = payload.encode(Counter(), SessionTable(), DuplicateFilter())  # no book
    assert payload.decode(old, Counter(), SessionTable(), DuplicateFilter()) == {}


def test_a_restarted_node_learns_addresses_from_its_log() -> None:
    c = seeded()
    c.elect(1)
    join(c, 4)
    c.node(1).change_membership(ConfChange(add_learners=(4,)), c.now(1), addresses={4: A[4]})
    c.pump()
    m = c.members[2]
    raw = RawNode(Config(2, c.ids[:3], prevote=False, check_quorum=False), random.Random(9),
                  hard_state=m.hard_state, entries=list(m.entries))  # fmt: skip
    fresh = Node(raw, Counter(), incarnation=2, now=c.now(2))  # no seed book given
    assert fresh.addresses.subset([1, 2, 3, 4]) == {k: A[k] for k in (1, 2, 3, 4)}


def test_a_malformed_context_is_counted_never_fatal() -> None:
    c = seeded()
    c.elect(1)
    version = c.node(2).addresses.version
    bad = Entry(1, 1, EntryKind.CONFIG, encode(Membership.of([1, 2, 3]), b"{nonsense"))
    c.node(2)._learn_addresses([bad])
    assert c.node(2).status().counters["bad_config_context"] == 1
    assert c.node(2).addresses.version == version  # the book is unchanged
