"""drafty.core: the Raft protocol as a pure, deterministic state machine.

Nothing in this package touches the platform: no asyncio, sockets, files,
clocks, threads or global randomness (a test enforces it). Time arrives as
``tick()`` calls; randomness from the ``random.Random`` the caller hands in;
messages arrive through ``step()``; everything the node wants done leaves as
a :class:`Ready` batch. See :mod:`drafty.core.ready` for the contract.

Modules, each one room:

- ``types``: entries, hard state, node ids;    ``messages``: the wire vocabulary;
- ``config``: validated settings;              ``errors``: typed exceptions;
- ``quorum``: majority arithmetic;             ``progress``: per-follower state;
- ``log``: the in-memory log and its marks;    ``raft``: roles and protocol;
- ``ready``: the output batch;                 ``rawnode``: the public driver API;
- ``describe``: deterministic text rendering for logs and scripted tests.
"""

from .config import Config
from .errors import (
    ConfigError,
    CoreMisuse,
    DraftyError,
    LeadershipTransferring,
    NotLeader,
    ProposalRefused,
    StateError,
    TransferError,
)
from .messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotAck,
    SnapshotChunk,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from .rawnode import FollowerStatus, RawNode, Status
from .readonly import ReadState
from .ready import Ready, SoftState
from .types import NONE, Entry, EntryKind, HardState, NodeId, Role, SnapshotMeta

__all__ = [
    "NONE",
    "AppendEntries",
    "AppendResponse",
    "Config",
    "ConfigError",
    "CoreMisuse",
    "DraftyError",
    "Entry",
    "EntryKind",
    "FollowerStatus",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "LeadershipTransferring",
    "Message",
    "NodeId",
    "NotLeader",
    "ProposalRefused",
    "Propose",
    "RawNode",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "ReadState",
    "Ready",
    "Role",
    "SnapshotAck",
    "SnapshotChunk",
    "SnapshotMeta",
    "SoftState",
    "StateError",
    "Status",
    "TimeoutNow",
    "TransferError",
    "VoteRequest",
    "VoteResponse",
]
