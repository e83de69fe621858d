"""Validated settings of one Raft node.

Theory of operation
-------------------
Time in the core is counted in *ticks*: the driver calls ``tick()`` at a fixed
rate (say every 100 ms) and every timeout below is a number of ticks. A
follower that hears nothing for a randomised election timeout, drawn from
``[election_ticks, 2 * election_ticks)``, starts an election; a leader sends
heartbeats every ``heartbeat_ticks``. Raft needs heartbeats to be much more
frequent than elections (paper §5.6), so ``election_ticks > heartbeat_ticks``
is enforced.

Every field is checked on construction; a nonsense value raises
:class:`~drafty.core.errors.ConfigError` naming the field and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError
from .types import NodeId


@dataclass(frozen=True, slots=True)
class Config:
    """Settings of one node.

    ``voters`` seeds a brand-new cluster: every voting member, self included.
    Once the log or a snapshot holds a membership, that wins (see
    :mod:`drafty.core.reconfig`). Empty ``voters`` start a node that *joins*
    an existing cluster: it knows no membership until a leader that added it
    reaches it, and it never campaigns before that.
    """

    id: NodeId
    voters: tuple[NodeId, ...]
    election_ticks: int = 10
    """Minimum ticks without a leader before campaigning; also the CheckQuorum period."""
    heartbeat_ticks: int = 1
    """Ticks between a leader's heartbeats; must be below ``election_ticks``."""
    max_inflight: int = 256
    """Most AppendEntries messages in flight to one follower (pipelining window)."""
    max_msg_bytes: int = 1 << 20
    """Byte budget of one AppendEntries; one entry is always sent even if larger."""
    prevote: bool = True
    """Run a PreVote round before a real election (dissertation §9.6)."""
    check_quorum: bool = True
    """A leader steps down when a quorum has been silent for an election timeout."""
    forward_proposals: bool = False
    """A follower forwards proposals to the known leader instead of refusing them."""
    max_pending_reads: int = 4096
    """Reads (ReadIndex) waiting on one node for confirmation; more are refused."""
    lease_reads: bool = False
    """A leader answers reads at once while its lease lasts (requires check_quorum;
    see :mod:`drafty.core.readonly` for the clock assumption)."""
    promote_max_lag_entries: int = 1000
    """A learner is promoted to voter only once its match index is within this
    many entries of the leader's last index (else the change is refused)."""
    lease_drift_ticks: int = 2
    """Ticks the lease is shortened by for clock drift: it stays safe while no
    voter's clock runs faster than the leader's by more than
    ``lease_drift_ticks / (election_ticks - 1)`` (22% with the defaults)."""

    @property
    def lease_ticks(self) -> int:
        """Ticks after a heartbeat round was sent that its quorum's answers hold
        the lease (see :mod:`drafty.core.readonly`)."""
        return self.election_ticks - 1 - self.lease_drift_ticks

    def __post_init__(self) -> None:
        _positive_int("id", self.id)
        if not isinstance(self.voters, tuple):
            raise ConfigError("voters: must be a tuple of node ids (empty: join a cluster)")
        for v in self.voters:
            _positive_int("voters entry", v)
        if len(set(self.voters)) != len(self.voters):
            raise ConfigError(f"voters: duplicate node id in {self.voters}")
        if self.voters and self.id not in self.voters:
            raise ConfigError(f"id: node {self.id} is not among voters {self.voters}")
        _positive_int("heartbeat_ticks", self.heartbeat_ticks)
        _positive_int("election_ticks", self.election_ticks)
        if self.election_ticks <= self.heartbeat_ticks:
            raise ConfigError(
                f"election_ticks ({self.election_ticks}) must exceed "
                f"heartbeat_ticks ({self.heartbeat_ticks}), or followers time out "
                "between heartbeats"
            )
        _positive_int("max_inflight", self.max_inflight)
        _positive_int("max_msg_bytes", self.max_msg_bytes)
        _positive_int("max_pending_reads", self.max_pending_reads)
        if isinstance(self.promote_max_lag_entries, bool) or not isinstance(
            self.promote_max_lag_entries, int
        ):
            raise ConfigError("promote_max_lag_entries: must be an integer")
        if self.promote_max_lag_entries < 0:
            raise ConfigError("promote_max_lag_entries: must not be negative")
        for name in ("prevote", "check_quorum", "forward_proposals", "lease_reads"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: must be True or False")
        if isinstance(self.lease_drift_ticks, bool) or not isinstance(self.lease_drift_ticks, int):
            raise ConfigError("lease_drift_ticks: must be an integer")
        if self.lease_drift_ticks < 0:
            raise ConfigError("lease_drift_ticks: must not be negative")
        if self.lease_reads and not self.check_quorum:
            raise ConfigError(
                "lease_reads: requires check_quorum (a leader cut off from its "
                "majority must step down before another can be elected)"
            )
        if self.lease_reads and self.lease_ticks <= self.heartbeat_ticks:
            raise ConfigError(
                f"lease_drift_ticks: a lease of election_ticks - 1 - lease_drift_ticks = "
                f"{self.lease_ticks} ticks must exceed heartbeat_ticks ({self.heartbeat_ticks}), "
                "or heartbeats never renew it"
            )


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
