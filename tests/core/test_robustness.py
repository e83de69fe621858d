"""The core never raises on remote input: bad or stale messages are dropped and counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drafty.core import (
    NONE,
    AppendEntries,
    AppendResponse,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    Message,
    NotLeader,
    Propose,
    RawNode,
    Role,
    VoteRequest,
    VoteResponse,
)
from drafty.sim import MemoryCluster

from .helpers import drain, elect, log_of, node, set_disk


def snapshot(raw: RawNode) -> tuple[Any, ...]:
    """Everything a dropped message must leave untouched."""
    st = raw.status()
    log = raw.raft.log
    return (
        st.role,
        st.term,
        st.vote,
        st.leader,
        st.commit,
        st.applied,
        st.persisted,
        st.last_index,
        tuple(log.entries),
        log.stable,
        tuple(sorted(st.followers.items())),
        raw.raft.election_elapsed,
    )


def leader_follower() -> tuple[MemoryCluster, RawNode, RawNode, int]:
    """Node 1 leads term 3 over the log [1/1, 2/2, 3/3 no-op, 3/4 "a"], all committed."""
    c = MemoryCluster(3, config_overrides={"check_quorum": False})
    for i in c.ids:
        set_disk(c, i, HardState(2, 0, 2), log_of([1, 2]))
    elect(c, 1)
    c.nodes[1].raw.propose(b"a")
    c.stabilize()
    c.tick(1)
    c.stabilize()
    term = c.nodes[1].raw.status().term
    assert term == 3 and c.nodes[2].raw.status().commit == 4
    return c, c.nodes[1].raw, c.nodes[2].raw, term


# Messages addressed to the follower (node 2) that must be dropped; t is the term.
def bad_for_follower(t: int) -> list[tuple[str, Message]]:
    ok_entries = (Entry(5, t), Entry(6, t))
    return [
        ("second_leader_in_term", AppendEntries(9, 2, t, 4, t, ok_entries, 6)),
        ("bad_sender", Heartbeat(2, 2, t, 4)),  # from itself
        ("bad_sender", VoteRequest(0, 2, t + 1, 9, t, pre=False)),
        ("wrong_destination", AppendEntries(1, 3, t, 4, t, ok_entries, 6)),
        ("wrong_destination", Heartbeat(1, 1, t, 4)),
        ("invalid_message", AppendEntries(1, 2, -1, 4, t, (), 4)),
        ("invalid_message", AppendEntries(1, 2, t, -1, t, (), 4)),
        ("invalid_message", AppendEntries(1, 2, t, 4, -1, (), 4)),
        ("invalid_message", AppendEntries(1, 2, t, 4, t, (), -5)),
        ("invalid_message", AppendEntries(1, 2, t, 4, t + 1, (), 4)),  # prev term above msg term
        ("invalid_message", AppendEntries(1, 2, t, 4, t, (Entry(6, t),), 6)),  # gap
        ("invalid_message", AppendEntries(1, 2, t, 4, t, (Entry(5, t), Entry(7, t)), 7)),
        ("invalid_message", AppendEntries(1, 2, t, 4, t, (Entry(4, t),), 5)),  # overlaps prev
        ("invalid_message", AppendEntries(1, 2, t, 4, t, (Entry(5, t + 1),), 5)),  # term > msg
        ("invalid_message", AppendEntries(1, 2, t, 4, t, (Entry(5, 1),), 5)),  # below prev term
        ("invalid_message", AppendEntries(1, 2, t, 4, t, (Entry(5, t), Entry(6, 2)), 5)),
        ("invalid_message", Heartbeat(1, 2, t, -1)),
        ("invalid_message", VoteRequest(3, 2, t + 1, -1, t)),
        ("invalid_message", VoteRequest(3, 2, t + 1, 9, -1, pre=True)),
        ("invalid_message", AppendResponse(1, 2, t, True, -3)),
        ("invalid_message", VoteResponse(3, 2, -2, True)),
        ("stale_term", AppendEntries(1, 2, t - 1, 2, 2, (Entry(3, 2),), 3)),
        ("stale_term", Heartbeat(1, 2, t - 1, 9)),
        ("stale_term", VoteRequest(3, 2, t - 1, 99, t - 1)),
        ("stale_term", VoteRequest(3, 2, t - 1, 99, t - 1, pre=True)),
        ("stale_term", VoteResponse(3, 2, t - 1, True)),
        ("stale_term", HeartbeatResponse(3, 2, t - 1)),
        ("stale_term", Propose(3, 2, t - 1, (b"x",))),
    ]


@pytest.mark.parametrize("case", range(len(bad_for_follower(1))))
def test_follower_drops_and_counts_bad_message(case: int) -> None:
    _c, _, follower, term = leader_follower()
    reason, msg = bad_for_follower(term)[case]
    before = snapshot(follower)
    counters = dict(follower.status().counters)
    follower.step(msg)
    assert snapshot(follower) == before, msg
    after = follower.status().counters
    assert after.get(reason, 0) == counters.get(reason, 0) + 1, (reason, after)
    rd = drain(follower)
    assert rd.hard_state is None and rd.entries == () and rd.committed_entries == ()
    replies = [*rd.messages, *rd.messages_after_persist]
    if reason == "stale_term":
        # Only a stale leader or pre-candidate is told the current term.
        for m in replies:
            assert m.dst == msg.src and m.term == term
            assert isinstance(m, (AppendResponse, VoteResponse))
            assert not getattr(m, "success", False) and not getattr(m, "granted", False)
    else:
        assert replies == []


def bad_for_leader(t: int) -> list[tuple[str, Message]]:
    return [
        ("not_a_member", AppendResponse(4, 1, t, True, 4)),
        ("bad_sender", HeartbeatResponse(1, 1, t)),
        ("wrong_destination", AppendResponse(2, 3, t, True, 4)),
        ("invalid_message", AppendResponse(2, 1, t, False, -1, 1, 1)),
        ("invalid_message", AppendResponse(2, 1, t, False, 2, -1, 1)),
        ("invalid_message", AppendResponse(2, 1, t, False, 2, 1, -1)),
        ("impossible_match", AppendResponse(2, 1, t, True, 5)),  # beyond the leader's log
        ("impossible_match", AppendResponse(2, 1, t, True, 10**9)),
        ("stale_term", AppendResponse(2, 1, t - 1, True, 4)),
        ("stale_term", AppendResponse(2, 1, t - 1, False, 2, 1, 1)),
        ("stale_term", HeartbeatResponse(2, 1, t - 1)),
        ("second_leader_in_term", AppendEntries(2, 1, t, 0, 0, (Entry(1, t),), 1)),
        ("second_leader_in_term", Heartbeat(3, 1, t, 1)),
        ("unexpected_message", VoteResponse(2, 1, t, True)),
    ]


@pytest.mark.parametrize("case", range(len(bad_for_leader(1))))
def test_leader_drops_and_counts_bad_message(case: int) -> None:
    _c, leader, _, term = leader_follower()
    reason, msg = bad_for_leader(term)[case]
    before = snapshot(leader)
    counters = dict(leader.status().counters)
    leader.step(msg)
    assert snapshot(leader) == before, msg
    assert leader.status().counters.get(reason, 0) == counters.get(reason, 0) + 1
    rd = drain(leader)
    assert rd.hard_state is None and rd.entries == ()
    assert rd.messages == rd.messages_after_persist == ()


def test_stale_leader_messages_are_answered_with_current_term() -> None:
    _c, _, follower, term = leader_follower()
    follower.step(AppendEntries(3, 2, term - 1, 0, 0, (), 0))
    assert drain(follower).messages_after_persist == (AppendResponse(2, 3, term, False, 0),)


def test_rejection_beyond_leader_log_is_dropped() -> None:
    """An AppendResponse *rejection* naming a prev_index the leader never sent
    (beyond its log) is as impossible as a success beyond it: it must be
    dropped and counted, not move the follower's progress."""
    _c, leader, _, term = leader_follower()
    assert leader.status().followers[2].state == "replicate"
    before = snapshot(leader)
    counters = dict(leader.status().counters)
    last = leader.status().last_index
    leader.step(AppendResponse(2, 1, term, False, last + 50, 0, last + 50))
    assert snapshot(leader) == before
    assert sum(leader.status().counters.values()) == sum(counters.values()) + 1


