"""Scenarios from the Raft paper (Ongaro & Ousterhout, "In Search of an
Understandable Consensus Algorithm", 2014); each docstring cites its section."""

from __future__ import annotations

import pytest

from drafty.core import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    Role,
    VoteRequest,
    VoteResponse,
)
from drafty.sim import MemoryCluster

from .helpers import all_messages, drain, elect, leaders, log_of, node, set_disk, terms_of

# -- Figure 7: log repair ---------------------------------------------------------

FIG7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIG7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


def figure7_cluster(**overrides: object) -> MemoryCluster:
    """Node 1 holds the leader's log of figure 7; nodes 2-7 hold followers (a)-(f)."""
    c = MemoryCluster(7, config_overrides=overrides)
    set_disk(c, 1, HardState(7, 0, 3), log_of(FIG7_LEADER))
    for node_id, terms in zip(range(2, 8), FIG7_FOLLOWERS.values(), strict=True):
        set_disk(c, node_id, HardState(max(terms), 0, 3), log_of(terms))
    return c


@pytest.mark.parametrize("prevote", [True, False])
def test_figure7_leader_repairs_every_follower(prevote: bool) -> None:
    """§5.3, figure 7: a new leader for term 8 brings each of the follower logs
    (a)-(f), missing entries, holding extra uncommitted entries, or both, to
    exactly its own log: conflicting suffixes are deleted, missing entries
    added. The election itself obeys §5.4.1: (c) and (d) hold more up-to-date
    logs and refuse their votes; (a), (b), (e), (f) grant them."""
    c = figure7_cluster(prevote=prevote)
    c.nodes[1].raw.campaign()
    c.stabilize()
    leader = c.nodes[1].raw
    st = leader.status()
    assert st.role is Role.LEADER and st.term == 8
    # The leader's log is only appended to: figure 7 plus its term-8 no-op.
    expected = [*FIG7_LEADER, 8]
    assert terms_of(leader) == expected
    want = leader.raft.log.entries
    assert want[-1].kind is EntryKind.NOOP
    for node_id in range(2, 8):
        n = c.nodes[node_id]
        assert terms_of(n.raw) == expected, f"follower {node_id} not repaired"
        assert n.raw.raft.log.entries == want
        assert n.disk.entries == want  # durable copy too
        assert n.raw.status().commit == 11
        assert [e.index for e in n.applied] == list(range(1, 12))
    assert st.commit == 11


def test_figure7_votes_follow_the_election_restriction() -> None:
    """§5.4.1 on the figure 7 logs: a voter denies its vote to a candidate
    whose log is less up-to-date (last term, then length) than its own."""
    c = figure7_cluster(prevote=False)
    c.nodes[1].raw.campaign()
    c.process_ready(1)
    granted = {}
    for node_id in range(2, 8):
        c.deliver(node_id)
        rd = c.process_ready(node_id)
        assert rd is not None
        (resp,) = rd.messages_after_persist
        assert isinstance(resp, VoteResponse)
        granted[node_id] = resp.granted
    # (a)=2 (b)=3 (c)=4 (d)=5 (e)=6 (f)=7
    assert granted == {2: True, 3: True, 4: False, 5: False, 6: True, 7: True}


def test_figure7_fast_backtracking_round_trips() -> None:
    """§5.3 (optimisation after figure 7): with the conflicting term in each
    rejection, the leader needs at most one rejection per conflicting term."""
    c = figure7_cluster()
    c.nodes[1].raw.campaign()
    c.stabilize()
    rejections = {
        i: c.nodes[i].raw.status().counters.get("appends_rejected", 0) for i in range(2, 8)
    }
    # (a) short by one: 1; (b) short: 1; (c), (d) match at 10: 0;
    # (e) short, then term 4: 2; (f) terms 3 then 2: 2.
    assert rejections == {2: 1, 3: 1, 4: 0, 5: 0, 6: 2, 7: 2}


# -- Figure 8: commit only entries of the current term --------------------------------


