"""Test-only buggy cores, node layers and drivers: known bugs the oracle must catch.

Each bug is planted by a node factory (a RawNode whose Raft is swapped for a
buggy subclass), a layer factory (a buggy subclass of the node layer), or a
driver flag of :class:`drafty.sim.SimConfig`; nothing here touches the real
code, and every plant lives only in the runs that ask for it (:data:`BUGS`
maps a name to the SimConfig fields that plant it).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from drafty.core import (
    NONE,
    Config,
    Entry,
    HardState,
    RawNode,
    Role,
    SnapshotMeta,
    VoteRequest,
    VoteResponse,
)
from drafty.core.quorum import committed_index
from drafty.core.raft import Raft
from drafty.node import Instant, Node, Refused, Reply
from drafty.node.dedupe import Admission
from drafty.node.envelope import Envelope, Kind, pack
from drafty.node.node import Verdict
from drafty.node.sessions import Check, Session, SessionTable
from drafty.service.kv import KVStore
from drafty.sim.replica import NodeFactory


class CommitByCountingRaft(Raft):
    """Commits whatever a majority stores, even entries of older terms (paper figure 8)."""

    def _maybe_commit(self) -> bool:
        match = {p: pr.match for p, pr in self.progress.items()}
        match[self.id] = self.log.persisted
        index = self.membership.committed_index(match)
        if index > self.log.committed:
            return self.log.commit_to(index)
        return False


class DoubleVoteRaft(Raft):
    """Grants its vote to any up-to-date candidate, ignoring the vote it already cast."""

    def _handle_vote_request(self, m: VoteRequest) -> None:
        if m.pre or self.leader != NONE or not self.log.is_up_to_date(m.last_index, m.last_term):
            super()._handle_vote_request(m)
            return
        self.vote = m.src
        self.election_elapsed = 0
        self._send(VoteResponse(self.id, m.src, self.term, True))


class _CommitRule(Raft):
    """``_maybe_commit`` with the quorum rule of :meth:`_committed` (plants override it)."""

    def _committed(self, match: dict[int, int]) -> int:
        return self.membership.committed_index(match)

    def _maybe_commit(self) -> bool:
        match = {p: pr.match for p, pr in self.progress.items()}
        match[self.id] = self.log.persisted
        index = self._committed(match)
        if index > self.log.committed and self.log.term(index) == self.term:
            self.log.commit_to(index)
            self._reads_committed()
            return True
        return False


class JointIgnoresOutgoingRaft(_CommitRule):
    """During a joint change, commits with a majority of the incoming voters alone
    (as if ``Membership.committed_index`` read only ``voters``)."""

    def _committed(self, match: dict[int, int]) -> int:
        return committed_index(self.membership.voters, match)


class LearnerAcksCountRaft(_CommitRule):
    """Counts a learner's acknowledgement towards the voters' majority."""

    def _committed(self, match: dict[int, int]) -> int:
        m = self.membership
        acks = sorted((i for p, i in match.items() if p in m.members), reverse=True)
        need = len(m.voters) // 2 + 1
        index = acks[need - 1] if len(acks) >= need else 0
        if m.outgoing:
            index = min(index, committed_index(m.outgoing, match))
        return index


def factory_for(raft_class: type[Raft]) -> NodeFactory:
    """A node factory whose RawNodes run ``raft_class`` instead of Raft."""

    def make(
        config: Config,
        rng: random.Random,
        hard_state: HardState,
        entries: Sequence[Entry],
        **start: Any,
    ) -> RawNode:
        raw = RawNode(config, rng, hard_state=hard_state, entries=entries, **start)
        raw.raft.__class__ = raft_class
        return raw

    return make


# -- the node layer ------------------------------------------------------------------


def same_incarnation(raw: RawNode, machine: Any, *, incarnation: int, **kw: Any) -> Node:
    """Every life of a node numbers its requests from 1 under one identity (issue 8's
    defect 1: replies were matched by node and request number alone)."""
    return Node(raw, machine, incarnation=1, **kw)


class _RerunDuplicates(SessionTable):
    def check(self, client: int, seq: int) -> tuple[Check, Session | None]:
        check, s = super().check(client, seq)
        return (Check.NEW, s) if check is Check.DUPLICATE and s is not None else (check, s)

    def record(self, session: Session, seq: int, reply: Any) -> None:
        session.seq, session.reply = seq, reply


class ApplyDuplicateNode(Node):
    """A retried session command runs again instead of being answered from the session."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        opts = self.options
        self.sessions = _RerunDuplicates(opts.session_ttl_ms, opts.max_sessions)


