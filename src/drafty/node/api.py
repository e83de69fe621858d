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
error value instead. ``snapshot`` / ``restore`` serialise the whole state;
the node takes snapshots to compact its log and sends them to followers that
fell too far behind.

Snapshots and the event loop: ``snapshot`` runs on the node's event loop, so
a big state stalls it for as long as serialising takes. A state machine that
can take a consistent view cheaply implements :class:`StreamingStateMachine`
as well: ``snapshot_view`` (on the loop, cheap: a copy-on-write mark, a list
of keys) returns a :class:`SnapshotView` whose ``chunks`` run in another
thread while ``apply`` goes on, and must yield the state as it was when the
view was taken; ``close`` is called on the loop once the chunks are written
(or the save failed). ``restore_view`` receives what the chunks yielded,
joined, as a memoryview (no copy of a large snapshot is made). A state
machine that cannot copy cheaply and has a big state should keep the
snapshot threshold high (``snapshot_entries``) so the stalls are rare.

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

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

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


class SnapshotView(Protocol):
    """A consistent image of a state machine, serialised off the event loop."""

    def chunks(self) -> Iterator[bytes]:
        """The state as it was when the view was taken, in pieces (any thread)."""
        ...

    def close(self) -> None:
        """The view is no longer needed (called on the loop, exactly once)."""
        ...


@runtime_checkable
class StreamingStateMachine(StateMachine, Protocol):
    """A state machine whose snapshots do not stall the event loop."""

    def snapshot_view(self) -> SnapshotView:
        """Take a consistent view now, cheaply; at most one is open at a time."""
        ...

    def restore_view(self, data: memoryview) -> None:
        """Replace the whole state with the joined chunks of a view."""
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
