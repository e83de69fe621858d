"""Linearizable reads without the log: ReadIndex (dissertation §6.4).

Theory of operation
-------------------
A read is linearizable if it sees every write committed before it arrived.
The leader knows the commit index, but a deposed leader does not know it is
deposed; so a read is answered in three steps:

1. the leader records its commit index as the read's *index* (only once an
   entry of its own term has committed: before that its commit index may lag
   what earlier leaders committed; such reads wait for the no-op);
2. it confirms it still leads: a heartbeat *round* sent after the read was
   recorded, answered by a majority, proves no other leader existed when
   they answered. Every read recorded before a round is confirmed by it, so
   one round serves all the reads that arrived since the last one;
3. the state machine answers the read once it has applied ``index``.

Rounds are numbered; heartbeats carry the number and responses echo it, and a
peer's highest echoed number counts for every earlier round. A follower's
read goes to the leader (:class:`~drafty.core.messages.ReadIndexRequest`)
and comes back confirmed (:class:`~drafty.core.messages.ReadIndexResponse`);
the follower then waits for its own apply.

A read that cannot be confirmed (the leader stepped down, the term moved on,
the follower's leader changed) is *refused*: a :class:`ReadState` with
``index`` 0. A read has no effect, so a refused read is certainly harmless
to retry.

Lease reads (``Config.lease_reads``, dissertation §6.4.1) skip step 2 while
the leader holds a *lease*: every heartbeat starts a round, the tick it was
sent at is kept, and once a majority (the leader included) has answered
round ``r``, the lease runs ``Config.lease_ticks`` from the tick ``r`` was
sent. Why that is safe: a voter that answered ``r`` heard from this leader
after ``r`` was sent, and it neither votes for another candidate (it ignores
vote requests while it heard from a leader within ``election_ticks``, and
with leases a restarted node ignores them for its first ``election_ticks``)
nor campaigns itself before ``election_ticks - 1`` of *its* ticks have
passed. Any new leader needs a vote from that majority, so none exists
before then. The leader counts ``c`` of its own ticks since sending ``r``,
which is less than ``c + 1`` tick periods of real time; the lease holds
while ``c < election_ticks - 1 - lease_drift_ticks``, so it stays inside the
voters' window as long as no voter's ticks run faster than the leader's by
more than ``lease_drift_ticks / (election_ticks - 1)``.

What breaks if clocks drift more, or if ticks stop tracking real time (a
leader process paused or its loop stalled, then not told how many ticks it
missed): a deposed leader may answer a read from its lease after a new
leader has committed a write, returning a stale value. The driver therefore
delivers missed ticks after a stall when leases are on (and catches them up
before a lease read), and leases are opt-in; ReadIndex needs no clock at all.

Invariants
----------
- A read is confirmed only by a round numbered after it was recorded.
- ``index`` of a confirmed read is at least the commit index when it arrived.
- At most ``max_reads`` reads wait on one node; more are refused at once.
- A lease read is answered only by a leader with an entry of its term
  committed, and only from a round a majority answered within
  ``lease_ticks``; a lease never outlives the leadership that earned it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .config import Config
from .errors import NotLeader
from .log import RaftLog
from .membership import Membership
from .messages import Message, ReadIndexRequest, ReadIndexResponse
from .progress import Progress
from .types import NONE, NodeId, Role


@dataclass(frozen=True, slots=True)
class ReadState:
    """Read ``ctx`` may be answered once the state machine applied ``index``;
    ``index`` 0: refused (retry; a read has no effect)."""

    ctx: bytes
    index: int


@dataclass(slots=True)
class _Read:
    ctx: bytes
    index: int
    origin: NodeId
    """Who asked: this node, or the follower to answer."""
    round: int = 0
    """The heartbeat round that confirms it (0: not yet sent)."""


@dataclass(slots=True)
class ReadQueue:
    """A leader's reads waiting for confirmation; see the module docstring."""

    me: NodeId
    max_reads: int
    lease: bool = False
    """Keep what a lease needs: when each round was sent."""
    waiting_commit: list[_Read] = field(default_factory=list)
    """Reads that arrived before an entry of this term committed."""
    pending: list[_Read] = field(default_factory=list)
    """Recorded reads, oldest first (their rounds never decrease)."""
    round: int = 0
    """The last round sent."""
    acked: dict[NodeId, int] = field(default_factory=dict)
    """Per peer, the highest round it answered."""
    sent_at: dict[int, int] = field(default_factory=dict)
    """With leases: round -> the tick it was sent at, for rounds no majority
    has answered yet (at most the rounds of two election timeouts: a leader
    that hears no majority for that long steps down, which clears it)."""
    lease_from: int | None = None
    """With leases: the tick the newest round a majority answered was sent at."""

    def __len__(self) -> int:
        return len(self.waiting_commit) + len(self.pending)

    def add(self, ctx: bytes, origin: NodeId, commit: int | None) -> bool:
        """Record a read (``commit`` None: no entry of this term committed yet);
        False if too many are waiting."""
        if len(self) >= self.max_reads:
            return False
        r = _Read(ctx, commit or 0, origin)
        (self.pending if commit is not None else self.waiting_commit).append(r)
        return True

    def committed(self, commit: int) -> None:
        """An entry of this term committed: reads waiting for it get their index."""
        for r in self.waiting_commit:
            r.index = commit
        self.pending.extend(self.waiting_commit)
        self.waiting_commit.clear()

    def next_round(self, now: int, *, force: bool = False) -> int:
        """The round to send at tick ``now``: a new one if a recorded read has
        none (or ``force``: a heartbeat under leases); else 0."""
        if not force and (not self.pending or self.pending[-1].round):
            return 0
        self.round += 1
        for r in reversed(self.pending):
            if r.round:
                break
            r.round = self.round
        if self.lease:
            self.sent_at[self.round] = now
        return self.round

    def ack(self, peer: NodeId, round_: int, members: Membership) -> list[_Read]:
        """``peer`` answered round ``round_``: the reads now confirmed, in order."""
        if round_ <= self.acked.get(peer, 0):
            return []
        self.acked[peer] = round_
        if self.lease:
            self._renew_lease(members)
        done = 0
        for r in self.pending:
            if not r.round:
                break
            yes = [self.me] + [p for p, a in self.acked.items() if a >= r.round]
            if not members.has_quorum(yes):
                break
            done += 1
        confirmed, self.pending = self.pending[:done], self.pending[done:]
        return confirmed

    def _renew_lease(self, members: Membership) -> None:
        answered = dict(self.acked)
        answered[self.me] = self.round
        quorum_round = members.committed_index(answered)
        sent = self.sent_at.get(quorum_round)
        if sent is not None:
            self.lease_from = sent
            for r in [r for r in self.sent_at if r <= quorum_round]:
                del self.sent_at[r]

    def confirm_all(self) -> list[_Read]:
        """A single-voter cluster: no round is needed."""
        out, self.pending = self.pending, []
        return out

    def drop_all(self) -> list[_Read]:
        """Leadership ended: every waiting read is refused."""
        out = self.waiting_commit + self.pending
        self.waiting_commit, self.pending, self.acked = [], [], {}
        self.sent_at, self.lease_from = {}, None
        return out


