"""The Ready batch: everything the core wants done, with its ordering rules.

Theory of operation
-------------------
The core does no I/O. After feeding it input (``tick``, ``step``,
``propose``...), the driver asks :meth:`RawNode.ready` for a :class:`Ready`,
carries it out, and calls :meth:`RawNode.advance` with it. Then, whenever the
persist step of Ready ``n`` (and of every earlier one) is durable, it calls
:meth:`RawNode.on_persisted` with ``n``. A driver may keep several Readies'
fsyncs in flight at once (pipelining); one that persists synchronously simply
calls ``advance(rd)`` then ``on_persisted(rd.number)``.

Carrying out Ready ``n`` means, in this order:

1. **persist** ``snapshot`` (if any: the driver received its bytes; the log
   is now empty up to its index), then ``entries``, then ``hard_state``
   (entries first, so a recovered commit index never points past the
   recovered log);
2. **send** ``messages`` at once, and ``messages_after_persist`` only once the
   persist step of Ready ``n`` and of every Ready before it is durable;
3. **apply**: restore the state machine from ``snapshot`` (if any), then
   ``committed_entries``, in order, each once; entries are already durable
   on this node, so this need not wait for step 1 (a snapshot's restore may
   go first too: nothing that depends on it leaves before it is durable).

Readies are numbered from 1 with no gaps; each is self-contained, so the core
may be stepped between ``ready()`` and ``advance()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import Message
from .readonly import ReadState
from .types import Entry, HardState, NodeId, Role, SnapshotMeta


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile facts worth showing (never persisted): role and known leader."""

    role: Role
    leader: NodeId


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the driver; see the module docstring for order."""

    number: int
    """1, 2, 3...: pass it to ``on_persisted`` once the persist step is durable."""
    soft_state: SoftState | None
    """The new role and leader when either changed since the last Ready."""
    hard_state: HardState | None
    """Persist if not None: term and vote must be durable before any message in
    ``messages_after_persist`` leaves."""
    entries: tuple[Entry, ...]
    """Persist before ``hard_state``: the entry at index i replaces every stored
    entry at index >= i (a follower overwriting a conflicting suffix)."""
    messages: tuple[Message, ...]
    """Send now, even while the persist step is still in flight (a leader's
    appends and heartbeats, pre-votes, forwarded proposals)."""
    messages_after_persist: tuple[Message, ...]
    """Send only once this Ready's persist step, and every earlier one's, is
    durable: votes and append responses promise durable state."""
    committed_entries: tuple[Entry, ...]
    """Apply in order, exactly once. Committed and durable on this node
    (applied <= committed, applied <= persisted)."""
    snapshot: SnapshotMeta | None = None
    """A snapshot from the leader: persist it first and restore the state
    machine from it before ``committed_entries`` (which all follow it)."""
    read_states: tuple[ReadState, ...] = ()
    """Reads confirmed (answer each once applied reaches its index) or refused
    (index 0). They promise nothing about this node's state: hand them on at
    any point of the Ready's handling."""

    def must_persist(self) -> bool:
        """Whether the persist step has anything to write."""
        return self.hard_state is not None or bool(self.entries) or self.snapshot is not None
