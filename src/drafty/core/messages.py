"""The messages Raft nodes exchange, one frozen slotted dataclass per kind.

Theory of operation
-------------------
Every message names its sender ``src``, its receiver ``dst`` and the sender's
``term``. The receiver first compares terms (see :mod:`drafty.core.raft`):
a higher term makes it a follower, a lower one marks the message stale.
Then the receiver's role decides what the message means.

Indexes are 1-based exactly as in the Raft paper: ``prev_index`` is the index
of the entry just before ``entries`` (0 when they start the log). No +1/-1
shuffling happens between the core and the wire.

The kinds:

- :class:`VoteRequest` / :class:`VoteResponse`: elections. ``pre=True`` marks
  the PreVote round (dissertation §9.6), which changes no one's term or vote.
- :class:`AppendEntries` / :class:`AppendResponse`: replication (paper §5.3).
  A rejection carries a hint (the conflicting term and the first index the
  follower holds of it) so the leader skips a whole term per round trip.
- :class:`Heartbeat` / :class:`HeartbeatResponse`: leadership and commit
  propagation without entries; the response also unpauses a probing follower.
- :class:`Propose`: a follower forwarding client data to the leader.
- :class:`InstallSnapshot`: the leader replaces a follower's log prefix with
  a snapshot (dissertation §5.2) when the entries it needs were compacted.
  The core handles only the snapshot's description; the driver carries the
  bytes (in chunks) and steps this message in once they are all received.
  The follower answers with an :class:`AppendResponse` (``index`` is its
  match after the snapshot, or its commit index if the snapshot was stale).
- :class:`SnapshotChunk` / :class:`SnapshotAck`: the snapshot's bytes, in
  chunks with flow control. They travel the same wire but belong to the node
  layer (:mod:`drafty.node.transfer`), which steps the InstallSnapshot above
  into the core once every byte is in hand and checked; the core never sees
  them (it drops and counts them if handed one).

- :class:`ReadIndexRequest` / :class:`ReadIndexResponse`: a follower's
  linearizable read, confirmed by the leader (:mod:`drafty.core.readonly`).

Room is left for TimeoutNow.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import Entry, NodeId, SnapshotMeta


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """RequestVote (paper figure 2), or its PreVote rehearsal when ``pre``.

    A pre-vote carries the term the sender *would* campaign in (its term + 1)
    without having moved to it.
    """

    src: NodeId
    dst: NodeId
    term: int
    last_index: int
    last_term: int
    pre: bool = False
    transfer: bool = False
    """Sent by a candidate its leader handed over to (TimeoutNow): voters grant
    it even while they heard from that leader within an election timeout."""


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """A leader hands leadership over: the receiver campaigns at once, without
    PreVote (dissertation §3.10)."""

    src: NodeId
    dst: NodeId
    term: int


@dataclass(frozen=True, slots=True)
class VoteResponse:
    """The answer to a :class:`VoteRequest` with the same ``pre`` flag."""

    src: NodeId
    dst: NodeId
    term: int
    granted: bool
    pre: bool = False


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """AppendEntries (paper figure 2): ``entries`` follow ``prev_index``.

    ``commit`` is the leader's commit index; the follower commits up to
    ``min(commit, index of the last entry this message vouches for)``.
    """

    src: NodeId
    dst: NodeId
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendResponse:
    """The answer to :class:`AppendEntries`.

    On success ``index`` is the follower's match index: the last index the
    appended message vouched for. On rejection ``index`` is the rejected
    ``prev_index``, and the hint says where the leader should retry:
    ``conflict_term`` is the follower's term at ``prev_index`` (0 if its log is
    shorter), ``conflict_index`` the first index it holds of that term (or its
    last index + 1 when its log is shorter).

    ``lost`` (a rejection): the follower does not hold entries the leader's
    heartbeat said it matched (its commit runs past the follower's log): its
    log was lost, say a wiped data directory. ``index`` is then its last
    index, and the leader must lower its match to that and probe again.
    """

    src: NodeId
    dst: NodeId
    term: int
    success: bool
    index: int
    conflict_term: int = 0
    conflict_index: int = 0
    lost: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader's keep-alive. ``commit`` never exceeds the follower's match.
    ``round`` numbers the leader's latest read confirmation round
    (:mod:`drafty.core.readonly`; 0: none yet)."""

    src: NodeId
    dst: NodeId
    term: int
    commit: int
    round: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    """Follower's answer to a :class:`Heartbeat`; ``round`` echoes its round."""

    src: NodeId
    dst: NodeId
    term: int
    round: int = 0


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """A follower asks the leader to confirm read ``ctx`` (ReadIndex)."""

    src: NodeId
    dst: NodeId
    term: int
    ctx: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """The leader confirmed read ``ctx`` at ``index`` (0: refused)."""

    src: NodeId
    dst: NodeId
    term: int
    ctx: bytes
    index: int


@dataclass(frozen=True, slots=True)
class Propose:
    """Client data forwarded by a follower to the leader it knows.

    ``term`` is the sender's term; the leader appends the data only if it is
    still the leader of a term at least that high.
    """

    src: NodeId
    dst: NodeId
    term: int
    data: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """The leader's snapshot ``meta`` for a follower whose next entry was compacted."""

    src: NodeId
    dst: NodeId
    term: int
    meta: SnapshotMeta


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """``data`` is bytes ``offset ..`` of snapshot file ``meta`` (``total`` bytes),
    in transfer ``transfer`` (a number the sender never reuses)."""

    src: NodeId
    dst: NodeId
    term: int
    meta: SnapshotMeta
    transfer: int
    offset: int
    total: int
    data: bytes


ACK_PROGRESS = 0
"""SnapshotAck status: ``received`` bytes are in hand; send on."""
ACK_INSTALLED = 1
"""SnapshotAck status: every byte arrived, checked, and went to the core."""
ACK_REFUSED = 2
"""SnapshotAck status: the receiver gave this transfer up; start over if needed."""


@dataclass(frozen=True, slots=True)
class SnapshotAck:
    """The receiver of transfer ``transfer`` holds its first ``received`` bytes."""

    src: NodeId
    dst: NodeId
    term: int
    transfer: int
    received: int
    status: int


Message = (
    VoteRequest
    | VoteResponse
    | AppendEntries
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | Propose
    | InstallSnapshot
    | ReadIndexRequest
    | ReadIndexResponse
    | SnapshotChunk
    | SnapshotAck
    | TimeoutNow
)
"""Any message of the protocol."""

MESSAGE_TYPES: tuple[type, ...] = (
    VoteRequest,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    Propose,
    InstallSnapshot,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotAck,
    TimeoutNow,
)