class RefuseAfterApplyNode(Node):
    """Answers Refused ("certainly no effect") for writes it applied."""

    def _settle(
        self, e: Entry, env: Envelope, verdict: Verdict, admission: Admission, result: Any
    ) -> None:
        if verdict is Verdict.EXECUTED and env.client:
            self.waiting.answer(env.request, error=Refused("planted: refused after applying"))
            return
        super()._settle(e, env, verdict, admission, result)


class LocalClockNode(Node):
    """Stamps every proposal with its own wall clock, follower or leader (the old rule)."""

    def _propose(
        self, kind: Kind, rid: int, command: bytes, client: int, seq: int, now: Instant
    ) -> int | None:
        r = self.raw.raft
        env = Envelope(kind, self.id, self.incarnation, rid, r.term, now.wall_ms, client, seq,
                       command)  # fmt: skip
        index = self.raw.propose(pack(env))
        if r.role is Role.LEADER and index is not None:
            self._stamp_mono, self._stamped_index = now.mono_ms, index
        self.observer.on_propose(self, env, index)
        return index


# -- snapshots -------------------------------------------------------------------


class _LeakyView:
    """A "view" that reads the live dict when serialised: no copy-on-write."""

    def __init__(self, store: KVStore) -> None:
        self.store = store

    def chunks(self) -> Iterator[bytes]:
        yield self.store.snapshot()

    def close(self) -> None:
        pass


class LeakyViewNode(Node):
    """Its state machine's snapshot views see writes applied after they were taken."""

    def __init__(self, raw: RawNode, machine: Any, **kw: Any) -> None:
        machine.snapshot_view = lambda: _LeakyView(machine)
        super().__init__(raw, machine, **kw)


class RestoreForgetsSessionsNode(Node):
    """Restores the state machine from a snapshot but not the client sessions."""

    def _restore(self, payload: bytes | memoryview) -> None:
        super()._restore(payload)
        self.sessions.load(self.sessions.now, [])


class InstallWithoutRestoreNode(Node):
    """Installs a leader's snapshot in the core but keeps its old state machine."""

    def _installed(self, meta: SnapshotMeta) -> None:
        got = self._installing
        assert got is not None
        self._installing = None
        self.applied, self.applied_term = meta.index, meta.term
        self.snapshot_index = meta.index
        self.observer.on_restored(self, meta)


class LocalReadNode(Node):
    """Serves every read from its own state at once: no ReadIndex, no leader check."""

    def read(self, command: bytes, now: Instant, *, timeout_ms: int | None = None) -> int:
        rid = self._next_request
        self._next_request += 1
        if not self.applied:
            self._replies.append(Reply(rid, error=Refused("nothing applied yet")))
            return rid
        value = self.machine.query(command)  # type: ignore[attr-defined]
        self._replies.append(Reply(rid, value, read_at=self.applied))
        return rid


BUGS: dict[str, dict[str, object]] = {
    "commit-by-counting": {"node_factory": factory_for(CommitByCountingRaft)},
    "double-vote": {"node_factory": factory_for(DoubleVoteRaft)},
    "joint-ignores-outgoing": {"node_factory": factory_for(JointIgnoresOutgoingRaft)},
    "learner-acks-count": {"node_factory": factory_for(LearnerAcksCountRaft)},
    "forget-vote": {"forget_vote_on_restart": True},
    "ack-before-fsync": {"ack_before_fsync": True},
    "reuse-request-numbers": {"layer_factory": same_incarnation},
    "apply-duplicate": {"layer_factory": ApplyDuplicateNode},
    "refuse-after-apply": {"layer_factory": RefuseAfterApplyNode},
    "local-session-clock": {"layer_factory": LocalClockNode},
    "leaky-snapshot-view": {"layer_factory": LeakyViewNode},
    "restore-forgets-sessions": {"layer_factory": RestoreForgetsSessionsNode},
    "install-without-restore": {"layer_factory": InstallWithoutRestoreNode},
    "read-without-index": {"layer_factory": LocalReadNode},
}
"""Planted bugs by name, as SimConfig fields (used by tests and the regression list)."""
