"""What a library user implements and catches: the StateMachine protocol and outcomes.

Theory of operation
-------------------
drafty replicates any deterministic state machine. Implement
:class:`StateMachine` and hand it to a node (:class:`drafty.driver.RaftNode`
on asyncio, :class:`drafty.node.Node` anywhere else); every command a caller
submits on any node is written to the Raft log and, once committed, passed to
``apply`` on every node in the same order. The value ``apply`` returns on the
node that took the request is the caller's answer.

``apply`` must be deterministic (no clocks, randomness, or I/O whose result
can differ between nodes) and must not raise for a bad command: return an
error value instead. ``snapshot`` / ``restore`` serialise the whole state
(log compaction will use them).

A submitted command ends in exactly one of these ways:

- a result: it was applied exactly once;
- :class:`Refused`: it certainly had no effect (no leader, shutting down, its
  log entry was overwritten or appended in a later term): retrying is safe;
- :class:`OutcomeUnknown`: it may or may not have taken effect (the wait
  timed out, the node stopped, or a stale retry of a session's request).
  Retry only with the same (session, sequence) pair;
- :class:`SessionExpired`: the command named a client session the cluster
  does not know (expired, evicted, or never opened): it was not applied. An
  earlier attempt of the same request may have been, so the client decides.

The first two are what the Raft literature calls a definite failure and an
indefinite one; every error a client sees says which it is.
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


class SessionExpired(DraftyError):
    """The command's client session is unknown to the cluster; it was not applied."""


class StateMachineError(DraftyError):
    """The state machine raised while applying a command (a bug in it).

    The command counts as applied (every replica raised the same way), so a
    retry in the same session is answered with this error again.
    """
