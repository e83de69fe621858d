"""PreVote (dissertation §9.6) and CheckQuorum / leader lease (dissertation §6.2, §4.2.3)."""

from __future__ import annotations

from drafty.core import HardState, Role, VoteRequest, VoteResponse
from drafty.sim import MemoryCluster

from .helpers import drain, elect, leaders, log_of, node

# -- PreVote -----------------------------------------------------------------------


def test_prevote_grant_changes_no_term_or_vote() -> None:
    """§9.6: answering a pre-vote changes neither term nor vote; the answer
    leaves at once (nothing to persist) and carries the proposed term."""
    raw = node(1, hard_state=HardState(2, 3, 0), entries=log_of([1, 2]))
    raw.step(VoteRequest(2, 1, 3, 2, 2, pre=True))
    st = raw.status()
    assert (st.term, st.vote, st.role) == (2, 3, Role.FOLLOWER)
    rd = drain(raw)
    assert rd.hard_state is None
    assert rd.messages == (VoteResponse(1, 2, 3, True, pre=True),)
    assert rd.messages_after_persist == ()


def test_prevote_rejection_changes_no_term_or_vote() -> None:
    raw = node(1, hard_state=HardState(2, 0, 0), entries=log_of([1, 2, 2]))
    raw.step(VoteRequest(2, 1, 3, 1, 1, pre=True))  # log behind ours
    st = raw.status()
    assert (st.term, st.vote) == (2, 0)
    rd = drain(raw)
    assert rd.hard_state is None
    assert rd.messages == (VoteResponse(1, 2, 2, False, pre=True),)


def test_prevote_granted_even_after_voting_in_current_term() -> None:
    """A pre-vote for the *next* term is not bound by this term's vote."""
    raw = node(1, hard_state=HardState(4, 3, 0))
    raw.step(VoteRequest(2, 1, 5, 0, 0, pre=True))
    assert drain(raw).messages == (VoteResponse(1, 2, 5, True, pre=True),)
    assert (raw.status().term, raw.status().vote) == (4, 3)


def test_stale_prevote_is_answered_with_current_term() -> None:
    raw = node(1, hard_state=HardState(7, 0, 0))
    raw.step(VoteRequest(2, 1, 5, 0, 0, pre=True))
    assert drain(raw).messages == (VoteResponse(1, 2, 7, False, pre=True),)
    assert raw.status().counters["stale_term"] == 1


def test_precandidate_keeps_its_term_until_it_wins_the_prevote() -> None:
    raw = node(1, hard_state=HardState(3, 0, 0), entries=log_of([1, 3]))
    raw.campaign()
    st = raw.status()
    assert (st.role, st.term, st.vote) == (Role.PRE_CANDIDATE, 3, 0)
    rd = drain(raw)
    assert rd.hard_state is None
    assert sorted(rd.messages, key=lambda m: m.dst) == [
        VoteRequest(1, 2, 4, 2, 3, pre=True),
        VoteRequest(1, 3, 4, 2, 3, pre=True),
    ]
    raw.step(VoteResponse(2, 1, 3, False, pre=True))
    raw.step(VoteResponse(3, 1, 3, False, pre=True))
    st = raw.status()
    assert (st.role, st.term, st.vote) == (Role.FOLLOWER, 3, 0)
    raw.campaign()
    raw.step(VoteResponse(2, 1, 4, True, pre=True))
    st = raw.status()
    assert (st.role, st.term, st.vote) == (Role.CANDIDATE, 4, 1)


def test_isolated_node_with_prevote_does_not_inflate_term_or_disrupt() -> None:
    """§9.6: a node cut off keeps failing pre-votes and never raises its
    term, so when it rejoins the leader is undisturbed."""
    c = MemoryCluster(3, seed=1)
    elect(c, 1)
    c.isolate(3)
    for _ in range(100):
        c.tick_all()
        c.stabilize()
    assert c.nodes[3].raw.status().term == 1
    c.heal()
    for _ in range(30):
        c.tick_all()
        c.stabilize()
    assert leaders(c) == [(1, 1)]
    assert c.nodes[3].raw.status().leader == 1


def test_isolated_node_without_prevote_inflates_term() -> None:
    """The contrast that motivates PreVote (§9.6): without it the cut-off
    node's term grows, and rejoining forces the leader out of its term."""
    c = MemoryCluster(3, seed=1, config_overrides={"prevote": False, "check_quorum": False})
    elect(c, 1)
    c.isolate(3)
    for _ in range(100):
        c.tick_all()
        c.stabilize()
    assert c.nodes[3].raw.status().term > 3
    c.heal()
    for _ in range(30):
        c.tick_all()
        c.stabilize()
    found = leaders(c)
    assert len(found) == 1 and found[0][0] > 1


