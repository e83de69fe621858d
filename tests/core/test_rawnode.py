"""The Ready contract and the RawNode API (drafty.core.rawnode, drafty.core.ready)."""

from __future__ import annotations

import random

import pytest

from drafty.core import (
    NONE,
    AppendEntries,
    AppendResponse,
    CoreMisuse,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    NotLeader,
    Propose,
    RawNode,
    Ready,
    Role,
    StateError,
    VoteRequest,
    VoteResponse,
)
from drafty.sim import MemoryCluster

from .helpers import cfg, drain, elect, log_of, node

# -- Ready bookkeeping misuse ----------------------------------------------------


def test_ready_twice_without_advance_raises() -> None:
    raw = node()
    raw.ready()
    with pytest.raises(CoreMisuse, match="Ready 1 was not advanced"):
        raw.ready()


def test_advance_of_the_wrong_ready_raises() -> None:
    raw = node()
    rd1 = raw.ready()
    raw.advance(rd1)
    with pytest.raises(CoreMisuse, match="advance of Ready 1"):
        raw.advance(rd1)  # twice
    rd2 = raw.ready()
    with pytest.raises(CoreMisuse, match="advance of Ready 1, but Ready 2 is out"):
        raw.advance(rd1)  # an older one
    forged = Ready(7, None, None, (), (), (), ())
    with pytest.raises(CoreMisuse):
        raw.advance(forged)
    raw.advance(rd2)  # the right one still works
    assert raw.ready().number == 3


def test_advance_without_ready_raises() -> None:
    raw = node()
    with pytest.raises(CoreMisuse):
        raw.advance(Ready(1, None, None, (), (), (), ()))


def test_on_persisted_before_advance_raises() -> None:
    raw = node()
    rd = raw.ready()
    with pytest.raises(CoreMisuse, match="Ready 1 reported durable before it was advanced"):
        raw.on_persisted(rd.number)
    raw.advance(rd)
    raw.on_persisted(rd.number)
    with pytest.raises(CoreMisuse):
        raw.on_persisted(2)  # never even issued


def test_ready_numbers_are_consecutive_from_one() -> None:
    raw = node(voters=(1,))
    numbers = []
    raw.campaign()
    for _ in range(5):
        numbers.append(drain(raw).number)
        raw.tick()
    assert numbers == [1, 2, 3, 4, 5]


def test_empty_node_has_no_ready_and_no_hard_state_change() -> None:
    raw = node()
    assert not raw.has_ready()
    rd = raw.ready()
    assert rd.hard_state is None and rd.soft_state is None
    assert not rd.must_persist()
    assert rd.entries == rd.committed_entries == ()
    assert rd.messages == rd.messages_after_persist == ()


def test_rng_must_be_a_random_instance() -> None:
    with pytest.raises(CoreMisuse, match=r"random\.Random"):
        RawNode(cfg(), 42)  # type: ignore[arg-type]


# -- single node -----------------------------------------------------------------


def test_single_node_elects_itself_once_its_vote_is_durable_and_commits_after_persist() -> None:
    raw = node(voters=(1,))
    raw.campaign()
    # Its own vote counts once durable: leading before, it could lose the term
    # in a crash and lead it again after the restart with other entries.
    assert raw.status().role is Role.CANDIDATE
    rd = raw.ready()
    assert rd.hard_state == HardState(term=1, vote=1, commit=0)
    assert rd.entries == rd.messages == rd.messages_after_persist == ()
    raw.advance(rd)
    assert raw.status().role is Role.CANDIDATE
    raw.on_persisted(rd.number)
    assert raw.status().role is Role.LEADER
    rd = raw.ready()
    assert rd.soft_state is not None and rd.soft_state.role is Role.LEADER
    assert rd.hard_state is None
    assert [(e.index, e.term, e.kind) for e in rd.entries] == [(1, 1, EntryKind.NOOP)]
    assert rd.committed_entries == ()  # not durable yet, so not committed
    raw.advance(rd)
    assert raw.status().commit == 0
    raw.on_persisted(rd.number)
    assert raw.status().commit == 1
    rd = drain(raw)
    assert rd.hard_state == HardState(1, 1, 1)
    assert [e.index for e in rd.committed_entries] == [1]

    assert raw.propose(b"x") == 2
    rd = drain(raw)
    assert [e.data for e in rd.entries] == [b"x"]
    assert rd.committed_entries == ()
    rd = drain(raw)
    assert [e.data for e in rd.committed_entries] == [b"x"]
    assert raw.status().applied == 2


