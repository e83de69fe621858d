"""Log replication flow control (paper §5.3, dissertation §10.2): batching,
pipelining within the inflight window, probing, and recovery from lost messages."""

from __future__ import annotations

import pytest

from drafty.core import AppendEntries, AppendResponse, HardState, RawNode, Role, VoteResponse
from drafty.core.types import ENTRY_OVERHEAD
from drafty.sim import MemoryCluster

from .helpers import drain, elect, log_of, node


def appends_to(msgs: object, dst: int) -> list[AppendEntries]:
    assert isinstance(msgs, tuple)
    return [m for m in msgs if isinstance(m, AppendEntries) and m.dst == dst]


def test_proposals_between_readies_go_in_one_append_per_follower() -> None:
    c = MemoryCluster(3)
    elect(c, 1)
    leader = c.nodes[1].raw
    for k in range(5):
        leader.propose(f"v{k}".encode())
    rd = leader.ready()
    assert len(rd.entries) == 5
    for f in (2, 3):
        (m,) = appends_to(rd.messages, f)
        assert [e.data for e in m.entries] == [b"v0", b"v1", b"v2", b"v3", b"v4"]
        assert (m.prev_index, m.prev_term) == (1, 1)


def test_appends_are_cut_to_max_msg_bytes() -> None:
    size = 100
    c = MemoryCluster(3, config_overrides={"max_msg_bytes": 2 * size})
    elect(c, 1)
    leader = c.nodes[1].raw
    for _ in range(5):
        leader.propose(b"x" * (size - ENTRY_OVERHEAD))
    rd = leader.ready()
    msgs = appends_to(rd.messages, 2)
    assert [len(m.entries) for m in msgs] == [2, 2, 1]
    assert [m.prev_index for m in msgs] == [1, 3, 5]  # pipelined back to back
    c.send(rd.messages)
    leader.advance(rd)
    leader.on_persisted(rd.number)
    c.stabilize()
    assert leader.status().commit == 6


def test_pipeline_respects_inflight_window() -> None:
    c = MemoryCluster(3, config_overrides={"max_inflight": 2, "max_msg_bytes": 1})
    elect(c, 1)
    leader = c.nodes[1].raw
    for k in range(6):
        leader.propose(bytes([k]))
    rd = c.process_ready(1)
    assert rd is not None
    # One entry per message (tiny byte budget), at most two unacknowledged.
    assert [m.prev_index for m in appends_to(rd.messages, 2)] == [1, 2]
    assert leader.status().followers[2].inflight == 2
    c.deliver(2)
    c.process_ready(2)
    c.deliver(1)  # acks free the window: the next two go out
    rd = c.process_ready(1)
    assert rd is not None
    assert [m.prev_index for m in appends_to(rd.messages, 2)] == [3, 4]
    c.stabilize()
    assert c.nodes[2].raw.status().last_index == 7


def test_lost_probe_is_retried_on_heartbeat_response() -> None:
    """A probing follower gets one append at a time; when it is lost, the
    next heartbeat answer unpauses the probe."""
    c = MemoryCluster(3)
    c.cut.add((1, 3))
    elect(c, 1)
    assert c.nodes[1].raw.status().followers[3].state == "probe"
    c.heal()
    c.nodes[1].raw.propose(b"x")
    c.stabilize()
    assert c.nodes[3].raw.status().last_index == 0  # still paused: nothing sent
    c.tick(1)
    c.stabilize()
    assert c.nodes[3].raw.status().last_index == 2
    assert c.nodes[1].raw.status().followers[3].state == "replicate"


def test_restarted_follower_catches_up_on_next_write() -> None:
    c = MemoryCluster(3)
    elect(c, 1)
    c.crash(3)
    for k in range(4):
        c.nodes[1].raw.propose(bytes([k]))
        c.stabilize()
    c.restart(3)
    c.nodes[1].raw.propose(b"next")
    c.stabilize()  # the new append is rejected (gap): probe, then repair
    c.tick(1)
    c.stabilize()
    assert [e.index for e in c.nodes[3].applied] == [1, 2, 3, 4, 5, 6]


def test_restarted_follower_catches_up_without_new_writes() -> None:
    c = MemoryCluster(3)
    elect(c, 1)
    c.crash(3)
    for k in range(4):
        c.nodes[1].raw.propose(bytes([k]))
        c.stabilize()
    c.restart(3)
    for _ in range(20):
        c.tick(1)
        c.stabilize()
    assert [e.index for e in c.nodes[3].applied] == [1, 2, 3, 4, 5]


def _replicating_then_drop(max_inflight: int = 256) -> MemoryCluster:
    """Node 1 leads, node 3 is down, node 2 is in REPLICATE and needed to commit."""
    c = MemoryCluster(3, config_overrides={"max_inflight": max_inflight})
    elect(c, 1)
    c.crash(3)
    assert c.nodes[1].raw.status().followers[2].state == "replicate"
    return c


