"""Unit tests of the simulated replica: the node layer's Actions carried out on a SimDisk."""

from __future__ import annotations

import random
from collections.abc import Sequence

from drafty.core import Config, Message, Ready, VoteRequest, VoteResponse
from drafty.node import Applied, Node, NodeOptions, Reply
from drafty.node.envelope import Envelope
from drafty.sim import Replica
from drafty.sim.replica import EPOCH_MS


class Host:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.syncs: list[int] = []
        self.replies: list[Reply] = []
        self.applied: list[Applied] = []

    def send(self, msgs: Sequence[Message]) -> None:
        self.sent.extend(msgs)

    def sync_started(self, replica: Replica, upto: int) -> None:
        self.syncs.append(upto)

    def on_replies(self, replica: Replica, replies: Sequence[Reply]) -> None:
        self.replies.extend(replies)

    def on_ready(self, node: Node, rd: Ready) -> None:
        pass

    def on_propose(self, node: Node, envelope: Envelope, index: int | None) -> None:
        pass

    def on_applied(self, node: Node, applied: Applied) -> None:
        self.applied.append(applied)


def _replica(
    host: Host, *, voters: tuple[int, ...] = (1, 2, 3), ack_before_fsync: bool = False,
    forget_vote: bool = False,
) -> Replica:  # fmt: skip
    cfg = Config(1, voters, prevote=False)
    rep = Replica(cfg, NodeOptions(), ack_before_fsync=ack_before_fsync, forget_vote=forget_vote)
    rep.start(random.Random(1), 0, host)
    return rep


def _vote(term: int = 5, src: int = 2) -> VoteRequest:
    return VoteRequest(src, 1, term, 0, 0)


def _granted(host: Host) -> list[VoteResponse]:
    return [m for m in host.sent if isinstance(m, VoteResponse) and m.granted]


def test_votes_leave_only_after_the_sync() -> None:
    host = Host()
    rep = _replica(host)
    rep.node.receive([_vote()], rep.now(1))
    rep.drive(host)
    assert not _granted(host) and host.syncs == [1]
    assert rep.disk.hard_state.term == 0  # written, not yet durable
    rep.sync_done(1, host)
    assert rep.disk.hard_state.term == 5 and rep.disk.hard_state.vote == 2
    assert len(_granted(host)) == 1


def test_one_sync_at_a_time_and_the_next_covers_what_was_written_meanwhile() -> None:
    host = Host()
    rep = _replica(host)
    rep.node.receive([_vote(5, 2)], rep.now(1))
    rep.drive(host)
    rep.node.receive([_vote(6, 3)], rep.now(2))
    rep.drive(host)
    assert host.syncs == [1]  # the second write waits for the first sync
    rep.sync_done(1, host)
    assert host.syncs == [1, 2] and len(_granted(host)) == 1
    rep.sync_done(2, host)
    assert [m.dst for m in _granted(host)] == [2, 3]


def test_ack_before_fsync_plants_the_bug() -> None:
    host = Host()
    rep = _replica(host, ack_before_fsync=True)
    rep.node.receive([_vote()], rep.now(1))
    rep.drive(host)
    assert _granted(host) and rep.disk.hard_state.term == 0


def test_crash_loses_unsynced_state_and_restart_reads_the_disk() -> None:
    host = Host()
    rep = _replica(host)
    rep.node.receive([_vote()], rep.now(1))
    rep.drive(host)
    first = rep.node.incarnation
    rep.crash()
    rep.start(random.Random(2), 10, host)
    assert rep.raw.raft.term == 0  # the vote was never durable
    assert rep.node.incarnation > first
    rep.node.receive([_vote()], rep.now(11))
    rep.drive(host)
    rep.sync_done(host.syncs[-1], host)
    rep.crash()
    rep.start(random.Random(3), 20, host)
    assert (rep.raw.raft.term, rep.raw.raft.vote) == (5, 2)


def test_forget_vote_plants_the_bug() -> None:
    host = Host()
    rep = _replica(host, forget_vote=True)
    rep.node.receive([_vote()], rep.now(1))
    rep.drive(host)
    rep.sync_done(1, host)
    rep.crash()
    rep.start(random.Random(2), 10, host)
    assert rep.raw.raft.term == 5 and rep.raw.raft.vote == 0


def test_a_single_node_applies_a_command_after_its_sync_and_replies() -> None:
    host = Host()
    rep = _replica(host, voters=(1,))
    rep.raw.campaign()
    rep.drive(host)
    while host.syncs and rep.disk.pending:
        rep.sync_done(host.syncs[-1], host)
    assert rep.raw.raft.role.value == "leader"
    rid = rep.node.submit(b"\x93\xc4\x03SET\xc4\x01k\xc4\x01v", rep.now(5))
    rep.drive(host)
    assert not host.replies  # not durable yet
    rep.sync_done(host.syncs[-1], host)
    assert [r.request for r in host.replies] == [rid]
    assert rep.kv is not None and rep.kv.data == {b"k": b"v"}


def test_clocks_mono_is_virtual_time_and_wall_carries_the_skew() -> None:
    rep = Replica(Config(1, (1, 2, 3)), NodeOptions(), skew_ms=-700)
    now = rep.now(1234)
    assert now.mono_ms == 1234 and now.wall_ms == EPOCH_MS + 1234 - 700
