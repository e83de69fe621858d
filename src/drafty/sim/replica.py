"""One simulated server: a RawNode, its disk and state machine, driven asynchronously.

Theory of operation
-------------------
A :class:`Replica` carries out its node's Ready batches the way a real
pipelined driver does (see :mod:`drafty.core.ready`):

1. the persist step is *written* to the :class:`~drafty.sim.disk.SimDisk`
   (unsynced) and, if it wrote anything, a sync is started that covers it;
2. ``messages`` leave at once; ``messages_after_persist`` are held until the
   sync covering this Ready, and every earlier one, has completed;
3. ``committed_entries`` go to the state machine, in order;
4. ``advance(rd)`` is called at once, and ``on_persisted(n)`` when the sync
   covering Ready ``n`` completes (syncs complete in the order started, so
   several may be in flight). A Ready with nothing to persist is durable as
   soon as every earlier one is: at once when no sync is in flight, else it
   rides on the newest in-flight sync.

What happens around it (time, the network, the oracle, clients) is the
caller's: :meth:`Replica.drive` reports through a :class:`ReadySink`.

A crash throws away everything but the disk's durable part; :meth:`start`
builds a new RawNode from the durable hard state and entries alone, with a
fresh state machine that replays the log from index 1. ``epoch`` counts
lifetimes, so events addressed to an earlier one are recognised and dropped.

Two test-only switches plant driver bugs the oracle must catch:
``ack_before_fsync`` sends ``messages_after_persist`` at once, and
``forget_vote`` restarts with the vote erased from the hard state.

Invariants
----------
- ``messages_after_persist`` of Ready ``n`` leave only after ``on_persisted(m)``
  for some ``m >= n`` (unless ``ack_before_fsync``).
- In-flight syncs are in start order; each covers more writes than the last.
- The state machine sees committed NORMAL entries in index order, once each
  per lifetime.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

from ..core import Config, Entry, EntryKind, HardState, Message, NodeId, RawNode, Ready
from .disk import SimDisk
from .kv import JsonValue, Model, StateMachine

NodeFactory = Callable[[Config, random.Random, HardState, Sequence[Entry]], RawNode]
"""Builds a node's RawNode from durable state (tests swap in buggy cores here)."""


def default_node_factory(
    config: Config, rng: random.Random, hard_state: HardState, entries: Sequence[Entry]
) -> RawNode:
    return RawNode(config, rng, hard_state=hard_state, entries=entries)


class NodeState(Enum):
    UP = "up"
    PAUSED = "paused"
    DOWN = "down"


@dataclass(slots=True)
class PendingSync:
    """A sync in flight: it covers disk writes ``< upto`` and Readies ``<= ready``."""

    id: int
    upto: int
    ready: int


class ReadySink(Protocol):
    """Where a replica's output goes (the simulation implements this)."""

    def on_ready(self, replica: Replica, rd: Ready) -> None:
        """A Ready was taken and written (before its entries are applied)."""

    def on_applied(self, replica: Replica, entry: Entry, result: JsonValue) -> None: ...

    def send(self, msgs: Sequence[Message]) -> None: ...

    def sync_started(self, replica: Replica, sync: PendingSync) -> None: ...


class Replica:
    """A node's core, disk and state machine; see the module docstring."""

    def __init__(
        self,
        config: Config,
        model: Model,
        factory: NodeFactory = default_node_factory,
        *,
        ack_before_fsync: bool = False,
        forget_vote: bool = False,
    ) -> None:
        self.id: NodeId = config.id
        self.config = config
        self.model = model
        self.factory = factory
        self.ack_before_fsync = ack_before_fsync
        self.forget_vote = forget_vote
        self.disk = SimDisk()
        self.state = NodeState.DOWN
        self.epoch = 0
        """Lifetimes so far; the current one is ``epoch``."""
        self._raw: RawNode | None = None
        self._sm: StateMachine | None = None
        self.applied = 0
        self.syncs: deque[PendingSync] = deque()
        self.held: deque[tuple[int, tuple[Message, ...]]] = deque()
        self.sync_tail = 0
        """Virtual time the last started sync completes (syncs finish in order)."""
        self.slow_until = 0
        """Virtual time until which this disk is slow (a disk fault)."""
        self._sync_ids = 0

    # -- lifetime ----------------------------------------------------------

    @property
    def raw(self) -> RawNode:
        if self._raw is None:
            raise RuntimeError(f"node {self.id} is down")
        return self._raw

    @property
    def sm(self) -> StateMachine:
        if self._sm is None:
            raise RuntimeError(f"node {self.id} is down")
        return self._sm

    @property
    def running(self) -> bool:
        """Up and not paused: ticks, messages and clients are served."""
        return self.state is NodeState.UP

    def start(self, rng: random.Random) -> None:
        """Start a lifetime from the disk's durable state alone."""
        hs = self.disk.hard_state
        if self.forget_vote:
            hs = replace(hs, vote=0)
        self.epoch += 1
        self._raw = self.factory(self.config, rng, hs, list(self.disk.entries))
        self._sm = self.model.new_state_machine()
        self.applied = 0
        self.state = NodeState.UP

    def crash(self, keep: int = 0) -> None:
        """Lose memory and unsynced writes (but the first ``keep`` of them)."""
        self.disk.crash(keep)
        self._raw = None
        self._sm = None
        self.syncs.clear()
        self.held.clear()
        self.state = NodeState.DOWN

    # -- the Ready loop ----------------------------------------------------

    def drive(self, sink: ReadySink) -> None:
        """Carry out every pending Ready (see the module docstring)."""
        raw = self.raw
        while raw.has_ready():
            rd = raw.ready()
            wrote = self.disk.write_ready(rd)
            sink.on_ready(self, rd)
            if rd.messages:
                sink.send(rd.messages)
            after = rd.messages_after_persist
            if after and self.ack_before_fsync:
                sink.send(after)
                after = ()
            for e in rd.committed_entries:
                result: JsonValue = None
                if e.kind is EntryKind.NORMAL:
                    result = self.sm.apply(e.index, e.data)
                self.applied = e.index
                sink.on_applied(self, e, result)
            raw.advance(rd)
            if wrote:
                self._sync_ids += 1
                sync = PendingSync(self._sync_ids, self.disk.written, rd.number)
                self.syncs.append(sync)
                if after:
                    self.held.append((rd.number, after))
                sink.sync_started(self, sync)
            elif self.syncs:
                self.syncs[-1].ready = rd.number
                if after:
                    self.held.append((rd.number, after))
            else:
                raw.on_persisted(rd.number)
                if after:
                    sink.send(after)

    def sync_done(self, sync_id: int, sink: ReadySink) -> bool:
        """The sync ``sync_id`` completed; False if it belongs to a lost lifetime."""
        if not self.syncs or self.syncs[0].id != sync_id:
            return False
        sync = self.syncs.popleft()
        self.disk.complete_sync(sync.upto)
        self.raw.on_persisted(sync.ready)
        while self.held and self.held[0][0] <= sync.ready:
            sink.send(self.held.popleft()[1])
        return True
