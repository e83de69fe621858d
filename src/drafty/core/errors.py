"""Exceptions the core raises: every one is *local misuse* or a refusal.

The core never raises because of what a remote peer sent: a bad or stale
message is dropped and counted (see :class:`drafty.core.raft.Counters`).
The exceptions below split into two families, as h11 does:

- :class:`ProposalRefused` and its children: the caller did nothing wrong, but
  the node cannot take the request now (not the leader, say). They carry what
  the caller needs to act (the known leader, to redirect or forward).
- :class:`CoreMisuse` and its children: the program driving the core broke
  its contract (bad configuration, advancing a Ready twice, restoring from an
  inconsistent state). These are bugs in the caller, never in the input.
"""

from __future__ import annotations

from .types import NONE, NodeId


class DraftyError(Exception):
    """Base class of every exception drafty raises on purpose."""


class ProposalRefused(DraftyError):
    """The proposal was not appended; it certainly had no effect."""


class NotLeader(ProposalRefused):
    """This node is not the leader. ``leader`` is the one it knows, or NONE."""

    def __init__(self, leader: NodeId = NONE) -> None:
        self.leader = leader
        where = f"node {leader} is leader" if leader != NONE else "no leader is known"
        super().__init__(f"not the leader ({where})")


class LeadershipTransferring(ProposalRefused):
    """The leader is handing leadership to ``leader`` and takes no proposals
    until the handover ends (at most an election timeout)."""

    def __init__(self, leader: NodeId) -> None:
        self.leader = leader
        super().__init__(f"leadership is moving to node {leader}")


class TransferError(ProposalRefused):
    """A leadership transfer cannot be started (the message says why)."""


class CoreMisuse(DraftyError):
    """The driver broke the core's contract: a bug in the calling program."""


class ConfigError(CoreMisuse, ValueError):
    """A configuration value makes no sense; the message says which and why."""


class StateError(CoreMisuse):
    """The state given to the core (on start or restart) is inconsistent."""
