"""Unit tests of the replica driver: the Ready contract carried out asynchronously."""

from __future__ import annotations

import random
from collections.abc import Sequence

from drafty.core import Config, Entry, HardState, Message, Ready, VoteRequest, VoteResponse
from drafty.sim import KvModel, Replica
from drafty.sim.kv import JsonValue
from drafty.sim.replica import NodeState, PendingSync


class Sink:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.syncs: list[PendingSync] = []
        self.readies: list[Ready] = []
        self.applied: list[Entry] = []

    def on_ready(self, replica: Replica, rd: Ready) -> None:
        self.readies.append(rd)

    def on_applied(self, replica: Replica, entry: Entry, result: JsonValue) -> None:
        self.applied.append(entry)

    def send(self, msgs: Sequence[Message]) -> None:
        self.sent.extend(msgs)

    def sync_started(self, replica: Replica, sync: PendingSync) -> None:
        self.syncs.append(sync)


def _replica(*, ack_before_fsync: bool = False, forget_vote: bool = False) -> Replica:
    cfg = Config(1, (1, 2, 3), prevote=False)
    rep = Replica(cfg, KvModel(), ack_before_fsync=ack_before_fsync, forget_vote=forget_vote)
    rep.start(random.Random(1))
    return rep


def _vote(term: int = 5, src: int = 2) -> VoteRequest:
    return VoteRequest(src, 1, term, 0, 0)


def test_votes_leave_only_after_the_sync() -> None:
    rep, sink = _replica(), Sink()
    rep.raw.step(_vote())
    rep.drive(sink)
    assert sink.sent == [] and len(sink.syncs) == 1
    assert rep.disk.hard_state == HardState()  # written, not durable
    assert rep.sync_done(sink.syncs[0].id, sink)
    assert sink.sent == [VoteResponse(1, 2, 5, True)]
    assert rep.disk.hard_state == HardState(5, 2, 0)


def test_a_ready_with_nothing_to_write_rides_on_the_sync_in_flight() -> None:
    rep, sink = _replica(), Sink()
    rep.raw.step(_vote())
    rep.drive(sink)
    rep.raw.step(_vote())  # a duplicate: granted again, nothing new to persist
    rep.drive(sink)
    assert len(sink.syncs) == 1 and sink.sent == []
    rep.sync_done(sink.syncs[0].id, sink)
    assert sink.sent == [VoteResponse(1, 2, 5, True)] * 2


def test_without_a_sync_in_flight_messages_leave_at_once() -> None:
    rep, sink = _replica(), Sink()
    rep.raw.step(_vote())
    rep.drive(sink)
    rep.sync_done(sink.syncs[0].id, sink)
    rep.raw.step(_vote())
    rep.drive(sink)
    assert len(sink.sent) == 2 and len(sink.syncs) == 1


def test_stale_sync_completions_are_ignored() -> None:
    rep, sink = _replica(), Sink()
    rep.raw.step(_vote())
    rep.drive(sink)
    assert not rep.sync_done(sink.syncs[0].id + 7, sink)
    assert sink.sent == []


def test_ack_before_fsync_plants_the_bug() -> None:
    rep, sink = _replica(ack_before_fsync=True), Sink()
    rep.raw.step(_vote())
    rep.drive(sink)
    assert sink.sent == [VoteResponse(1, 2, 5, True)]
    assert rep.disk.hard_state == HardState()


def test_crash_loses_unsynced_state_and_restart_reads_the_disk() -> None:
    rep, sink = _replica(), Sink()
    rep.raw.step(_vote(5))
    rep.drive(sink)
    rep.sync_done(sink.syncs[0].id, sink)
    rep.raw.step(_vote(6, 3))
    rep.drive(sink)
    rep.crash()
    assert rep.state is NodeState.DOWN and not rep.syncs and not rep.held
    rep.start(random.Random(2))
    assert (rep.raw.raft.term, rep.raw.raft.vote) == (5, 2)
    assert rep.epoch == 2


def test_forget_vote_plants_the_bug() -> None:
    rep, sink = _replica(forget_vote=True), Sink()
    rep.raw.step(_vote(5))
    rep.drive(sink)
    rep.sync_done(sink.syncs[0].id, sink)
    rep.crash()
    rep.start(random.Random(2))
    assert (rep.raw.raft.term, rep.raw.raft.vote) == (5, 0)


def test_single_node_applies_its_proposals_after_the_sync() -> None:
    rep = Replica(Config(1, (1,)), KvModel())
    rep.start(random.Random(1))
    sink = Sink()
    rep.raw.campaign()
    rep.drive(sink)
    rep.raw.propose(b'[0,1,"put","k","v"]')
    rep.drive(sink)
    while rep.syncs:
        rep.sync_done(rep.syncs[0].id, sink)
        rep.drive(sink)
    assert [e.index for e in sink.applied] == [1, 2]
    assert rep.applied == 2 and rep.sm.fingerprint() != KvModel().new_state_machine().fingerprint()
