"""drafty.driver: run a node for real, on asyncio, with a disk and sockets.

- :class:`RaftNode` runs one member of a cluster around any
  :class:`StateMachine` (the decisions are :class:`drafty.node.Node`'s; this
  package only adapts clocks, sockets, files and the fsync thread);
  :meth:`RaftNode.log_status` gives its log's extent and newest snapshot
  (a :class:`LogStatus`);
- ``files``: the node's snapshot files port on real files; ``trace``: what
  a running node logs;
- :class:`Refused`, :class:`OutcomeUnknown`, :class:`SessionExpired` and
  :class:`StateMachineError` say how a failed command ended.
"""

from .api import OutcomeUnknown, Refused, SessionExpired, StateMachine, StateMachineError
from .node import RaftNode
from .settings import LogStatus, NodeSettings, ReadStats

__all__ = [
    "LogStatus",
    "NodeSettings",
    "OutcomeUnknown",
    "RaftNode",
    "ReadStats",
    "Refused",
    "SessionExpired",
    "StateMachine",
    "StateMachineError",
]
