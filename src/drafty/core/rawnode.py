"""RawNode: the core's public face, which hands out Ready batches.

Theory of operation
-------------------
:class:`RawNode` wraps :class:`~drafty.core.raft.Raft` and keeps the
bookkeeping of the Ready contract (see :mod:`drafty.core.ready`): which hard
state and soft state the driver last saw, which Ready numbers are out, and
which entries each one asked to persist, so that :meth:`RawNode.on_persisted`
can move the log's ``persisted`` mark.

Only one Ready may be outstanding between :meth:`ready` and :meth:`advance`;
asking for another first is a :class:`~drafty.core.errors.CoreMisuse`, as are
advancing a Ready that is not the outstanding one and reporting persistence
of a Ready that was never advanced.

Restart: construct a RawNode with what storage recovered (hard state, the
newest snapshot's description, the entries after it, how far the state
machine had applied: at least the snapshot's index). The core re-delivers
committed entries after ``applied`` as soon as they are durable, which they
already are.

Snapshots: after the driver durably saved a snapshot of its state machine
at an applied index, :meth:`snapshot_taken` tells the core (a leader sends
the newest one to followers that need compacted entries) and
:meth:`compact` drops the log prefix it covers. A leader's InstallSnapshot
message asks the driver to stream the snapshot's bytes to the follower,
which steps the message into its core once they have all arrived; the
leader's driver then calls :meth:`report_snapshot` with the outcome.

Invariants
----------
- Ready numbers start at 1 and have no gaps.
- ``persisted_number <= advanced_number <= issued_number``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .config import Config
from .errors import CoreMisuse, StateError
from .log import RaftLog
from .membership import UNKNOWN, ConfChange, Membership
from .messages import Message
from .progress import Progress
from .raft import Raft
from .ready import Ready, SoftState
from .types import EMPTY_HARD_STATE, NONE, Entry, HardState, NodeId, Role, SnapshotMeta


@dataclass(frozen=True, slots=True)
class FollowerStatus:
    match: int
    next: int
    state: str
    inflight: int
    recent_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of a node's state, for humans, metrics and tests."""

    id: NodeId
    role: Role
    term: int
    vote: NodeId
    leader: NodeId
    commit: int
    applied: int
    persisted: int
    last_index: int
    followers: dict[NodeId, FollowerStatus] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    transferee: NodeId = NONE
    """The voter a leadership transfer in progress hands over to (NONE: none)."""
    membership: Membership = UNKNOWN
    """The membership in effect on this node (the last configuration entry held)."""
    membership_index: int = 0
    """The index of the entry (or snapshot) that membership comes from."""
    membership_committed: bool = True
    """Whether that entry is known committed (a change is in progress if not)."""

    @property
    def removed(self) -> bool:
        """Whether this node knows it is no longer a member of its cluster."""
        return self.membership.known and not self.membership.includes(self.id)