def test_rejection_beyond_leader_log_does_not_stall_replication() -> None:
    c, leader, _, term = leader_follower()
    last = leader.status().last_index
    leader.step(AppendResponse(2, 1, term, False, last + 50, 0, last + 50))
    c.crash(3)  # node 2 is now needed for every commit
    c.nodes[1].raw.propose(b"b")
    for _ in range(10):
        c.tick(1)
        c.stabilize()
    assert leader.status().commit == last + 1


def test_append_contradicting_committed_prefix_is_dropped() -> None:
    raw = node(2, hard_state=HardState(3, 0, 1), entries=[Entry(1, 3)])
    raw.step(AppendEntries(1, 2, 5, 0, 0, (Entry(1, 1), Entry(2, 1)), 0))
    terms = [e.term for e in raw.raft.log.entries]
    assert terms == sorted(terms), terms
    assert raw.status().last_index == 1


def test_entry_with_term_zero_is_dropped() -> None:
    raw = node(2)
    raw.step(AppendEntries(1, 2, 1, 0, 0, (Entry(1, 0),), 1))
    assert raw.status().last_index == 0
    assert raw.status().counters.get("invalid_message") == 1


def test_follower_ignores_commit_beyond_its_log() -> None:
    """A commit index past our log is clamped, never an error."""
    raw = node(2)
    raw.step(AppendEntries(1, 2, 1, 0, 0, (Entry(1, 1),), 10**9))
    raw.step(Heartbeat(1, 2, 1, 10**9))
    st = raw.status()
    assert st.commit == 1 == st.last_index


