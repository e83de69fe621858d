"""The nemesis: decides which faults strike when, and heals them all at the end.

Theory of operation
-------------------
During the fault phase the simulation calls :meth:`Nemesis.act` at random
intervals (the gap is drawn per seed, so some runs are calm and some are
storms). Each call picks one enabled fault kind and either starts or ends a
fault of that kind:

- ``partition``: a symmetric split (a minority or a random group), a one-way
  cut, a bridge (two halves that one node still joins), an isolated node, or
  *clogging*: links cut one by one, then restored in random order, one
  :class:`ClogStep` at a time. When a partition is active the next
  ``partition`` decision heals it.
- ``crash``: kill a node (the leader half of the time; at most ``max_faulty``
  nodes are down or paused at once), losing what it had not
  synced, or with ``disk`` faults also keeping a torn prefix of it; it
  restarts from its durable state after a random delay (:class:`Restart`).
- ``pause``: stop a node (no ticks, no delivery, like SIGSTOP); messages and
  sync completions for it wait until :class:`Resume`.
- ``disk``: make a node's fsyncs slow for a while.
- ``clock``: jump the wall clock of the run's one skewed node (if the seed
  chose one) forward or back, by half a second up to ten minutes. Only that
  node's clock ever jumps: log time must stay within the configured lead of
  the honest clocks (the oracle checks it).

Besides, a per-seed share of new leaders is *hunted* (:meth:`Nemesis.elected`):
crashed or isolated a few ms after winning, before their entries spread. A
chain of such short reigns leaves the divergent logs that Raft's subtler
rules (figure 8: never commit an old term's entry by counting) exist for.

In a per-seed share of runs the nemesis also moves leadership
(:meth:`Nemesis.act` then asks the leader to hand over to a random voter,
with ``transfer_rate`` per call); those choices come from a generator of
their own, so seeds without transfers run exactly as before they existed.

``network`` faults are not actions: they are the drop / duplicate / delay
rates the network runs with during the fault phase.

:meth:`Nemesis.heal_all` ends everything (network calm, links up, nodes
restarted and resumed, disks fast) so liveness can be checked.

Every other random choice uses the simulation's rng, in a fixed order.

Invariants
----------
- Every crashed node has a pending :class:`Restart`, every paused node a
  pending :class:`Resume` (until the heal makes both moot).
- Faults are only started before the heal; after it nothing is injected.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from ..core import NodeId
from .network import Link, Network


@dataclass(frozen=True, slots=True)
class Restart:
    node: NodeId


@dataclass(frozen=True, slots=True)
class Resume:
    node: NodeId


@dataclass(frozen=True, slots=True)
class ClogStep:
    generation: int


@dataclass(frozen=True, slots=True)
class Hunt:
    """Strike the leader of ``term`` soon after its election, if it still leads."""

    node: NodeId
    term: int


FaultAction = Restart | Resume | ClogStep | Hunt

FAULT_KINDS = ("network", "partition", "crash", "pause", "disk", "clock")

CLOCK_JUMPS_MS = (500, 5_000, 60_000, 600_000)


class FaultHost(Protocol):
    now: int
    network: Network

    def running(self) -> list[NodeId]: ...

    def down(self) -> list[NodeId]: ...

    def paused(self) -> list[NodeId]: ...

    def leader_guess(self) -> NodeId | None: ...

    def leader_term(self, node: NodeId) -> int | None:
        """The term ``node`` leads, if it is running and leads."""
        ...

    def crash(self, node: NodeId) -> None: ...

    def restart(self, node: NodeId) -> None: ...

    def pause(self, node: NodeId) -> None: ...

    def resume(self, node: NodeId) -> None: ...

    def slow_disk(self, node: NodeId, until: int) -> None: ...

    def transfer_leadership(self, leader: NodeId, target: NodeId) -> bool:
        """Ask ``leader`` to hand over to ``target``; False if it refused."""
        ...

    def voters(self) -> list[NodeId]:
        """The voters of the newest committed membership, in id order."""
        ...

    def jump_clock(self, by_ms: int) -> bool:
        """Jump the skewed node's wall clock; False if the run has none."""
        ...

    def schedule_fault(self, at: int, action: FaultAction) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass(slots=True)
