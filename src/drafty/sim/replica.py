"""One simulated server: the real node layer over a simulated disk and clocks.

Theory of operation
-------------------
A :class:`Replica` runs the same :class:`drafty.node.Node` the asyncio driver
runs, around a :class:`~drafty.service.kv.KVStore`, and carries out its
:class:`~drafty.node.Actions` the way the driver does, on a
:class:`~drafty.sim.disk.SimDisk`:

1. ``writes`` go to the disk's unsynced buffer;
2. a ``sync`` is handed to the :class:`Host`, which completes it after a disk
   latency (:meth:`sync_done` then makes the writes durable and tells the
   node);
3. ``messages`` go to the network; ``replies`` to the node's service front.

The replica's clocks: the monotonic clock is virtual time; the wall clock is
virtual time plus a per-node ``skew`` (which the nemesis may jump), from an
epoch that looks like a real Unix time.

A crash throws away everything but the disk's durable part; :meth:`start`
builds a new core and node from the durable hard state, the newest snapshot
and the entries after it alone, with a new incarnation from the disk and a
fresh state machine restored from the snapshot that replays the rest.
``jobs`` (snapshot saves and checks) run when the simulation says their
virtual time is over (:meth:`job_done`); one addressed to an earlier
lifetime is dropped. ``epoch`` counts lifetimes, so events addressed to an earlier one
are recognised and dropped.

Two test-only switches plant driver bugs the oracle must catch:
``ack_before_fsync`` reports a sync done as soon as it is asked for, and
``forget_vote`` restarts with the vote erased from the hard state.

Invariants
----------
- At most one sync is in flight; messages the node releases on ``synced``
  leave only after the disk made the covered writes durable (unless
  ``ack_before_fsync``).
- The state machine sees committed entries in index order, once each per
  lifetime (the node guarantees it; the oracle checks it).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from enum import Enum
from typing import Any, Final, Protocol

from ..core import Config, Entry, HardState, Message, NodeId, RawNode
from ..node import Actions, Instant, Job, Node, NodeOptions, Observer, Reply
from ..service.kv import KVStore
from .disk import SimDisk
from .files import SimFiles, load_newest

NodeFactory = Callable[..., RawNode]
"""Builds a node's RawNode from durable state (tests swap in buggy cores here):
called as ``factory(config, rng, hard_state, entries, **start)`` where
``start`` holds RawNode's ``offset``, ``offset_term``, ``applied`` and
``snapshot`` arguments."""

LayerFactory = Callable[..., Node]
"""Builds the node layer around a RawNode (tests swap in buggy node layers here)."""

EPOCH_MS: Final = 1_800_000_000_000
"""Virtual time 0 on the simulated wall clocks (a plausible Unix time)."""


def default_node_factory(
    config: Config,
    rng: random.Random,
    hard_state: HardState,
    entries: Sequence[Entry],
    **start: Any,
) -> RawNode:
    return RawNode(config, rng, hard_state=hard_state, entries=entries, **start)


class NodeState(Enum):
    UP = "up"
    PAUSED = "paused"
    DOWN = "down"


class Host(Protocol):
    """What a replica needs from the simulation."""

    def send(self, msgs: Sequence[Message]) -> None: ...

    def sync_started(self, replica: Replica, upto: int) -> None: ...

    def on_replies(self, replica: Replica, replies: Sequence[Reply]) -> None: ...

    def job_started(self, replica: Replica, job: Job) -> None: ...


class Replica:
    """A node's core, node layer, disk and state machine; see the module docstring."""

    def __init__(
        self,
        config: Config,
        options: NodeOptions,
        factory: NodeFactory = default_node_factory,
        layer: LayerFactory = Node,
        *,
        skew_ms: int = 0,
        clock_rate: float = 1.0,
        ack_before_fsync: bool = False,
        forget_vote: bool = False,
    ) -> None:
        self.id: NodeId = config.id
        self.config = config
        self.options = options
        self.factory = factory
        self.layer = layer
        self.skew_ms = skew_ms
        self.clock_rate = clock_rate
        """How fast this node's clocks run against virtual time (1.0: exactly)."""
        self._tick_debt = 0.0
        self.ack_before_fsync = ack_before_fsync
        self.forget_vote = forget_vote
        self.disk = SimDisk()
        self.state = NodeState.DOWN
        self.epoch = 0
        """Lifetimes so far; the current one is ``epoch``."""
        self._node: Node | None = None
        self.kv: KVStore | None = None
        self.sync_tail = 0
        """Virtual time the last started sync completes."""
        self.slow_until = 0
        """Virtual time until which this disk is slow (a disk fault)."""

    # -- lifetime ----------------------------------------------------------

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError(f"node {self.id} is down")
        return self._node

    @property
    def raw(self) -> RawNode:
        return self.node.raw

    @property
    def running(self) -> bool:
        """Up and not paused: ticks, messages and clients are served."""
        return self.state is NodeState.UP

    @property
    def applied(self) -> int:
        return self._node.applied if self._node is not None else 0

    def fingerprint(self) -> str:
        """A digest of the key-value data (equal on nodes that applied equal logs)."""
        h = hashlib.blake2b(digest_size=12)
        kv = self.kv
        assert kv is not None
        for k in sorted(kv.data):
            h.update(k + b"\0" + kv.data[k] + b"\0")
        return h.hexdigest()

    def now(self, virtual_ms: int) -> Instant:
        """This node's clock readings; a drifting clock runs at ``clock_rate``."""
        if self.clock_rate == 1.0:
            return Instant(virtual_ms, EPOCH_MS + virtual_ms + self.skew_ms)
        mono = int(virtual_ms * self.clock_rate)
        return Instant(mono, EPOCH_MS + mono + self.skew_ms)

    def tick_period(self, tick_ms: int) -> int:
        """Virtual ms until this node's next tick: ``tick_ms`` of its own clock
        (periods are whole ms; their average is exact)."""
        self._tick_debt += tick_ms / self.clock_rate
        step = max(1, int(self._tick_debt))
        self._tick_debt -= step
        return step

    def start(self, rng: random.Random, virtual_ms: int, observer: Observer) -> None:
        """Start a lifetime from the disk's durable state alone."""
        disk = self.disk
        hs = disk.hard_state
        if self.forget_vote:
            hs = replace(hs, vote=0)
        self.epoch += 1
        now = self.now(virtual_ms)
        start: dict[str, Any] = {}
        snap = load_newest(disk)
        payload = None
        if snap is not None:
            meta, payload = snap
            if not disk.holds(meta.index, meta.term):  # an install a crash cut short
                disk.compact(meta.index, meta.term)
            start = {"applied": meta.index, "snapshot": meta}
        start.update(offset=disk.base_index, offset_term=disk.base_term)
        raw = self.factory(self.config, rng, hs, list(disk.entries), **start)
        self.kv = KVStore()
        self._node = self.layer(
            raw,
            self.kv,
            incarnation=disk.next_incarnation(now.wall_ms),
            now=now,
            options=self.options,
            observer=observer,
            snapshot=payload,
            files=SimFiles(disk),
        )
        self.state = NodeState.UP

    def crash(self, keep: int = 0) -> None:
        """Lose memory and unsynced writes (but the first ``keep`` of them)."""
        self.disk.crash(keep)
        self._node = None
        self.kv = None
        self.state = NodeState.DOWN

    # -- carrying out Actions -------------------------------------------------

    def drive(self, host: Host) -> None:
        """Take the node's Actions and carry them out (see the module docstring)."""
        while True:
            actions = self.node.take()
            if not actions:
                return
            self._carry_out(actions, host)
            if not (actions.sync and self.ack_before_fsync):
                return

    def _carry_out(self, actions: Actions, host: Host) -> None:
        for w in actions.writes:
            self.disk.write(w)
        if actions.messages:
            host.send(actions.messages)
        if actions.replies:
            host.on_replies(self, actions.replies)
        for job in actions.jobs:
            host.job_started(self, job)
        if actions.sync:
            if self.ack_before_fsync:
                self.node.synced(actions.sync)  # the planted bug: durable before the fsync
                host.sync_started(self, actions.sync)
            else:
                host.sync_started(self, actions.sync)

    def job_done(self, job: Job, virtual_ms: int, host: Host) -> None:
        """Run ``job`` now (its virtual time is over) and report it to the node."""
        result: object = None
        error: BaseException | None = None
        try:
            result = job.run()
        except Exception as e:  # reported into the node, as the driver does
            error = e
        self.node.job_done(job, result, error, self.now(virtual_ms))
        self.drive(host)

    def sync_done(self, upto: int, host: Host) -> None:
        """The sync of node writes ``<= upto`` completed."""
        self.disk.sync_seq(upto)
        if not self.ack_before_fsync:
            self.node.synced(upto)
        self.drive(host)
