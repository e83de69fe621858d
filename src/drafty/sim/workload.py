"""Simulated clients: the native client's retry rules over lossy links, recording a history.

Theory of operation
-------------------
Each :class:`SimClient` runs one operation at a time, chosen from the ``kv``
vocabulary of the histories format: ``get`` (``GET key``), ``put``
(``SET key value``) and ``append`` (``APPEND key value``) on a few keys,
every written value a unique token ``"x <client> <n> y"``. An operation is a
:class:`drafty.service.calls.Call`, the very object the native client runs:
writes open a session and go out as ``SEQ session seq ...``, lost or
uncertain answers are retried with the same pair, leader hints are followed,
and the call ends in a result, ``Refused`` or ``OutcomeUnknown``.

Each attempt travels to a node's service front (:mod:`drafty.service.commands`,
the same code the RESP server runs) over a client link with latency and a
per-seed loss rate; a request or its answer may be lost, and an attempt is
abandoned after ``attempt_timeout_ms``, or at once when its node crashes
(the connection resets). Attempts to a node that is down fail to connect.

Outcomes go to the history: ``ok`` (result), ``fail`` (``Refused``: it
certainly had no effect), ``info`` (``OutcomeUnknown``; the client goes on
under a new process number, as the format requires). Every write's token,
outcome and the ``(session, seq)`` pairs it was sent under are reported to
the :class:`Host` (the oracle checks them against what the log executed).

After the fault phase the regular clients stop, and a *probe* client writes
until one write is ``ok``: the liveness check.

When the cluster's membership changes (:meth:`Workload.set_servers`), every
client's server list becomes the new members, as an operator would update
a client's configuration; a leader hint may still name any node.

Invariants
----------
- A client's ``process`` has at most one operation outstanding; ``info``
  retires the process.
- Only the answer to the client's current attempt is acted on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core import DraftyError, NodeId
from ..node import OutcomeUnknown, Refused
from ..service.calls import Call, ClientState, Done, Fail, Pause, Send
from .events import ClientArrive, ClientLost, ClientWake, Event
from .history import History
from .replica import NodeState, Replica

JsonValue = str | int | None
KEYS = ("0", "1", "2")


def address(node: NodeId) -> tuple[str, int]:
    """A node's client address in the simulation."""
    return ("sim", node)


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation: history fields plus the command to send."""

    f: str
    key: str
    value: str | None
    argv: tuple[bytes, ...]

    @property
    def write(self) -> bool:
        return self.f != "get"


class Host(Protocol):
    """What the workload needs from the simulation."""

    now: int

    def replica(self, node: NodeId) -> Replica: ...

    def schedule(self, at: int, ev: Event) -> None: ...

    def client_latency(self) -> int: ...

    def note(self, text: str, log: bool = True) -> None: ...

    def write_ended(self, op: Operation, outcome: str, pairs: list[tuple[int, int]]) -> None:
        """A write finished ``ok``, ``fail`` or ``info``, sent under ``pairs``."""
        ...

    def probe_ok(self, token: str) -> None: ...

    def client_error(self, text: str) -> None: ...


@dataclass(slots=True)
class SimClient:
    id: int
    process: int
    state: ClientState
    probe: bool = False
    ops: int = 0
    op: Operation | None = None
    call: Call | None = None
    attempt: int = 0
    in_flight: bool = False
    pairs: list[tuple[int, int]] = field(default_factory=list)


class Workload:
    """The clients of one run; see the module docstring."""

    def __init__(
        self,
        host: Host,
        rng: random.Random,
        nodes: tuple[NodeId, ...],
        clients: int,
        *,
        attempt_timeout_ms: int,
        deadline_ms: int,
        think_ms: int,
        drop: float,
    ) -> None:
        self.host = host
        self.rng = rng
        self.nodes = nodes
        self.attempt_timeout_ms = attempt_timeout_ms
        self.deadline_ms = deadline_ms
        self.think_ms = think_ms
        self.drop = drop
        self.servers: list[NodeId] = list(nodes)
        """The nodes clients send to (the members; every node until a change)."""
        self.history = History()
        self.clients = [self._new_client(c, probe=False) for c in range(clients)]
        self.stopped = False
        self._next_process = clients

    def _new_client(self, cid: int, probe: bool) -> SimClient:
        servers = [address(n) for n in self.servers]
        self.rng.shuffle(servers)
        return SimClient(cid, cid, ClientState(servers), probe=probe)

    def set_servers(self, nodes: list[NodeId]) -> None:
        """The members changed: clients send to ``nodes`` from now on (each
        client in its own rotation, so they do not all start at one node)."""
        self.servers = list(nodes)
        for c in self.clients:
            k = c.id % len(nodes)
            c.state.servers = [address(n) for n in nodes[k:] + nodes[:k]]
            c.state.current %= len(nodes)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        for c in self.clients:
            self.host.schedule(self.host.now + self.rng.randint(0, self.think_ms), ClientWake(c.id))

    def start_probe(self) -> None:
        """Stop regular clients; start the liveness probe client."""
        self.stopped = True
        cid = len(self.clients)
        c = self._new_client(cid, probe=True)
        c.process = self._new_process()
        self.clients.append(c)
        self.host.schedule(self.host.now, ClientWake(cid))

    def _new_process(self) -> int:
        self._next_process += 1
        return self._next_process - 1

    def wake(self, cid: int) -> None:
        c = self.clients[cid]
        if c.call is not None:
            if not c.in_flight:
                self._advance(c)
            return
        if self.stopped and not c.probe:
            return
        c.ops += 1
        op = self._generate(c)
        c.op, c.pairs = op, []
        c.call = Call(c.state, list(op.argv), self.host.now, self.deadline_ms)
        self.history.invoke(c.process, op.f, op.key, op.value, self.host.now)
        self._advance(c)

    def _generate(self, c: SimClient) -> Operation:
        rng = self.rng
        f = "put" if c.probe else rng.choices(("get", "put", "append"), (2, 1, 3))[0]
        key = rng.choice(KEYS)
        if f == "get":
            return Operation(f, key, None, (b"GET", key.encode()))
        value = f"x {c.id} {c.ops} y"
        verb = b"SET" if f == "put" else b"APPEND"
        return Operation(f, key, value, (verb, key.encode(), value.encode()))

    # -- attempts ------------------------------------------------------------

    def _advance(self, c: SimClient) -> None:
        """Run the call until it waits for an answer, a pause, or ends."""
        host = self.host
        call = c.call
        assert call is not None
        while True:
            step = call.next(host.now)
            if isinstance(step, Done):
                self._finish(c, "ok", step.value)
                return
            if isinstance(step, Fail):
                self._fail(c, step.error)
                return
            if isinstance(step, Pause):
                host.schedule(host.now + max(1, step.ms), ClientWake(c.id))
                return
            if self._send(c, step):
                return

    def _send(self, c: SimClient, step: Send) -> bool:
        """Start an attempt; False if it failed at once (the node is down)."""
        assert c.call is not None
        host = self.host
        node = step.target[1]
        c.attempt += 1
        if step.argv[0] == b"SEQ":
            pair = (int(step.argv[1]), int(step.argv[2]))
            if pair not in c.pairs:
                c.pairs.append(pair)
        if node not in self.nodes or host.replica(node).state is NodeState.DOWN:
            c.call.unanswered(f"cannot connect to node {node}", sent=False)
            return False
        c.in_flight = True
        if self.rng.random() >= self.drop:
            host.schedule(
                host.now + host.client_latency(), ClientArrive(c.id, c.attempt, node, step.argv)
            )
        host.schedule(
            host.now + self.attempt_timeout_ms, ClientLost(c.id, c.attempt, "no answer in time")
        )
        return True

    def answer(self, cid: int, attempt: int, value: Any, error: str | None) -> None:
        c = self.clients[cid]
        if c.call is None or attempt != c.attempt or not c.in_flight:
            return
        c.in_flight = False
        c.call.replied(value, error)
        self._advance(c)

    def lost(self, cid: int, attempt: int, why: str) -> None:
        c = self.clients[cid]
        if c.call is None or attempt != c.attempt or not c.in_flight:
            return
        c.in_flight = False
        c.call.unanswered(why, sent=True)
        self._advance(c)

    def answer_survives(self) -> bool:
        """Whether an answer survives the client link (False: lost on the way)."""
        return self.rng.random() >= self.drop

    # -- outcomes ----------------------------------------------------------

    def _fail(self, c: SimClient, error: DraftyError) -> None:
        if isinstance(error, Refused):
            self._finish(c, "fail", error.reason)
        elif isinstance(error, OutcomeUnknown):
            self._finish(c, "info", str(error))
        else:
            self.host.client_error(f"client {c.id}: {type(error).__name__}: {error}")
            self._finish(c, "info", str(error))

    def _finish(self, c: SimClient, outcome: str, value: Any) -> None:
        op, call = c.op, c.call
        assert op is not None and call is not None
        host = self.host
        if outcome == "ok":
            result: JsonValue = op.value
            if op.f == "get":
                result = None if value is None else bytes(value).decode()
            self.history.complete(c.process, "ok", op.f, op.key, result, host.now)
        elif outcome == "fail":
            self.history.complete(c.process, "fail", op.f, op.key, op.value, host.now,
                                  error=str(value))  # fmt: skip
        else:
            self.history.complete(c.process, "info", op.f, op.key, op.value, host.now)
        host.note(
            f"client {c.id} process {c.process}: {op.f} {op.key!r} {op.value!r} {outcome} "
            f"after {call.attempts} attempts",
            log=False,
        )
        if op.write:
            host.write_ended(op, outcome, list(c.pairs))
        c.op, c.call = None, None
        if outcome == "info":
            c.process = self._new_process()
        if c.probe and outcome == "ok":
            assert op.value is not None
            host.probe_ok(op.value)
            return
        delay = self.rng.randint(0, self.think_ms)
        host.schedule(host.now + delay, ClientWake(c.id))
