"""drafty.node: what a Raft member decides around the core, without I/O.

The layer between the pure core and the platform drivers: carrying out Ready
batches, durability bookkeeping, applying to the state machine, client
sessions, request identity and every caller's outcome. The asyncio driver and
the simulator both run it.

- ``node``: :class:`Node`; ``actions``: its options, :class:`Actions` and
  what observers see; ``requests``: waiting callers and their :class:`Reply`;
- ``api``: the :class:`StateMachine` protocol and the outcomes;
- ``apply``: what applying one entry does and what its caller is told;
- ``snapshot``: a snapshot's payload; ``transfer``: streaming one to a
  follower; ``ports``: the snapshot files port and the jobs run off the loop;
- ``envelope``: the log entry format; ``dedupe``: which copies take effect;
- ``sessions``: exactly-once client sessions; ``clock``: log time.
"""

from .actions import Actions, Applied, DiskWrite, NodeOptions, Observer, Verdict
from .api import (
    OutcomeUnknown,
    Refused,
    SessionExpired,
    SnapshotView,
    StateMachine,
    StateMachineError,
    StreamingStateMachine,
)
from .clock import Instant
from .node import Node
from .ports import FinishReceive, Incoming, Job, SaveSnapshot, SnapshotFiles, SnapshotIOError
from .requests import Reply
from .transfer import TransferLimits

__all__ = [
    "Actions",
    "Applied",
    "DiskWrite",
    "FinishReceive",
    "Incoming",
    "Instant",
    "Job",
    "Node",
    "NodeOptions",
    "Observer",
    "OutcomeUnknown",
    "Refused",
    "Reply",
    "SaveSnapshot",
    "SessionExpired",
    "SnapshotFiles",
    "SnapshotIOError",
    "SnapshotView",
    "StateMachine",
    "StateMachineError",
    "StreamingStateMachine",
    "TransferLimits",
    "Verdict",
]
