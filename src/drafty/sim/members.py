"""The membership nemesis: nodes join, leave and are replaced while faults strike.

Theory of operation
-------------------
In a per-seed share of runs (:attr:`~drafty.sim.scenario.Scenario.members`)
the simulation calls :meth:`MemberNemesis.act` every few tens of virtual ms
during the fault phase. The nemesis pursues one *goal* at a time, each a
short sequence of membership changes sent to whichever node leads (as the
clients' writes are); a change that is refused (no leader, a change still in
progress, a learner not caught up yet) is simply asked for again at the next
step. Goals:

- ``add``: start a brand-new node (a fresh id, an empty disk, a *joiner*:
  ``Config(voters=())``), add it as a learner, then promote it;
- ``remove``: remove a voter, the current leader half of the time;
- ``replace``: crash a voter for good (it is *retired*: never restarted),
  remove it, then add and promote a new node in its place;
- ``swap``: add a new learner, then promote it and remove a voter (maybe the
  leader) in one joint change: two voters change at once;
- ``learner``: add a new learner, then remove it again.

Every step is decided from the newest *committed* membership (the oracle's),
not from replies: it knows which step comes next even when replies were lost
or the leader crashed. A goal is done when the committed membership is the
target one (and not joint). At least one voter always stays, and the cluster
never grows past ``max_members``.

A removed node keeps running (it must stay harmless: it never campaigns once
its log holds its removal) when the cluster has the lease on votes (PreVote
or CheckQuorum, dissertation §4.2.3), and now and then is stopped anyway;
without that lease a removed node that never learnt of its removal would
depose leaders forever (a known Raft limitation), so it is stopped once its
removal commits, as an operator would.

At the heal (:meth:`MemberNemesis.heal`) the nemesis stops; a retired node
that is still a member (its removal never committed) is put back, to be
restarted with the others.

Every random choice comes from the nemesis' own generator, so a seed without
membership changes runs exactly as before they existed.

Invariants
----------
- At most one goal is pursued at a time; at most one retired node is still a
  member of the committed membership.
- Requests are only sent before the heal.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from ..core import NodeId
from ..core.membership import ConfChange, ConfChangeError, Membership
from ..node import OutcomeUnknown, Refused, Reply
from .replica import Replica

GOALS = ("add", "remove", "replace", "swap", "learner")


class MemberHost(Protocol):
    now: int
    retired: set[NodeId]
    """Nodes crashed for good (see :meth:`retire`)."""

    def leader_guess(self) -> NodeId | None: ...

    def replica(self, node: NodeId) -> Replica: ...

    def drive(self, node: NodeId) -> None: ...

    def committed_membership(self) -> Membership: ...

    def add_node(self) -> NodeId:
        """Start a new joining node (fresh id, empty disk); its id."""
        ...

    def retire(self, node: NodeId) -> None:
        """Crash ``node`` for good (it is not restarted, not even by the heal)."""
        ...

    def retire_soon(self, node: NodeId) -> None:
        """:meth:`retire` ``node`` as the next event (now, we may be inside its step)."""
        ...

    def unretire(self, node: NodeId) -> None:
        """Let retired ``node`` be restarted again (the heal restarts it)."""
        ...

    def note(self, text: str, log: bool = True) -> None: ...


@dataclass(slots=True)
class Goal:
    kind: str
    victim: NodeId = 0
    new: NodeId = 0
    led: bool = False
    """The victim led when it was chosen."""
    retired: bool = False
    joined: bool = False
    """The new node has been seen in the committed membership."""


class _Wait:
    """The goal waits (a joint membership is being left)."""


WAIT = _Wait()


@dataclass(slots=True)
class MemberNemesis:
    """Membership decisions for one run; see the module docstring."""

    host: MemberHost
    rng: random.Random
    max_members: int
    lease: bool
    """Whether the cluster has the lease on votes (removed nodes may keep running)."""
    gap: tuple[int, int] = (10, 80)
    goal: Goal | None = None
    pending: dict[tuple[NodeId, int, int], ConfChange] = field(default_factory=dict)
    """(node, incarnation, request) -> the change asked for, until answered."""
    done: Counter[str] = field(default_factory=Counter)
    """Goals reached, by kind (``remove`` of a leader also counts ``remove leader``)."""
    asked: Counter[str] = field(default_factory=Counter)
    """Requests and their answers: sent, accepted, refused, not now, unknown."""
    healed: bool = False

    def next_gap(self) -> int:
        return self.rng.randint(*self.gap)

    # -- steps -------------------------------------------------------------------

    def act(self) -> None:
        if self.healed:
            return
        m = self.host.committed_membership()
        if self.goal is None:
            if m.joint:
                return
            self.goal = self._choose(m)
            if self.goal is None:
                return
            g = self.goal
            self.host.note(f"members: goal {g.kind}" + (f" of node {g.victim}" if g.victim else ""))
        change = self._step(self.goal, m)
        if change is None:
            self._finish(self.goal)
            self.goal = None
        elif isinstance(change, ConfChange):
            self._ask(change)

    def _choose(self, m: Membership) -> Goal | None:
        voters, members = len(m.voters), len(m.members)
        room = members < self.max_members
        weights = {
            "add": 3 if voters <= 2 else 1,
            "remove": 1 if voters >= 2 else 0,
            "replace": 1 if voters >= 3 else 0,
            "swap": 2 if voters >= 2 else 0,
            "learner": 1,
        }
        if not room:
            weights.update(add=0, swap=0, learner=0)
        kinds = [k for k in GOALS if weights[k]]
        if not kinds:
            return None
        kind = self.rng.choices(kinds, [weights[k] for k in kinds])[0]
        goal = Goal(kind)
        if kind in ("remove", "replace", "swap"):
            leader = self.host.leader_guess()
            if leader in m.voters and self.rng.random() < 0.5:
                goal.victim, goal.led = leader, True
            else:
                goal.victim = self.rng.choice(m.voters)
        return goal

    def _step(self, g: Goal, m: Membership) -> ConfChange | _Wait | None:
        """The change that moves ``g`` on from committed ``m`` (None: reached)."""
        if g.kind == "replace" and not g.retired:
            g.retired = True
            self.host.retire(g.victim)
            self.host.note(f"members: node {g.victim} dies for good, to be replaced")
        if g.kind in ("remove", "replace") and g.victim in m.members:
            return WAIT if m.joint else ConfChange(remove=(g.victim,))
        if g.kind == "remove":
            return None
        if not g.new:
            g.new = self.host.add_node()
            self.host.note(f"members: new node {g.new} starts empty, joining")
        if g.new not in m.members:
            return None if g.joined else ConfChange(add_learners=(g.new,))
        g.joined = True
        if g.kind == "learner":
            return ConfChange(remove=(g.new,))
        if g.new in m.learners:
            if g.kind == "swap":
                return ConfChange(promote=(g.new,), remove=(g.victim,))
            return ConfChange(promote=(g.new,))
        return WAIT if m.joint else None

    def _finish(self, g: Goal) -> None:
        self.done[g.kind] += 1
        if g.led:
            self.done[f"{g.kind} leader"] += 1
        gone = g.new if g.kind == "learner" else g.victim
        self.host.note(f"members: goal {g.kind} reached")
        if gone and gone not in self.host.retired and self.rng.random() < 0.3:
            self.host.retire(gone)
            self.host.note(f"members: removed node {gone} stops")

    def _ask(self, change: ConfChange) -> None:
        leader = self.host.leader_guess()
        if leader is None:
            return
        rep = self.host.replica(leader)
        rid = rep.node.change_membership(change, rep.now(self.host.now))
        self.pending[(leader, rep.node.incarnation, rid)] = change
        self.asked["sent"] += 1
        self.host.note(f"members: ask node {leader} for {describe(change)}")
        self.host.drive(leader)

    # -- answers -----------------------------------------------------------------

    def owns(self, node: NodeId, incarnation: int, reply: Reply) -> bool:
        return bool(self.pending) and (node, incarnation, reply.request) in self.pending

    def replied(self, node: NodeId, incarnation: int, reply: Reply) -> None:
        change = self.pending.pop((node, incarnation, reply.request))
        err = reply.error
        if err is None:
            what = "accepted"
        elif isinstance(err, Refused):
            what = "refused"
        elif isinstance(err, ConfChangeError):
            what = "not now"
        elif isinstance(err, OutcomeUnknown):
            what = "unknown"
        else:
            what = type(err).__name__
        self.asked[what] += 1
        self.host.note(f"members: {describe(change)} {what}" + (f": {err}" if err else ""))

    # -- the end -------------------------------------------------------------------

    def removal_committed(self, gone: set[NodeId]) -> None:
        """Committed membership entries removed ``gone`` (stopped without the lease)."""
        if self.lease:
            return
        for n in sorted(gone - self.host.retired):
            self.host.retire_soon(n)
            self.host.note(f"members: removed node {n} stops (no lease on votes)")

    def heal(self) -> None:
        """Stop; put back retired nodes that are still members (see the docstring)."""
        self.healed = True
        m = self.host.committed_membership()
        for n in sorted(self.host.retired):
            if n in m.members:
                self.host.unretire(n)
                self.host.note(f"members: node {n} is still a member: it comes back")


def describe(change: ConfChange) -> str:
    parts = []
    for name in ("add_voters", "add_learners", "promote", "remove"):
        ids = getattr(change, name)
        if ids:
            parts.append(f"{name.replace('_', ' ')} {','.join(map(str, ids))}")
    return "; ".join(parts)
