"""An in-memory cluster of core nodes with a hand-driven network.

Theory of operation
-------------------
:class:`MemoryCluster` is the smallest driver of :class:`drafty.core.RawNode`
that honours the whole Ready contract: each node has a :class:`MemoryDisk`
that keeps what was persisted, a queue of messages addressed to it, and an
applied list standing in for a state machine. Nothing happens on its own: the
caller ticks nodes, processes their Readies and delivers messages, which makes
it the engine behind the scripted protocol tests and the demo. The fault
simulator builds virtual time and faults on top of the same pieces.

Processing a Ready persists synchronously (so ``messages_after_persist`` may
leave at once), sends both message lists into the network, and applies the
committed entries. Snapshots are descriptions only here (there is no state
machine to serialise): :meth:`MemoryCluster.compact` records one at an
applied index and drops the log prefix, and a node that installs one from
its leader starts its applied list over after it. Links can be cut one way
or both ways; a message on a cut link is dropped when sent. A crashed node
loses everything but its disk and comes back from it on restart.

Invariants: a node's ``applied`` list only grows, by consecutive indexes,
and only with entries its RawNode handed out as committed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core import Config, Entry, HardState, Message, NodeId, RawNode, Ready, SnapshotMeta
from ..core.types import EMPTY_HARD_STATE


@dataclass
class MemoryDisk:
    """What one node has durably stored: hard state and log entries."""

    hard_state: HardState = EMPTY_HARD_STATE
    entries: list[Entry] = field(default_factory=list)
    """Entries after ``snapshot`` (all of them when there is none)."""
    snapshot: SnapshotMeta | None = None

    @property
    def offset(self) -> int:
        return self.snapshot.index if self.snapshot is not None else 0

    def persist(self, rd: Ready) -> None:
        """Write a Ready's persist step: snapshot, entries, then hard state."""
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            self.entries = []
        if rd.entries:
            first = rd.entries[0].index
            del self.entries[first - self.offset - 1 :]
            self.entries.extend(rd.entries)
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state

    def compact(self, meta: SnapshotMeta) -> None:
        """Keep snapshot ``meta`` and drop the entries it covers."""
        del self.entries[: meta.index - self.offset]
        self.snapshot = meta


@dataclass
class SimNode:
    """One member of the cluster: its core, disk and applied entries."""

    id: NodeId
    raw: RawNode
    disk: MemoryDisk
    applied: list[Entry] = field(default_factory=list)
    up: bool = True
    installed: SnapshotMeta | None = None
    """The last snapshot this node installed from its leader (its applied
    list then starts over after it)."""


