"""Node: everything one Raft member decides, with no I/O at all.

Theory of operation
-------------------
:class:`Node` wraps the core (:class:`~drafty.core.RawNode`) with the logic a
running member needs around it: carrying out each Ready in the contract's
order, tracking what is durable, applying committed entries to the state
machine, the client-session table, request identities, and the outcome each
waiting caller gets. It is driven by events and answers with data, like the
core: the asyncio driver (:mod:`drafty.driver`) and the simulator
(:mod:`drafty.sim`) both run exactly this code, so one seed of the simulator
replays the reply path users run.

Inputs (each clock reading is an :class:`~drafty.node.clock.Instant`):

- :meth:`tick` every tick period; :meth:`receive` for peer messages;
- :meth:`submit` (a state machine command) and :meth:`open_session`: each
  returns a request number at once; the outcome comes later as a
  :class:`Reply`;
- :meth:`synced`: the fsync asked for by :attr:`Actions.sync` is done;
- :meth:`job_done`: a job of :attr:`Actions.jobs` ran off the loop;
- :meth:`fail` (the disk or the host failed: fatal) and :meth:`stop`.

Output: after any input, :meth:`take` returns :class:`Actions`, to be carried
out in this order:

1. ``writes``, in order (each a compaction, entries, then hard state);
2. ``sync``: when not 0, make every write so far durable (one fsync), then
   call :meth:`synced` with that number. At most one is asked for at a time;
3. ``messages``: send (those that promise durable state are released only by
   :meth:`synced`);
4. ``replies``: hand each to the caller of its request;
5. ``jobs``: run each off the loop (:mod:`drafty.node.ports`), then call
   :meth:`job_done`.

A request ends in one reply (see :mod:`drafty.node.api` for what each
outcome promises): its entry applied (the state machine's result, or the
session's remembered one); :class:`Refused` when it was never proposed (no
leader), its entry was replaced, its first copy in log order was rejected
(:mod:`drafty.node.dedupe`), or an entry of a later term applied before it
(a term's entries are contiguous, so it can no longer apply);
:class:`SessionExpired`; :class:`OutcomeUnknown` when its deadline passes,
the node stops or fails, or it is a stale retry of its session.

Applying a NORMAL entry: decode the envelope (:mod:`drafty.node.envelope`),
admit it through the duplicate filter, move log time with its stamp, then by
kind: open a session, move the clock, or run the command through the session
table and the state machine. Every step depends only on the log, so every
replica does the same.

Snapshots (with a :class:`~drafty.node.ports.SnapshotFiles` port): once
``snapshot_entries`` entries (or ``snapshot_bytes`` of entry data) applied
since the last snapshot, the node takes one: the session table, log time and
the duplicate filter are encoded at once, the state machine gives a view
(:mod:`drafty.node.api`), and a :class:`~drafty.node.ports.SaveSnapshot`
job serialises and saves it off the loop. When it is durable the core
learns of it and the log is compacted, on disk (a write with ``compact``)
and in memory, keeping ``snapshot_keep_entries`` entries behind it for
followers that are only a little behind. Followers further behind get the
snapshot streamed (:mod:`drafty.node.transfer`); a follower installs it
when the core hands it out in a Ready: the state is restored from the
payload, the log is compacted (reset if it does not hold the snapshot's last
entry), and requests that may be inside the snapshot get OutcomeUnknown.

Invariants
----------
- Messages of ``messages_after_persist`` of Ready ``n`` are released only
  after a :meth:`synced` covering the writes of Readies ``1..n``.
- Entries are applied in log order, once per process life.
- Every request gets exactly one reply; requests waiting are bounded by
  ``max_pending``; a reply for request ``r`` names ``r`` of this incarnation.
- After :meth:`fail` or :meth:`stop`, no write, sync or message leaves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..core import (
    NONE,
    Entry,
    EntryKind,
    InstallSnapshot,
    LeadershipTransferring,
    Message,
    NodeId,
    NotLeader,
    RawNode,
    ReadState,
    Ready,
    Role,
    SnapshotAck,
    SnapshotChunk,
    SoftState,
    Status,
)
from ..core.errors import CoreMisuse, DraftyError
from .actions import Actions, Applied, DiskWrite, NodeOptions, Observer, Quiet, Verdict
from .api import OutcomeUnknown, Refused, SnapshotView, StateMachine
from .apply import execute, outcome
from .clock import Instant, LeaderClock
from .dedupe import Admission, DuplicateFilter
from .envelope import Envelope, EnvelopeError, Kind, pack, unpack
from .members import AddressBook, MemberAddress, MemberChanges
from .ports import FinishReceive, Job, SaveSnapshot, SnapshotFiles
from .reads import Reads
from .requests import Reply, Waiting
from .sessions import SessionTable
from .snapshotting import Snapshotting
from .ticks import TickClock
from .transfer import Installable, Transfers


class Node(Snapshotting, MemberChanges):
    """One Raft member's logic, without I/O; see the module docstring."""

    def __init__(
        self,
        raw: RawNode,
        machine: StateMachine,
        *,
        incarnation: int,
        now: Instant,
        options: NodeOptions | None = None,
        observer: Observer | None = None,
        snapshot: bytes | memoryview | None = None,
        files: SnapshotFiles | None = None,
        addresses: Mapping[NodeId, MemberAddress] | None = None,
    ) -> None:
        """``snapshot``: the payload of ``raw``'s snapshot to start from;
        ``files``: where snapshots live (None: this node takes and sends none);
        ``addresses``: the seed address book (:mod:`drafty.node.members`)."""
        if incarnation < 1:
            raise ValueError("incarnation must be a positive integer")
        self.raw = raw
        self.machine = machine
        self.id: NodeId = raw.raft.id
        self.incarnation = incarnation
        self.options = opts = options or NodeOptions()
        self.observer: Observer = observer or Quiet()
        self.files = files
        self.sessions = SessionTable(opts.session_ttl_ms, opts.max_sessions)
        self.filter = DuplicateFilter()
        self.clock = LeaderClock(self.id, opts.max_clock_lead_ms)
        self.waiting = Waiting(opts.request_timeout_ms)
        self.reads = Reads(incarnation, self.waiting.replies)
        query = getattr(machine, "query", None)
        self._query: Callable[[bytes], Any] | None = query if callable(query) else None
        """The state machine's read-only entry point, if it has one (for reads)."""
        self.transfers = Transfers(self.id, incarnation, files, opts.transfer,
                                   counters=raw.raft.counters) if files else None  # fmt: skip
        self.ticks: TickClock | None = None
        """With lease reads: delivers the ticks the clock says are due."""
        if raw.raft.cfg.lease_reads:
            if opts.tick_ms < 1:
                raise CoreMisuse("lease reads need NodeOptions.tick_ms (the driver's tick period)")
            self.ticks = TickClock(opts.tick_ms, 2 * raw.raft.cfg.election_ticks + 2)
            self.ticks.due(now.mono_ms)
        self.applied = raw.raft.log.applied
        self.applied_term = raw.raft.log.term(self.applied) or 0
        self.failure: BaseException | None = None
        self.stopped = False
        self._now = now
        self._role = raw.raft.role
        self._next_request = 1
        self._write_seq = 0
        self._synced = 0
        self._sync_in_flight = False
        self._persisting: deque[tuple[int, int, tuple[Message, ...]]] = deque()
        self._writes: list[DiskWrite] = []
        self._messages: list[Message] = []
        self._jobs: list[Job] = []
        self._stamp_mono = now.mono_ms
        self._stamped_index = 0
        snap = raw.raft.snapshot
        self.snapshot_index = snap.index if snap is not None else 0
        self.last_saved = None
        self._applied_bytes = 0
        self._saving: tuple[SaveSnapshot, SnapshotView | None] | None = None
        self._save_after_ms = 0
        self._installing: Installable | None = None
        self.addresses = AddressBook(addresses)
        """How to reach each member; grows with configuration entries."""
        self._changes: set[int] = set()
        if snapshot is not None:
            if snap is None or raw.raft.log.applied != snap.index:
                raise CoreMisuse("a snapshot payload needs the core started at its snapshot")
            self._restore(snapshot)
            self.observer.on_restored(self, snap)
        self._learn_addresses(raw.raft.log.entries)

    # -- facts -----------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Neither stopped nor failed: it ticks, talks and writes."""
        return not self.stopped and self.failure is None

    @property
    def leader(self) -> NodeId:
        return self.raw.raft.leader

    @property
    def pending(self) -> int:
        """Requests (reads included) waiting for their outcome."""
        return len(self.waiting) + len(self.reads)

    @property
    def _replies(self) -> list[Reply]:
        return self.waiting.replies

    def status(self) -> Status:
        return self.raw.status()

    # -- input -------------------------------------------------------------------

    def tick(self, now: Instant) -> None:
        """One tick period passed (with leases: as many as the clock says)."""
        self._now = now
        if not self.active:
            return
        if self.ticks is None:
            self.raw.tick()
        else:
            self._keep_time(now)
        self.waiting.expire(now.mono_ms)
        self.reads.expire(now.mono_ms)
        self._maybe_stamp_clock(now)
        if self.transfers is not None:
            self.transfers.tick(now.mono_ms)

    def receive(self, messages: Iterable[Message], now: Instant) -> None:
        """Messages from peers (bad ones are dropped and counted)."""
        self._now = now
        if not self.active:
            return
        self._keep_time(now)
        raw, t = self.raw, self.transfers
        for m in messages:
            if isinstance(m, SnapshotChunk):
                if t is None or m.dst != self.id:
                    raw.raft.counters["snapshot_chunk_dropped"] += 1
                    continue
                r = raw.raft
                meta = t.on_chunk(m, now.mono_ms, term=r.term, follower=r.role is Role.FOLLOWER,
                                  needed=self._needs)  # fmt: skip
                if meta is not None:
                    raw.step(InstallSnapshot(m.src, self.id, m.term, meta))
            elif isinstance(m, SnapshotAck):
                if t is not None and m.dst == self.id:
                    t.on_ack(m, now.mono_ms)
            elif isinstance(m, InstallSnapshot):
                # Only ever stepped with the bytes in hand (drafty.node.transfer).
                raw.raft.counters["snapshot_without_data"] += 1
            else:
                raw.step(m)

    def submit(
        self,
        command: bytes,
        now: Instant,
        *,
        client: int = 0,
        seq: int = 0,
        timeout_ms: int | None = None,
    ) -> int:
        """Propose a state machine command; its request number (see :class:`Reply`)."""
        if client < 0 or seq < 0 or (client == 0) != (seq == 0):
            raise ValueError("client and seq are both 0 (no session) or both positive")
        return self._request(Kind.COMMAND, command, client, seq, now, timeout_ms)

    def read(self, command: bytes, now: Instant, *, timeout_ms: int | None = None) -> int:
        """A linearizable read-only command, never in the log (ReadIndex, see
        :mod:`drafty.node.reads`): run by the state machine's ``query`` once it
        applied the index the leader confirmed. Its request number."""
        if self._query is None:
            raise CoreMisuse("the state machine has no query(command): submit the command")
        rid, admitted = self._admit(now)
        if not admitted:
            return rid
        self._keep_time(now)
        limit = self.options.request_timeout_ms if timeout_ms is None else timeout_ms
        ctx = self.reads.add(rid, command, now.mono_ms + limit)
        try:
            self.raw.read_index(ctx)
        except NotLeader as e:
            self.reads.confirmed((ReadState(ctx, 0),), e.leader)
        return rid

    def read_stale(self, command: bytes) -> Any:
        """A read-only command answered at once from this node's applied state:
        possibly stale, never in the log and never confirmed (Redis Cluster's
        ``READONLY``). Raises :class:`Refused` when the node is not serving."""
        if self._query is None:
            raise CoreMisuse("the state machine has no query(command): submit the command")
        if not self.active:
            raise Refused("node is shutting down")
        self.reads.served_stale += 1
        return self._query(command)

    def open_session(self, now: Instant, *, timeout_ms: int | None = None) -> int:
        """Open a client session; the reply's value is its id."""
        return self._request(Kind.OPEN_SESSION, b"", 0, 0, now, timeout_ms)

    def synced(self, upto: int) -> None:
        """Writes ``1..upto`` are durable (the sync asked for with ``upto`` is done)."""
        if not self.active:
            return
        if not self._synced <= upto <= self._write_seq:
            raise ValueError(f"synced({upto}) outside {self._synced}..{self._write_seq}")
        self._synced = upto
        self._sync_in_flight = False
        last = 0
        persisting = self._persisting
        while persisting and persisting[0][1] <= upto:
            number, _, msgs = persisting.popleft()
            last = number
            self._messages.extend(msgs)
        if last:
            self.raw.on_persisted(last)

    def job_done(self, job: Job, result: object = None, error: BaseException | None = None,
                 now: Instant | None = None) -> None:  # fmt: skip
        """A job of :attr:`Actions.jobs` ran: its result, or the exception it raised."""
        if now is not None:
            self._now = now
        if isinstance(job, SaveSnapshot):
            if self._saving is not None and self._saving[0] is job:
                if self.active:
                    self._saved(job, result, error)
                else:  # only let go of the view: a stopped node changes nothing
                    view, self._saving = self._saving[1], None
                    if view is not None:
                        view.close()
        elif self.transfers is not None and self.active:
            assert isinstance(job, FinishReceive)
            payload = result if isinstance(result, (bytes, memoryview)) else None
            got = self.transfers.finished(job, payload, error)
            if got is not None:
                self._install(got)

    def fail(self, error: BaseException) -> None:
        """A fatal failure (a write or fsync failed): stop everything, answer callers."""
        if self.failure is not None:
            return
        self.failure = error
        self._end_all(OutcomeUnknown(f"node failed while waiting: {error}"))

    def stop(self) -> None:
        """Stop: no more output but the replies of waiting callers (unknown outcome)."""
        if self.stopped:
            return
        self.stopped = True
        self._end_all(OutcomeUnknown("node stopped while waiting"))

    # -- output ------------------------------------------------------------------

    def take(self) -> Actions:
        """Everything to do now (see the module docstring); empties the buffers."""
        if self.active:
            raw = self.raw
            self._drain_transfers()
            while raw.has_ready():
                self._handle(raw.ready())
                self._drain_transfers()
            self._installing = None
        sync = 0
        if self.active and self._write_seq > self._synced and not self._sync_in_flight:
            sync = self._write_seq
            self._sync_in_flight = True
        if self.active:
            out = Actions(tuple(self._writes), sync, tuple(self._messages), tuple(self._replies),
                          tuple(self._jobs))  # fmt: skip
        else:
            out = Actions(replies=tuple(self._replies))
        self._writes.clear()
        self._messages.clear()
        self._replies.clear()
        self._jobs.clear()
        return out

    def _drain_transfers(self) -> None:
        t = self.transfers
        if t is None:
            return
        if t.messages:
            self._messages.extend(t.messages)
            t.messages.clear()
        for peer, ok in t.reports:
            self.raw.report_snapshot(peer, ok)
        t.reports.clear()
        if t.jobs:
            self._jobs.extend(t.jobs)
            t.jobs.clear()

    # -- requests ------------------------------------------------------------------

    def _keep_time(self, now: Instant) -> None:
        """With leases, deliver the ticks the clock says are due (see
        :mod:`drafty.node.ticks`) before anything can consult the lease."""
        if self.ticks is not None:
            for _ in range(self.ticks.due(now.mono_ms)):
                self.raw.tick()

    def _admit(self, now: Instant) -> tuple[int, bool]:
        """Number a new request; whether it may wait (else it is refused already)."""
        self._now = now
        rid = self._next_request
        self._next_request += 1
        why = None
        if not self.active:
            why = "node is shutting down"
        elif self.pending >= self.options.max_pending:
            why = "too many requests waiting on this node"
        elif self.raw.is_removed():
            why = "this node was removed from the cluster; ask a member"
        if why is not None:
            self._replies.append(Reply(rid, error=Refused(why)))
        return rid, why is None

    def _request(
        self,
        kind: Kind,
        command: bytes,
        client: int,
        seq: int,
        now: Instant,
        timeout_ms: int | None,
    ) -> int:
        rid, admitted = self._admit(now)
        if not admitted:
            return rid
        term = self.raw.raft.term
        try:
            index = self._propose(kind, rid, command, client, seq, now)
        except NotLeader as e:
            self._replies.append(
                Reply(rid, error=Refused("no leader is known; try again shortly", e.leader))
            )
            return rid
        except LeadershipTransferring as e:
            self._replies.append(Reply(rid, error=Refused(f"{e}; try again shortly", e.leader)))
            return rid
        limit = self.options.request_timeout_ms if timeout_ms is None else timeout_ms
        self.waiting.add(rid, term, now.mono_ms + limit, index)
        return rid

    def _propose(
        self, kind: Kind, rid: int, command: bytes, client: int, seq: int, now: Instant
    ) -> int | None:
        """Propose one envelope (stamped if we lead); its index, None if forwarded."""
        r = self.raw.raft
        leading = r.role is Role.LEADER
        # A leader stamps only once it applied an entry of its own term (its
        # no-op): then it has seen every stamp before its term, which bound it.
        stamping = leading and self.applied_term == r.term
        stamp = self.clock.stamp(now, r.term) if stamping else 0
        env = Envelope(kind, self.id, self.incarnation, rid, r.term, stamp, client, seq, command)
        index = self.raw.propose(pack(env))
        if stamping and index is not None:
            self._stamp_mono = now.mono_ms
            self._stamped_index = index
        self.observer.on_propose(self, env, index)
        return index

    def _maybe_stamp_clock(self, now: Instant) -> None:
        """A leader whose log grew since its last stamp stamps it every interval."""
        r = self.raw.raft
        if (
            r.role is Role.LEADER
            and r.transferee == NONE  # handing over: no proposals
            and self.applied_term == r.term
            and now.mono_ms - self._stamp_mono >= self.options.clock_interval_ms
            and r.log.last_index() > self._stamped_index
        ):
            rid = self._next_request
            self._next_request += 1
            self._propose(Kind.CLOCK, rid, b"", 0, 0, now)

    def _end_all(self, error: DraftyError) -> None:
        self.waiting.end_all(error)
        self.reads.end_all("node stopped before the read was served")
        self._persisting.clear()
        if self.transfers is not None:
            self.transfers.close()

    # -- the Ready loop --------------------------------------------------------------

    def _handle(self, rd: Ready) -> None:
        raw = self.raw
        self.observer.on_ready(self, rd)
        if rd.soft_state is not None:
            self._on_role(rd.soft_state)
        compact = None
        if rd.snapshot is not None:
            self._installed(rd.snapshot)
            compact = (rd.snapshot.index, rd.snapshot.term)
        if rd.must_persist():
            self._write_seq += 1
            self._writes.append(DiskWrite(self._write_seq, rd.entries, rd.hard_state, compact))
        seq = self._write_seq
        self._learn_addresses(rd.entries)  # before this Ready's messages leave
        raw.advance(rd)
        self._send(rd.messages)
        if seq <= self._synced and not self._persisting:
            raw.on_persisted(rd.number)
            self._send(rd.messages_after_persist)
        else:
            self._persisting.append((rd.number, seq, rd.messages_after_persist))
        if rd.committed_entries:
            self._apply(rd.committed_entries)
            self._maybe_snapshot()
        if rd.read_states:
            self.reads.confirmed(rd.read_states, self.raw.raft.leader)
        if self.reads and self._query is not None:
            self.reads.serve(self.applied, self._query)

    def _send(self, msgs: tuple[Message, ...]) -> None:
        t = self.transfers
        for m in msgs:
            if not isinstance(m, InstallSnapshot):
                self._messages.append(m)
            elif t is not None:
                t.send(m, self._now.mono_ms)
            else:
                self.raw.report_snapshot(m.dst, False)

    def _on_role(self, soft: SoftState) -> None:
        if soft.role is Role.LEADER and self._role is not Role.LEADER:
            self._stamp_mono = self._now.mono_ms
            self._stamped_index = self.raw.raft.log.last_index()
        elif self._role is Role.LEADER and soft.role is not Role.LEADER and self.transfers:
            self.transfers.cancel_sends()
        self._role = soft.role

    # -- applying ---------------------------------------------------------------------

    def _apply(self, entries: tuple[Entry, ...]) -> None:
        observer = self.observer
        pending = self.waiting
        for e in entries:
            self.applied = e.index
            self._applied_bytes += len(e.data)
            if e.term > self.applied_term:
                self.applied_term = e.term
                if pending:
                    pending.refuse_older_than(e.term, self.raw.raft.leader)
            waiting = pending.take_at(e.index)
            if (
                waiting is not None
                and e.kind is EntryKind.CONFIG
                and self._config_applied(e, waiting)
            ):
                waiting = None
            env: Envelope | None = None
            verdict = Verdict.NOOP
            if e.kind is EntryKind.NORMAL:
                try:
                    env = unpack(e.data)
                except EnvelopeError:
                    verdict = Verdict.MALFORMED
            mine = env is not None and env.origin == self.id and env.incarnation == self.incarnation
            if waiting is not None and not (mine and env is not None and env.request == waiting):
                pending.answer(
                    waiting,
                    error=Refused("a new leader replaced its entry before it committed",
                                  self.raw.raft.leader),
                )  # fmt: skip
            if env is None:
                observer.on_applied(self, Applied(e, None, verdict, None, None))
                continue
            verdict, admission, result = execute(e, env, self.machine, self.sessions, self.filter)
            if env.time_ms and admission is Admission.ACCEPT:
                self.clock.observe(env.origin, env.time_ms, self._now.mono_ms)
            observer.on_applied(self, Applied(e, env, verdict, admission, result))
            if mine and env.request in pending:
                self._settle(e, env, verdict, admission, result)

    def _settle(
        self, e: Entry, env: Envelope, verdict: Verdict, admission: Admission, result: Any
    ) -> None:
        """Answer our own request whose entry ``e`` just applied."""
        told = outcome(e, env, verdict, admission, result, self.raw.raft.leader)
        if told is not None:
            self.waiting.answer(env.request, told[0], told[1], e.index)