def test_figure8_leader_does_not_commit_old_term_entry_by_counting_replicas() -> None:
    """§5.4.2, figure 8 (c)-(e): S1, leader of term 4, has the term-2 entry at
    index 2 on a majority (S1, S2, S3), yet must not commit it by counting
    replicas, since S5 (with term 3 at index 2) could still be elected and
    overwrite it. It commits index 2 only once an entry of term 4 (its no-op
    at index 3) is on a majority."""
    # S1 is leader for term 4 (figure 8 (c)); its log is [1/1, 2/2].
    s1 = node(1, (1, 2, 3, 4, 5), hard_state=HardState(3, 0, 1), entries=log_of([1, 2]))
    s1.campaign()
    drain(s1)
    for p in (2, 3, 4):
        s1.step(VoteResponse(p, 1, 4, True, pre=True))
    drain(s1)
    for p in (2, 3, 4):
        s1.step(VoteResponse(p, 1, 4, True))
    assert s1.status().role is Role.LEADER and s1.status().term == 4
    drain(s1)  # persist the no-op at index 3
    assert s1.status().persisted == 3
    # S2 and S3 confirm they store index 2 (term 2): a majority with S1.
    s1.step(AppendResponse(2, 1, 4, True, 2))
    s1.step(AppendResponse(3, 1, 4, True, 2))
    assert s1.status().commit == 1
    assert drain(s1).committed_entries == ()
    # Once the term-4 entry is on a majority, both 2 and 3 commit.
    s1.step(AppendResponse(2, 1, 4, True, 3))
    assert s1.status().commit == 1  # S1 + S2 only
    s1.step(AppendResponse(3, 1, 4, True, 3))
    assert s1.status().commit == 3
    assert [e.index for e in drain(s1).committed_entries] == [2, 3]


def figure8_cluster() -> MemoryCluster:
    """Figure 8 (c) just before S1's term-4 entry spreads: S1, S2, S3 hold
    [1/1, 2/2]; S4 holds [1/1]; S5 holds [1/1, 2/3]."""
    c = MemoryCluster(5, config_overrides={"prevote": False, "check_quorum": False})
    set_disk(c, 1, HardState(3, 0, 1), log_of([1, 2]))
    set_disk(c, 2, HardState(3, 0, 1), log_of([1, 2]))
    set_disk(c, 3, HardState(3, 0, 1), log_of([1, 2]))
    set_disk(c, 4, HardState(3, 0, 1), log_of([1]))
    set_disk(c, 5, HardState(3, 5, 1), log_of([1, 3]))
    return c


def test_figure8_d_uncommitted_old_entry_is_overwritten() -> None:
    """§5.4.2, figure 8 (c)-(d): S1 wins term 4 with votes from S2-S4, then
    crashes before its term-4 entry leaves; S5 wins term 5 with votes from
    S2, S3, S4 (its last term 3 beats their 2) and overwrites index 2 with its
    term-3 entry everywhere. Index 2 had been on a majority (S1, S2, S3), which
    is why counting replicas of an old-term entry cannot commit it."""
    c = figure8_cluster()
    c.nodes[1].raw.campaign()
    c.process_ready(1)
    for i in (2, 3, 4, 5):
        c.deliver(i)
        c.process_ready(i)
    for i in (2, 3, 4, 5):
        c.cut.add((1, i))  # S1's no-op will reach nobody
    c.deliver(1)
    assert c.nodes[1].raw.status().role is Role.LEADER
    assert c.nodes[1].raw.status().term == 4
    c.process_ready(1)
    assert c.nodes[1].raw.status().commit == 1
    c.crash(1)
    c.heal()
    c.nodes[5].raw.campaign()
    c.stabilize()
    st = c.nodes[5].raw.status()
    assert st.role is Role.LEADER and st.term == 5
    for i in (2, 3, 4, 5):
        assert terms_of(c.nodes[i].raw) == [1, 3, 5]
        assert [(e.index, e.term) for e in c.nodes[i].applied] == [(1, 1), (2, 3), (3, 5)]