class ReadIndex:
    """ReadIndex methods of :class:`~drafty.core.raft.Raft` (a mixin, so raft.py
    stays readable); it relies on the attributes Raft sets up (declared below)."""

    id: NodeId
    cfg: Config
    term: int
    ticks: int
    role: Role
    leader: NodeId
    membership: Membership
    log: RaftLog
    progress: dict[NodeId, Progress]
    counters: Counter[str]
    reads: ReadQueue
    read_states: list[ReadState]
    """Output: reads confirmed (or refused), for the next Ready."""
    forwarded: dict[bytes, NodeId]
    """A follower's reads sent to the leader: ctx -> that leader."""
    transferee: NodeId

    def _send(self, m: Message) -> None: ...

    def read_index(self, ctx: bytes) -> None:
        """Start a linearizable read; its :class:`ReadState` comes in a Ready.

        Raises :class:`NotLeader` when no leader is known, or when this node is
        no member of its own membership (the leader drops what non-members send)."""
        if self.role is Role.LEADER:
            self._record_read(ctx, self.id)
        elif self.leader != NONE and not self.membership.includes(self.id):
            raise NotLeader(self.leader)  # the leader drops a non-member's request
        elif self.leader != NONE:
            if len(self.forwarded) >= self.reads.max_reads or ctx in self.forwarded:
                self.counters["reads_refused"] += 1
                self.read_states.append(ReadState(ctx, 0))
                return
            self.forwarded[ctx] = self.leader
            self._send(ReadIndexRequest(self.id, self.leader, self.term, ctx))
        else:
            raise NotLeader(NONE)

    def lease_valid(self) -> bool:
        """Whether this leader may answer reads from its lease right now."""
        if self.role is not Role.LEADER or not self.cfg.lease_reads or self.transferee != NONE:
            return False  # handing over: the target may already lead
        if self.membership.sole_voter(self.id):
            return True
        since = self.reads.lease_from
        return since is not None and self.ticks - since < self.cfg.lease_ticks

    def _heartbeat_round(self) -> int:
        """The round a periodic heartbeat carries: a new one under leases."""
        if self.cfg.lease_reads:
            return self.reads.next_round(self.ticks, force=True)
        return self.reads.round

    def _record_read(self, ctx: bytes, origin: NodeId) -> None:
        own = self.log.term(self.log.committed) == self.term
        if own and self.lease_valid():
            self.counters["reads_lease"] += 1
            self._answer_read(ctx, self.log.committed, origin)
            return
        if not self.reads.add(ctx, origin, self.log.committed if own else None):
            self.counters["reads_refused"] += 1
            self._answer_read(ctx, 0, origin)
        elif self.membership.sole_voter(self.id) and own:
            for r in self.reads.confirm_all():
                self._answer_read(r.ctx, r.index, r.origin)

    def _answer_read(self, ctx: bytes, index: int, origin: NodeId) -> None:
        if origin == self.id:
            self.read_states.append(ReadState(ctx, index))
        else:
            self._send(ReadIndexResponse(self.id, origin, self.term, ctx, index))

    def _reads_committed(self) -> None:
        """An entry of this term committed (the commit index moved as leader)."""
        if self.reads.waiting_commit:
            self.reads.committed(self.log.committed)
            if self.membership.sole_voter(self.id):
                for r in self.reads.confirm_all():
                    self._answer_read(r.ctx, r.index, r.origin)

    def _read_acked(self, peer: NodeId, round_: int) -> None:
        for r in self.reads.ack(peer, round_, self.membership):
            self.counters["reads_confirmed"] += 1
            self._answer_read(r.ctx, r.index, r.origin)

    def _read_answered(self, m: ReadIndexResponse) -> None:
        """The leader confirmed (or refused) a read this follower forwarded."""
        if self.forwarded.get(m.ctx) != m.src:
            self.counters["stale_read_response"] += 1
            return
        del self.forwarded[m.ctx]
        self.read_states.append(ReadState(m.ctx, m.index))

    def _drop_reads(self) -> None:
        """The term or the role changed: no waiting read can be confirmed now."""
        for r in self.reads.drop_all():
            if r.origin == self.id:
                self.read_states.append(ReadState(r.ctx, 0))
        for ctx in self.forwarded:
            self.read_states.append(ReadState(ctx, 0))
        self.forwarded.clear()