def test_follower_in_lease_ignores_vote_requests() -> None:
    """§4.2.3: a follower that heard from its leader within the minimum
    election timeout disregards (pre-)votes for a higher term."""
    c = MemoryCluster(3)
    elect(c, 1)
    f = c.nodes[2].raw
    for pre in (True, False):
        f.step(VoteRequest(3, 2, 5, 99, 1, pre=pre))
    st = f.status()
    assert (st.term, st.vote, st.leader) == (1, 1, 1)
    assert st.counters["vote_ignored_in_lease"] == 2
    assert drain(f).messages_after_persist == ()
    # Once a full election timeout passes in silence, the lease is over.
    for _ in range(10):
        f.tick()
    f.step(VoteRequest(3, 2, 5, 99, 1, pre=True))
    assert VoteResponse(2, 3, 5, True, pre=True) in drain(f).messages
    assert f.status().term == 1


# -- CheckQuorum ----------------------------------------------------------------


def test_leader_steps_down_after_election_timeout_without_quorum() -> None:
    """A leader checks every ``election_ticks`` whether a majority answered
    since the last check; after a whole check period of silence it steps
    down to follower, in the same term, knowing no leader."""
    c = MemoryCluster(3, config_overrides={"election_ticks": 10, "heartbeat_ticks": 1})
    elect(c, 1)
    for _ in range(19):  # answered heartbeats through the check at tick 10
        c.tick(1)
        c.stabilize()
    c.isolate(1)
    for _ in range(10):  # tick 20: check passes (answers of ticks 11-19); 21-29 silent
        c.tick(1)
        c.stabilize()
    assert c.nodes[1].raw.status().role is Role.LEADER
    c.tick(1)  # tick 30: a whole period (20, 30] without any answer
    st = c.nodes[1].raw.status()
    assert st.role is Role.FOLLOWER and st.term == 1 and st.leader == 0
    assert st.counters["check_quorum_step_downs"] == 1
    rd = c.process_ready(1)
    assert rd is not None and rd.soft_state is not None
    assert rd.soft_state.role is Role.FOLLOWER


def test_leader_steps_down_within_two_timeouts_of_last_answer() -> None:
    """Whatever the phase of the check, silence for 2 * election_ticks always
    deposes the leader, and silence shorter than election_ticks never does."""
    for lead_in in range(0, 10):
        c = MemoryCluster(3, config_overrides={"election_ticks": 10, "heartbeat_ticks": 1})
        elect(c, 1)
        for _ in range(lead_in):
            c.tick(1)
            c.stabilize()
        c.isolate(1)
        for _ in range(9):
            c.tick(1)
        assert c.nodes[1].raw.status().role is Role.LEADER, lead_in
        for _ in range(11):
            c.tick(1)
        assert c.nodes[1].raw.status().role is Role.FOLLOWER, lead_in


def test_leader_with_one_responsive_follower_stays() -> None:
    c = MemoryCluster(3, config_overrides={"election_ticks": 10, "heartbeat_ticks": 1})
    elect(c, 1)
    c.isolate(3)
    for _ in range(100):
        c.tick(1)
        c.tick(2)
        c.stabilize()
    st = c.nodes[1].raw.status()
    assert st.role is Role.LEADER and st.term == 1
    assert st.counters.get("check_quorum_step_downs", 0) == 0
    assert c.nodes[2].raw.status().leader == 1


def test_leader_without_check_quorum_never_steps_down() -> None:
    c = MemoryCluster(3, config_overrides={"check_quorum": False})
    elect(c, 1)
    c.isolate(1)
    for _ in range(100):
        c.tick(1)
        c.stabilize()
    assert c.nodes[1].raw.status().role is Role.LEADER


def test_leader_in_lease_ignores_higher_term_votes() -> None:
    """With CheckQuorum a leader ignores vote requests for higher terms (it
    will step down by itself if it really lost its majority)."""
    c = MemoryCluster(3)
    elect(c, 1)
    c.nodes[1].raw.step(VoteRequest(2, 1, 9, 50, 1))
    st = c.nodes[1].raw.status()
    assert (st.role, st.term) == (Role.LEADER, 1)
    assert st.counters["vote_ignored_in_lease"] == 1
