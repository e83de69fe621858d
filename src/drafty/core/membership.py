"""Cluster membership: who votes, who only listens, and how that changes.

Theory of operation
-------------------
A :class:`Membership` names the *voters*, the *learners* (members that get
the log and snapshots but neither vote nor count for commit) and, while a
change of voters is under way, the *outgoing* voters. Changes follow joint
consensus (dissertation §4.3, etcd-raft's ConfChangeV2), so any set of
voters can be swapped in one step:

1. the leader appends a configuration entry for the *joint* membership
   (``voters`` = the new set, ``outgoing`` = the old one). From then on an
   election needs a majority of *both* sets, and so does a commit;
2. once that entry commits, the leader appends the entry that *leaves* the
   joint membership (``outgoing`` empty); from its commit on only the new
   voters decide.

A change that touches only learners (adding or removing one) cannot change
any quorum, so it takes effect in one entry.

A membership takes effect on a node when its entry is *appended* to that
node's log, not when it commits (dissertation §4.1); an entry that is later
overwritten takes its membership back with it, so the node keeps the
memberships of the entries it holds (:class:`MembershipLog`).

:func:`plan` turns a requested :class:`ConfChange` into the membership to
append, or raises :class:`ConfChangeError` saying why the request is bad
(removing the last voter, adding an id that is already a member, promoting a
non-learner, changing anything during a joint membership).

Invariants
----------
- Every tuple is sorted without repeats, and learners are disjoint from the
  voters of both halves. ``voters`` is empty only on a node that joined an
  existing cluster and has not yet received its membership (:data:`UNKNOWN`);
  a configuration entry, a snapshot and :func:`plan` always name a voter.
- A joint membership has ``outgoing != voters``; a non-joint one has
  ``outgoing == ()``.
- The entry encoding round-trips exactly: :func:`decode` of :func:`encode`
  gives back an equal membership (and :func:`decode_context` the context),
  and anything else raises.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from .errors import ProposalRefused
from .quorum import VoteResult, committed_index, has_quorum, vote_result
from .types import NodeId, SnapshotMeta

MAX_MEMBERS = 1024
"""Most ids a membership may name (a bound on what a decoded entry may hold)."""
MAX_CONTEXT_BYTES = 1 << 16
"""Largest context (the application's note, say the new members' addresses)
one configuration entry may carry."""


class ConfChangeError(ProposalRefused):
    """The requested membership change is not allowed; nothing was appended."""


class ConfChangeBusy(ConfChangeError):
    """The change cannot be made *yet*: another is in progress, a new leader
    has not committed an entry of its term, or a learner to promote is still
    catching up. Nothing was appended; the same request may succeed shortly."""


class MembershipDecodeError(ValueError):
    """A configuration entry's payload is not a valid membership."""


def _ids(values: Iterable[NodeId]) -> tuple[NodeId, ...]:
    return tuple(sorted(set(values)))