def test_figure8_e_current_term_entry_commits_and_blocks_s5() -> None:
    """§5.4.2, figure 8 (e): once S1's term-4 entry is on a majority, index 2
    and 3 are committed, and S5 can no longer win an election."""
    c = figure8_cluster()
    c.cut.update({(1, 4), (1, 5)})
    elect(c, 1)
    assert c.nodes[1].raw.status().commit == 3
    for i in (1, 2, 3):
        assert terms_of(c.nodes[i].raw) == [1, 2, 4]
    c.crash(1)
    c.heal()
    c.nodes[5].raw.campaign()
    c.stabilize()
    assert c.nodes[5].raw.status().role is not Role.LEADER
    # S2 or S3 can win, and index 2 keeps term 2 everywhere.
    c.nodes[2].raw.campaign()
    c.stabilize()
    assert c.nodes[2].raw.status().role is Role.LEADER
    for i in (2, 3, 4, 5):
        assert terms_of(c.nodes[i].raw)[:3] == [1, 2, 4]


# -- §5.2: split votes ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_split_vote_resolves(seed: int) -> None:
    """§5.2: when all five nodes become candidates at once, each votes for
    itself and nobody wins term 1; randomized election timeouts then make one
    node time out first and win a later term."""
    c = MemoryCluster(5, seed=seed, config_overrides={"prevote": False})
    for i in c.ids:
        c.nodes[i].raw.campaign()
    c.stabilize()
    assert leaders(c) == []
    assert all(c.nodes[i].raw.status().term == 1 for i in c.ids)
    for _ in range(200):
        c.tick_all()
        c.stabilize()
        if leaders(c):
            break
    found = leaders(c)
    assert len(found) == 1, found
    term, leader = found[0]
    assert term >= 2
    for i in c.ids:
        st = c.nodes[i].raw.status()
        assert st.term == term and st.leader == leader


@pytest.mark.parametrize("seed", range(20))
def test_after_a_two_way_split_the_rival_that_goes_first_wins_the_next_term(seed: int) -> None:
    """Two voters that campaign together both lose; the one that refused a
    rival with as good a log and a lower id yields (a timeout one election
    timeout longer), so node 1 always times out first and wins term 2,
    whatever the random timeouts (seeds 6458 and 7497: two-voter clusters
    split round after round when the delay was a sizeable part of the range)."""
    c = MemoryCluster(2, seed=seed, config_overrides={"prevote": False, "check_quorum": False})
    for i in c.ids:
        c.nodes[i].raw.campaign()
    c.stabilize()
    assert leaders(c) == []
    first = None
    for _ in range(60):  # tick together; nothing is delivered until one campaigns
        c.tick_all()
        campaigning = [i for i in c.ids if c.nodes[i].raw.status().term == 2]
        if campaigning:
            first = campaigning
            break
    assert first == [1]
    c.stabilize()
    assert leaders(c) == [(2, 1)]
    assert c.nodes[2].raw.status().counters["split_vote_yields"] == 1


def test_a_split_candidate_with_the_worse_log_yields_whatever_its_id() -> None:
    """Node 1 cannot win node 2's vote (node 2's log is longer), so node 1 yields."""
    a = node(1, (1, 2), prevote=False, hard_state=HardState(1, 0, 0), entries=log_of([1]))
    b = node(2, (1, 2), prevote=False, hard_state=HardState(1, 0, 0), entries=log_of([1, 1]))
    a.campaign()
    b.campaign()
    ra, rb = drain(a), drain(b)
    for m in all_messages(rb):
        a.step(m)
    for m in all_messages(ra):
        b.step(m)
    assert a.status().counters["split_vote_yields"] == 1
    assert "split_vote_yields" not in b.status().counters


def test_election_safety_under_repeated_split_votes() -> None:
    """§5.2: at most one leader per term, across many elections."""
    seen: dict[int, set[int]] = {}
    for seed in range(6):
        c = MemoryCluster(5, seed=seed, config_overrides={"prevote": False})
        for _ in range(300):
            c.tick_all()
            c.stabilize()
            for term, who in leaders(c):
                seen.setdefault(seed * 1000 + term, set()).add(who)
            if seed % 2 and leaders(c):  # force new elections on odd seeds
                for i in c.ids:
                    c.nodes[i].raw.campaign()
    assert seen
    assert all(len(who) == 1 for who in seen.values())


