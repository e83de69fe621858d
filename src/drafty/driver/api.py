"""What a library user implements and catches: the StateMachine protocol and errors.

Theory of operation
-------------------
drafty replicates any deterministic state machine. Implement
:class:`StateMachine` and hand it to :class:`drafty.driver.RaftNode`; every
command a caller submits on any node is written to the Raft log and, once
committed, passed to ``apply`` on every node in the same order. The value
``apply`` returns on the node that took the request is the caller's answer.

``apply`` must be deterministic (no clocks, randomness, or I/O whose result
can differ between nodes) and must not raise for a bad command: return an
error value instead. ``snapshot`` / ``restore`` serialise the whole state
(log compaction will use them).

A submitted command ends in one of three ways:

- a result: it was applied exactly once;
- :class:`Refused`: it certainly had no effect (no leader, shutting down, its
  log entry was overwritten by a new leader): retrying is always safe;
- :class:`OutcomeUnknown`: it may or may not have taken effect (leadership was
  lost or the wait timed out after it entered the log). Retry only with the
  same (client, sequence) pair, which makes the retry exactly-once.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..core import NONE, DraftyError, NodeId


class StateMachine(Protocol):
    """A deterministic state machine replicated by Raft."""

    def apply(self, command: bytes) -> Any:
        """Run one committed command; return the caller's answer."""
        ...

    def snapshot(self) -> bytes:
        """The whole state as bytes."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's."""
        ...


class Refused(DraftyError):
    """The command certainly had no effect; retrying is safe.

    ``leader`` is the node this one believes leads (NONE if unknown).
    """

    def __init__(self, reason: str, leader: NodeId = NONE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.leader = leader


class OutcomeUnknown(DraftyError):
    """The command may or may not have taken effect."""
