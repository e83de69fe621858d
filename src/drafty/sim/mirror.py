"""The oracle's picture of each node: its mirrored log, its promises, the run's tallies.

Also home of :class:`Violation` (what every check raises), so that the
oracle's parts (:mod:`drafty.sim.oracle`, :mod:`drafty.sim.configs`) share it
without importing each other.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from ..core import NONE, Entry, HardState, NodeId, Role
from ..core.membership import Membership

EMPTY_DIGEST = b"\0" * 16


def chain(prev: bytes, e: Entry) -> bytes:
    """Digest of a log prefix ending with ``e``, given the digest before it."""
    h = hashlib.blake2b(prev, digest_size=16)
    h.update(struct.pack(">QQB", e.index, e.term, int(e.kind)))
    h.update(e.data)
    return h.digest()


class Violation(Exception):
    """An invariant broke. ``invariant`` names it; ``detail`` says how."""

    def __init__(
        self, invariant: str, detail: str, node: NodeId | None = None, cause: str | None = None
    ) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail
        self.node = node
        self.cause = cause
        """A diagnosis when the simulator recognises a known failure shape."""


@dataclass(slots=True)
class NodeView:
    """The oracle's picture of one node lifetime."""

    log: list[Entry] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    hard_state: HardState = field(default_factory=HardState)
    role: Role = Role.FOLLOWER
    next_apply: int = 1
    base: Membership = field(default_factory=lambda: Membership(()))
    """The membership before the first of ``configs``: the node's seed (its
    Config's voters: the founders', or none for a joining node), or, for a
    log rebuilt from a snapshot, the founders' (what the snapshot carries when
    no configuration entry precedes it)."""
    configs: list[tuple[int, Membership]] = field(default_factory=list)
    """(index, membership) of every configuration entry in ``log``, in order."""

    @property
    def membership(self) -> Membership:
        """The membership this log puts in effect: its last configuration entry's."""
        return self.configs[-1][1] if self.configs else self.base


@dataclass(slots=True)
class Promise:
    """What a node told its peers that only durable state may back."""

    vote_term: int = 0
    vote: NodeId = NONE
    ack_term: int = 0
    ack_index: int = 0
    ack_entry_term: int = 0


@dataclass(slots=True)
class OracleStats:
    elections: int = 0
    max_term: int = 0
    installs: int = 0
    config_changes: int = 0
    """Configuration entries committed (a joint change is two)."""
    nodes_added: int = 0
    nodes_removed: int = 0
    leaders_removed: int = 0
    """Removals of the node that led when its removal began."""