# -- §5.1: terms ------------------------------------------------------------------


def test_stale_leader_steps_down_on_higher_term() -> None:
    """§5.1: a leader cut off while the others elect a new one keeps leading
    its old term; the first message with the new term makes it a follower,
    and its uncommitted entry is discarded."""
    c = MemoryCluster(3, config_overrides={"check_quorum": False, "prevote": False})
    elect(c, 1)
    c.isolate(1)
    c.nodes[1].raw.propose(b"lost")
    c.stabilize()
    elect(c, 2)
    assert c.nodes[1].raw.status().role is Role.LEADER  # stale, does not know yet
    assert c.nodes[2].raw.status().term == 2
    c.heal()
    c.tick(1)  # its heartbeats reach nodes at term 2, who answer with term 2
    c.stabilize()
    st = c.nodes[1].raw.status()
    assert st.role is Role.FOLLOWER and st.term == 2
    c.nodes[2].raw.propose(b"kept")
    c.tick(2)  # a heartbeat round retries the probe node 1 missed while cut off
    c.stabilize()
    c.tick(2)  # and the next one tells node 1 the latest commit index
    c.stabilize()
    assert [e.data for e in c.nodes[1].applied if e.kind is EntryKind.NORMAL] == [b"kept"]
    assert b"lost" not in [e.data for e in c.nodes[1].raw.raft.log.entries]


def test_any_message_with_higher_term_makes_leader_follow() -> None:
    """§5.1: 'If RPC request or response contains term T > currentTerm: set
    currentTerm = T, convert to follower.'"""
    for msg in (
        AppendResponse(2, 1, 5, False, 0),
        Heartbeat(2, 1, 5, 0),
        AppendEntries(2, 1, 5, 0, 0, (), 0),
        VoteResponse(2, 1, 5, False),
    ):
        c = MemoryCluster(3, config_overrides={"check_quorum": False})
        elect(c, 1)
        c.nodes[1].raw.step(msg)
        st = c.nodes[1].raw.status()
        assert st.role is Role.FOLLOWER and st.term == 5, msg
        rd = drain(c.nodes[1].raw)
        assert rd.hard_state is not None and rd.hard_state.term == 5


def test_stale_term_message_is_rejected_with_current_term() -> None:
    """§5.1: a request with a stale term is rejected; the reply carries the
    current term so the sender updates itself."""
    raw = node(2, hard_state=HardState(5, 0, 0))
    raw.step(AppendEntries(1, 2, 3, 0, 0, (Entry(1, 3),), 1))
    rd = drain(raw)
    assert rd.messages_after_persist == (AppendResponse(2, 1, 5, False, 0),)
    assert raw.status().last_index == 0 and raw.status().term == 5
    # A vote request too (it used to be dropped unanswered: seed 8484, where
    # the nodes ahead in term never asked the candidate, it never caught up).
    raw.step(VoteRequest(3, 2, 4, 9, 4))
    rd = drain(raw)
    assert rd.messages_after_persist == (VoteResponse(2, 3, 5, False),)


# -- §5.4.1: election restriction -------------------------------------------------


def test_node_with_less_up_to_date_log_cannot_win() -> None:
    """§5.4.1: node 3 missed a committed entry; with the leader gone it cannot
    be elected (node 2 refuses), but node 2, which has the entry, can."""
    c = MemoryCluster(3, config_overrides={"prevote": False, "check_quorum": False})
    elect(c, 1)
    c.cut.add((1, 3))
    c.nodes[1].raw.propose(b"committed")
    c.stabilize()
    assert c.nodes[1].raw.status().commit == 2
    assert c.nodes[3].raw.status().last_index == 1
    c.crash(1)
    c.heal()
    c.nodes[3].raw.campaign()
    c.stabilize()
    assert c.nodes[3].raw.status().role is not Role.LEADER
    assert c.nodes[2].raw.status().term == 2  # node 2 saw the request...
    assert c.nodes[2].raw.status().vote == 0  # ...and refused its vote
    c.nodes[2].raw.campaign()
    c.stabilize()
    assert c.nodes[2].raw.status().role is Role.LEADER
    c.stabilize()
    assert [e.data for e in c.nodes[3].applied][:2] == [b"", b"committed"]