@dataclass(frozen=True, slots=True)
class Membership:
    """The members of a cluster at one log index (see the module docstring)."""

    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...] = ()
    outgoing: tuple[NodeId, ...] = ()
    """The previous voters while a joint change is under way (else empty)."""

    def __post_init__(self) -> None:
        for name in ("voters", "learners", "outgoing"):
            ids = getattr(self, name)
            if not isinstance(ids, tuple) or list(ids) != sorted(set(ids)):
                raise ValueError(f"membership {name} must be a sorted tuple of distinct ids")
            if any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in ids):
                raise ValueError(f"membership {name} must hold positive node ids")
        if set(self.learners) & (set(self.voters) | set(self.outgoing)):
            raise ValueError("a learner cannot also be a voter")
        if not self.voters and (self.learners or self.outgoing):
            raise ValueError("a membership with learners or outgoing voters needs voters")
        if self.outgoing and self.outgoing == self.voters:
            raise ValueError("a joint membership must change the voters")
        if len(self.members) > MAX_MEMBERS:
            raise ValueError(f"a membership names at most {MAX_MEMBERS} nodes")

    @classmethod
    def of(
        cls,
        voters: Iterable[NodeId],
        learners: Iterable[NodeId] = (),
        outgoing: Iterable[NodeId] = (),
    ) -> Membership:
        """A membership from any iterables of ids (sorted and deduplicated here)."""
        return cls(_ids(voters), _ids(learners), _ids(outgoing))

    @classmethod
    def of_meta(cls, meta: SnapshotMeta) -> Membership:
        """The membership a snapshot records."""
        return cls(meta.voters, meta.learners, meta.outgoing)

    @property
    def joint(self) -> bool:
        return bool(self.outgoing)

    @property
    def all_voters(self) -> frozenset[NodeId]:
        """Everyone whose vote counts now (both halves while joint)."""
        return frozenset(self.voters) | frozenset(self.outgoing)

    @property
    def members(self) -> frozenset[NodeId]:
        """Everyone the leader replicates to: voters of both halves and learners."""
        return self.all_voters | frozenset(self.learners)

    @property
    def known(self) -> bool:
        """False only for :data:`UNKNOWN` (a joining node that has not heard yet)."""
        return bool(self.voters)

    def includes(self, node: NodeId) -> bool:
        """Whether ``node`` is a member (``node in members``, without building the set)."""
        return node in self.voters or node in self.learners or node in self.outgoing

    def is_voter(self, node: NodeId) -> bool:
        return node in self.voters or node in self.outgoing

    def sole_voter(self, node: NodeId) -> bool:
        """Whether ``node`` alone decides every quorum (a one-voter cluster)."""
        return self.all_voters == {node}

    # -- quorum: both halves while joint -----------------------------------------

    def committed_index(self, match: Mapping[NodeId, int]) -> int:
        """The highest index stored by a majority of every half."""
        index = committed_index(self.voters, match)
        if self.outgoing:
            index = min(index, committed_index(self.outgoing, match))
        return index

    def vote_result(self, votes: Mapping[NodeId, bool]) -> VoteResult:
        """Won only when every half is won; lost once any half is lost."""
        results = [vote_result(self.voters, votes)]
        if self.outgoing:
            results.append(vote_result(self.outgoing, votes))
        if VoteResult.LOST in results:
            return VoteResult.LOST
        if all(r is VoteResult.WON for r in results):
            return VoteResult.WON
        return VoteResult.PENDING

    def has_quorum(self, active: Collection[NodeId]) -> bool:
        """Whether ``active`` holds a majority of every half."""
        return has_quorum(self.voters, active) and (
            not self.outgoing or has_quorum(self.outgoing, active)
        )

    def describe(self) -> str:
        if not self.known:
            return "unknown (joining: waiting for a leader)"
        text = "voters=" + ",".join(map(str, self.voters))
        if self.outgoing:
            text += " outgoing=" + ",".join(map(str, self.outgoing))
        if self.learners:
            text += " learners=" + ",".join(map(str, self.learners))
        return text


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A requested change: each field lists node ids (all may be combined)."""

    add_voters: tuple[NodeId, ...] = ()
    """New nodes that vote at once (joint change)."""
    add_learners: tuple[NodeId, ...] = ()
    """New nodes that only receive the log."""
    promote: tuple[NodeId, ...] = ()
    """Learners that become voters (joint change)."""
    remove: tuple[NodeId, ...] = ()
    """Voters or learners that leave."""
    context: bytes = b""
    """Opaque to the core, carried in the entry (see :func:`decode_context`);
    drafty's node layer puts the new members' addresses here."""

    def ids(self) -> list[NodeId]:
        return [*self.add_voters, *self.add_learners, *self.promote, *self.remove]


def plan(current: Membership, change: ConfChange) -> Membership:
    """The membership to append for ``change``, or :class:`ConfChangeError`.

    A change of voters gives a joint membership (leave it with
    :func:`leave_joint` once it commits); a change of learners only takes
    effect at once.
    """
    ids = change.ids()
    if not isinstance(change.context, bytes) or len(change.context) > MAX_CONTEXT_BYTES:
        raise ConfChangeError(f"the change's context must be bytes, at most {MAX_CONTEXT_BYTES}")
    if not current.known:
        raise ConfChangeError("this node does not know the cluster's membership yet")
    if not ids:
        raise ConfChangeError("the change is empty")
    if len(ids) != len(set(ids)):
        raise ConfChangeError("a node may appear only once in one change")
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in ids):
        raise ConfChangeError("node ids must be positive integers")
    if current.joint:
        raise ConfChangeBusy("a membership change is still in progress (joint configuration)")
    members = current.members
    for i in (*change.add_voters, *change.add_learners):
        if i in members:
            raise ConfChangeError(f"node {i} is already a member")
    for i in change.promote:
        if i not in current.learners:
            raise ConfChangeError(f"node {i} is not a learner, so it cannot be promoted")
    for i in change.remove:
        if i not in members:
            raise ConfChangeError(f"node {i} is not a member")
    removed = set(change.remove)
    voters = (set(current.voters) - removed) | set(change.add_voters) | set(change.promote)
    learners = (set(current.learners) - removed - set(change.promote)) | set(change.add_learners)
    if not voters:
        raise ConfChangeError("a cluster needs at least one voter: the last cannot be removed")
    if len(voters | learners) > MAX_MEMBERS:
        raise ConfChangeError(f"a cluster has at most {MAX_MEMBERS} members")
    if voters == set(current.voters):
        return Membership.of(voters, learners)
    return Membership.of(voters, learners, current.voters)


UNKNOWN = Membership(())
"""The membership of a node that joined an existing cluster and has not yet
received a configuration entry or snapshot: it knows no voters, so it never
campaigns and waits for a leader to reach it."""


def leave_joint(current: Membership) -> Membership:
    """The membership that ends the joint change ``current`` (same voters and learners)."""
    if not current.joint:
        raise ConfChangeError("not in a joint configuration")
    return Membership(current.voters, current.learners)


# -- the entry payload ---------------------------------------------------------------

_HEAD = struct.Struct(">BHHH")
_VERSION = 1


def encode(m: Membership, context: bytes = b"") -> bytes:
    """A configuration entry's payload: version, three counts, the ids, then
    the application's context (possibly empty) to the end."""
    ids = (*m.voters, *m.learners, *m.outgoing)
    head = _HEAD.pack(_VERSION, len(m.voters), len(m.learners), len(m.outgoing))
    return head + struct.pack(f">{len(ids)}Q", *ids) + context


