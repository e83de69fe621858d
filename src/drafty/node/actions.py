"""The node's vocabulary: its options, the Actions it asks for, and what observers see.

See :mod:`drafty.node.node` for how they are used; this module only defines them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from ..core import Entry, HardState, Message, Ready, SnapshotMeta
from .clock import DEFAULT_CLOCK_INTERVAL_MS, DEFAULT_MAX_LEAD_MS
from .dedupe import Admission
from .envelope import Envelope
from .ports import Job
from .requests import Reply
from .sessions import DEFAULT_MAX_SESSIONS, DEFAULT_TTL_MS
from .transfer import TransferLimits

if TYPE_CHECKING:
    from .node import Node


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """Limits and periods of the node layer (the core has its own Config)."""

    request_timeout_ms: int = 5000
    """How long a request waits for its entry to apply before OutcomeUnknown."""
    session_ttl_ms: int = DEFAULT_TTL_MS
    max_sessions: int = DEFAULT_MAX_SESSIONS
    clock_interval_ms: int = DEFAULT_CLOCK_INTERVAL_MS
    """A leader stamps log time at least this often while the log grows."""
    max_clock_lead_ms: int = DEFAULT_MAX_LEAD_MS
    """How far past the other nodes' stamps this node's clock may move log time."""
    max_pending: int = 65536
    """Requests waiting for an outcome on this node; more are refused."""
    snapshot_entries: int = 10_000
    """Take a snapshot once this many entries applied since the last one (0: never by count)."""
    snapshot_bytes: int = 64 << 20
    """... or once this many bytes of entry data did (0: never by size)."""
    snapshot_keep_entries: int = 5_000
    """Entries kept in the log behind a snapshot, for followers a little behind."""
    snapshot_keep_bytes: int = 8 << 20
    """... but no more than this many bytes of their data."""
    snapshot_retry_ms: int = 10_000
    """After a snapshot failed to save, wait this long before the next try."""
    transfer: TransferLimits = field(default_factory=TransferLimits)
    """Limits of snapshot transfers to and from followers."""
    tick_ms: int = 0
    """The period the driver ticks at; lease reads need it (ticks must keep
    up with the clock, see :mod:`drafty.node.ticks`). 0: not given."""

    def __post_init__(self) -> None:
        for name in (
            "request_timeout_ms",
            "session_ttl_ms",
            "max_sessions",
            "clock_interval_ms",
            "max_pending",
            "snapshot_retry_ms",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_clock_lead_ms", "snapshot_entries", "snapshot_bytes",
                     "snapshot_keep_entries", "snapshot_keep_bytes"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


@dataclass(frozen=True, slots=True)
class DiskWrite:
    """If ``compact`` = (i, t) is set, drop the log through index i (a durable
    snapshot covers it; if the log does not hold entry i of term t, drop all
    of it); then append ``entries`` (an entry at j replaces every stored entry
    >= j); then record ``hard_state`` if not None. ``seq`` numbers writes from 1."""

    seq: int
    entries: tuple[Entry, ...]
    hard_state: HardState | None
    compact: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Actions:
    """What to do now; see the module docstring for the order."""

    writes: tuple[DiskWrite, ...] = ()
    sync: int = 0
    messages: tuple[Message, ...] = ()
    replies: tuple[Reply, ...] = ()
    jobs: tuple[Job, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.writes or self.sync or self.messages or self.replies or self.jobs)


class Verdict(Enum):
    """What applying one entry did."""

    EXECUTED = "executed"
    DUPLICATE = "answered from its session"
    SESSION_STALE = "stale session request"
    SESSION_EXPIRED = "unknown session"
    OPENED = "opened a session"
    CLOCK = "moved the clock"
    REJECTED = "rejected"
    NOOP = "no-op"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Applied:
    """One applied entry, for observers: what it carried and what it did."""

    entry: Entry
    envelope: Envelope | None
    verdict: Verdict
    admission: Admission | None
    result: Any


class Observer(Protocol):
    """Hooks for tracing and checking; every method is called synchronously."""

    def on_ready(self, node: Node, rd: Ready) -> None: ...

    def on_propose(self, node: Node, envelope: Envelope, index: int | None) -> None: ...

    def on_applied(self, node: Node, applied: Applied) -> None: ...

    def on_restored(self, node: Node, meta: SnapshotMeta) -> None:
        """The node's state now is snapshot ``meta``'s (at start, or installed)."""
        ...


class Quiet:
    def on_ready(self, node: Node, rd: Ready) -> None:
        pass

    def on_propose(self, node: Node, envelope: Envelope, index: int | None) -> None:
        pass

    def on_applied(self, node: Node, applied: Applied) -> None:
        pass

    def on_restored(self, node: Node, meta: SnapshotMeta) -> None:
        pass