@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [(3, 2, True), (9, 2, True), (2, 2, False), (1, 3, True), (99, 1, False)],
)
def test_vote_granted_only_to_up_to_date_log(
    last_index: int, last_term: int, granted: bool
) -> None:
    """§5.4.1: 'If the logs have last entries with different terms, then the
    log with the later term is more up-to-date. If the logs end with the same
    term, then whichever log is longer is more up-to-date.'"""
    raw = node(1, hard_state=HardState(2, 0, 0), entries=log_of([1, 2, 2]))
    raw.step(VoteRequest(2, 1, 3, last_index, last_term))
    rd = drain(raw)
    assert rd.messages_after_persist == (VoteResponse(1, 2, 3, granted),)
    assert raw.status().vote == (2 if granted else 0)


# -- voting once per term -------------------------------------------------------------


def test_vote_granted_at_most_once_per_term_and_persisted_first() -> None:
    """§5.2 and figure 2: each server votes for at most one candidate per term,
    and currentTerm/votedFor are on stable storage before it responds."""
    raw = node(1, (1, 2, 3, 4, 5), prevote=False)
    raw.step(VoteRequest(2, 1, 1, 0, 0))
    rd = raw.ready()
    assert rd.hard_state == HardState(1, 2, 0)
    assert rd.messages == ()  # the grant may not leave before the vote is durable
    assert rd.messages_after_persist == (VoteResponse(1, 2, 1, True),)
    raw.advance(rd)
    raw.on_persisted(rd.number)
    raw.step(VoteRequest(3, 1, 1, 5, 1))  # a better log, same term: still no
    raw.step(VoteRequest(2, 1, 1, 0, 0))  # the same candidate again: yes (idempotent)
    rd = drain(raw)
    assert rd.hard_state is None
    assert rd.messages_after_persist == (VoteResponse(1, 3, 1, False), VoteResponse(1, 2, 1, True))
    # After a restart from what was persisted, the vote still binds.
    restarted = node(1, (1, 2, 3, 4, 5), hard_state=HardState(1, 2, 0), prevote=False)
    restarted.step(VoteRequest(4, 1, 1, 0, 0))
    assert drain(restarted).messages_after_persist == (VoteResponse(1, 4, 1, False),)
    # A new term frees the vote.
    raw.step(VoteRequest(3, 1, 2, 0, 0))
    rd = drain(raw)
    assert rd.hard_state == HardState(2, 3, 0)
    assert rd.messages_after_persist == (VoteResponse(1, 3, 2, True),)


def test_follower_with_known_leader_refuses_same_term_vote() -> None:
    """§5.2: a server that already follows a leader of this term (it never voted
    in it) does not vote for another candidate of that term."""
    raw = node(2, prevote=False, check_quorum=False)
    raw.step(AppendEntries(1, 2, 1, 0, 0, (), 0))
    assert (raw.status().leader, raw.status().vote) == (1, 0)
    drain(raw)
    raw.step(VoteRequest(3, 2, 1, 10, 1))
    assert drain(raw).messages_after_persist == (VoteResponse(2, 3, 1, False),)
    assert raw.status().vote == 0


def test_candidate_votes_for_itself_only() -> None:
    """§5.2: a candidate votes for itself and rejects others in its term."""
    raw = node(1, prevote=False)
    raw.campaign()
    rd = drain(raw)
    assert rd.hard_state == HardState(1, 1, 0)
    raw.step(VoteRequest(2, 1, 1, 0, 0))
    assert drain(raw).messages_after_persist == (VoteResponse(1, 2, 1, False),)


# -- followers never lose committed entries --------------------------------------------