def _split(data: bytes) -> tuple[Membership, int]:
    if len(data) < _HEAD.size:
        raise MembershipDecodeError("configuration entry too short")
    version, nv, nl, no = _HEAD.unpack_from(data)
    if version != _VERSION:
        raise MembershipDecodeError(f"unknown configuration entry version {version}")
    n = nv + nl + no
    end = _HEAD.size + 8 * n
    if n > MAX_MEMBERS or len(data) < end:
        raise MembershipDecodeError("configuration entry length does not match its counts")
    if len(data) - end > MAX_CONTEXT_BYTES:
        raise MembershipDecodeError("configuration entry context too large")
    if nv == 0:
        raise MembershipDecodeError("configuration entry names no voter")
    ids = struct.unpack_from(f">{n}Q", data, _HEAD.size)
    try:
        return Membership(ids[:nv], ids[nv : nv + nl], ids[nv + nl :]), end
    except ValueError as e:
        raise MembershipDecodeError(f"invalid membership: {e}") from None


def decode(data: bytes) -> Membership:
    """The membership in a configuration entry; :class:`MembershipDecodeError` if malformed."""
    return _split(data)[0]


def decode_context(data: bytes) -> bytes:
    """The application's context in a configuration entry (after the membership)."""
    return data[_split(data)[1] :]


@dataclass(slots=True)
class MembershipLog:
    """The memberships a node's log holds, so that a truncation restores the
    one before it. ``base`` is the membership at ``base_index`` (the snapshot's,
    or the initial one); ``changes`` are (index, membership) of the
    configuration entries after it, in index order."""

    base: Membership
    base_index: int = 0
    changes: list[tuple[int, Membership]] = field(default_factory=list)

    @property
    def current(self) -> Membership:
        """The membership in effect: that of the last configuration entry held."""
        return self.changes[-1][1] if self.changes else self.base

    @property
    def last_change_index(self) -> int:
        return self.changes[-1][0] if self.changes else self.base_index

    def appended(self, index: int, m: Membership) -> None:
        if index <= self.last_change_index:
            raise ValueError(f"configuration entry {index} is not after the last one")
        self.changes.append((index, m))

    def truncated(self, last_kept: int) -> bool:
        """Entries after ``last_kept`` are gone; whether the membership changed."""
        before = len(self.changes)
        while self.changes and self.changes[-1][0] > last_kept:
            self.changes.pop()
        return len(self.changes) != before

    def compacted(self, index: int) -> None:
        """The log before ``index`` was compacted: fold older changes into the base."""
        while self.changes and self.changes[0][0] <= index:
            self.base_index, self.base = self.changes.pop(0)

    def since(self, index: int) -> list[Membership]:
        """The membership in effect at ``index`` and every later one held."""
        return [self.at(index), *(m for i, m in self.changes if i > index)]

    def at(self, index: int) -> Membership:
        """The membership in effect at ``index`` (for a snapshot taken there)."""
        found = self.base
        for i, m in self.changes:
            if i > index:
                break
            found = m
        return found
