"""The oracle's picture of each node: its mirrored log, its promises, the run's tallies."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from ..core import NONE, Entry, HardState, NodeId, Role

EMPTY_DIGEST = b"\0" * 16


def chain(prev: bytes, e: Entry) -> bytes:
    """Digest of a log prefix ending with ``e``, given the digest before it."""
    h = hashlib.blake2b(prev, digest_size=16)
    h.update(struct.pack(">QQB", e.index, e.term, int(e.kind)))
    h.update(e.data)
    return h.digest()


@dataclass(slots=True)
class NodeView:
    """The oracle's picture of one node lifetime."""

    log: list[Entry] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    hard_state: HardState = field(default_factory=HardState)
    role: Role = Role.FOLLOWER
    next_apply: int = 1


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