def test_follower_never_truncates_committed_entries() -> None:
    """§5.3/§5.4 (State Machine Safety): a follower deletes conflicting
    entries only after its commit index; an AppendEntries that would replace
    committed entries leaves them untouched."""
    raw = node(2, hard_state=HardState(1, 1, 3), entries=log_of([1, 1, 1, 1]))
    committed = list(raw.raft.log.entries[:3])
    raw.step(AppendEntries(1, 2, 2, 1, 1, tuple(log_of([2, 2, 2, 2], start=2)), 5))
    log = raw.raft.log.entries
    assert log[:3] == committed
    assert raw.status().commit >= 3
    # A message that starts inside the committed prefix and conflicts with it.
    raw2 = node(2, hard_state=HardState(1, 1, 3), entries=log_of([1, 1, 1]))
    raw2.step(AppendEntries(1, 2, 2, 0, 0, tuple(log_of([2, 2])), 2))
    assert raw2.raft.log.entries == log_of([1, 1, 1])


def test_follower_commits_only_what_the_message_vouches_for() -> None:
    """Figure 2, AppendEntries rule 5: commitIndex = min(leaderCommit, index of
    last new entry). Entries past what the message matched (here a stale 3/1
    the new leader has not checked yet) must not be committed."""
    raw = node(2, hard_state=HardState(1, 0, 0), entries=log_of([1, 1, 1]))
    raw.step(AppendEntries(1, 2, 2, 1, 1, (), 3))
    assert raw.status().commit == 1
    assert drain(raw).messages_after_persist == (AppendResponse(2, 1, 2, True, 1),)
    raw.step(AppendEntries(1, 2, 2, 1, 1, (Entry(2, 1),), 3))
    assert raw.status().commit == 2


def test_heartbeat_commit_is_taken_as_given() -> None:
    """A heartbeat carries min(match, commit) for this follower: it commits exactly that."""
    raw = node(2, hard_state=HardState(1, 0, 0), entries=log_of([1, 1, 1]))
    raw.step(Heartbeat(1, 2, 1, 1))
    assert raw.status().commit == 1
    raw.step(Heartbeat(1, 2, 1, 0))  # never goes back
    assert raw.status().commit == 1


def test_conflicting_uncommitted_suffix_is_replaced() -> None:
    """§5.3: 'If an existing entry conflicts with a new one (same index but
    different terms), delete the existing entry and all that follow it.'"""
    raw = node(2, hard_state=HardState(2, 0, 2), entries=log_of([1, 1, 2, 2, 2]))
    raw.step(AppendEntries(1, 2, 3, 2, 1, tuple(log_of([3], start=3)), 3))
    assert terms_of(raw) == [1, 1, 3]
    rd = drain(raw)
    assert [(e.index, e.term) for e in rd.entries] == [(3, 3)]
    assert rd.messages_after_persist == (AppendResponse(2, 1, 3, True, 3),)
    assert [e.index for e in rd.committed_entries] == [1, 2]  # 3 is not durable yet
    assert [e.index for e in drain(raw).committed_entries] == [3]


def test_log_matching_rejects_missing_prev() -> None:
    """§5.3: the consistency check: a follower refuses entries whose
    predecessor (prev_index, prev_term) it does not hold, and hints where to retry."""
    raw = node(2, hard_state=HardState(3, 0, 0), entries=log_of([1, 1, 2, 2]))
    raw.step(AppendEntries(1, 2, 3, 4, 3, (Entry(5, 3),), 0))
    assert drain(raw).messages_after_persist == (AppendResponse(2, 1, 3, False, 4, 2, 3),)
    raw.step(AppendEntries(1, 2, 3, 7, 3, (Entry(8, 3),), 0))
    assert drain(raw).messages_after_persist == (AppendResponse(2, 1, 3, False, 7, 0, 5),)
    assert terms_of(raw) == [1, 1, 2, 2]


def test_leader_append_only() -> None:
    """§5.3 Leader Append-Only: a leader never overwrites its own entries,
    even when told of conflicting ones in its own term."""
    c = MemoryCluster(3)
    elect(c, 1)
    c.nodes[1].raw.propose(b"a")
    c.stabilize()
    before = list(c.nodes[1].raw.raft.log.entries)
    c.nodes[1].raw.step(AppendEntries(2, 1, 1, 0, 0, (Entry(1, 1), Entry(2, 1, data=b"z")), 2))
    assert c.nodes[1].raw.raft.log.entries == before
    assert c.nodes[1].raw.status().counters["second_leader_in_term"] == 1