def test_lost_append_in_replicate_is_resent() -> None:
    c = _replicating_then_drop()
    c.cut.add((1, 2))
    c.nodes[1].raw.propose(b"x")
    c.stabilize()  # the append to node 2 is lost
    c.heal()
    for _ in range(20):  # heartbeats flow and are answered
        c.tick(1)
        c.stabilize()
    assert c.nodes[2].raw.status().last_index == 2
    assert c.nodes[1].raw.status().commit == 2


def test_lost_append_response_in_replicate_is_recovered() -> None:
    c = _replicating_then_drop()
    c.cut.add((2, 1))
    c.nodes[1].raw.propose(b"x")
    c.stabilize()  # node 2 stores it; its answer is lost
    assert c.nodes[2].raw.status().last_index == 2
    c.heal()
    for _ in range(20):
        c.tick(1)
        c.stabilize()
    assert c.nodes[1].raw.status().commit == 2


def test_full_window_of_lost_appends_recovers() -> None:
    c = _replicating_then_drop(max_inflight=2)
    c.cut.add((1, 2))
    for d in (b"a", b"b", b"c"):
        c.nodes[1].raw.propose(d)
        c.process_ready(1)  # one append per Ready: two fill the window
    assert c.nodes[1].raw.status().followers[2].inflight == 2
    c.stabilize()
    c.heal()
    c.nodes[1].raw.propose(b"d")
    for _ in range(20):
        c.tick(1)
        c.stabilize()
    assert c.nodes[2].raw.status().last_index == 5
    assert c.nodes[1].raw.status().commit == 5


def test_rejection_in_replicate_falls_back_to_probe_and_repairs() -> None:
    """A follower that lost one append rejects the next (gap); the leader
    goes back to probing from the hint and resends the missing entries."""
    c = _replicating_then_drop()
    c.cut.add((1, 2))
    c.nodes[1].raw.propose(b"x")
    c.stabilize()
    c.heal()
    c.nodes[1].raw.propose(b"y")  # its append has prev 2, which node 2 lacks
    c.stabilize()
    assert c.nodes[2].raw.status().counters["appends_rejected"] == 1
    assert [e.data for e in c.nodes[2].raw.raft.log.entries] == [b"", b"x", b"y"]
    assert c.nodes[1].raw.status().commit == 3
    assert c.nodes[1].raw.status().followers[2].state == "replicate"


def test_stale_append_response_does_not_move_progress_back() -> None:
    c = MemoryCluster(3)
    elect(c, 1)
    for k in range(3):
        c.nodes[1].raw.propose(bytes([k]))
        c.stabilize()
    leader = c.nodes[1].raw
    before = leader.status().followers[2]
    leader.step(AppendResponse(2, 1, 1, True, 1))  # an old, reordered ack
    leader.step(AppendResponse(2, 1, 1, False, 1, 1, 1))  # an old rejection
    after = leader.status().followers[2]
    assert (after.match, after.next, after.state) == (before.match, before.next, before.state)
    assert leader.status().role is Role.LEADER


def _leader_of(terms: list[int]) -> tuple[RawNode, int]:
    """A 3-node leader (node 1) elected over the log ``terms``; returns it and its term."""
    raw = node(1, hard_state=HardState(max(terms), 0, 0), entries=log_of(terms), prevote=False)
    raw.campaign()
    drain(raw)
    raw.step(VoteResponse(2, 1, max(terms) + 1, True))
    assert raw.status().role is Role.LEADER
    drain(raw)
    return raw, max(terms) + 1


@pytest.mark.parametrize(
    ("conflict_term", "conflict_index", "prev"),
    [
        (4, 4, 5),  # leader holds term 4 up to 5: retry right after it
        (3, 4, 3),  # leader never had term 3: skip the follower's whole term
        (0, 3, 2),  # follower's log is shorter: retry from its end
    ],
)
def test_rejection_hint_picks_next_probe(
    conflict_term: int, conflict_index: int, prev: int
) -> None:
    """§5.3 (the optimisation after figure 7): on a rejection carrying the
    follower's conflicting term and its first index of that term, the leader
    retries after its own last entry of that term, or skips the term."""
    raw, term = _leader_of([1, 1, 1, 4, 4, 5, 5])
    raw.step(AppendResponse(2, 1, term, False, 7, conflict_term, conflict_index))
    (m,) = appends_to(drain(raw).messages, 2)
    assert (m.prev_index, m.prev_term) == (prev, raw.raft.log.term(prev))
    assert [e.index for e in m.entries] == list(range(prev + 1, 9))
