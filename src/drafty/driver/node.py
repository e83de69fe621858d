"""RaftNode: the asyncio driver that runs the core with real disks and sockets.

Theory of operation
-------------------
One event loop owns the core (:class:`~drafty.core.RawNode`), the write-ahead
log's writing side, the transport and the state machine. Input arrives as
ticks (a monotonic timer), peer messages (from the transport) and submitted
commands; each one only pokes the core and schedules :meth:`_process` with
``call_soon``, so everything that arrives in one loop iteration is handled by
one Ready: many proposals become one log append, one fsync and one
AppendEntries per follower.

Each Ready is carried out in the contract's order (:mod:`drafty.core.ready`):

1. its entries and hard state are written to the log (``os.write``, no fsync);
2. ``messages`` are sent at once;
3. its number, the log's write sequence and ``messages_after_persist`` join a
   FIFO; one fsync at a time runs in a worker thread, and when it returns,
   every queued Ready it covers is reported with ``on_persisted`` and its
   held-back messages leave (votes and append responses never precede the
   state they promise);
4. committed entries are applied in order, and the callers waiting on them
   are answered.

A storage failure (a write or an fsync that fails) is fatal: the node stops
rather than run on a disk whose state it no longer knows.

Invariants: a message in ``messages_after_persist`` of Ready n leaves only
after Readies 1..n are durable; entries are applied in log order, once per
process lifetime (the state machine is rebuilt from the log on start).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import (
    NONE,
    Config,
    Entry,
    EntryKind,
    Message,
    NodeId,
    NotLeader,
    RawNode,
    Ready,
    Role,
    Status,
    describe,
)
from ..luid import luid
from ..service.sessions import SessionExpired, SessionTable, StaleRequest
from ..storage import NodeStorage, WriteAheadLog
from ..transport.tcp import Address, PeerTransport
from .api import OutcomeUnknown, Refused, StateMachine
from .envelope import Envelope, EnvelopeError, pack, unpack

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


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Any]
    index: int | None
    name: str


@dataclass(slots=True)
class _Persisting:
    number: int
    seq: int
    messages: tuple[Message, ...]


_RPC_NAMES = {
    "AppendEntries": "append",
    "AppendResponse": "append-ack",
    "VoteRequest": "vote",
    "VoteResponse": "vote-ack",
    "Heartbeat": "heartbeat",
    "HeartbeatResponse": "heartbeat-ack",
    "Propose": "forward",
}


def _trace(node: NodeId, rd: Ready) -> None:
    """Debug log of one Ready, each RPC named by a locally unique id (``append-4093``)."""
    name = luid("ready")
    log.debug("node %d %s: %d entries to persist, %d to apply, hard state %s", node, name,
              len(rd.entries), len(rd.committed_entries), rd.hard_state)  # fmt: skip
    for m in (*rd.messages, *rd.messages_after_persist):
        rpc = luid(_RPC_NAMES.get(type(m).__name__, "message"))
        log.debug("node %d %s %s: %s", node, name, rpc, describe.message(m))


class StateMachineError(Exception):
    """The state machine raised while applying a command (a bug in it)."""


class RaftNode:
    """Runs one Raft member: see the module docstring."""

    def __init__(self, settings: NodeSettings, machine: StateMachine) -> None:
        self.settings = settings
        self.id = settings.id
        self.machine = machine
        self.sessions: SessionTable[Any] = SessionTable(settings.session_ttl_ms)
        self.applied = 0
        self.failed: BaseException | None = None
        self._rng = random.Random(settings.seed)
        self._storage: NodeStorage | None = None
        self._wal: WriteAheadLog | None = None
        self._raw: RawNode | None = None
        self._transport: PeerTransport | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"fsync-{settings.id}")
        self._persisting: deque[_Persisting] = deque()
        self._syncing = False
        self._scheduled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[int, _Pending] = {}
        self._pending_at: dict[int, int] = {}
        self._next_request = 1
        self._role = Role.FOLLOWER
        self._stopped = asyncio.Event()
        self.on_fatal: Callable[[BaseException], None] | None = None

    # -- life cycle ----------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        storage = await loop.run_in_executor(
            self._executor,
            lambda: NodeStorage.open(s.data_dir, cluster_id=s.cluster, node_id=s.id),
        )
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
        self._raw = RawNode(
            config,
            random.Random(self._rng.getrandbits(64)),
            hard_state=wal.hard_state,
            entries=entries,
            offset=wal.base_index,
            offset_term=wal.base_term,
        )
        log.info(
            "node %d: recovered term %d, vote %d, commit %d, log %d..%d from %s",
            s.id, wal.hard_state.term, wal.hard_state.vote, wal.hard_state.commit,
            wal.first_index, wal.last_index, s.data_dir,
        )  # fmt: skip
        peers = {p: a for p, a in s.peers.items() if p != s.id}
        self._transport = PeerTransport(s.id, s.cluster, peers, self._deliver, rng=self._rng)
        await self._transport.start(s.peers[s.id])
        self._tasks.append(asyncio.create_task(self._ticker(), name=f"ticker-{s.id}"))
        self._kick()

    async def stop(self) -> None:
        """Stop ticking and talking; fail waiting callers; close the log."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            await self._transport.close()
        for p in self._pending.values():
            if not p.future.done():  # proposed, so it may still commit elsewhere
                p.future.set_exception(OutcomeUnknown("node shut down while waiting"))
        self._pending.clear()
        if self._storage is not None and self.failed is None:
            storage = self._storage
            await asyncio.get_running_loop().run_in_executor(self._executor, storage.close)
        self._executor.shutdown(wait=True)

    @property
    def raw(self) -> RawNode:
        if self._raw is None:
            raise RuntimeError("node not started")
        return self._raw

    def status(self) -> Status:
        return self.raw.status()

    # -- input -------------------------------------------------------------

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.tick_ms / 1000
        deadline = loop.time()
        while True:
            deadline += interval
            now = loop.time()
            if deadline < now - interval:
                deadline = now  # the loop stalled: skip missed ticks, don't burst
            await asyncio.sleep(max(0.0, deadline - now))
            self.raw.tick()
            self._kick()

    def _deliver(self, msgs: list[Message]) -> None:
        if self._stopped.is_set():
            return
        raw = self.raw
        for m in msgs:
            raw.step(m)
        self._kick()

    async def submit(
        self, command: bytes, *, client: int = 0, seq: int = 0, timeout: float | None = None
    ) -> Any:
        """Replicate ``command`` and return what the state machine answered.

        Raises :class:`Refused` (certainly no effect) or :class:`OutcomeUnknown`.
        """
        if self._stopped.is_set() or self.failed is not None:
            raise Refused("node is shutting down")
        request = self._next_request
        self._next_request += 1
        env = Envelope(self.id, request, client, seq, int(time.time() * 1000), command)
        try:
            index = self.raw.propose(pack(env))
        except NotLeader as e:
            raise Refused("no leader is known; try again shortly", e.leader) from None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        name = luid("request")
        self._pending[request] = _Pending(fut, index, name)
        if index is not None:
            self._pending_at[index] = request
        self._kick()
        limit = self.settings.request_timeout if timeout is None else timeout
        # One timer per request, no wait_for/shield wrappers: this is the hot path.
        timer = loop.call_later(limit, self._expire, request, limit)
        try:
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(request, None)
            if index is not None and self._pending_at.get(index) == request:
                del self._pending_at[index]

    def _expire(self, request: int, limit: float) -> None:
        p = self._pending.pop(request, None)
        if p is not None and not p.future.done():
            log.info("%s: no outcome within %.1f s (index %s)", p.name, limit, p.index)
            p.future.set_exception(OutcomeUnknown(f"no outcome within {limit:.1f} s"))

    # -- the Ready loop ------------------------------------------------------

    def _kick(self) -> None:
        if not self._scheduled and not self._stopped.is_set():
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._process)

    def _process(self) -> None:
        self._scheduled = False
        if self._stopped.is_set():
            return
        try:
            raw = self.raw
            while raw.has_ready():
                self._handle(raw.ready())
        except Exception as e:
            self._fatal(e)
            return
        if self._persisting and not self._syncing:
            self._syncing = True
            self._tasks.append(asyncio.create_task(self._sync_loop()))

    def _handle(self, rd: Ready) -> None:
        raw = self.raw
        wal = self._wal
        transport = self._transport
        assert wal is not None and transport is not None
        if log.isEnabledFor(logging.DEBUG):
            _trace(self.id, rd)
        if rd.soft_state is not None:
            self._on_role(rd.soft_state.role, rd.soft_state.leader)
        seq = wal.append(rd.entries, rd.hard_state) if rd.must_persist() else wal.written_seq
        raw.advance(rd)
        if rd.messages:
            transport.send(rd.messages)
        if seq <= wal.synced_seq and not self._persisting:
            raw.on_persisted(rd.number)
            if rd.messages_after_persist:
                transport.send(rd.messages_after_persist)
        else:
            self._persisting.append(_Persisting(rd.number, seq, rd.messages_after_persist))
        if rd.committed_entries:
            self._apply(rd.committed_entries)

    async def _sync_loop(self) -> None:
        loop = asyncio.get_running_loop()
        wal = self._wal
        assert wal is not None and self._transport is not None
        try:
            while self._persisting and not self._stopped.is_set():
                synced = await loop.run_in_executor(self._executor, wal.sync)
                last = None
                while self._persisting and self._persisting[0].seq <= synced:
                    p = self._persisting.popleft()
                    last = p.number
                    if p.messages:
                        self._transport.send(p.messages)
                if last is not None:
                    self.raw.on_persisted(last)
                    self._kick()
        except Exception as e:
            self._fatal(e)
        finally:
            self._syncing = False
            task = asyncio.current_task()
            if task in self._tasks:
                self._tasks.remove(task)

    def _on_role(self, role: Role, leader: NodeId) -> None:
        if role != self._role or role is not Role.LEADER:
            who = f"node {leader}" if leader != NONE else "unknown"
            log.info("node %d: %s, term %d, leader %s", self.id, role.value,
                     self.raw.status().term, who)  # fmt: skip
        self._role = role

    def _apply(self, entries: tuple[Entry, ...]) -> None:
        for e in entries:
            self.applied = e.index
            waiting = self._pending_at.pop(e.index, None)
            if e.kind is not EntryKind.NORMAL:
                if waiting is not None:
                    self._fail_replaced(waiting)
                continue
            try:
                env = unpack(e.data)
            except EnvelopeError as err:
                log.error("entry %d: skipped, %s", e.index, err)
                continue
            if waiting is not None and (env.origin != self.id or env.request != waiting):
                self._fail_replaced(waiting)
            result = self._run(env)
            if env.origin == self.id:
                p = self._pending.pop(env.request, None)
                if p is not None and not p.future.done():
                    if isinstance(result, BaseException):
                        p.future.set_exception(result)
                    else:
                        p.future.set_result(result)

    def _run(self, env: Envelope) -> Any:
        sessions = self.sessions
        sessions.advance_clock(env.time_ms)
        try:
            dup = sessions.lookup(env.client, env.seq)
        except StaleRequest as e:
            return Refused(str(e))
        except SessionExpired as e:
            return e
        if dup is not None:
            return dup.reply
        try:
            result = self.machine.apply(env.command)
        except Exception as e:
            log.exception("state machine raised on a command from node %d", env.origin)
            result = StateMachineError(f"state machine raised {type(e).__name__}: {e}")
        sessions.record(env.client, env.seq, result)
        return result

    def _fail_replaced(self, request: int) -> None:
        p = self._pending.pop(request, None)
        if p is not None and not p.future.done():
            p.future.set_exception(
                Refused("a new leader replaced the entry before it committed", self.leader())
            )

    def leader(self) -> NodeId:
        return self.raw.status().leader if self._raw is not None else NONE

    def _fatal(self, e: BaseException) -> None:
        if self.failed is not None:
            return
        self.failed = e
        log.critical("node %d: stopping after a fatal error: %s", self.id, e, exc_info=e)
        if self.on_fatal is not None:
            self.on_fatal(e)
