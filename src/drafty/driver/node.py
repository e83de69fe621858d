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
  number the node returns; ``Actions.replies`` resolve them;
- **snapshots**: the node reaches the ``snap/`` files through
  :class:`~drafty.driver.files.DiskSnapshotFiles`; a write's ``compact``
  compacts the log (``wal.compact``) before its entries are appended;
  ``Actions.jobs`` (saving a snapshot, checking a received one) run in a
  second thread of their own, so a long save never delays an fsync, and
  their outcome (result or exception, never fatal) goes back through
  ``job_done``. Two snapshot files are kept: a leader may still be
  streaming the previous one while the next is saved.

Restart: storage opens the newest valid snapshot; if the log does not hold
the snapshot's last entry (a crash between keeping an installed snapshot and
resetting the log), the log is compacted to it first. The core starts at the
snapshot (applied = its index) with the log entries after the log's base
(which may lie behind the snapshot: the entries kept for slow followers),
the node restores the state machine from the payload, and the committed
entries after the snapshot are applied again.

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
from collections.abc import Callable, Sized
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core import NONE, Config, NodeId, NotLeader, RawNode, Role, Status, TransferError
from ..node import (
    Actions,
    Job,
    Node,
    NodeOptions,
    Refused,
    SaveSnapshot,
    StateMachine,
    TransferLimits,
)
from ..storage import NodeStorage, WriteAheadLog
from ..transport.tcp import PeerTransport
from .files import DiskSnapshotFiles
from .members import MemberOps, check_recovered, seed_book, seed_voters
from .memory import keep_big_blocks_mapped, release_freed_memory
from .settings import KEEP_SNAPSHOTS, LogStatus, NodeSettings, ReadStats, link_limits, now
from .trace import Tracer

log = logging.getLogger("drafty.driver")


