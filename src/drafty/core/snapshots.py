"""Snapshots in the Raft state machine: sending one, installing one (dissertation §5).

A mixin of :class:`~drafty.core.raft.Raft` (see "Snapshots" in its module
docstring for the theory); it relies on the attributes Raft sets up.
"""

from __future__ import annotations

from collections import Counter

from .log import RaftLog
from .membership import Membership, MembershipLog
from .messages import AppendResponse, InstallSnapshot, Message
from .progress import Progress, ProgressState
from .types import NodeId, Role, SnapshotMeta


class Snapshots:
    """Snapshot methods of :class:`~drafty.core.raft.Raft`."""

    id: NodeId
    term: int
    role: Role
    log: RaftLog
    progress: dict[NodeId, Progress]
    counters: Counter[str]
    snapshot: SnapshotMeta | None
    pending_snapshot: SnapshotMeta | None
    membership: Membership
    members: MembershipLog

    def _members_restored(self, meta: SnapshotMeta) -> None: ...

    def _send(self, m: Message) -> None: ...

    def snapshot_meta(self, index: int, term: int) -> SnapshotMeta:
        """The description of a snapshot of the state at ``index`` (of ``term``),
        with the membership in force there."""
        m = self.members.at(index)
        return SnapshotMeta(index, term, m.voters, m.learners, m.outgoing)

    def _handle_snapshot(self, m: InstallSnapshot) -> None:
        """Install the leader's snapshot unless our log already has what it covers."""
        meta, log = m.meta, self.log
        if meta.index <= log.committed:
            # Stale or duplicate: say how far we are so the leader moves on.
            self.counters["stale_snapshot"] += 1
            self._send(AppendResponse(self.id, m.src, self.term, True, log.committed))
            return
        if log.matches(meta.index, meta.term):
            # Our log holds the snapshot's last entry, so the prefix matches:
            # nothing to replace, only the commit to learn.
            log.commit_to(meta.index)
            self.counters["snapshot_already_in_log"] += 1
        else:
            log.restore(meta)
            self._members_restored(meta)
            self.snapshot = self.pending_snapshot = meta
            self.counters["snapshots_installed"] += 1
        self._send(AppendResponse(self.id, m.src, self.term, True, meta.index))

    def _send_snapshot(self, to: NodeId, pr: Progress) -> None:
        """The entries ``to`` needs were compacted away: send our snapshot instead."""
        snap = self.snapshot
        if snap is None or snap.index < pr.next - 1:
            self.counters["snapshot_unavailable"] += 1
            return
        self._send(InstallSnapshot(self.id, to, self.term, snap))
        pr.become_snapshot(snap.index)
        self.counters["snapshots_sent"] += 1

    def report_snapshot(self, peer: NodeId, ok: bool) -> None:
        """The driver's transfer of our snapshot to ``peer`` ended (see RawNode)."""
        pr = self.progress.get(peer) if self.role is Role.LEADER else None
        if pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        pending = pr.pending_snapshot
        pr.become_probe()
        if ok:
            # Delivered: wait for the follower's answer before probing past it.
            pr.next = max(pr.next, pending + 1)
            pr.probe_sent = True
        else:
            self.counters["snapshot_transfers_failed"] += 1