def test_unexpected_message_kinds_are_counted() -> None:
    raw = node(2, hard_state=HardState(1, 0, 0))
    raw.step(AppendResponse(1, 2, 1, True, 0))
    raw.step(HeartbeatResponse(3, 2, 1))
    raw.step(Propose(3, 2, 1, (b"x",)))
    raw.step(VoteResponse(3, 2, 1, True))
    assert raw.status().counters["unexpected_message"] == 4
    assert raw.status().last_index == 0 and raw.status().role is Role.FOLLOWER


# -- random input ------------------------------------------------------------------

_term = st.integers(-1, 6)
_idx = st.integers(-1, 9)
_src = st.sampled_from([1, 2, 2, 3, 3, 4])
_dst = st.sampled_from([1, 1, 1, 1, 2])


@st.composite
def _append(draw: st.DrawFn) -> AppendEntries:
    term = draw(_term)
    prev = draw(st.integers(0, 6))
    prev_term = draw(st.integers(0, max(0, term)))
    if draw(st.booleans()):  # well-formed run of entries
        terms = sorted(draw(st.lists(st.integers(max(prev_term, 1), max(term, 1)), max_size=4)))
        entries = tuple(
            Entry(prev + 1 + k, t, data=draw(st.binary(max_size=3))) for k, t in enumerate(terms)
        )
    else:  # anything
        entries = tuple(Entry(draw(_idx), draw(_term)) for _ in range(draw(st.integers(0, 3))))
    return AppendEntries(draw(_src), draw(_dst), term, prev, prev_term, entries, draw(_idx))


_message: st.SearchStrategy[Message] = st.one_of(
    _append(),
    st.builds(AppendResponse, _src, _dst, _term, st.booleans(), _idx, _term, _idx),
    st.builds(VoteRequest, _src, _dst, _term, _idx, _term, st.booleans()),
    st.builds(VoteResponse, _src, _dst, _term, st.booleans(), st.booleans()),
    st.builds(Heartbeat, _src, _dst, _term, _idx),
    st.builds(HeartbeatResponse, _src, _dst, _term),
    st.builds(Propose, _src, _dst, _term, st.lists(st.binary(max_size=2), max_size=2).map(tuple)),
)

_action = st.one_of(
    st.tuples(st.just("msg"), _message),
    st.tuples(st.just("tick"), st.integers(1, 12)),
    st.tuples(st.just("campaign")),
    st.tuples(st.just("propose"), st.binary(max_size=3)),
    st.tuples(st.just("grant"), st.sampled_from([2, 3])),
    st.tuples(st.just("ack"), st.sampled_from([2, 3]), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("ready")),
    st.tuples(st.just("persist")),
)


