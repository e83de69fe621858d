"""The oracle's view of configurations: which membership each log puts in effect.

Theory of operation
-------------------
A membership takes effect on a node when its configuration entry is in the
node's log (dissertation §4.1), committed or not. The oracle mirrors every
log (:mod:`drafty.sim.oracle`), so :class:`Configs` keeps, per mirrored log,
the configuration entries it holds (:attr:`NodeView.configs`), updated as
entries are mirrored: a truncation drops the ones after it, new entries add
theirs, and a log rebuilt from a snapshot's committed prefix takes the
committed ones up to its index. A log without any uses its node's seed
membership (the founders' voters, or nothing for a node that joined). The
membership a log implies is therefore found in O(1), and mirroring costs
O(entries touched), like the rest of the oracle.

On top of that it checks:

- **commit safety** (:func:`check_protected`), configuration-aware: a node
  lacking the newest committed entry must never have a log at least as
  up-to-date as a majority of *every half* of the membership its own log
  puts in effect (both halves while joint), for with such votes it could
  win an election and overwrite the entry. A node that cannot campaign is
  skipped: one that is no voter in its own membership (a learner, a removed
  node, a joiner that knows nothing yet), unless it was a voter before the
  last configuration entry in its log (:func:`may_campaign`: the core lets
  it campaign while that entry is uncommitted). A voter the oracle never saw
  (no log) counts as holding nothing, so it would vote for anyone;
- **membership in effect**: after every event a running node's core uses
  the membership of the last configuration entry its log holds (or its
  snapshot's, or its seed): the view and the core must agree, which also
  checks that snapshots carry the membership at their index;
- **membership replies**: a change answered with a membership was decided
  by the committed configuration entry at the reply's index, which sets
  exactly that membership.

Election safety and leader completeness need nothing new: one leader per
term, and every leader (of any configuration) holding every entry committed
before its term, are checked as before.

It also counts what the committed configuration entries did
(:class:`~drafty.sim.mirror.OracleStats`): changes, nodes added, nodes
removed, and leaders removed (a node that led the term of the entry that
began its own removal).

Invariants
----------
- ``view.configs`` lists exactly the configuration entries of ``view.log``,
  in index order.
- ``committed`` lists the committed configuration entries in index order.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from ..core import Entry, EntryKind, NodeId
from ..core.membership import Membership, MembershipDecodeError, decode
from ..node import Reply
from .mirror import NodeView, OracleStats, Violation

LastEntry = tuple[int, int]
"""(term, index) of a log's last entry: the Raft up-to-date order."""


def membership_of(node: NodeId, e: Entry) -> Membership:
    """The membership configuration entry ``e`` sets (a bad one is a violation)."""
    try:
        return decode(e.data)
    except MembershipDecodeError as err:
        raise Violation(
            "membership", f"node {node} holds unreadable configuration entry {e.index}: {err}", node
        ) from None