class MemoryCluster:
    """N nodes, a network of per-node inboxes, and links that can be cut."""

    def __init__(
        self,
        n: int,
        *,
        seed: int = 0,
        config_overrides: dict[str, object] | None = None,
    ) -> None:
        self.ids: tuple[NodeId, ...] = tuple(range(1, n + 1))
        self.seed = seed
        self.overrides = dict(config_overrides or {})
        self.nodes: dict[NodeId, SimNode] = {}
        self.inbox: dict[NodeId, list[Message]] = {i: [] for i in self.ids}
        self.cut: set[tuple[NodeId, NodeId]] = set()
        """Directed links (src, dst) on which messages are dropped."""
        self.seed_voters = self.ids
        """The membership the first nodes start from; joiners start from none."""
        self.joined: set[NodeId] = set()
        for i in self.ids:
            disk = MemoryDisk()
            self.nodes[i] = SimNode(i, self._make_raw(i, disk, 0), disk)

    def config(self, node: NodeId) -> Config:
        voters = () if node in self.joined else self.seed_voters
        return Config(id=node, voters=voters, **self.overrides)  # type: ignore[arg-type]

    def join(self, node: NodeId) -> None:
        """Start a new, empty node that knows no membership: it waits for a
        leader that added it (``conf-change``) to reach it."""
        if node in self.nodes:
            raise ValueError(f"node {node} already exists")
        self.joined.add(node)
        self.ids = (*self.ids, node)
        self.inbox[node] = []
        disk = MemoryDisk()
        self.nodes[node] = SimNode(node, self._make_raw(node, disk, 0), disk)

    def _make_raw(self, node: NodeId, disk: MemoryDisk, restarts: int) -> RawNode:
        rng = random.Random(f"{self.seed}/{node}/{restarts}")
        snap = disk.snapshot
        return RawNode(
            self.config(node),
            rng,
            hard_state=disk.hard_state,
            entries=list(disk.entries),
            offset=disk.offset,
            offset_term=snap.term if snap is not None else 0,
            applied=disk.offset,
            snapshot=snap,
        )

    # -- driving ---------------------------------------------------------

    def process_ready(self, node: NodeId) -> Ready | None:
        """Carry out one Ready of ``node`` if it has one; return it."""
        n = self.nodes[node]
        if not n.up or not n.raw.has_ready():
            return None
        rd = n.raw.ready()
        n.disk.persist(rd)
        n.raw.advance(rd)
        n.raw.on_persisted(rd.number)
        self.send(rd.messages)
        self.send(rd.messages_after_persist)
        if rd.snapshot is not None:
            n.installed = rd.snapshot
            n.applied = []
        for e in rd.committed_entries:
            last = n.applied[-1].index if n.applied else (n.installed.index if n.installed else 0)
            assert not (n.applied or n.installed) or e.index == last + 1, "apply gap"
            n.applied.append(e)
        return rd

    def compact(self, node: NodeId, index: int) -> SnapshotMeta:
        """``node`` snapshots its state at applied ``index`` and compacts its log."""
        n = self.nodes[node]
        raft = n.raw.raft
        term = raft.log.term(index)
        assert term is not None, f"entry {index} is not in node {node}'s log"
        meta = raft.snapshot_meta(index, term)
        n.raw.snapshot_taken(meta)
        n.raw.compact(index)
        n.disk.compact(meta)
        return meta

    def send(self, msgs: Iterable[Message]) -> None:
        for m in msgs:
            if m.dst in self.inbox and (m.src, m.dst) not in self.cut:
                self.inbox[m.dst].append(m)

    def deliver(self, node: NodeId) -> list[Message]:
        """Step every message queued for ``node`` into it; return them."""
        msgs, self.inbox[node] = self.inbox[node], []
        n = self.nodes[node]
        if not n.up:
            return []
        for m in msgs:
            n.raw.step(m)
        return msgs

    def stabilize(self, max_rounds: int = 1000) -> None:
        """Process Readies and deliver messages until nothing is left to do."""
        for _ in range(max_rounds):
            busy = False
            for i in self.ids:
                while self.process_ready(i) is not None:
                    busy = True
            for i in self.ids:
                if self.inbox[i]:
                    busy = True
                    self.deliver(i)
            if not busy:
                return
        raise RuntimeError(f"cluster did not settle within {max_rounds} rounds")

    def tick(self, node: NodeId, times: int = 1) -> None:
        n = self.nodes[node]
        if n.up:
            for _ in range(times):
                n.raw.tick()

    def tick_all(self, times: int = 1) -> None:
        for i in self.ids:
            self.tick(i, times)

    # -- faults ------------------------------------------------------------

    def isolate(self, node: NodeId) -> None:
        for other in self.ids:
            if other != node:
                self.cut.add((node, other))
                self.cut.add((other, node))

    def partition(self, *groups: Iterable[NodeId]) -> None:
        """Cut every link between nodes of different groups."""
        member = {i: g for g, nodes in enumerate(groups) for i in nodes}
        for a in self.ids:
            for b in self.ids:
                if a != b and member.get(a) != member.get(b):
                    self.cut.add((a, b))

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, node: NodeId) -> None:
        """Stop ``node``: its memory and queued messages are lost, its disk stays."""
        self.nodes[node].up = False
        self.inbox[node] = []

    def wipe(self, node: NodeId) -> None:
        """Lose a crashed node's disk entirely (its data directory deleted)."""
        if self.nodes[node].up:
            raise ValueError(f"node {node} must be crashed before its disk is wiped")
        self.nodes[node].disk = MemoryDisk()

    def restart(self, node: NodeId, restarts: int = 1) -> None:
        """Bring ``node`` back from its disk alone (the state machine replays)."""
        old = self.nodes[node]
        self.nodes[node] = SimNode(node, self._make_raw(node, old.disk, restarts), old.disk)

    # -- inspection --------------------------------------------------------

    def leader(self) -> NodeId | None:
        """The live node that believes it leads with the highest term, if any."""
        best: tuple[int, NodeId] | None = None
        for i, n in self.nodes.items():
            st = n.raw.status()
            if n.up and st.leader == i and (best is None or st.term > best[0]):
                best = (st.term, i)
        return best[1] if best else None
