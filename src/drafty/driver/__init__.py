"""drafty.driver: run a node for real, on asyncio, with a disk and sockets.

- :class:`RaftNode` runs one member of a cluster around any
  :class:`StateMachine` (the decisions are :class:`drafty.node.Node`'s; this
  package only adapts clocks, sockets, files and the fsync thread);
- :class:`Refused`, :class:`OutcomeUnknown`, :class:`SessionExpired` and
  :class:`StateMachineError` say how a failed command ended.
"""

from .api import OutcomeUnknown, Refused, SessionExpired, StateMachine, StateMachineError
from .node import NodeSettings, RaftNode

__all__ = [
    "NodeSettings",
    "OutcomeUnknown",
    "RaftNode",
    "Refused",
    "SessionExpired",
    "StateMachine",
    "StateMachineError",
]
