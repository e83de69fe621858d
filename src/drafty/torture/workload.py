"""The clients: concurrent reads, writes and compare-and-sets on a few registers.

Theory of operation
-------------------
Each of C clients is an asyncio task with its own seeded PRNG, talking to one
node at a time over its own RESP connection (client ``c`` starts at node
``c mod N``). It loops: pick an operation (read 40 %, write 30 %, cas 30 %)
on one of K keys (``r0`` ...), record the invoke, send the command with a
per-operation deadline, and record the completion that
:func:`drafty.torture.history.classify` gives the reply. Written values are
unique integers from one counter, so the checker can tell writes apart; a
cas aims at the value last seen on that key (so some succeed) and swaps in a
fresh one.

After an outcome of unknown effect (``info``) the client continues under a
new process number, as the history format requires. A connection that
failed, timed out or broke is closed and the client moves to the next node;
so does a client that keeps hearing ``-TRYAGAIN`` (a node cut off from the
leader), after a short pause. Every few seconds each client also moves to a
random node, so clients stay spread over every node (otherwise they would
drift away from nodes that once failed them and never see those nodes'
behaviour under the next fault). Nothing is retried behind the history's back:
every attempt is its own operation.

:meth:`Workload.final_reads` runs after the faults: a linearizable GET of
every key through every node, recorded in the same history (an acknowledged
write that was lost shows up there as a read the checker cannot place).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field

from .cluster import Nodes
from .history import Outcome, Recorder, Value, classify, command
from .resp import Conn, Reply

TRYAGAIN_BEFORE_MOVING = 3
REHOME_S = (2.0, 5.0)
"""Every few seconds (drawn from this range) a client moves to a random node."""


@dataclass
class Workload:
    nodes: Nodes
    recorder: Recorder
    clients: int
    keys: int
    op_timeout: float
    seed: int
    rate: float = 0.0
    """Operations per second over all clients; 0 for no limit."""
    unexpected: list[str] = field(default_factory=list)
    _stopping: bool = False
    _values: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _known: dict[str, int] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def key_names(self) -> list[str]:
        return [f"r{k}" for k in range(self.keys)]

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client(c)) for c in range(self.clients)]

    async def stop(self) -> None:
        """Let each client finish its current operation, then end."""
        self._stopping = True
        done, pending = await asyncio.wait(self._tasks, timeout=self.op_timeout + 5)
        for t in pending:
            t.cancel()
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                self.unexpected.append(f"client task crashed: {t.exception()!r}")

    def _choose(self, rng: random.Random) -> tuple[str, str, Value]:
        key = rng.choice(self.key_names)
        r = rng.random()
        if r < 0.4:
            return "read", key, None
        if r < 0.7 or key not in self._known:
            return "write", key, next(self._values)
        return "cas", key, [self._known[key], next(self._values)]

    def _learn(self, f: str, key: str, outcome: Outcome) -> None:
        if outcome.type != "ok":
            return
        if f in ("read", "write") and isinstance(outcome.value, int):
            self._known[key] = outcome.value
        elif f == "cas" and isinstance(outcome.value, list) and isinstance(outcome.value[1], int):
            self._known[key] = outcome.value[1]

    async def _client(self, c: int) -> None:
        rng = random.Random(f"{self.seed}-{c}")
        ids = self.nodes.ids
        at = c % len(ids)
        process = self.recorder.new_process()
        conn: Conn | None = None
        tryagain = 0
        move_at = time.monotonic() + rng.uniform(*REHOME_S)
        gap = self.clients / self.rate if self.rate > 0 else 0.0
        next_op = time.monotonic() + rng.uniform(0, gap)
        while not self._stopping:
            if gap:
                await asyncio.sleep(max(0.0, next_op - time.monotonic()))
                next_op = max(next_op + gap, time.monotonic() - gap)
            if time.monotonic() >= move_at:  # keep clients spread over every node
                move_at = time.monotonic() + rng.uniform(*REHOME_S)
                if conn is not None:
                    conn.close()
                at = rng.randrange(len(ids))
            node = ids[at]
            if conn is None or conn.closed:
                try:
                    conn = await Conn.open(self.nodes.client(node), 1.0, self.nodes.net.socket)
                except (OSError, TimeoutError):
                    conn = None
                    at = (at + 1) % len(ids)
                    await asyncio.sleep(0.05)
                    continue
            f, key, value = self._choose(rng)
            self.recorder.invoke(process, f, key, value, node)
            reply: Reply | BaseException
            try:
                reply = await conn.call(*command(f, key, value), timeout=self.op_timeout)
            except (TimeoutError, ConnectionError) as e:
                reply = e
            outcome = classify(f, value, reply)
            self.recorder.complete(process, f, key, outcome, node)
            if outcome.unexpected:
                self.unexpected.append(f"node {node}: {outcome.unexpected}")
            self._learn(f, key, outcome)
            if outcome.type == "info":
                process = self.recorder.new_process()
            if outcome.type == "fail" and outcome.error is not None:
                tryagain += 1
                await asyncio.sleep(0.05)
            elif outcome.type != "info":
                tryagain = 0
            if conn.closed or tryagain >= TRYAGAIN_BEFORE_MOVING:
                conn.close()
                conn = None
                tryagain = 0
                at = (at + 1) % len(ids)
        if conn is not None:
            conn.close()

    async def final_reads(self, timeout: float) -> dict[str, dict[int, Value]]:
        """Read every key through every node (recorded); ``{key: {node: value}}``."""
        deadline = time.monotonic() + timeout
        out: dict[str, dict[int, Value]] = {}
        for key in self.key_names:
            for node in self.nodes.ids:
                got = await self._read_until_ok(key, node, deadline)
                if got is not None:
                    out.setdefault(key, {})[node] = got.value
        return out

    async def _read_until_ok(self, key: str, node: int, deadline: float) -> Outcome | None:
        """The successful read through ``node`` (None: none before the deadline)."""
        while time.monotonic() < deadline:
            process = self.recorder.new_process()
            self.recorder.invoke(process, "read", key, None, node)
            reply: Reply | BaseException
            try:
                conn = await Conn.open(self.nodes.client(node), 1.0, self.nodes.net.socket)
            except (OSError, TimeoutError) as e:
                # Nothing was sent: certainly no effect (and a read has none anyway).
                outcome = Outcome("fail", None, f"connect: {e!r}")
            else:
                try:
                    reply = await conn.call(*command("read", key, None), timeout=self.op_timeout)
                except (TimeoutError, ConnectionError) as e:
                    reply = e
                finally:
                    conn.close()
                outcome = classify("read", None, reply)
            self.recorder.complete(process, "read", key, outcome, node)
            if outcome.unexpected:
                self.unexpected.append(f"node {node}: final {outcome.unexpected}")
            if outcome.type == "ok":
                return outcome
            await asyncio.sleep(0.1)
        return None