def test_single_node_elects_itself_on_timeout() -> None:
    raw = node(voters=(1,), election_ticks=5)
    for _ in range(9):
        raw.tick()
    drain(raw)  # its vote, durable
    assert raw.status().role is Role.LEADER
    assert raw.status().term == 1


# -- proposals -------------------------------------------------------------------


def test_propose_on_follower_raises_not_leader_naming_leader() -> None:
    c = MemoryCluster(3)
    elect(c, 2)
    with pytest.raises(NotLeader) as info:
        c.nodes[1].raw.propose(b"x")
    assert info.value.leader == 2
    assert "node 2 is leader" in str(info.value)
    assert c.nodes[1].raw.status().last_index == 1  # nothing appended


def test_propose_with_no_known_leader_raises() -> None:
    raw = node()
    with pytest.raises(NotLeader) as info:
        raw.propose(b"x")
    assert info.value.leader == NONE
    assert "no leader is known" in str(info.value)


@pytest.mark.parametrize("bad", ["text", bytearray(b"x"), memoryview(b"x"), 5, None])
def test_propose_non_bytes_raises(bad: object) -> None:
    raw = node(voters=(1,))
    raw.campaign()
    drain(raw)
    last = raw.status().last_index
    with pytest.raises(CoreMisuse, match="must be bytes"):
        raw.propose(bad)  # type: ignore[arg-type]
    with pytest.raises(CoreMisuse):
        raw.propose_batch([b"ok", bad])  # type: ignore[list-item]
    assert raw.status().last_index == last  # not even the good item went in


def test_propose_batch_returns_last_index() -> None:
    raw = node(voters=(1,))
    raw.campaign()
    drain(raw)
    assert raw.propose_batch([b"a", b"b", b"c"]) == 4
    assert [e.data for e in drain(raw).entries] == [b"", b"a", b"b", b"c"]


def test_forwarded_proposal_leaves_immediately() -> None:
    c = MemoryCluster(3, config_overrides={"forward_proposals": True})
    elect(c, 1)
    assert c.nodes[2].raw.propose(b"fwd") is None
    rd = c.nodes[2].raw.ready()
    assert rd.messages == (Propose(2, 1, 1, (b"fwd",)),)
    assert rd.messages_after_persist == ()


# -- which messages wait for the persist step --------------------------------------


def test_message_classes_on_an_election_and_append() -> None:
    """Votes and append responses wait for durability; appends, heartbeats, pre-votes don't."""
    c = MemoryCluster(3)  # prevote on
    n1, n2 = c.nodes[1].raw, c.nodes[2].raw
    n1.campaign()
    rd = c.process_ready(1)
    assert rd is not None
    assert rd.messages and all(isinstance(m, VoteRequest) and m.pre for m in rd.messages)
    assert rd.messages_after_persist == ()
    c.deliver(2)
    rd = c.process_ready(2)
    assert rd is not None
    assert [type(m) for m in rd.messages] == [VoteResponse]
    assert all(isinstance(m, VoteResponse) and m.pre for m in rd.messages)
    assert rd.hard_state is None  # a pre-vote changed nothing durable
    c.deliver(1)  # pre-vote won: now a real candidate
    rd = c.process_ready(1)
    assert rd is not None
    assert rd.hard_state == HardState(1, 1, 0)
    assert rd.messages == ()
    assert rd.messages_after_persist and all(
        isinstance(m, VoteRequest) and not m.pre for m in rd.messages_after_persist
    )
    c.deliver(2)
    rd = c.process_ready(2)
    assert rd is not None
    assert rd.hard_state == HardState(1, 1, 0)
    assert rd.messages == ()
    assert rd.messages_after_persist == (VoteResponse(2, 1, 1, True),)
    c.deliver(1)  # elected
    rd = c.process_ready(1)
    assert rd is not None
    assert rd.messages and all(isinstance(m, AppendEntries) for m in rd.messages)
    assert rd.messages_after_persist == ()
    c.deliver(2)
    rd = c.process_ready(2)
    assert rd is not None
    assert rd.messages == ()
    assert [type(m) for m in rd.messages_after_persist] == [AppendResponse]
    n1.tick()
    rd = c.process_ready(1)
    assert rd is not None
    assert rd.messages and all(isinstance(m, Heartbeat) for m in rd.messages)
    c.deliver(2)
    rd = c.process_ready(2)
    assert rd is not None
    assert rd.messages == ()
    assert [type(m) for m in rd.messages_after_persist] == [HeartbeatResponse]
    assert n2.status().leader == 1


