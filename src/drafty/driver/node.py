"""RaftNode: the asyncio adapters around the pure :class:`~drafty.node.Node`.

Theory of operation
-------------------
Everything a member decides lives in :class:`drafty.node.Node`, which does no
I/O; this module only connects it to the platform:

- **clock**: a ticker task calls ``tick`` every ``tick_ms`` of the loop's
  monotonic clock (missed ticks are skipped, never bursted); every input
  carries an :class:`~drafty.node.Instant` read from the loop's monotonic
  clock and ``time.time()``;
- **sockets**: peer messages from :class:`~drafty.transport.tcp.PeerTransport`
  go to ``receive``; ``Actions.messages`` go back to it;
- **files**: ``Actions.writes`` are appended to the write-ahead log on the
  loop (``os.write``, no fsync); ``Actions.sync`` runs ``fsync`` in a
  dedicated thread, one at a time, and reports ``synced`` when it returns;
- **callers**: :meth:`RaftNode.submit` registers a future under the request
  number the node returns; ``Actions.replies`` resolve them.

Every input only pokes the node and schedules one :meth:`_process` pass with
``call_soon``, so everything that arrives in one loop iteration leaves in one
Ready: many proposals become one log append, one fsync and one AppendEntries
per follower (group commit).

Failures cross into the node at one boundary: a failed write or fsync (or a
bug surfacing as an exception from the node) is fatal: :meth:`Node.fail`
answers every waiting caller with an unknown outcome, the ticker and the
transport stop (a failed node must not keep heartbeating), and ``on_fatal``
tells the host.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import NONE, Config, NodeId, RawNode, Ready, Role, Status, describe
from ..luid import luid
from ..node import Actions, Applied, Instant, Node, NodeOptions, Refused, StateMachine, Verdict
from ..node.envelope import Envelope
from ..storage import NodeStorage, WriteAheadLog
from ..transport.tcp import Address, PeerTransport

log = logging.getLogger("drafty.driver")


@dataclass(frozen=True)
class NodeSettings:
    """Where a node lives and how fast its clock runs."""

    id: NodeId
    cluster: str
    peers: dict[NodeId, Address]
    """Raft address of every voter, this node included."""
    data_dir: Path
    tick_ms: int = 50
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    request_timeout: float = 5.0
    session_ttl_ms: int = 10 * 60 * 1000
    seed: int | None = None
    extra_config: dict[str, Any] = field(default_factory=dict)
    node_options: dict[str, Any] = field(default_factory=dict)
    """Further :class:`~drafty.node.NodeOptions` fields."""


_RPC_NAMES = {
    "AppendEntries": "append",
    "AppendResponse": "append-ack",
    "VoteRequest": "vote",
    "VoteResponse": "vote-ack",
    "Heartbeat": "heartbeat",
    "HeartbeatResponse": "heartbeat-ack",
    "Propose": "forward",
}


class _Tracer:
    """Logs role changes, and with debug on every Ready, each RPC named by a
    locally unique id (``append-4093``)."""

    def on_ready(self, node: Node, rd: Ready) -> None:
        soft = rd.soft_state
        if soft is not None and (soft.role is not Role.LEADER or soft.leader != node.id):
            who = f"node {soft.leader}" if soft.leader != NONE else "unknown"
            log.info("node %d: %s, term %d, leader %s", node.id, soft.role.value,
                     node.raw.raft.term, who)  # fmt: skip
        elif soft is not None:
            log.info("node %d: leader of term %d", node.id, node.raw.raft.term)
        if not log.isEnabledFor(logging.DEBUG):
            return
        name = luid("ready")
        log.debug("node %d %s: %d entries to persist, %d to apply, hard state %s", node.id,
                  name, len(rd.entries), len(rd.committed_entries), rd.hard_state)  # fmt: skip
        for m in (*rd.messages, *rd.messages_after_persist):
            rpc = luid(_RPC_NAMES.get(type(m).__name__, "message"))
            log.debug("node %d %s %s: %s", node.id, name, rpc, describe.message(m))

    def on_propose(self, node: Node, envelope: Envelope, index: int | None) -> None:
        pass

    def on_applied(self, node: Node, applied: Applied) -> None:
        if applied.verdict is Verdict.MALFORMED:
            log.error("node %d: entry %d skipped: not a valid envelope", node.id,
                      applied.entry.index)  # fmt: skip


def now() -> Instant:
    """The clocks, read once."""
    return Instant(int(time.monotonic() * 1000), int(time.time() * 1000))


class RaftNode:
    """Runs one Raft member on asyncio: see the module docstring."""

    def __init__(self, settings: NodeSettings, machine: StateMachine) -> None:
        self.settings = settings
        self.id = settings.id
        self.machine = machine
        self.failed: BaseException | None = None
        self.on_fatal: Callable[[BaseException], None] | None = None
        self._rng = random.Random(settings.seed)
        self._storage: NodeStorage | None = None
        self._wal: WriteAheadLog | None = None
        self._node: Node | None = None
        self._transport: PeerTransport | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"fsync-{settings.id}")
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._stopped = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None

    # -- life cycle ----------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()

        def open_storage() -> tuple[NodeStorage, int]:
            storage = NodeStorage.open(s.data_dir, cluster_id=s.cluster, node_id=s.id)
            try:
                return storage, storage.next_incarnation(now().wall_ms)
            except BaseException:
                storage.close(sync=False)
                raise

        storage, incarnation = await loop.run_in_executor(self._executor, open_storage)
        self._storage = storage
        wal = self._wal = storage.log
        entries = wal.entries(wal.first_index, wal.last_index) if wal.last_index else []
        config = Config(
            id=s.id,
            voters=tuple(sorted(s.peers)),
            election_ticks=s.election_ticks,
            heartbeat_ticks=s.heartbeat_ticks,
            forward_proposals=True,
            **s.extra_config,
        )
        raw = RawNode(
            config,
            random.Random(self._rng.getrandbits(64)),
            hard_state=wal.hard_state,
            entries=entries,
            offset=wal.base_index,
            offset_term=wal.base_term,
        )
        options = NodeOptions(
            request_timeout_ms=max(1, int(s.request_timeout * 1000)),
            session_ttl_ms=s.session_ttl_ms,
            **s.node_options,
        )
        self._node = Node(
            raw, self.machine, incarnation=incarnation, now=now(), options=options,
            observer=_Tracer(),
        )  # fmt: skip
        log.info(
            "node %d: recovered term %d, vote %d, commit %d, log %d..%d from %s (life %d)",
            s.id, wal.hard_state.term, wal.hard_state.vote, wal.hard_state.commit,
            wal.first_index, wal.last_index, s.data_dir, incarnation,
        )  # fmt: skip
        peers = {p: a for p, a in s.peers.items() if p != s.id}
        self._transport = PeerTransport(s.id, s.cluster, peers, self._deliver, rng=self._rng)
        await self._transport.start(s.peers[s.id])
        self._spawn(self._ticker(), f"ticker-{s.id}")
        self._kick()

    async def stop(self) -> None:
        """Stop ticking and talking; answer waiting callers; close the log."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._node is not None:
            self._node.stop()
            self._carry_out(self._node.take())
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._closing is not None:
            await self._closing
        if self._transport is not None:
            await self._transport.close()
        if self._storage is not None and self.failed is None:
            storage = self._storage
            await asyncio.get_running_loop().run_in_executor(self._executor, storage.close)
        self._executor.shutdown(wait=True)

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError("node not started")
        return self._node

    @property
    def raw(self) -> RawNode:
        return self.node.raw

    @property
    def applied(self) -> int:
        return self._node.applied if self._node is not None else 0

    def status(self) -> Status:
        return self.node.status()

    def leader(self) -> NodeId:
        return self._node.leader if self._node is not None else NONE

    # -- input -------------------------------------------------------------

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.tick_ms / 1000
        deadline = loop.time()
        node = self.node
        while True:
            deadline += interval
            t = loop.time()
            if deadline < t - interval:
                deadline = t  # the loop stalled: skip missed ticks, don't burst
            await asyncio.sleep(max(0.0, deadline - t))
            node.tick(now())
            self._kick()

    def _deliver(self, msgs: list[Any]) -> None:
        if self._stopped.is_set() or self._node is None:
            return
        self._node.receive(msgs, now())
        self._kick()

    async def submit(
        self, command: bytes, *, client: int = 0, seq: int = 0, timeout: float | None = None
    ) -> Any:
        """Replicate ``command`` and return what the state machine answered.

        Raises :class:`~drafty.node.Refused` (certainly no effect),
        :class:`~drafty.node.OutcomeUnknown`, :class:`~drafty.node.SessionExpired`
        (``client`` names no live session) or :class:`~drafty.node.StateMachineError`.
        """
        if self._node is None:
            raise Refused("node is not started")
        ms = None if timeout is None else max(1, int(timeout * 1000))
        rid = self._node.submit(command, now(), client=client, seq=seq, timeout_ms=ms)
        return await self._wait(rid)

    async def open_session(self, *, timeout: float | None = None) -> int:
        """Open a client session for exactly-once commands; its id."""
        if self._node is None:
            raise Refused("node is not started")
        ms = None if timeout is None else max(1, int(timeout * 1000))
        rid = self._node.open_session(now(), timeout_ms=ms)
        session: int = await self._wait(rid)
        return session

    async def _wait(self, rid: int) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self._kick()
        return await fut

    # -- carrying out Actions ------------------------------------------------

    def _kick(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._process)

    def _process(self) -> None:
        self._scheduled = False
        node = self._node
        if node is None:
            return
        try:
            actions = node.take()
        except Exception as e:
            self._fatal(e)
            return
        self._carry_out(actions)

    def _carry_out(self, actions: Actions) -> None:
        if actions.writes:
            wal = self._wal
            assert wal is not None
            try:
                for w in actions.writes:
                    wal.append(w.entries, w.hard_state)
            except Exception as e:
                self._fatal(e)
                return
        if actions.sync:
            self._spawn(self._sync(actions.sync), f"fsync-{self.id}")
        if actions.messages and self._transport is not None:
            self._transport.send(actions.messages)
        waiting = self._waiting
        for r in actions.replies:
            fut = waiting.pop(r.request, None)
            if fut is None or fut.done():
                continue
            if r.error is not None:
                fut.set_exception(r.error)
            else:
                fut.set_result(r.value)

    async def _sync(self, upto: int) -> None:
        wal = self._wal
        assert wal is not None
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, wal.sync)
        except Exception as e:
            self._fatal(e)
            return
        if not self._stopped.is_set() and self._node is not None:
            self._node.synced(upto)
            self._kick()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fatal(self, e: BaseException) -> None:
        """A write, fsync or the node itself failed: stop everything but the answers."""
        if self.failed is not None:
            return
        self.failed = e
        log.critical("node %d: stopping after a fatal error: %s", self.id, e, exc_info=e)
        node = self._node
        if node is not None:
            node.fail(e)
            self._carry_out(node.take())
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current:
                t.cancel()
        if self._transport is not None:  # peers must see it gone, not a silent member
            self._closing = asyncio.ensure_future(self._transport.close())
        if self.on_fatal is not None:
            self.on_fatal(e)