class RaftNode(MemberOps):
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
        self._book_version = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"fsync-{settings.id}")
        self._job_executor = ThreadPoolExecutor(1, thread_name_prefix=f"snapshot-{settings.id}")
        """Jobs (saving or checking a snapshot) run here, never in the fsync
        thread: a long snapshot save must not delay an fsync."""
        self._jobs: set[asyncio.Future[Any]] = set()
        self._transfers_ended = 0
        self.last_save_ms = 0.0
        """How long the last snapshot save took (ms, 0: none yet)."""
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._stopped = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None

    # -- life cycle ----------------------------------------------------------

    async def start(self) -> None:
        """Recover from the data directory (its newest snapshot, then the log
        after it), then start ticking and talking."""
        s = self.settings
        loop = asyncio.get_running_loop()
        keep_big_blocks_mapped()  # big entries and chunks go back to the OS when freed
        storage, incarnation = await loop.run_in_executor(self._executor, self._open_storage)
        self._storage = storage
        wal = self._wal = storage.log
        snap = storage.snapshot
        storage.snapshot = None  # the payload is restored below: do not keep it in memory
        entries = (
            wal.entries(wal.first_index, wal.last_index) if wal.last_index > wal.base_index else []
        )
        hard = wal.hard_state  # RawNode lifts its commit to the snapshot's if need be
        config = Config(
            id=s.id,
            voters=seed_voters(s, storage.meta.seed_voters),
            election_ticks=s.election_ticks,
            heartbeat_ticks=s.heartbeat_ticks,
            forward_proposals=True,
            **s.extra_config,
        )
        raw = RawNode(
            config,
            random.Random(self._rng.getrandbits(64)),
            hard_state=hard,
            entries=entries,
            offset=wal.base_index,
            offset_term=wal.base_term,
            applied=snap.meta.index if snap is not None else 0,
            snapshot=snap.meta if snap is not None else None,
        )
        wal.forget_data()  # the core holds the log now: one copy in memory, not two
        del entries
        tracer = Tracer()
        started = time.monotonic()
        try:
            self._node = Node(
                raw, self.machine, incarnation=incarnation, now=now(), options=self._options(),
                observer=tracer, snapshot=snap.data if snap is not None else None,
                files=DiskSnapshotFiles(storage.snapshots), addresses=seed_book(s),
            )  # fmt: skip
            check_recovered(s, self._node.status())
        except BaseException:
            await loop.run_in_executor(self._executor, lambda: storage.close(sync=False))
            raise
        tracer.started = True
        if snap is not None:
            log.info(
                "node %d: restarted from the snapshot at index %d (term %d): %d bytes restored "
                "in %.0f ms", s.id, snap.meta.index, snap.meta.term, len(snap.data),
                (time.monotonic() - started) * 1000,
            )  # fmt: skip
            snap = None  # the file's bytes, read whole to restore from: free them
            release_freed_memory()
        log.info(
            "node %d: recovered term %d, vote %d, commit %d, log %d..%d from %s (life %d)",
            s.id, hard.term, hard.vote, hard.commit,
            wal.first_index, wal.last_index, s.data_dir, incarnation,
        )  # fmt: skip
        self._transport = PeerTransport(
            s.id, s.cluster, {}, self._deliver, rng=self._rng, limits=link_limits(s)
        )
        await self._transport.start(s.peers[s.id])
        self._follow_book()  # the seed's peers, and those the log added
        self._spawn(self._ticker(), f"ticker-{s.id}")
        self._kick()

    def _open_storage(self) -> tuple[NodeStorage, int]:
        """Open the data directory (blocking); finish a compaction a crash cut short."""
        s = self.settings
        storage = NodeStorage.open(
            s.data_dir, cluster_id=s.cluster, node_id=s.id, keep_snapshots=KEEP_SNAPSHOTS,
            seed_voters=() if s.join else tuple(sorted(s.peers)),
        )  # fmt: skip
        try:
            storage.finish_install()
            return storage, storage.next_incarnation(now().wall_ms)
        except BaseException:
            storage.close(sync=False)
            raise

    def _options(self) -> NodeOptions:
        s = self.settings
        extra = dict(s.node_options)
        if isinstance(extra.get("transfer"), dict):
            extra["transfer"] = TransferLimits(**extra["transfer"])
        return NodeOptions(
            request_timeout_ms=max(1, int(s.request_timeout * 1000)),
            session_ttl_ms=s.session_ttl_ms,
            tick_ms=s.tick_ms,
            **extra,
        )

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
        # Jobs not begun are dropped; one running (a save writing its file) is
        # waited for, so no thread touches the data directory once this returns.
        self._job_executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.gather(*self._jobs, return_exceptions=True)
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

    async def transfer_leadership(self, target: NodeId, *, timeout: float | None = None) -> None:
        """Hand leadership to voter ``target`` and wait until it leads.

        Raises :class:`Refused` if this node does not lead (its ``leader`` says
        who does), and :class:`~drafty.core.TransferError` for a bad target or
        a handover that did not happen (given up after an election timeout,
        or another node took over). ``timeout`` defaults to two election
        timeouts."""
        if self._node is None:
            raise Refused("node is not started")
        s = self.settings
        if target == self.id and self.leader() == self.id:
            return  # already done (a retried request)
        try:
            self._node.raw.transfer_leadership(target)
        except NotLeader as e:
            raise Refused("only the leader can hand leadership over", e.leader) from None
        self._kick()
        loop = asyncio.get_running_loop()
        limit = 2 * s.election_ticks * s.tick_ms / 1000 if timeout is None else timeout
        deadline = loop.time() + limit
        while loop.time() < deadline:
            await asyncio.sleep(s.tick_ms / 1000)
            st = self.status()
            if st.leader == target:
                return
            if st.role is Role.LEADER and st.transferee != target:
                raise TransferError(f"node {target} did not take over; node {self.id} still leads")
            if st.leader not in (NONE, self.id, target):
                raise TransferError(f"node {st.leader} took over instead of node {target}")
        raise TransferError(f"node {target} did not take over within {limit:.1f} s")

    def request_snapshot(self) -> bool:
        """Take a snapshot now (BGSAVE); False if one is being saved or nothing
        new was applied since the last one."""
        started = self.node.request_snapshot()
        if started:
            self._kick()
        return started

    def log_status(self) -> LogStatus:
        """The durable log's extent and the newest snapshot (cheap: no disk access)."""
        wal = self._wal
        if wal is None or self._node is None:
            raise RuntimeError("node not started")
        node = self._node
        snap = node.raw.raft.snapshot
        return LogStatus(
            snapshot_index=snap.index if snap is not None else 0,
            snapshot_term=snap.term if snap is not None else 0,
            snapshot_saving=node.saving,
            last_save_bytes=node.last_saved[1] if node.last_saved is not None else 0,
            last_save_ms=self.last_save_ms,
            first_index=wal.first_index,
            last_index=wal.last_index,
            entries=wal.last_index - wal.base_index,
            bytes=wal.data_bytes,
        )

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

    async def read(self, command: bytes, *, timeout: float | None = None) -> Any:
        """A linearizable read-only command (ReadIndex), never in the log: what
        the state machine's ``query`` answers. Raises :class:`Refused` (retry)."""
        if self._node is None:
            raise Refused("node is not started")
        ms = None if timeout is None else max(1, int(timeout * 1000))
        rid = self._node.read(command, now(), timeout_ms=ms)
        return await self._wait(rid)

    def read_stale(self, command: bytes) -> Any:
        """A read-only command answered at once from this node's applied state,
        possibly stale (never confirmed with the leader). Raises :class:`Refused`."""
        if self._node is None:
            raise Refused("node is not started")
        return self._node.read_stale(command)

    def read_stats(self) -> ReadStats:
        """How this node confirms reads and how many it served each way."""
        node = self.node
        counters = node.raw.raft.counters
        return ReadStats(
            mode="lease" if node.raw.raft.cfg.lease_reads else "readindex",
            linearizable=node.reads.served,
            stale=node.reads.served_stale,
            lease_answered=counters.get("reads_lease", 0),
            round_confirmed=counters.get("reads_confirmed", 0),
        )

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

    def _transfer_ended(self) -> bool:
        """Whether a snapshot transfer ended since the last call (its buffers are free)."""
        if self._node is None:
            return False
        c = self._node.raw.raft.counters
        ended = c["snapshot_sends_done"] + c["snapshot_sends_failed"] + c["snapshot_receives_done"]
        if ended == self._transfers_ended:
            return False
        self._transfers_ended = ended
        return True

    def _carry_out(self, actions: Actions) -> None:
        if actions.writes:
            wal = self._wal
            assert wal is not None
            try:
                for w in actions.writes:
                    if w.compact is not None:
                        self._compact(wal, *w.compact)
                    if w.entries or w.hard_state is not None:
                        wal.append(w.entries, w.hard_state)
            except Exception as e:
                self._fatal(e)
                return
        if actions.sync:
            self._spawn(self._sync(actions.sync), f"fsync-{self.id}")
        self._follow_book()  # a member added by these writes is reachable by these messages
        if actions.messages and self._transport is not None:
            self._transport.send(actions.messages)
        if any(w.compact is not None for w in actions.writes) or self._transfer_ended():
            release_freed_memory()  # a log's worth of entries, or a transfer's, was just freed
        waiting = self._waiting
        for r in actions.replies:
            fut = waiting.pop(r.request, None)
            if fut is None or fut.done():
                continue
            if r.error is not None:
                fut.set_exception(r.error)
            else:
                fut.set_result(r.value)
        for job in actions.jobs:
            self._run_job(job)

    def _compact(self, wal: WriteAheadLog, index: int, term: int) -> None:
        """Drop the log through ``index``: a durable snapshot covers it."""
        if index <= wal.base_index:
            return
        wal.compact(index, term)
        log.info("node %d: log compacted through index %d (term %d): %d entries left, "
                 "%d bytes", self.id, index, term, wal.last_index - wal.base_index,
                 wal.data_bytes)  # fmt: skip

    def _run_job(self, job: Job) -> None:
        """Run ``job`` in the snapshot thread; :meth:`_job_done` on the loop after."""
        if self._stopped.is_set() or self.failed is not None:
            return
        started = [0.0]

        def run() -> object:
            started[0] = time.monotonic()
            return job.run()

        fut = asyncio.wrap_future(self._job_executor.submit(run))
        self._jobs.add(fut)
        fut.add_done_callback(lambda f: self._job_done(job, f, started[0]))

    def _job_done(self, job: Job, fut: asyncio.Future[Any], started: float) -> None:
        self._jobs.discard(fut)
        node = self._node
        if fut.cancelled() or node is None:
            return
        error = fut.exception()
        result = fut.result() if error is None else None
        if self._stopped.is_set() or self.failed is not None:
            node.job_done(job, result, error, now())  # it only lets go of a snapshot view
            return
        ms = (time.monotonic() - started) * 1000 if started else 0.0
        m = job.meta
        if isinstance(job, SaveSnapshot):
            if error is None:
                self.last_save_ms = ms
                keys = f"{len(self.machine)} keys now, " if isinstance(self.machine, Sized) else ""
                log.info("node %d: snapshot saved: index %d, term %d, %s%s bytes in %.0f ms",
                         self.id, m.index, m.term, keys, result, ms)  # fmt: skip
            else:
                log.warning("node %d: saving the snapshot at index %d failed after %.0f ms "
                            "(will retry): %s", self.id, m.index, ms, error)  # fmt: skip
        elif error is not None:
            log.warning("node %d: the snapshot at index %d received from the leader failed "
                        "its check: %s", self.id, m.index, error)  # fmt: skip
        try:
            node.job_done(job, result, error, now())
        except Exception as e:
            self._fatal(e)
            return
        self._kick()

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