class RawNode:
    """A Raft node with no I/O: feed it input, carry out its Ready batches."""

    def __init__(
        self,
        config: Config,
        rng: random.Random,
        *,
        hard_state: HardState = EMPTY_HARD_STATE,
        entries: Sequence[Entry] = (),
        applied: int = 0,
        offset: int = 0,
        offset_term: int = 0,
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        """Start a node from durable state (all defaults: a brand-new node).

        ``entries`` must directly follow ``(offset, offset_term)``, the last
        index and term compacted away. Raises StateError if the state is
        inconsistent (a log gap, a commit index beyond the log, a vote for a
        stranger). A hard state older than the log's last term (a crash
        between persisting entries and hard state) is lifted to that term.
        """
        if not isinstance(rng, random.Random):
            raise CoreMisuse("rng must be a random.Random instance (seed it for determinism)")
        if hard_state.vote < 0 or hard_state.term < 0:
            raise StateError(f"hard state {hard_state} holds a negative term or vote")
        floor = max(offset, snapshot.index if snapshot is not None else 0)
        if floor > hard_state.commit:
            # Only committed entries are ever compacted or snapshotted, but a
            # snapshot can be durable before the commit index that covers it
            # (a crash right after taking or installing one): it vouches for it.
            hard_state = HardState(hard_state.term, hard_state.vote, floor)
        log = RaftLog(
            entries,
            offset=offset,
            offset_term=offset_term,
            committed=hard_state.commit,
            applied=applied,
        )
        if log.last_term() > hard_state.term:
            # A crash between writing a Ready's entries and its hard state (the
            # order ready.py prescribes) leaves the log a term ahead. Nothing
            # that depends on the lost hard state left the node (votes and
            # append responses wait for it), so adopting the log's term, with
            # no vote cast in it, is safe.
            hard_state = HardState(log.last_term(), NONE, hard_state.commit)
        if snapshot is not None and snapshot.index < offset:
            raise StateError(f"snapshot {snapshot.index} is older than the log's start {offset}")
        self.raft = Raft(config, rng, hard_state, log, snapshot)
        self._prev_hard = hard_state
        self._prev_soft = SoftState(self.raft.role, self.raft.leader)
        self._issued = 0
        self._advanced = 0
        self._persisted = 0
        self._to_persist: dict[int, tuple[int, int, int]] = {}
        self._hard_at: dict[int, HardState] = {}
        """Ready number -> the hard state it persists, until durable."""

    # -- input -------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self.raft.tick()

    def step(self, message: Message) -> None:
        """Handle a message from a peer. Never raises on bad remote input."""
        self.raft.step(message)

    def campaign(self) -> None:
        """Start an election now instead of waiting for the timeout."""
        self.raft.campaign()

    def propose(self, data: bytes) -> int | None:
        """Append ``data`` to the log if this node leads; return its index.

        A follower configured with ``forward_proposals`` that knows a leader
        forwards the data there and returns None (the index is learnt when
        the entry is applied). Otherwise raises :class:`NotLeader`, naming the
        leader this node knows, if any. Returning an index promises nothing
        about commit: a leader change may still discard the entry.
        """
        return self.propose_batch((data,))

    def propose_batch(self, data: Iterable[bytes]) -> int | None:
        """Like :meth:`propose` for many items; returns the last one's index."""
        items = list(data)
        for d in items:
            if not isinstance(d, bytes):
                raise CoreMisuse(f"proposal data must be bytes, got {type(d).__name__}")
        return self.raft.propose(items)

    def transfer_leadership(self, target: NodeId) -> None:
        """Hand leadership to voter ``target`` (dissertation §3.10): proposals
        are refused with :class:`~drafty.core.errors.LeadershipTransferring`
        until the target has won or an election timeout passed. Raises
        :class:`NotLeader` or :class:`~drafty.core.errors.TransferError`."""
        self.raft.transfer_leadership(target)

    def propose_conf_change(self, change: ConfChange) -> int:
        """Change the cluster's membership (see :mod:`drafty.core.reconfig`); the
        index of its configuration entry. Raises :class:`NotLeader`,
        :class:`~drafty.core.errors.LeadershipTransferring` or
        :class:`~drafty.core.membership.ConfChangeError`."""
        return self.raft.propose_conf_change(change)

    def read_index(self, ctx: bytes) -> None:
        """Start a linearizable read named ``ctx`` (unique among waiting reads).

        Its :class:`~drafty.core.readonly.ReadState` comes in a later Ready's
        ``read_states``: answer it once the state machine applied its index
        (0: refused, retry). Raises :class:`NotLeader` if no leader is known.
        """
        if not isinstance(ctx, bytes):
            raise CoreMisuse(f"read ctx must be bytes, got {type(ctx).__name__}")
        self.raft.read_index(ctx)

    def report_snapshot(self, peer: NodeId, ok: bool) -> None:
        """The transfer of our snapshot to ``peer`` ended: delivered (``ok``) or failed.

        After a failure the leader probes the follower again (and sends a
        snapshot again if it still needs one)."""
        self.raft.report_snapshot(peer, ok)

    def snapshot_taken(self, meta: SnapshotMeta) -> None:
        """The driver durably saved a snapshot of the state machine at ``meta``."""
        log = self.raft.log
        if meta.index > log.applied:
            raise CoreMisuse(f"snapshot at {meta.index} beyond applied {log.applied}")
        if log.term(meta.index) not in (meta.term, None):
            raise CoreMisuse(f"snapshot term {meta.term} disagrees with the log at {meta.index}")
        current = self.raft.snapshot
        if current is None or meta.index > current.index:
            self.raft.snapshot = meta

    def compact(self, index: int) -> None:
        """Drop the log up to ``index`` (covered by a snapshot already taken)."""
        snap = self.raft.snapshot
        if snap is None or index > snap.index:
            raise CoreMisuse(f"compacting to {index} needs a snapshot there first")
        self.raft.log.compact(index)
        self.raft.members.compacted(index)

    # -- output ------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether :meth:`ready` would return a non-empty batch.

        Not a pure query: it first turns proposals and commits made since the
        last call into AppendEntries messages (the batching point), exactly as
        :meth:`ready` would.
        """
        r = self.raft
        r.flush()
        log = r.log
        return bool(
            r.msgs
            or r.pending_snapshot is not None
            or r.read_states
            or r.msgs_after_persist
            or log.stable < log.last_index()
            or min(log.committed, log.persisted) > log.applied
            or r.hard_state() != self._prev_hard
            or SoftState(r.role, r.leader) != self._prev_soft
        )

    def ready(self) -> Ready:
        """Take the next batch of work. Call :meth:`advance` with it when done."""
        if self._advanced != self._issued:
            raise CoreMisuse(f"Ready {self._issued} was not advanced; advance it first")
        r = self.raft
        r.flush()
        hard = r.hard_state()
        soft = SoftState(r.role, r.leader)
        msgs, after = tuple(r.msgs), tuple(r.msgs_after_persist)
        r.msgs.clear()
        r.msgs_after_persist.clear()
        self._issued += 1
        rd = Ready(
            number=self._issued,
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            entries=tuple(r.log.unstable()),
            messages=msgs,
            messages_after_persist=after,
            committed_entries=tuple(r.log.to_apply()),
            snapshot=r.pending_snapshot,
            read_states=tuple(r.read_states),
        )
        r.pending_snapshot = None
        r.read_states.clear()
        self._prev_hard, self._prev_soft = hard, soft
        return rd

    def advance(self, rd: Ready) -> None:
        """Acknowledge that ``rd``'s persist step is under way and it was handed off."""
        if rd.number != self._issued or self._advanced == self._issued:
            raise CoreMisuse(f"advance of Ready {rd.number}, but Ready {self._issued} is out")
        self._advanced = rd.number
        if rd.hard_state is not None:
            self._hard_at[rd.number] = rd.hard_state
        log = self.raft.log
        # If the core was stepped since ready() and replaced part of what this
        # Ready persists, only its prefix that is still in the log counts.
        for e in reversed(rd.entries):
            if log.matches(e.index, e.term):
                self._to_persist[rd.number] = (rd.entries[0].index, e.index, e.term)
                log.stable = max(log.stable, e.index)
                break
        if rd.committed_entries:
            # max: a snapshot installed since ready() may have moved it further.
            log.applied = max(log.applied, rd.committed_entries[-1].index)

    def on_persisted(self, number: int) -> None:
        """Ready ``number`` and every earlier one are durable on this node (a
        candidate whose vote for itself they hold may win now)."""
        if number > self._advanced:
            raise CoreMisuse(f"Ready {number} reported durable before it was advanced")
        if number <= self._persisted:
            return
        self._persisted = number
        for n in sorted(k for k in self._to_persist if k <= number):
            _, index, term = self._to_persist.pop(n)
            # Readies still in flight may have rewritten from their first index on.
            cap = min((f for f, _, _ in self._to_persist.values()), default=index + 1) - 1
            self.raft.persisted_to(index, term, cap)
        for n in sorted(k for k in self._hard_at if k <= number):
            self.raft.vote_durable(self._hard_at.pop(n))  # a candidate's own vote counts

    # -- introspection -----------------------------------------------------

    def is_removed(self) -> bool:
        """Whether this node knows its cluster removed it (cheaper than status())."""
        m = self.raft.membership
        return m.known and not m.includes(self.raft.id)

    def status(self) -> Status:
        r = self.raft
        log = r.log
        return Status(
            id=r.id,
            role=r.role,
            term=r.term,
            vote=r.vote,
            leader=r.leader,
            commit=log.committed,
            applied=log.applied,
            persisted=log.persisted,
            last_index=log.last_index(),
            followers={p: _follower_status(pr) for p, pr in r.progress.items()},
            transferee=r.transferee,
            counters=dict(r.counters),
            membership=r.membership,
            membership_index=r.members.last_change_index,
            membership_committed=r.members.last_change_index <= log.committed,
        )


def _follower_status(pr: Progress) -> FollowerStatus:
    return FollowerStatus(pr.match, pr.next, pr.state.value, pr.inflights.count(), pr.recent_active)