# -- committed entries are durable locally ---------------------------------------


def test_leader_applies_own_entries_only_after_persisting_them() -> None:
    """Followers' acks commit an entry, but the leader applies it only once durable."""
    c = MemoryCluster(3)
    elect(c, 1)
    leader = c.nodes[1].raw
    index = leader.propose(b"x")
    assert index == 2
    rd = leader.ready()
    assert [e.index for e in rd.entries] == [2]
    leader.advance(rd)  # handed to the disk, not yet durable
    c.send(rd.messages)
    for f in (2, 3):
        c.deliver(f)
        c.process_ready(f)
    c.deliver(1)  # both followers acked index 2
    assert leader.status().commit == 2
    assert leader.status().persisted == 1
    rd2 = leader.ready()
    assert rd2.committed_entries == ()
    leader.advance(rd2)
    assert leader.status().applied == 1
    leader.on_persisted(rd.number)
    assert leader.has_ready()
    rd3 = leader.ready()
    assert [e.data for e in rd3.committed_entries] == [b"x"]


def test_leader_does_not_count_itself_before_persisting() -> None:
    """With one follower acking, the unpersisted leader lacks a majority."""
    c = MemoryCluster(3)
    elect(c, 1)
    leader = c.nodes[1].raw
    leader.propose(b"x")
    rd = leader.ready()
    leader.advance(rd)
    c.send(rd.messages)
    c.deliver(2)
    c.process_ready(2)
    c.inbox[3].clear()
    c.deliver(1)
    assert leader.status().commit == 1  # 2 has it, 1 has not persisted it: no majority
    leader.on_persisted(rd.number)
    assert leader.status().commit == 2


def test_follower_applies_only_persisted_entries() -> None:
    raw = node(2)
    raw.step(AppendEntries(1, 2, 1, 0, 0, tuple(log_of([1, 1])), commit=2))
    assert raw.status().commit == 2
    rd = raw.ready()
    assert [e.index for e in rd.entries] == [1, 2]
    assert rd.committed_entries == ()
    assert rd.messages_after_persist == (AppendResponse(2, 1, 1, True, 2),)
    raw.advance(rd)
    rd2 = raw.ready()
    assert rd2.committed_entries == ()  # advanced is not durable
    raw.advance(rd2)
    raw.on_persisted(rd.number)
    assert raw.status().persisted == 2
    rd3 = drain(raw)
    assert [e.index for e in rd3.committed_entries] == [1, 2]
    assert raw.status().applied == 2


def test_pipelined_readies_persisted_together() -> None:
    raw = node(2)
    raw.step(AppendEntries(1, 2, 1, 0, 0, (Entry(1, 1),), commit=0))
    rd1 = raw.ready()
    raw.advance(rd1)
    raw.step(AppendEntries(1, 2, 1, 1, 1, (Entry(2, 1),), commit=2))
    rd2 = raw.ready()
    assert [e.index for e in rd2.entries] == [2]
    assert rd2.committed_entries == ()
    raw.advance(rd2)
    assert raw.status().persisted == 0
    raw.on_persisted(rd2.number)  # covers rd1 too
    assert raw.status().persisted == 2
    rd3 = drain(raw)
    assert [e.index for e in rd3.committed_entries] == [1, 2]
    raw.on_persisted(rd1.number)  # late, older report: harmless
    assert raw.status().persisted == 2


def test_each_committed_entry_delivered_once() -> None:
    c = MemoryCluster(3)
    elect(c, 1)
    for k in range(5):
        c.nodes[1].raw.propose(f"v{k}".encode())
        c.stabilize()
    c.tick_all(3)
    c.stabilize()
    for i in c.ids:
        assert [e.index for e in c.nodes[i].applied] == list(range(1, 7))


# -- restart -----------------------------------------------------------------------


def test_restart_redelivers_committed_entries_after_applied() -> None:
    entries = log_of([1, 1, 2, 2, 2])
    raw = node(hard_state=HardState(2, 1, 4), entries=entries, applied=2)
    st = raw.status()
    assert (st.term, st.vote, st.commit, st.applied, st.last_index) == (2, 1, 4, 2, 5)
    assert st.role is Role.FOLLOWER and st.leader == NONE
    rd = drain(raw)
    assert rd.committed_entries == tuple(entries[2:4])
    assert rd.entries == ()  # already durable
    assert rd.hard_state is None  # nothing new to persist
    assert not raw.has_ready()


