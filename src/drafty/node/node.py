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
- :meth:`fail` (the disk or the host failed: fatal) and :meth:`stop`.

Output: after any input, :meth:`take` returns :class:`Actions`, to be carried
out in this order:

1. ``writes``, in order (each an entries-then-hard-state record of the log);
2. ``sync``: when not 0, make every write so far durable (one fsync), then
   call :meth:`synced` with that number. At most one is asked for at a time;
3. ``messages``: send (those that promise durable state are released only by
   :meth:`synced`);
4. ``replies``: hand each to the caller of its request.

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

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from ..core import (
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    Message,
    NodeId,
    NotLeader,
    RawNode,
    Ready,
    Role,
    SnapshotMeta,
    SoftState,
    Status,
)
from ..core.errors import CoreMisuse, DraftyError
from . import snapshot as snapshot_payload
from .api import OutcomeUnknown, Refused, SessionExpired, StateMachine, StateMachineError
from .clock import DEFAULT_CLOCK_INTERVAL_MS, DEFAULT_MAX_LEAD_MS, Instant, LeaderClock
from .dedupe import Admission, DuplicateFilter
from .envelope import Envelope, EnvelopeError, Kind, pack, unpack
from .sessions import DEFAULT_MAX_SESSIONS, DEFAULT_TTL_MS, Check, SessionTable


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """Limits and periods of the node layer (the core has its own Config)."""

    request_timeout_ms: int = 5000
    """How long a request waits for its entry to apply before OutcomeUnknown."""
    session_ttl_ms: int = DEFAULT_TTL_MS
    max_sessions: int = DEFAULT_MAX_SESSIONS
    clock_interval_ms: int = DEFAULT_CLOCK_INTERVAL_MS
    """A leader stamps log time at least this often while the log grows."""
    max_clock_lead_ms: int = DEFAULT_MAX_LEAD_MS
    """How far past the other nodes' stamps this node's clock may move log time."""
    max_pending: int = 65536
    """Requests waiting for an outcome on this node; more are refused."""

    def __post_init__(self) -> None:
        for name in (
            "request_timeout_ms",
            "session_ttl_ms",
            "max_sessions",
            "clock_interval_ms",
            "max_pending",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_clock_lead_ms < 0:
            raise ValueError("max_clock_lead_ms must be >= 0")


@dataclass(frozen=True, slots=True)
class DiskWrite:
    """Append ``entries`` (an entry at i replaces every stored entry >= i),
    then record ``hard_state`` if not None. ``seq`` numbers writes from 1."""

    seq: int
    entries: tuple[Entry, ...]
    hard_state: HardState | None


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of request ``request``: ``error`` if not None, else ``value``."""

    request: int
    value: Any = None
    error: DraftyError | None = None
    index: int = 0
    """The log index whose application decided it (0: decided otherwise)."""


@dataclass(frozen=True, slots=True)
class Actions:
    """What to do now; see the module docstring for the order."""

    writes: tuple[DiskWrite, ...] = ()
    sync: int = 0
    messages: tuple[Message, ...] = ()
    replies: tuple[Reply, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.writes or self.sync or self.messages or self.replies)


class Verdict(Enum):
    """What applying one entry did."""

    EXECUTED = "executed"
    DUPLICATE = "answered from its session"
    SESSION_STALE = "stale session request"
    SESSION_EXPIRED = "unknown session"
    OPENED = "opened a session"
    CLOCK = "moved the clock"
    REJECTED = "rejected"
    NOOP = "no-op"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Applied:
    """One applied entry, for observers: what it carried and what it did."""

    entry: Entry
    envelope: Envelope | None
    verdict: Verdict
    admission: Admission | None
    result: Any


class Observer(Protocol):
    """Hooks for tracing and checking; every method is called synchronously."""

    def on_ready(self, node: Node, rd: Ready) -> None: ...

    def on_propose(self, node: Node, envelope: Envelope, index: int | None) -> None: ...

    def on_applied(self, node: Node, applied: Applied) -> None: ...


class _Quiet:
    def on_ready(self, node: Node, rd: Ready) -> None:
        pass

    def on_propose(self, node: Node, envelope: Envelope, index: int | None) -> None:
        pass

    def on_applied(self, node: Node, applied: Applied) -> None:
        pass


class Node:
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
        snapshot: bytes | None = None,
    ) -> None:
        if incarnation < 1:
            raise ValueError("incarnation must be a positive integer")
        self.raw = raw
        self.machine = machine
        self.id: NodeId = raw.raft.id
        self.incarnation = incarnation
        self.options = opts = options or NodeOptions()
        self.observer: Observer = observer or _Quiet()
        self.sessions = SessionTable(opts.session_ttl_ms, opts.max_sessions)
        self.filter = DuplicateFilter()
        self.clock = LeaderClock(self.id, opts.max_clock_lead_ms)
        self.applied = raw.raft.log.applied
        self.applied_term = 0
        self.failure: BaseException | None = None
        self.stopped = False
        self._now = now
        self._role = raw.raft.role
        self._next_request = 1
        self._pending: dict[int, int] = {}
        """Request -> the term it was proposed in (its entry can only be of that term)."""
        self._pending_at: dict[int, int] = {}
        """Index -> request, for requests this node appended as leader."""
        self._deadlines: list[tuple[int, int]] = []
        self._write_seq = 0
        self._synced = 0
        self._sync_in_flight = False
        self._persisting: deque[tuple[int, int, tuple[Message, ...]]] = deque()
        self._writes: list[DiskWrite] = []
        self._messages: list[Message] = []
        self._replies: list[Reply] = []
        self._stamp_mono = now.mono_ms
        self._stamped_index = 0
        if snapshot is not None:
            self._restore(snapshot)

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
        """Requests waiting for their outcome."""
        return len(self._pending)

    def status(self) -> Status:
        return self.raw.status()

    # -- snapshots -----------------------------------------------------------------

    def capture(self) -> tuple[SnapshotMeta, bytes]:
        """A snapshot of the state applied so far: its description and payload.

        The payload holds the state machine, the sessions, log time and the
        duplicate filter (:mod:`drafty.node.snapshot`); saving it durably and
        telling the core (``raw.snapshot_taken``) is the caller's.
        """
        r = self.raw.raft
        index = self.applied
        term = r.log.term(index)
        if term is None:
            raise CoreMisuse(f"applied index {index} is no longer in the log")
        payload = snapshot_payload.encode(self.machine, self.sessions, self.filter)
        return SnapshotMeta(index, term, r.voters), payload

    def _restore(self, payload: bytes) -> None:
        """Start from a snapshot's payload (the core starts after its index)."""
        snapshot_payload.decode(payload, self.machine, self.sessions, self.filter)
        # Restored log time may be this node's own reading: it lends no lead.
        self.clock.observe(self.id, self.sessions.now, self._now.mono_ms)
        self.applied_term = self.raw.raft.log.offset_term

    # -- input -------------------------------------------------------------------

    def tick(self, now: Instant) -> None:
        """One tick period passed."""
        self._now = now
        if not self.active:
            return
        self.raw.tick()
        self._expire(now)
        self._maybe_stamp_clock(now)

    def receive(self, messages: Iterable[Message], now: Instant) -> None:
        """Messages from peers (bad ones are dropped and counted by the core)."""
        self._now = now
        if not self.active:
            return
        step = self.raw.step
        for m in messages:
            if isinstance(m, InstallSnapshot):
                # Stepped into the core only with the snapshot's bytes in hand;
                # their transfer is not built yet (snapshots, issue 9).
                self.raw.raft.counters["snapshot_without_data"] += 1
                continue
            step(m)

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
            while raw.has_ready():
                self._handle(raw.ready())
        sync = 0
        if self.active and self._write_seq > self._synced and not self._sync_in_flight:
            sync = self._write_seq
            self._sync_in_flight = True
        if self.active:
            out = Actions(tuple(self._writes), sync, tuple(self._messages), tuple(self._replies))
        else:
            out = Actions(replies=tuple(self._replies))
        self._writes.clear()
        self._messages.clear()
        self._replies.clear()
        return out

    # -- requests ------------------------------------------------------------------

    def _request(
        self,
        kind: Kind,
        command: bytes,
        client: int,
        seq: int,
        now: Instant,
        timeout_ms: int | None,
    ) -> int:
        self._now = now
        rid = self._next_request
        self._next_request += 1
        if not self.active:
            self._replies.append(Reply(rid, error=Refused("node is shutting down")))
            return rid
        if len(self._pending) >= self.options.max_pending:
            self._replies.append(
                Reply(rid, error=Refused("too many requests waiting on this node"))
            )
            return rid
        r = self.raw.raft
        term = r.term
        try:
            index = self._propose(kind, rid, command, client, seq, now)
        except NotLeader as e:
            self._replies.append(
                Reply(rid, error=Refused("no leader is known; try again shortly", e.leader))
            )
            return rid
        limit = self.options.request_timeout_ms if timeout_ms is None else timeout_ms
        deadline = now.mono_ms + limit
        self._pending[rid] = term
        heapq.heappush(self._deadlines, (deadline, rid))
        if index is not None:
            self._pending_at[index] = rid
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
            and self.applied_term == r.term
            and now.mono_ms - self._stamp_mono >= self.options.clock_interval_ms
            and r.log.last_index() > self._stamped_index
        ):
            rid = self._next_request
            self._next_request += 1
            self._propose(Kind.CLOCK, rid, b"", 0, 0, now)

    def _answer(self, rid: int, value: Any = None, error: DraftyError | None = None,
                index: int = 0) -> None:  # fmt: skip
        if self._pending.pop(rid, None) is not None:
            self._replies.append(Reply(rid, value, error, index))

    def _expire(self, now: Instant) -> None:
        dl = self._deadlines
        while dl and dl[0][0] <= now.mono_ms:
            _, rid = heapq.heappop(dl)
            if rid in self._pending:
                limit = self.options.request_timeout_ms
                self._answer(
                    rid, error=OutcomeUnknown(f"no outcome within the deadline ({limit} ms)")
                )
        if not self._pending and dl:
            dl.clear()

    def _end_all(self, error: DraftyError) -> None:
        for rid in list(self._pending):
            self._answer(rid, error=error)
        self._pending_at.clear()
        self._deadlines.clear()
        self._persisting.clear()

    def _refuse_older_than(self, term: int) -> None:
        """An entry of ``term`` applied: requests of earlier terms can never apply."""
        stale = [rid for rid, t in self._pending.items() if t < term]
        leader = self.raw.raft.leader
        for rid in stale:
            self._answer(
                rid,
                error=Refused("leadership changed before its entry committed; it had no effect",
                              leader),
            )  # fmt: skip

    # -- the Ready loop --------------------------------------------------------------

    def _handle(self, rd: Ready) -> None:
        raw = self.raw
        self.observer.on_ready(self, rd)
        if rd.soft_state is not None:
            self._on_role(rd.soft_state)
        if rd.must_persist():
            self._write_seq += 1
            self._writes.append(DiskWrite(self._write_seq, rd.entries, rd.hard_state))
        seq = self._write_seq
        raw.advance(rd)
        self._messages.extend(rd.messages)
        if seq <= self._synced and not self._persisting:
            raw.on_persisted(rd.number)
            self._messages.extend(rd.messages_after_persist)
        else:
            self._persisting.append((rd.number, seq, rd.messages_after_persist))
        if rd.committed_entries:
            self._apply(rd.committed_entries)

    def _on_role(self, soft: SoftState) -> None:
        if soft.role is Role.LEADER and self._role is not Role.LEADER:
            self._stamp_mono = self._now.mono_ms
            self._stamped_index = self.raw.raft.log.last_index()
        self._role = soft.role

    # -- applying ---------------------------------------------------------------------

    def _apply(self, entries: tuple[Entry, ...]) -> None:
        observer = self.observer
        for e in entries:
            self.applied = e.index
            if e.term > self.applied_term:
                self.applied_term = e.term
                if self._pending:
                    self._refuse_older_than(e.term)
            waiting = self._pending_at.pop(e.index, None) if self._pending_at else None
            env: Envelope | None = None
            verdict = Verdict.NOOP
            if e.kind is EntryKind.NORMAL:
                try:
                    env = unpack(e.data)
                except EnvelopeError:
                    verdict = Verdict.MALFORMED
            mine = env is not None and env.origin == self.id and env.incarnation == self.incarnation
            if waiting is not None and not (mine and env is not None and env.request == waiting):
                self._answer(
                    waiting,
                    error=Refused("a new leader replaced its entry before it committed",
                                  self.raw.raft.leader),
                )  # fmt: skip
            if env is None:
                observer.on_applied(self, Applied(e, None, verdict, None, None))
                continue
            verdict, admission, result = self._run(e, env)
            observer.on_applied(self, Applied(e, env, verdict, admission, result))
            if mine and env.request in self._pending:
                self._settle(e, env, verdict, admission, result)

    def _run(self, e: Entry, env: Envelope) -> tuple[Verdict, Admission, Any]:
        adm = self.filter.admit(e.term, env.term, env.origin, env.incarnation, env.request)
        if adm is not Admission.ACCEPT:
            return Verdict.REJECTED, adm, None
        if env.time_ms:
            self.sessions.advance_clock(env.time_ms)
            self.clock.observe(env.origin, env.time_ms, self._now.mono_ms)
        if env.kind is Kind.CLOCK:
            return Verdict.CLOCK, adm, None
        if env.kind is Kind.OPEN_SESSION:
            self.sessions.open(e.index)
            return Verdict.OPENED, adm, e.index
        check, session = self.sessions.check(env.client, env.seq)
        if check is Check.EXPIRED:
            return Verdict.SESSION_EXPIRED, adm, None
        if check is Check.STALE:
            return Verdict.SESSION_STALE, adm, None
        if check is Check.DUPLICATE:
            assert session is not None
            return Verdict.DUPLICATE, adm, session.reply
        try:
            result = self.machine.apply(env.command)
        except Exception as exc:
            result = StateMachineError(f"state machine raised {type(exc).__name__}: {exc}")
        if session is not None:
            self.sessions.record(session, env.seq, result)
        return Verdict.EXECUTED, adm, result

    def _settle(
        self, e: Entry, env: Envelope, verdict: Verdict, admission: Admission, result: Any
    ) -> None:
        """Answer our own request whose entry ``e`` just applied."""
        rid, i = env.request, e.index
        if verdict is Verdict.REJECTED:
            if admission is Admission.OTHER_TERM and e.term < env.term:
                return  # cannot happen with drafty's core; a copy of its own term may follow
            self._answer(
                rid,
                error=Refused(f"its entry at {i} had no effect ({admission.value})",
                              self.raw.raft.leader),
                index=i,
            )  # fmt: skip
        elif verdict is Verdict.SESSION_EXPIRED:
            self._answer(
                rid,
                error=SessionExpired(
                    f"session {env.client} is unknown (expired or never opened); open a new one"
                ),
                index=i,
            )
        elif verdict is Verdict.SESSION_STALE:
            self._answer(
                rid,
                error=OutcomeUnknown(
                    f"request {env.seq} of session {env.client} is older than its last one; "
                    "it may have been applied before"
                ),
                index=i,
            )
        elif isinstance(result, StateMachineError):
            self._answer(rid, error=result, index=i)
        else:
            self._answer(rid, value=result, index=i)