class Nemesis:
    """Fault decisions for one run; see the module docstring."""

    host: FaultHost
    rng: random.Random
    nodes: tuple[NodeId, ...]
    kinds: tuple[str, ...]
    """Enabled action kinds (``network`` excluded: it is the network's rates)."""
    injected: Counter[str] = field(default_factory=Counter)
    clog: list[Link] = field(default_factory=list)
    clog_cut: list[Link] = field(default_factory=list)
    clog_generation: int = 0
    healed: bool = False
    hunt: float = 0.0
    """Probability that a new leader is hunted."""
    max_faulty: int = 0
    """Most nodes down or paused at once (crashes and pauses beyond are skipped)."""
    transfer_rate: float = 0.0
    """Probability per action that the leader is also asked to hand over."""
    trng: random.Random = field(default_factory=lambda: random.Random(0))
    """The generator of transfer choices (apart from ``rng``; see the docstring)."""

    def elected(self, node: NodeId, term: int) -> None:
        """A new leader was seen; maybe schedule a :class:`Hunt` for it."""
        if self.healed or not self.hunt or not ({"crash", "partition"} & set(self.kinds)):
            return
        if self.rng.random() < self.hunt:
            self.host.schedule_fault(self.host.now + self.rng.randint(0, 30), Hunt(node, term))

    def _hunt(self, action: Hunt) -> None:
        if self.healed or self.host.leader_term(action.node) != action.term:
            return
        kinds = [k for k in ("crash", "partition") if k in self.kinds]
        if self.rng.choice(kinds) == "crash" and self._room():
            self.injected["hunt:crash"] += 1
            self.host.crash(action.node)
            self.host.schedule_fault(self.host.now + self.rng.randint(1, 300), Restart(action.node))
        else:
            self.injected["hunt:isolate"] += 1
            self.host.network.isolate(action.node)
            self.host.note(
                f"hunt: isolate leader {action.node}: cut {self.host.network.describe_cut()}"
            )

    def act(self) -> None:
        if self.transfer_rate and not self.healed and self.trng.random() < self.transfer_rate:
            self._transfer()
        if not self.kinds or self.healed:
            return
        kind = self.rng.choice(self.kinds)
        if kind == "partition":
            self._partition()
        elif kind == "crash":
            self._crash()
        elif kind == "pause":
            self._pause()
        elif kind == "disk":
            self._disk()
        elif kind == "clock":
            by = self.rng.choice(CLOCK_JUMPS_MS) * self.rng.choice((1, -1))
            if self.host.jump_clock(by):
                self.injected["clock"] += 1

    def _transfer(self) -> None:
        leader = self.host.leader_guess()
        if leader is None or leader not in self.host.running():
            return
        voters = self.host.voters()
        target = self.trng.choice([n for n in voters if n != leader] or [leader])
        if target != leader and self.host.transfer_leadership(leader, target):
            self.injected["transfer"] += 1
            self.host.note(f"transfer leadership from node {leader} to node {target}")

    def _victim(self, candidates: list[NodeId]) -> NodeId | None:
        if not candidates:
            return None
        leader = self.host.leader_guess()
        if leader in candidates and self.rng.random() < 0.5:
            return leader
        return self.rng.choice(candidates)

    # -- partitions --------------------------------------------------------

    def _partition(self) -> None:
        net = self.host.network
        if net.cut or self.clog:
            self._heal_partition()
            return
        rng = self.rng
        nodes = list(self.nodes)
        rng.shuffle(nodes)
        shape = rng.choice(("split", "minority", "one-way", "bridge", "isolate", "clog"))
        n = len(nodes)
        if shape == "split":
            k = rng.randint(1, n - 1)
            net.split([nodes[:k], nodes[k:]])
        elif shape == "minority":
            k = rng.randint(1, (n - 1) // 2)
            net.split([nodes[:k], nodes[k:]])
        elif shape == "one-way":
            k = rng.randint(1, n - 1)
            net.one_way(nodes[:k], nodes[k:])
        elif shape == "bridge":
            half = (n - 1) // 2
            net.bridge(nodes[1 : 1 + half], nodes[1 + half :])
        elif shape == "isolate":
            net.isolate(nodes[0])
        else:
            links = net.links()
            self.clog = rng.sample(links, rng.randint(1, len(links)))
            self.clog_cut = []
            self.clog_generation += 1
            self.host.schedule_fault(self.host.now + 1, ClogStep(self.clog_generation))
        self.injected["partition:" + shape] += 1
        if shape != "clog":
            self.host.note(f"partition {shape}: cut {net.describe_cut()}")
        else:
            self.host.note(f"partition clog: {len(self.clog)} links, one by one")

    def clog_step(self, step: ClogStep) -> None:
        if step.generation != self.clog_generation or not self.clog or self.healed:
            return
        net = self.host.network
        if len(self.clog_cut) < len(self.clog):
            link = self.clog[len(self.clog_cut)]
            self.clog_cut.append(link)
            net.cut.add(link)
            self.host.note(f"clog: cut {link[0]}->{link[1]}")
        else:
            link = self.clog_cut.pop(self.rng.randrange(len(self.clog_cut)))
            net.cut.discard(link)
            self.host.note(f"clog: restore {link[0]}->{link[1]}")
            if not self.clog_cut:
                self.clog = []
                return
        self.host.schedule_fault(self.host.now + self.rng.randint(5, 60), step)

    def _heal_partition(self) -> None:
        self.host.network.heal()
        self.clog = []
        self.clog_cut = []
        self.host.note("partition healed")

    # -- nodes -------------------------------------------------------------

    def _room(self) -> bool:
        """Whether one more node may go down or be paused."""
        return len(self.host.down()) + len(self.host.paused()) < self.max_faulty

    def _crash(self) -> None:
        if not self._room():
            return
        node = self._victim(self.host.running() + self.host.paused())
        if node is None:
            return
        self.injected["crash"] += 1
        self.host.crash(node)
        delay = self.rng.choice((self.rng.randint(0, 20), self.rng.randint(20, 500)))
        self.host.schedule_fault(self.host.now + delay, Restart(node))

    def _pause(self) -> None:
        if not self._room():
            return
        node = self._victim(self.host.running())
        if node is None:
            return
        self.injected["pause"] += 1
        self.host.pause(node)
        self.host.schedule_fault(self.host.now + self.rng.randint(10, 600), Resume(node))

    def _disk(self) -> None:
        node = self.rng.choice(self.nodes)
        self.injected["disk"] += 1
        until = self.host.now + self.rng.randint(50, 500)
        self.host.slow_disk(node, until)
        self.host.note(f"disk of node {node} slow until t={until}ms")

    def apply(self, action: FaultAction) -> None:
        """A scheduled fault action fell due."""
        if isinstance(action, Restart):
            if action.node in self.host.down():
                self.host.restart(action.node)
        elif isinstance(action, Resume):
            if action.node in self.host.paused():
                self.host.resume(action.node)
        elif isinstance(action, Hunt):
            self._hunt(action)
        else:
            self.clog_step(action)

    # -- the end -------------------------------------------------------------

    def heal_all(self) -> None:
        """End every fault: the network is calm and every node runs."""
        self.healed = True
        self._heal_partition()
        for node in self.host.down():
            self.host.restart(node)
        for node in self.host.paused():
            self.host.resume(node)
        for node in self.nodes:
            self.host.slow_disk(node, 0)