def test_restart_with_everything_applied_delivers_nothing() -> None:
    raw = node(hard_state=HardState(1, 0, 2), entries=log_of([1, 1]), applied=2)
    assert not raw.has_ready()
    assert raw.ready().committed_entries == ()


@pytest.mark.parametrize(
    ("hard_state", "entries", "applied", "pattern"),
    [
        (HardState(3, -1, 0), [], 0, "negative term or vote"),
        (HardState(2, 0, 3), log_of([1, 2]), 0, "commit index 3 outside log range"),
        (HardState(2, 0, 1), log_of([1, 2]), 2, "applied index 2"),
        (HardState(2, 0, 0), [Entry(1, 1), Entry(3, 1)], 0, "log gap"),
        (HardState(2, 0, 0), [Entry(1, 2), Entry(2, 1)], 0, "term goes back"),
    ],
)
def test_inconsistent_restart_state_raises(
    hard_state: HardState, entries: list[Entry], applied: int, pattern: str
) -> None:
    with pytest.raises(StateError, match=pattern):
        node(hard_state=hard_state, entries=entries, applied=applied)


def test_restart_keeps_vote() -> None:
    raw = node(hard_state=HardState(4, 3, 0))
    raw.step(VoteRequest(2, 1, 4, 10, 4))
    rd = drain(raw)
    assert rd.messages_after_persist == (VoteResponse(1, 2, 4, False),)
    assert raw.status().vote == 3


def test_status_reports_followers_for_leader_only() -> None:
    c = MemoryCluster(3)
    elect(c, 1)
    st = c.nodes[1].raw.status()
    assert set(st.followers) == {2, 3}
    assert all(
        f.match == 1 and f.next == 2 and f.state == "replicate" for f in st.followers.values()
    )
    assert c.nodes[2].raw.status().followers == {}


def test_seeded_nodes_are_deterministic() -> None:
    def run(seed: int) -> list[int]:
        raw = RawNode(cfg(), random.Random(seed))
        out = []
        for t in range(40):
            raw.tick()
            if raw.status().role is not Role.FOLLOWER:
                out.append(t)
                break
        return out

    first = run(5)
    assert first == run(5)
    assert len(first) == 1 and 9 <= first[0] < 19  # timeout drawn from [10, 20) ticks


def test_old_persist_report_does_not_cover_entries_rewritten_since() -> None:
    """Pipelined persistence (ready.py allows several Readies in flight): Ready 1
    writes 1/1 2/1 3/1; Ready 2 (a term-2 leader) overwrites index 2 with 2/2;
    Ready 3 (a term-3 leader) writes 2/1 3/1 back. When only Ready 1 is reported
    durable, the disk may already hold Ready 2's version ([1/1, 2/2]), so only
    index 1 is known durable; applying 2 and 3 would run ahead of the disk."""
    raw = node(2, (1, 2, 3, 4, 5))
    raw.step(AppendEntries(1, 2, 1, 0, 0, tuple(log_of([1, 1, 1])), 0))
    rd1 = raw.ready()
    raw.advance(rd1)
    raw.step(AppendEntries(3, 2, 2, 1, 1, (Entry(2, 2),), 0))
    raw.advance(raw.ready())
    raw.step(AppendEntries(4, 2, 3, 1, 1, tuple(log_of([1, 1], start=2)), 3))
    raw.advance(raw.ready())
    raw.on_persisted(rd1.number)
    assert raw.status().persisted == 1
    assert [e.index for e in raw.ready().committed_entries] == [1]


def test_restart_lifts_a_hard_state_older_than_the_log() -> None:
    """A crash between persisting a Ready's entries and its hard state (the order
    ready.py prescribes) leaves the log a term ahead: the node adopts the log's
    term with no vote cast in it, since nothing depending on the lost hard state
    left the node."""
    raw = RawNode(
        cfg(2), random.Random(0), hard_state=HardState(1, 3, 0),
        entries=[Entry(1, 1), Entry(2, 2)],
    )  # fmt: skip
    st = raw.status()
    assert (st.term, st.vote) == (2, 0)
