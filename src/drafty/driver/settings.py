"""A driven node's settings, and the figures it reports (log, reads).

Kept apart from :mod:`drafty.driver.node` so that the driver reads as the
loop it is; these are plain values with their units and invariants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import NodeId
from ..node import Instant
from ..transport.address import Address
from ..transport.tcp import LinkLimits


@dataclass(frozen=True)
class NodeSettings:
    """Where a node lives and how fast its clock runs."""

    id: NodeId
    cluster: str
    peers: dict[NodeId, Address]
    """Raft address of every member cluster.toml lists, this node included;
    its ids seed a brand-new cluster's voters (see :mod:`drafty.driver.members`)."""
    data_dir: Path
    tick_ms: int = 50
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    request_timeout: float = 5.0
    session_ttl_ms: int = 10 * 60 * 1000
    seed: int | None = None
    extra_config: dict[str, Any] = field(default_factory=dict)
    clients: dict[NodeId, Address] = field(default_factory=dict)
    """Client (service) address of each member, for the address book (optional)."""
    join: bool = False
    """A new data directory joins an existing cluster (no seed voters): the
    node waits for a leader that added it."""
    node_options: dict[str, Any] = field(default_factory=dict)
    """Further :class:`~drafty.node.NodeOptions` fields (among them the snapshot
    thresholds; ``transfer`` may be a :class:`~drafty.node.TransferLimits` or a
    dict of its fields)."""


def now() -> Instant:
    """The clocks (monotonic and wall), read once: every input to a node carries one."""
    return Instant(int(time.monotonic() * 1000), int(time.time() * 1000))


KEEP_SNAPSHOTS = 2
"""Snapshot files kept: a leader may still be streaming the previous one to a
follower while the next one is saved."""


@dataclass(frozen=True, slots=True)
class LogStatus:
    """The durable log and snapshot of a running node, for INFO and status."""

    snapshot_index: int
    """Newest snapshot held (0: none)."""
    snapshot_term: int
    snapshot_saving: bool
    """A snapshot is being written now."""
    last_save_bytes: int
    """Size of the last snapshot this node saved (0: none this life)."""
    last_save_ms: float
    """How long saving it took, from the job's start (0: none this life)."""
    first_index: int
    """First entry still in the write-ahead log (``last_index + 1`` when empty)."""
    last_index: int
    entries: int
    bytes: int
    """Bytes of entry data in the log (payloads only, as kept in memory)."""


@dataclass(frozen=True, slots=True)
class ReadStats:
    """Reads on one node, by how they were served (for INFO)."""

    mode: str
    """``readindex`` or ``lease``: how this node's leader confirms reads."""
    linearizable: int
    """Linearizable reads this node answered (confirmed one way or the other)."""
    stale: int
    """Stale local reads this node answered (READONLY connections)."""
    lease_answered: int
    """As leader: reads (its own and followers') answered from its lease."""
    round_confirmed: int
    """As leader: reads confirmed by a heartbeat round (ReadIndex)."""


def link_limits(s: NodeSettings) -> LinkLimits:
    """Peer-link liveness scaled to the election timeout (500 ms by default).

    A message older than the shortest election timeout is dropped unsent; a
    link with bytes unacknowledged for two election timeouts (at least 1 s)
    is torn down; reconnecting after a heal takes at most one election
    timeout plus half of one. Together a healed node hears its leader within
    about 2 s by default, however long the partition lasted.
    """
    election_s = s.election_ticks * s.tick_ms / 1000
    return LinkLimits(
        max_message_age_s=election_s,
        user_timeout_s=max(1.0, 2 * election_s),
        keepalive_idle_s=max(1, round(election_s)),
        connect_timeout_s=max(0.2, election_s),
        backoff_max_s=max(0.1, election_s / 2),
    )
