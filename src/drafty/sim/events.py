"""The simulator's events: what the event queue holds, one frozen dataclass each.

Theory of operation
-------------------
The queue orders events by (virtual ms, insertion number). Node events
(:class:`Tick`, :class:`Deliver`, :class:`SyncDone`, :class:`ClientArrive`)
name the node they touch; client and nemesis events carry only ids, and the simulation looks up
the current state when they fall due, so a stale event (a sync of a crashed
lifetime, the timeout of an answered request) is recognised and ignored.

Invariants: events are immutable and carry no references to mutable
simulator state (messages and entries are frozen too).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import Message, NodeId, Ready
from ..node import Job
from .nemesis import FaultAction


@dataclass(frozen=True, slots=True)
class Tick:
    node: NodeId


@dataclass(frozen=True, slots=True)
class Deliver:
    msg: Message


@dataclass(frozen=True, slots=True)
class SyncDone:
    node: NodeId
    epoch: int
    upto: int
    """The node's write sequence number the sync covers."""


@dataclass(frozen=True, slots=True)
class JobDone:
    """A node's snapshot job (a save or the check of a received file) ran its time."""

    node: NodeId
    epoch: int
    job: Job


@dataclass(frozen=True, slots=True)
class ClientWake:
    client: int


@dataclass(frozen=True, slots=True)
class ClientArrive:
    """A client's request reaches a node's service front."""

    client: int
    attempt: int
    node: NodeId
    argv: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ClientAnswer:
    """A node's reply reaches the client (``error``: an error reply's text)."""

    client: int
    attempt: int
    value: object
    error: str | None


@dataclass(frozen=True, slots=True)
class ClientLost:
    """The client's connection broke (the node crashed) or its attempt timed out."""

    client: int
    attempt: int
    why: str


@dataclass(frozen=True, slots=True)
class NemesisAct:
    pass


@dataclass(frozen=True, slots=True)
class MemberAct:
    """The membership nemesis takes its next step (:mod:`drafty.sim.members`)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """The membership nemesis stops a node for good (not inside another node's step)."""

    node: NodeId


@dataclass(frozen=True, slots=True)
class Fault:
    action: FaultAction


@dataclass(frozen=True, slots=True)
class Heal:
    pass


@dataclass(frozen=True, slots=True)
class Deadline:
    what: str


Event = (
    Tick | Deliver | SyncDone | JobDone | ClientWake | ClientArrive | ClientAnswer | ClientLost
    | NemesisAct | MemberAct | Stop | Fault | Heal | Deadline
)  # fmt: skip

Note = tuple[NodeId, Ready] | str
"""What an event led to, kept for the trace: a node's Ready, or a text note."""
