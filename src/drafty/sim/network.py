"""A lossy, reordering, partitionable network in virtual time.

Theory of operation
-------------------
The simulator hands every message a node sends to :meth:`Network.route`,
which decides, with the simulation's single seeded ``random.Random``, what
becomes of it: dropped (the link is cut, or by the drop rate), delivered
once, or delivered twice (duplication). Each delivery gets its own latency in
virtual milliseconds, drawn from ``[latency_min, latency_max]`` and now and
then (``spike`` rate) from a long tail up to ``spike_max``. With ``reorder``
messages overtake each other freely; without it each directed link is FIFO,
as a TCP connection is (a slow message holds back the ones behind it). The
caller schedules the deliveries at the times returned; when one falls due it
asks :meth:`Network.admit` whether the link is still up, so a partition also
eats messages in flight.

Links are directed: ``cut`` holds the ``(src, dst)`` pairs on which nothing
passes. Helpers build the classic fault shapes on top of it: a symmetric
split into groups, a one-way cut from one group to another, a bridge (two
halves that only one node talks to), an isolated node, and single links cut
one by one ("clogging") and restored in any order.

Invariants
----------
- Every message sent is counted once as cut, dropped or routed; every
  routed copy (one, or two when duplicated) is later counted once as
  delivered or cut.
- A message never crosses a link that is cut at its send *or* delivery time.
- Without ``reorder``, delivery times on one link never decrease.
- Every random draw comes from the rng handed in (no global randomness).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core import Message, NodeId

Link = tuple[NodeId, NodeId]
"""A directed link ``(src, dst)``."""


@dataclass(frozen=True, slots=True)
class NetworkParams:
    """Fault rates of one run; latencies are virtual milliseconds."""

    drop: float = 0.0
    """Probability that a message is lost."""
    duplicate: float = 0.0
    """Probability that a delivered message is delivered a second time."""
    latency_min: int = 1
    latency_max: int = 3
    spike: float = 0.0
    """Probability that a delivery takes a long-tail latency instead."""
    spike_max: int = 0
    """Longest long-tail latency."""
    reorder: bool = False
    """Whether messages on one link may overtake each other (else FIFO links)."""

    @classmethod
    def calm(cls) -> NetworkParams:
        """No loss, no duplication, short latencies (still some reordering)."""
        return cls()

    @classmethod
    def choose(cls, rng: random.Random) -> NetworkParams:
        """Draw a faulty network: drop 0-30%, duplicate 0-50%, a delay spread."""
        lo = rng.randint(1, 5)
        return cls(
            drop=rng.choice((0.0, rng.uniform(0.0, 0.1), rng.uniform(0.0, 0.3))),
            duplicate=rng.choice((0.0, rng.uniform(0.0, 0.2), rng.uniform(0.0, 0.5))),
            latency_min=lo,
            latency_max=lo + rng.choice((2, 10, 30)),
            spike=rng.choice((0.0, 0.01, 0.05)),
            spike_max=rng.choice((100, 300, 1000)),
            reorder=rng.random() < 0.5,
        )

    def describe(self) -> str:
        text = (
            f"drop={self.drop:.0%} dup={self.duplicate:.0%} "
            f"latency={self.latency_min}-{self.latency_max}ms"
        )
        if self.spike:
            text += f" spikes={self.spike:.0%}<={self.spike_max}ms"
        return text + (" reordering" if self.reorder else " fifo")


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    dropped: int = 0
    """Lost by the drop rate."""
    cut: int = 0
    """Lost to a cut link (at send or delivery time) or a down receiver."""
    duplicated: int = 0
    delivered: int = 0


@dataclass(slots=True)
class Network:
    """Routes messages between node ids; see the module docstring."""

    rng: random.Random
    nodes: tuple[NodeId, ...]
    params: NetworkParams = field(default_factory=NetworkParams)
    cut: set[Link] = field(default_factory=set)
    stats: NetworkStats = field(default_factory=NetworkStats)
    tail: dict[Link, int] = field(default_factory=dict)
    """Latest delivery time scheduled on each link (for FIFO links)."""

    # -- routing -----------------------------------------------------------

    def route(self, m: Message, now: int) -> list[int]:
        """Delivery times (virtual ms) of each copy of ``m`` sent at ``now``; [] if lost."""
        self.stats.sent += 1
        link = (m.src, m.dst)
        if link in self.cut:
            self.stats.cut += 1
            return []
        p = self.params
        rng = self.rng
        if p.drop and rng.random() < p.drop:
            self.stats.dropped += 1
            return []
        copies = 1
        if p.duplicate and rng.random() < p.duplicate:
            self.stats.duplicated += 1
            copies = 2
        out = []
        for _ in range(copies):
            t = now + self._latency()
            if not p.reorder:
                t = max(t, self.tail.get(link, 0))
                self.tail[link] = t
            out.append(t)
        return out

    def _latency(self) -> int:
        p = self.params
        if p.spike and self.rng.random() < p.spike:
            return self.rng.randint(p.latency_max, max(p.latency_max, p.spike_max))
        return self.rng.randint(p.latency_min, p.latency_max)

    def admit(self, m: Message) -> bool:
        """Whether a copy falling due now may be delivered (its link is up)."""
        if (m.src, m.dst) in self.cut:
            self.stats.cut += 1
            return False
        self.stats.delivered += 1
        return True

    def refuse(self) -> None:
        """Count a copy that arrived at a receiver that is down."""
        self.stats.cut += 1

    # -- fault shapes ------------------------------------------------------

    def links(self) -> list[Link]:
        """Every directed link, in a fixed order."""
        return [(a, b) for a in self.nodes for b in self.nodes if a != b]

    def split(self, groups: Iterable[Iterable[NodeId]]) -> None:
        """Cut every link between different groups, both ways (unlisted: alone)."""
        member: dict[NodeId, int] = {}
        for g, nodes in enumerate(groups):
            for n in nodes:
                member[n] = g
        for a, b in self.links():
            if member.get(a, -1 - a) != member.get(b, -1 - b):
                self.cut.add((a, b))

    def one_way(self, srcs: Iterable[NodeId], dsts: Iterable[NodeId]) -> None:
        """Cut links from every node of ``srcs`` to every node of ``dsts``."""
        dst_list = list(dsts)
        for a in srcs:
            for b in dst_list:
                if a != b:
                    self.cut.add((a, b))

    def bridge(self, left: Iterable[NodeId], right: Iterable[NodeId]) -> None:
        """Cut ``left`` from ``right`` both ways; nodes in neither talk to all."""
        r = list(right)
        for a in left:
            for b in r:
                self.cut.add((a, b))
                self.cut.add((b, a))

    def isolate(self, node: NodeId) -> None:
        for other in self.nodes:
            if other != node:
                self.cut.add((node, other))
                self.cut.add((other, node))

    def heal(self) -> None:
        self.cut.clear()

    def describe_cut(self) -> str:
        """The cut links, sorted: ``1->2 2->1 ...`` or ``none``."""
        if not self.cut:
            return "none"
        return " ".join(f"{a}->{b}" for a, b in sorted(self.cut))
