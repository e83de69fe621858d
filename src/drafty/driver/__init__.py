"""drafty.driver: run the core for real, on asyncio, with a disk and sockets.

- :class:`RaftNode` runs one member of a cluster around any
  :class:`StateMachine`;
- :class:`Refused` and :class:`OutcomeUnknown` say whether a failed command
  certainly had no effect or might have.
"""

from .api import OutcomeUnknown, Refused, StateMachine
from .node import NodeSettings, RaftNode, StateMachineError

__all__ = [
    "NodeSettings",
    "OutcomeUnknown",
    "RaftNode",
    "Refused",
    "StateMachine",
    "StateMachineError",
]