class Configs:
    """Configuration entries of every mirrored log; see the module docstring."""

    def __init__(self, stats: OracleStats) -> None:
        self.stats = stats
        self.committed: list[tuple[int, Membership]] = []
        self._indexes: list[int] = []
        self.founders: Membership | None = None
        """The first seed membership that names voters (the founding cluster's)."""
        self._leaving: NodeId | None = None
        """The node that led when the joint change in progress began, if it leaves."""

    @property
    def current(self) -> Membership:
        """The newest committed membership (the founders' before any change)."""
        if self.committed:
            return self.committed[-1][1]
        return self.founders or Membership(())

    def seeded(self, view: NodeView, seed: Membership) -> None:
        view.base = seed
        if self.founders is None and seed.known:
            self.founders = seed

    def extend(self, node: NodeId, view: NodeView, entries: Sequence[Entry]) -> None:
        """``entries`` replace ``view``'s log from ``entries[0].index`` on."""
        first = entries[0].index
        configs = view.configs
        while configs and configs[-1][0] >= first:
            configs.pop()
        for e in entries:
            if e.kind is EntryKind.CONFIG:
                configs.append((e.index, membership_of(node, e)))

    def reset(self, view: NodeView, index: int) -> None:
        """``view``'s log is now the committed prefix through ``index``."""
        k = bisect.bisect_right(self._indexes, index)
        view.configs[:] = self.committed[:k]
        if index and self.founders is not None:
            view.base = self.founders  # a snapshot carries the membership at its index

    def on_committed(self, node: NodeId, e: Entry, leaders: Mapping[int, NodeId]) -> None:
        """Index ``e.index`` was applied for the first time and holds ``e``."""
        if e.kind is not EntryKind.CONFIG:
            return
        new = membership_of(node, e)
        old = self.current
        self.committed.append((e.index, new))
        self._indexes.append(e.index)
        st = self.stats
        st.config_changes += 1
        st.nodes_added += len(new.members - old.members)
        gone = old.members - new.members
        st.nodes_removed += len(gone)
        leader = leaders.get(e.term)
        if new.joint:
            leaving = leader is not None and leader not in new.voters and leader in new.outgoing
            self._leaving = leader if leaving else None
            return
        if old.joint:
            starter, self._leaving = self._leaving, None
        else:
            starter = leader
        if starter is not None and starter in gone:
            st.leaders_removed += 1

    def check_agrees(self, node: NodeId, view: NodeView, core: Membership) -> None:
        """A running node's core uses the membership its log implies."""
        mine = view.membership
        if core != mine:
            at = view.configs[-1][0] if view.configs else 0
            raise Violation(
                "membership",
                f"node {node} uses membership {core.describe()} but its log "
                f"(configuration entry at {at or 'none'}) sets {mine.describe()}",
                node,
            )

    def check_reply(self, node: NodeId, reply: Reply, committed: Sequence[Entry]) -> None:
        """``node`` answered a membership change request."""
        if reply.error is not None:
            return
        i = reply.index
        e = committed[i - 1] if 1 <= i <= len(committed) else None
        if e is None or e.kind is not EntryKind.CONFIG or membership_of(node, e) != reply.value:
            raise Violation(
                "reply routing",
                f"node {node} answered membership change {reply.request} with "
                f"{reply.value!r} from index {i}, which is not a committed configuration "
                "entry setting it",
                node,
            )


def _support(
    half: Sequence[NodeId], mine: LastEntry, last: Mapping[NodeId, LastEntry]
) -> list[NodeId]:
    """The voters of ``half`` whose logs are no more up-to-date than ``mine``."""
    return [m for m in half if last.get(m, (0, 0)) <= mine]


def may_campaign(node: NodeId, view: NodeView) -> bool:
    """Whether ``node`` may campaign by its log: a voter of its membership, or
    of the one before its last configuration entry (the core lets a node that
    entry removed campaign while it is uncommitted; the oracle does not ask
    whether it is, which only checks more)."""
    if view.membership.is_voter(node):
        return True
    configs = view.configs
    if not configs:
        return False
    before = configs[-2][1] if len(configs) > 1 else view.base
    return before.is_voter(node)


def check_protected(views: Mapping[NodeId, NodeView], committed: Sequence[bytes]) -> None:
    """Commit safety (see the module docstring) for the newest committed entry."""
    i = len(committed)
    if i == 0:
        return
    digest = committed[i - 1]
    last = {n: (v.log[-1].term, len(v.log)) if v.log else (0, 0) for n, v in views.items()}
    for n, v in views.items():
        if len(v.log) >= i and v.digests[i - 1] == digest:
            continue
        conf = v.membership
        if not may_campaign(n, v):
            continue
        mine = last[n]
        halves = [conf.voters, conf.outgoing] if conf.joint else [conf.voters]
        supports = []
        for half in halves:
            s = _support(half, mine, last)
            if len(s) < len(half) // 2 + 1:
                break
            supports.append(s)
        else:
            what = " and ".join(
                f"nodes {s} of voters {list(h)}" for s, h in zip(supports, halves, strict=True)
            )
            raise Violation(
                "commit safety",
                f"entry {i} is committed but node {n} (last {mine[0]}/{mine[1]}) lacks it "
                f"and its log is as up-to-date as those of {what}, a majority"
                + (" of each half" if conf.joint else ""),
                n,
            )
