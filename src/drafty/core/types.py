"""Plain data shared by every part of the core: node ids, log entries, hard state.

Theory of operation
-------------------
A Raft log is a sequence of :class:`Entry` values numbered from 1, as in the
Raft paper; index 0 means "before the first entry" and term 0 means "no term
yet".  Node ids are positive integers and :data:`NONE` (0) means "no node"
(no vote cast, no leader known).

:class:`HardState` is what a node must make durable before it says anything
that depends on it: the current term, the vote cast in that term, and the
commit index (the last is an optimisation for restart, not a safety need).

Every value here is a frozen, slotted dataclass: cheap to build, impossible
to mutate behind the core's back, and comparable by value in tests.

Invariants
----------
- ``Entry.index >= 1`` and ``Entry.term >= 1`` for every entry in a log.
- ``HardState.term >= 0``; ``HardState.vote`` is ``NONE`` or a node id;
  ``HardState.commit >= 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final

NodeId = int
"""A node's identity in the cluster: a positive integer."""

NONE: Final = 0
"""The absent node id: no vote cast, no leader known."""

ENTRY_OVERHEAD: Final = 24
"""Bytes charged per entry, on top of its data, when sizing messages."""


class EntryKind(IntEnum):
    """What an entry carries. Values are stable: they go to disk and the wire."""

    NORMAL = 0
    """Application data, handed to the state machine."""
    NOOP = 1
    """Appended by a new leader to commit entries of earlier terms (paper §5.4.2)."""
    CONFIG = 2
    """A cluster membership (:mod:`drafty.core.membership`), in effect once appended."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry: its position, the term it was created in, and data."""

    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Bytes this entry counts for against message and batch limits."""
        return len(self.data) + ENTRY_OVERHEAD


@dataclass(frozen=True, slots=True)
class HardState:
    """The state a node must persist before acting on it (paper figure 2).

    ``term`` and ``vote`` must be durable before any vote or append response
    that depends on them leaves the node; ``commit`` may lag on disk.
    """

    term: int = 0
    vote: NodeId = NONE
    commit: int = 0


EMPTY_HARD_STATE: Final = HardState()


class Role(Enum):
    """What a node is to the cluster right now (see :mod:`drafty.core.raft`)."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot replaces: the log up to ``index`` (of ``term``), and the
    cluster configuration in force there (see :mod:`drafty.core.membership`).
    The state itself is the driver's bytes; the core only ever handles this
    description.
    """

    index: int
    term: int
    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...] = ()
    outgoing: tuple[NodeId, ...] = ()
    """The previous voters, when the snapshot falls inside a joint change."""
