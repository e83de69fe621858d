"""Simulated clients: propose operations, wait for them, record a history.

Theory of operation
-------------------
Each :class:`Client` has at most one operation outstanding. It proposes the
operation's bytes straight into the RawNode of the node it believes leads
(``target``), and the outcome is decided by what that node later does:

- the node is down or paused: ``fail`` ("unavailable"), certainly no effect;
- ``propose`` raises NotLeader: ``fail`` ("not leader"), certainly no effect,
  and the client retargets to the leader named in the error, if any;
- the node applies the operation (recognised by ``(client, req)``): ``ok``
  with the state machine's result;
- the node applies another entry at the index the proposal got, its term
  moves on (a leader change), it crashes, or the timeout passes: ``info``,
  the outcome is unknown and the client continues under a new process
  number (as the history format requires).

After the fault phase the regular clients stop starting operations, and a
*probe* client keeps writing through the current leader until one write is
``ok``: that is the liveness check.

Invariants
----------
- A client's ``process`` has at most one operation outstanding; ``info``
  retires the process.
- ``ok`` only for an operation its proposing node applied in the same
  lifetime; ``fail`` only when the proposal was never accepted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from ..core import NONE, Entry, NodeId, NotLeader
from .history import History
from .kv import JsonValue, Model, Operation
from .replica import Replica


class Host(Protocol):
    """What the workload needs from the simulation."""

    now: int

    def replica(self, node: NodeId) -> Replica: ...

    def wake_client(self, client: int, at: int) -> None: ...

    def client_timeout(self, client: int, req: int, at: int) -> None: ...

    def drive(self, node: NodeId) -> None: ...

    def acknowledged(self, index: int) -> None: ...

    def probe_ok(self, index: int) -> None: ...

    def leader_guess(self) -> NodeId | None: ...

    def note(self, text: str, log: bool = True) -> None:
        """Record a line in the trace of the current event."""
        ...


@dataclass(slots=True)
class Client:
    id: int
    process: int
    target: NodeId
    probe: bool = False
    req: int = 0
    op: Operation | None = None
    node: NodeId = NONE
    """Where the outstanding operation was proposed."""
    epoch: int = 0
    term: int = 0
    index: int | None = None


class Workload:
    """The clients of one run; see the module docstring."""

    def __init__(
        self,
        host: Host,
        model: Model,
        rng: random.Random,
        nodes: tuple[NodeId, ...],
        clients: int,
        *,
        timeout_ms: int,
        think_ms: int,
    ) -> None:
        self.host = host
        self.model = model
        self.rng = rng
        self.nodes = nodes
        self.timeout_ms = timeout_ms
        self.think_ms = think_ms
        self.history = History()
        self.n_clients = clients
        self.clients = [Client(c, c, rng.choice(nodes)) for c in range(clients)]
        self.acked: list[tuple[int, Operation]] = []
        self.stopped = False
        self._next_process = clients
        self._waiting: dict[NodeId, int] = {}

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        for c in self.clients:
            self.host.wake_client(c.id, self.host.now + self.rng.randint(0, self.think_ms))

    def start_probe(self) -> None:
        """Stop regular clients; start the liveness probe client."""
        self.stopped = True
        cid = len(self.clients)
        self.clients.append(Client(cid, self._new_process(), self.rng.choice(self.nodes), True))
        self.host.wake_client(cid, self.host.now)

    def _new_process(self) -> int:
        self._next_process += 1
        return self._next_process - 1

    def wake(self, cid: int) -> None:
        c = self.clients[cid]
        if c.op is not None or (self.stopped and not c.probe):
            return
        host = self.host
        now = host.now
        if c.probe:
            guess = host.leader_guess()
            if guess is not None:
                c.target = guess
        c.req += 1
        op = self.model.generate(self.rng, cid, c.req)
        self.history.invoke(c.process, op, now)
        rep = host.replica(c.target)
        what = f"client {cid} process {c.process}: {op.f} {op.key!r} {op.value!r} at node {rep.id}"
        if not rep.running:
            self._fail(c, op, "unavailable", what)
            c.target = self.rng.choice(self.nodes)
            return
        try:
            index = rep.raw.propose(op.data)
        except NotLeader as e:
            self._fail(c, op, "not leader", what)
            c.target = e.leader if e.leader != NONE else self.rng.choice(self.nodes)
            return
        c.op, c.node, c.epoch, c.index = op, rep.id, rep.epoch, index
        c.term = rep.raw.raft.term
        where = "forwarded" if index is None else f"index {index}"
        host.note(f"{what}: proposed, {where} term {c.term}", log=False)
        self._waiting[rep.id] = self._waiting.get(rep.id, 0) + 1
        host.client_timeout(cid, c.req, now + self.timeout_ms)
        host.drive(rep.id)

    def _fail(self, c: Client, op: Operation, error: str, what: str) -> None:
        self.history.fail(c.process, op, error, self.host.now)
        self.host.note(f"{what}: fail ({error})", log=False)
        self._next(c, self.think_ms // 3)

    def _next(self, c: Client, at_least: int = 0) -> None:
        delay = max(at_least, self.rng.randint(0, self.think_ms))
        self.host.wake_client(c.id, self.host.now + delay)

    def _done(self, c: Client) -> Operation:
        op = c.op
        assert op is not None
        self._waiting[c.node] -= 1
        c.op = None
        return op

    def _info(self, c: Client, why: str) -> None:
        op = self._done(c)
        self.history.info(c.process, op, self.host.now)
        self.host.note(
            f"client {c.id} process {c.process}: {op.f} {op.key!r} info ({why})", log=False
        )
        c.process = self._new_process()
        c.target = self.rng.choice(self.nodes)
        self._next(c, self.think_ms // 3)

    # -- outcomes ----------------------------------------------------------

    def on_applied(self, rep: Replica, e: Entry, result: JsonValue) -> None:
        if not self._waiting.get(rep.id):
            return
        ident = self.model.identify(e.data) if e.data else None
        for c in self.clients:
            if c.op is None or c.node != rep.id or c.epoch != rep.epoch:
                continue
            if ident == (c.id, c.req):
                op = self._done(c)
                self.history.ok(c.process, op, result, self.host.now)
                self.host.note(
                    f"client {c.id} process {c.process}: {op.f} {op.key!r} ok {result!r} "
                    f"(index {e.index} on node {rep.id})",
                    log=False,
                )
                if op.write:
                    self.acked.append((e.index, op))
                    self.host.acknowledged(e.index)
                if c.probe:
                    self.host.probe_ok(e.index)
                else:
                    self._next(c)
            elif c.index == e.index:
                self._info(c, f"another entry took index {e.index}")

    def after_event(self, rep: Replica) -> None:
        """Give up on operations whose proposing node changed term (leader change)."""
        if not self._waiting.get(rep.id):
            return
        term = rep.raw.raft.term
        for c in self.clients:
            if c.op is not None and c.node == rep.id and c.epoch == rep.epoch and c.term != term:
                self._info(c, f"node {rep.id} moved to term {term}")

    def on_crash(self, node: NodeId) -> None:
        if not self._waiting.get(node):
            return
        for c in self.clients:
            if c.op is not None and c.node == node:
                self._info(c, f"node {node} crashed")

    def on_timeout(self, cid: int, req: int) -> None:
        c = self.clients[cid]
        if c.op is not None and c.req == req:
            self._info(c, "timeout")
