"""drafty.node: what a Raft member decides around the core, without I/O.

The layer between the pure core and the platform drivers: carrying out Ready
batches, durability bookkeeping, applying to the state machine, client
sessions, request identity and every caller's outcome. The asyncio driver and
the simulator both run it.

- ``node``: :class:`Node`, its :class:`Actions` and :class:`Reply`;
- ``api``: the :class:`StateMachine` protocol and the outcomes;
- ``envelope``: the log entry format; ``dedupe``: which copies take effect;
- ``sessions``: exactly-once client sessions; ``clock``: log time.
"""

from .api import OutcomeUnknown, Refused, SessionExpired, StateMachine, StateMachineError
from .clock import Instant
from .node import Actions, Applied, DiskWrite, Node, NodeOptions, Observer, Reply, Verdict

__all__ = [
    "Actions",
    "Applied",
    "DiskWrite",
    "Instant",
    "Node",
    "NodeOptions",
    "Observer",
    "OutcomeUnknown",
    "Refused",
    "Reply",
    "SessionExpired",
    "StateMachine",
    "StateMachineError",
    "Verdict",
]
