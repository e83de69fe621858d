"""Membership changes in the log: proposing them, applying them on append.

Theory of operation
-------------------
A configuration entry (``EntryKind.CONFIG``) carries a whole
:class:`~drafty.core.membership.Membership`. A node uses the membership of
the last configuration entry in its log, committed or not (dissertation
§4.1); :class:`~drafty.core.membership.MembershipLog` remembers every one
after the snapshot, so an entry overwritten by a new leader takes its
membership back with it. Whenever the log grows, shrinks, is compacted or is
replaced by a snapshot, :meth:`Reconfiguration._members_changed` brings
``membership``, ``peers`` and (on a leader) the per-member
progress in line.

A leader takes one change at a time (:meth:`propose_conf_change`): none while
the last configuration entry is uncommitted, none before an entry of its own
term committed, none while handing leadership over. A change of voters goes
through a joint membership; once that entry commits the leader appends the
entry that leaves it. A leader that is no longer a voter once its removal
commits steps down; learners and removed nodes never campaign, but for a
node that the uncommitted last configuration entry in its log removed (its
log may be the only one that can win; see ``Elections._may_campaign``).

Invariants
----------
- ``membership`` is the membership of the last configuration entry held
  (or the snapshot's, or the initial one).
- At most one configuration entry is uncommitted on a leader.
"""

from __future__ import annotations

from collections import Counter

from .config import Config
from .errors import LeadershipTransferring, NotLeader
from .log import RaftLog
from .membership import (
    ConfChange,
    ConfChangeBusy,
    Membership,
    MembershipDecodeError,
    MembershipLog,
    decode,
    encode,
    leave_joint,
    plan,
)
from .progress import Progress
from .types import NONE, Entry, EntryKind, NodeId, Role, SnapshotMeta


class Reconfiguration:
    """Membership methods of :class:`~drafty.core.raft.Raft` (a mixin)."""

    id: NodeId
    term: int
    role: Role
    leader: NodeId
    log: RaftLog
    progress: dict[NodeId, Progress]
    counters: Counter[str]
    transferee: NodeId
    membership: Membership
    peers: tuple[NodeId, ...]
    members: MembershipLog
    cfg: Config
    settled_change: int
    """The configuration entry this leader last acted on once committed (-1: none)."""

    def become_follower(self, term: int, leader: NodeId) -> None: ...
    def _append_local(self, entries: list[Entry]) -> None: ...

    def propose_conf_change(self, change: ConfChange) -> int:
        """Append the configuration entry for ``change``; its index.

        Raises :class:`NotLeader`, :class:`LeadershipTransferring`,
        :class:`ConfChangeBusy` when it cannot be made *yet* (retry shortly),
        or :class:`ConfChangeError` saying why it cannot be made at all."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self.transferee != NONE:
            raise LeadershipTransferring(self.transferee)
        if self.log.term(self.log.committed) != self.term:
            raise ConfChangeBusy("the new leader has not committed an entry of its term yet")
        if self.members.last_change_index > self.log.committed:
            raise ConfChangeBusy("a membership change is still in progress (not yet committed)")
        target = plan(self.membership, change)
        last = self.log.last_index()
        for learner in change.promote:
            match = self.progress[learner].match
            if last - match > self.cfg.promote_max_lag_entries:
                raise ConfChangeBusy(
                    f"learner {learner} has not caught up: it holds the log to {match}, "
                    f"the leader to {last} (promotion needs it within "
                    f"{self.cfg.promote_max_lag_entries} entries); retry once it has"
                )
        self._append_config(target, change.context)
        return self.log.last_index()

    def _append_config(self, target: Membership, context: bytes = b"") -> None:
        index = self.log.last_index() + 1
        data = encode(target, context)
        self._append_local([Entry(index, self.term, EntryKind.CONFIG, data)])
        self.counters["membership_changes_proposed"] += 1

    # -- keeping the membership in line with the log ------------------------------------

    def _scan_config(self, first: int) -> None:
        """Entries from ``first`` on are new (or replaced): record their memberships
        (those at or before the base's index are in the base already)."""
        first = max(first, self.members.base_index + 1)
        self.members.truncated(first - 1)
        for e in self.log.entries[max(0, first - self.log.offset - 1) :]:
            if e.kind is EntryKind.CONFIG:
                try:
                    self.members.appended(e.index, decode(e.data))
                except MembershipDecodeError:
                    self.counters["bad_config_entry"] += 1  # stays with the previous one
        self._members_changed()

    def _members_restored(self, meta: SnapshotMeta) -> None:
        """The log now starts from snapshot ``meta``: its membership is the base."""
        self.members = MembershipLog(Membership.of_meta(meta), meta.index)
        self._scan_config(meta.index + 1)

    def _members_changed(self) -> None:
        m = self.members.current
        # A member that an uncommitted entry removed still gets the log until
        # that entry commits: so it learns of its removal (and stays quiet),
        # and a truncation that brings it back finds it up to date.
        reach = frozenset().union(*(x.members for x in self.members.since(self.log.committed)))
        peers = tuple(sorted(reach - {self.id}))
        if m == self.membership and peers == self.peers:
            return
        self.membership = m
        self.peers = peers
        if self.role is Role.LEADER:
            nxt = self.log.last_index() + 1
            for p in self.peers:
                if p not in self.progress:
                    self.progress[p] = Progress(nxt, self.cfg.max_inflight)
            for p in [p for p in self.progress if p not in self.peers]:
                del self.progress[p]

    def _members_committed(self) -> None:
        """The commit index moved on a leader: leave a committed joint membership,
        and step down once a removal of this leader committed."""
        last = self.members.last_change_index
        if last > self.log.committed or last == self.settled_change:
            return  # not committed yet, or handled already: nothing to do per Ready
        self.settled_change = last
        self._members_changed()  # stop replicating to members whose removal committed
        m = self.membership
        if m.joint:
            self._append_config(leave_joint(m))
        elif not m.is_voter(self.id):
            self.counters["stepped_down_removed"] += 1
            self.become_follower(self.term, NONE)