@dataclass
class Checker:
    raw: RawNode
    term: int = 0
    vote_in_term: dict[int, int] = field(default_factory=dict)
    committed: dict[int, Entry] = field(default_factory=dict)
    applied: list[Entry] = field(default_factory=list)
    durable_hard: HardState = field(default_factory=HardState)
    advanced: int = 0

    def check(self) -> None:
        raw = self.raw
        st_ = raw.status()
        log = raw.raft.log
        assert st_.term >= self.term, "term went back"
        self.term = st_.term
        if st_.vote != NONE:
            assert self.vote_in_term.setdefault(st_.term, st_.vote) == st_.vote, "second vote"
        assert 0 <= st_.applied <= st_.commit <= st_.last_index
        assert st_.applied <= st_.persisted <= st_.last_index
        assert log.persisted <= log.stable <= log.last_index()
        assert (st_.role is Role.LEADER) == (st_.leader == raw.raft.id)
        for k, e in enumerate(log.entries):
            assert e.index == k + 1, "log not contiguous"
        for i, e in self.committed.items():
            assert log.entries[i - 1] == e, f"committed entry {i} changed"
        for e in log.entries[: st_.commit]:
            self.committed.setdefault(e.index, e)

    def ready(self) -> None:
        rd = self.raw.ready()
        persisted = self.raw.status().persisted
        for e in rd.committed_entries:
            assert e.index <= persisted, "applying an entry not durable here"
            assert e == self.committed.get(e.index, e)
            expected = self.applied[-1].index + 1 if self.applied else 1
            assert e.index == expected, "apply out of order or twice"
            self.applied.append(e)
        if rd.hard_state is not None:
            self.durable_hard = rd.hard_state  # persisted before after-persist messages
        for m in rd.messages_after_persist:
            if isinstance(m, VoteResponse) and m.granted:
                assert not m.pre
                # The grant is backed by durable state: that very vote, or a later term.
                hs = self.durable_hard
                assert hs.term > m.term or (hs.term, hs.vote) == (m.term, m.dst)
        for m in rd.messages:
            assert isinstance(m, (AppendEntries, Heartbeat, Propose, VoteRequest, VoteResponse))
            if isinstance(m, (VoteRequest, VoteResponse)):
                assert m.pre
        for m in rd.messages_after_persist:
            assert not isinstance(m, (AppendEntries, Heartbeat, Propose))
        self.raw.advance(rd)
        self.advanced = rd.number


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(actions=st.lists(_action, max_size=60), prevote=st.booleans(), check_quorum=st.booleans())
def test_random_input_never_raises_and_keeps_invariants(
    actions: list[tuple[Any, ...]], prevote: bool, check_quorum: bool
) -> None:
    raw = node(1, prevote=prevote, check_quorum=check_quorum, election_ticks=5, max_inflight=2)
    chk = Checker(raw)
    for action in actions:
        kind = action[0]
        if kind == "msg":
            raw.step(action[1])
        elif kind == "tick":
            for _ in range(action[1]):
                raw.tick()
        elif kind == "campaign":
            raw.campaign()
        elif kind == "propose":
            try:
                raw.propose(action[1])
            except NotLeader:
                assert raw.status().role is not Role.LEADER
        elif kind == "grant":
            r = raw.raft
            pre = r.role is Role.PRE_CANDIDATE
            raw.step(VoteResponse(action[1], 1, r.term + 1 if pre else r.term, True, pre))
        elif kind == "ack":
            _, src, index, success = action
            r = raw.raft
            raw.step(AppendResponse(src, 1, r.term, success, min(index, r.log.last_index())))
        elif kind == "ready":
            chk.ready()
        else:
            if chk.advanced:
                raw.on_persisted(chk.advanced)
        chk.check()
    # Settle: everything handed out becomes durable and applied.
    for _ in range(5):
        chk.ready()
        raw.on_persisted(chk.advanced)
        chk.check()
    st_ = raw.status()
    assert st_.applied == min(st_.commit, st_.persisted)


def test_random_input_reaches_leader_paths() -> None:
    """The generator above is only useful if it drives the node to lead: check it can."""
    raw = node(1, election_ticks=5)
    raw.campaign()
    raw.step(VoteResponse(2, 1, 1, True, True))
    drain(raw)  # its own vote counts once durable
    raw.step(VoteResponse(2, 1, 1, True, False))
    assert raw.status().role is Role.LEADER
    drain(raw)
    raw.step(AppendResponse(2, 1, 1, True, 1))
    assert raw.status().commit == 1
