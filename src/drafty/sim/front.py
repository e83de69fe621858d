"""Each simulated node's service front: what the RESP server does, without sockets.

Theory of operation
-------------------
A client's attempt arrives at a node (:class:`~drafty.sim.events.ClientArrive`).
The front plans it with :func:`drafty.service.commands.plan`, the function
the RESP server uses: an immediate error reply goes straight back; a
proposal is submitted to the node layer and remembered under its request
number. When the node replies, :func:`drafty.service.commands.answer` turns
the outcome into the reply a real client would read (``-TRYAGAIN`` with a
leader hint, ``-UNCERTAIN``, ``-SESSIONEXPIRED`` or the value), and it
travels back over the client link (which may lose it). A node that crashes
resets its connections: every attempt waiting there is lost at once.

Invariants: a request number is remembered only while its node lives; each
attempt gets at most one answer from the front.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..core import NodeId
from ..node import Reply
from ..service import commands
from ..service.resp import Error
from .events import ClientAnswer, ClientArrive, ClientLost, Event
from .replica import Replica


class Host(Protocol):
    now: int

    def schedule(self, at: int, ev: Event) -> None: ...

    def client_latency(self) -> int: ...

    def drive(self, node: NodeId) -> None: ...

    def answer_survives(self) -> bool:
        """Whether an answer survives the client link."""
        ...


class ServiceFront:
    """The fronts of all nodes of a run (see the module docstring)."""

    def __init__(self, host: Host, nodes: Sequence[NodeId]) -> None:
        self.host = host
        self.waiting: dict[NodeId, dict[int, tuple[int, int]]] = {i: {} for i in nodes}
        """Per node: request number -> (client, attempt) waiting for its reply."""

    def arrive(self, rep: Replica, ev: ClientArrive) -> None:
        """An attempt reached running node ``rep``."""
        plan = commands.plan(list(ev.argv))
        if isinstance(plan, Error):
            self._answer(ev.client, ev.attempt, None, plan.text)
            return
        node, now = rep.node, rep.now(self.host.now)
        if plan.read:
            rid = node.read(plan.command, now)
        elif plan.open_session:
            rid = node.open_session(now)
        else:
            rid = node.submit(plan.command, now, client=plan.client, seq=plan.seq)
        self.waiting[rep.id][rid] = (ev.client, ev.attempt)
        self.host.drive(rep.id)

    def replied(self, rep: Replica, replies: Sequence[Reply]) -> None:
        waiting = self.waiting[rep.id]
        for r in replies:
            who = waiting.pop(r.request, None)
            if who is None:
                continue
            reply = commands.answer(r.value, r.error, self._hint)
            if isinstance(reply, Error):
                self._answer(who[0], who[1], None, reply.text)
            else:
                self._answer(who[0], who[1], reply, None)

    def reset(self, node: NodeId, why: str) -> None:
        """``node`` crashed: every attempt waiting there loses its connection."""
        host = self.host
        for client, attempt in self.waiting[node].values():
            host.schedule(host.now + host.client_latency(), ClientLost(client, attempt, why))
        self.waiting[node].clear()

    def refuse(self, ev: ClientArrive) -> None:
        """The attempt reached a node that is down: its connection resets."""
        host = self.host
        host.schedule(host.now + host.client_latency(),
                      ClientLost(ev.client, ev.attempt, "connection reset"))  # fmt: skip

    def _answer(self, client: int, attempt: int, value: Any, error: str | None) -> None:
        host = self.host
        if host.answer_survives():
            host.schedule(host.now + host.client_latency(),
                          ClientAnswer(client, attempt, value, error))  # fmt: skip

    def _hint(self, leader: NodeId) -> str:
        return f" (leader is node {leader} at sim:{leader})" if leader in self.waiting else ""
