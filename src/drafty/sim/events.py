"""The simulator's events: what the event queue holds, one frozen dataclass each.

Theory of operation
-------------------
The queue orders events by (virtual ms, insertion number). Node events
(:class:`Tick`, :class:`Deliver`, :class:`SyncDone`) name the node they
touch; client and nemesis events carry only ids, and the simulation looks up
the current state when they fall due, so a stale event (a sync of a crashed
lifetime, the timeout of an answered request) is recognised and ignored.

Invariants: events are immutable and carry no references to mutable
simulator state (messages and entries are frozen too).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import Message, NodeId, Ready
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
    sync: int


@dataclass(frozen=True, slots=True)
class ClientWake:
    client: int


@dataclass(frozen=True, slots=True)
class ClientTimeout:
    client: int
    req: int


@dataclass(frozen=True, slots=True)
class NemesisAct:
    pass


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
    Tick | Deliver | SyncDone | ClientWake | ClientTimeout | NemesisAct | Fault | Heal | Deadline
)

Note = tuple[NodeId, Ready] | str
"""What an event led to, kept for the trace: a node's Ready, or a text note."""
