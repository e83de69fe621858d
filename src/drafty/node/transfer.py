"""Streaming a snapshot to a follower: chunks, acknowledgements, flow control.

Theory of operation
-------------------
When the core wants a follower to get a snapshot it emits an
:class:`~drafty.core.InstallSnapshot`; the node does not send that message
but starts a *transfer*: the snapshot's file, read through the
:class:`~drafty.node.ports.SnapshotFiles` port, goes out as
:class:`~drafty.core.SnapshotChunk` messages of at most ``chunk_bytes``
(never one giant frame), at most ``window_chunks`` chunks ahead of what the
follower acknowledged.

Sender (leader), per follower, at most one transfer:

- :meth:`Transfers.send` starts one (numbered ``transfer``; numbers embed the
  node's incarnation, so a restarted leader never reuses one);
- each :class:`~drafty.core.SnapshotAck` with more bytes received slides the
  window; ``ACK_INSTALLED`` ends it well (``report(peer, True)``),
  ``ACK_REFUSED`` badly (``report(peer, False)``); an ack of no bytes at all
  after the follower acknowledged some means it lost the transfer (it
  restarted, or dropped it): start again from byte 0, same transfer. Acks
  with fewer bytes than acknowledged are otherwise ignored (they were
  overtaken on the way);
- no progress for ``ack_timeout_ms``: go back to the last acknowledged byte
  and resend (chunks may be lost); after ``max_resends`` such rounds, give up
  (``report(peer, False)``: the core probes the follower again and sends a
  snapshot afresh if it still needs one).

Receiver (follower), at most one transfer at a time:

- a chunk at offset 0 of a transfer it does not know, from the leader of its
  current term, starts receiving (dropping any other partial transfer, but
  not for an older transfer of the same sender: that chunk was overtaken)
  into an :class:`~drafty.node.ports.Incoming`; chunks must then arrive in
  order; a gap or a repeat is answered with how far it got;
- a chunk at a later offset of an unknown transfer is answered "no bytes of
  it here" (an ack of 0), not refused: the network may have delivered it
  before chunk 0, which is still on its way. If chunk 0 was lost, the
  sender's ack timeout resends it; if the follower dropped a transfer it had
  acknowledged bytes of, the sender starts it over from byte 0. (Refusing
  ended the transfer, and on a reordering network its successors too, for
  ever: chunk 0 rarely came first of a window sent at once.)
- when every byte is in, a :class:`~drafty.node.ports.FinishReceive` job
  checks and keeps the file off the loop; its payload then comes back
  through :meth:`Transfers.finished`, and the node steps the InstallSnapshot
  into its core *with the bytes in hand*, then acknowledges ``ACK_INSTALLED``.
  A file that fails its check is refused;
- a snapshot the follower does not need (its commit index already covers it,
  or its log holds the snapshot's last entry) is not transferred at all: the
  first chunk goes straight to the core, which answers the leader.
- nothing for ``receive_idle_ms``: the partial file is thrown away.

Invariants
----------
- A sender never has more than ``window_chunks * chunk_bytes`` bytes unacknowledged.
- A receiver writes only the next byte it needs and never more than ``max_bytes``.
- Every transfer the sender starts ends in exactly one ``report``, unless it
  is cancelled because the node stopped leading (the core then forgets it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core import InstallSnapshot, Message, NodeId, SnapshotAck, SnapshotChunk, SnapshotMeta
from ..core.messages import ACK_INSTALLED, ACK_PROGRESS, ACK_REFUSED
from .ports import FinishReceive, Incoming, Job, SnapshotFiles, SnapshotIOError


@dataclass(frozen=True, slots=True)
class TransferLimits:
    chunk_bytes: int = 1 << 20
    """Largest piece of a snapshot in one message."""
    window_chunks: int = 4
    """Chunks a sender keeps in flight before it waits for an acknowledgement."""
    ack_timeout_ms: int = 2000
    """No progress this long: resend from the last acknowledged byte."""
    max_resends: int = 5
    """Rounds without progress before the sender gives up."""
    receive_idle_ms: int = 30_000
    """A receiver drops a partial transfer that got nothing for this long."""
    max_bytes: int = 64 << 30
    """Largest snapshot file a follower accepts."""

    def __post_init__(self) -> None:
        for name in ("chunk_bytes", "window_chunks", "ack_timeout_ms", "receive_idle_ms",
                     "max_bytes"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_resends < 0:
            raise ValueError("max_resends must be >= 0")


@dataclass(slots=True)
class _Sending:
    peer: NodeId
    term: int
    meta: SnapshotMeta
    transfer: int
    total: int
    next: int = 0
    """The next byte to send."""
    acked: int = 0
    """Bytes the follower said it holds."""
    progress_ms: int = 0
    resends: int = 0


@dataclass(slots=True)
class _Receiving:
    src: NodeId
    term: int
    meta: SnapshotMeta
    transfer: int
    total: int
    incoming: Incoming
    received: int = 0
    heard_ms: int = 0
    job: FinishReceive | None = None
    """Set once every byte is in and the file is being checked."""


@dataclass(frozen=True, slots=True)
class Installable:
    """A received and checked snapshot, ready to step into the core."""

    src: NodeId
    term: int
    meta: SnapshotMeta
    transfer: int
    payload: bytes | memoryview


@dataclass
class Transfers:
    """All snapshot transfers of one node, both directions; see the module docstring."""

    me: NodeId
    incarnation: int
    files: SnapshotFiles
    limits: TransferLimits = field(default_factory=TransferLimits)
    messages: list[Message] = field(default_factory=list)
    """Output: chunks and acknowledgements to send."""
    reports: list[tuple[NodeId, bool]] = field(default_factory=list)
    """Output: ended transfers, for ``RawNode.report_snapshot``."""
    jobs: list[Job] = field(default_factory=list)
    """Output: received files to check off the loop."""
    counters: Counter[str] = field(default_factory=Counter)
    _sending: dict[NodeId, _Sending] = field(default_factory=dict)
    _receiving: _Receiving | None = None
    _numbered: int = 0

    # -- facts --------------------------------------------------------------

    def sending(self) -> dict[NodeId, tuple[int, int]]:
        """Peer -> (bytes acknowledged, total) of each outgoing transfer."""
        return {p: (s.acked, s.total) for p, s in self._sending.items()}

    @property
    def receiving(self) -> tuple[int, int] | None:
        """(bytes received, total) of the incoming transfer, if any."""
        r = self._receiving
        return None if r is None else (r.received, r.total)

    def _count(self, name: str) -> None:
        self.counters[name] += 1

    # -- sender -------------------------------------------------------------

    def send(self, m: InstallSnapshot, now_ms: int) -> None:
        """The core asks for snapshot ``m.meta`` to go to ``m.dst``."""
        old = self._sending.get(m.dst)
        if old is not None and old.meta == m.meta and old.term == m.term:
            return  # already on its way
        try:
            total = self.files.size(m.meta)
        except SnapshotIOError:
            self._count("snapshot_send_unreadable")
            self._sending.pop(m.dst, None)
            self.reports.append((m.dst, False))
            return
        self._numbered += 1
        transfer = (self.incarnation << 20) | (self._numbered & 0xFFFFF)
        s = _Sending(m.dst, m.term, m.meta, transfer, total, progress_ms=now_ms)
        self._sending[m.dst] = s
        self._count("snapshot_sends_started")
        self._pump(s)

    def _pump(self, s: _Sending) -> None:
        lim = self.limits
        window = lim.window_chunks * lim.chunk_bytes
        while s.next < s.total and s.next - s.acked < window:
            size = min(lim.chunk_bytes, s.total - s.next)
            try:
                data = self.files.read(s.meta, s.next, size)
                if len(data) != size:
                    raise SnapshotIOError(f"read {len(data)} of {size} bytes at {s.next}")
            except SnapshotIOError:
                self._count("snapshot_send_unreadable")
                self._end_send(s, False)
                return
            self.messages.append(
                SnapshotChunk(self.me, s.peer, s.term, s.meta, s.transfer, s.next, s.total, data)
            )
            s.next += size

    def _end_send(self, s: _Sending, ok: bool) -> None:
        if self._sending.get(s.peer) is s:
            del self._sending[s.peer]
            self.reports.append((s.peer, ok))
            self._count("snapshot_sends_done" if ok else "snapshot_sends_failed")

    def on_ack(self, m: SnapshotAck, now_ms: int) -> None:
        s = self._sending.get(m.src)
        if s is None or s.transfer != m.transfer or s.term != m.term:
            self._count("snapshot_ack_unknown")
            return
        if m.status == ACK_INSTALLED:
            self._end_send(s, True)
        elif m.status == ACK_REFUSED:
            self._end_send(s, False)
        elif m.status == ACK_PROGRESS and m.received > s.acked:
            s.acked = min(m.received, s.total)
            s.next = max(s.next, s.acked)
            s.progress_ms, s.resends = now_ms, 0
            self._pump(s)
        elif m.status == ACK_PROGRESS and m.received == 0 and s.acked > 0:
            # The follower holds none of it any more (a receive only ever
            # acknowledges a non-empty prefix): start over from byte 0. A stale
            # ack of 0 overtaken by later ones costs one window of resends.
            self._count("snapshot_send_restarts")
            s.acked = s.next = 0
            s.progress_ms = now_ms
            self._pump(s)

    def cancel_sends(self) -> None:
        """This node stopped leading: its transfers mean nothing any more."""
        self._sending.clear()

    # -- receiver -----------------------------------------------------------

    def on_chunk(
        self,
        m: SnapshotChunk,
        now_ms: int,
        *,
        term: int,
        follower: bool,
        needed: Callable[[SnapshotMeta], bool],
    ) -> SnapshotMeta | None:
        """A chunk arrived; returns a snapshot's description to step into the
        core at once (without bytes) when this node does not need its bytes."""
        if not follower or m.term != term:
            self._count("snapshot_chunk_other_term")
            return None
        r = self._receiving
        if r is not None and r.src == m.src and r.transfer == m.transfer:
            r.heard_ms = now_ms
            if r.job is None and m.offset == r.received and m.total == r.total:
                self._write(r, m)
            else:
                self._ack(r.src, r.term, r.transfer, r.received, ACK_PROGRESS)
            return None
        if m.offset != 0:
            # Chunk 0 may still be on its way (see the module docstring).
            self._count("snapshot_chunk_unknown_transfer")
            self._ack(m.src, m.term, m.transfer, 0, ACK_PROGRESS)
            return None
        if r is not None and r.src == m.src and r.term == m.term and m.transfer < r.transfer:
            self._count("snapshot_chunk_stale")  # its sender moved on to r's transfer
            return None
        if not needed(m.meta):
            self._count("snapshot_not_needed")
            self._ack(m.src, m.term, m.transfer, m.total, ACK_INSTALLED)
            return m.meta
        if r is not None:
            if r.job is not None:
                return None  # checking a complete file; the sender will try again
            r.incoming.abort()
            self._receiving = None
            self._count("snapshot_receive_replaced")
        if m.total > self.limits.max_bytes or len(m.data) > m.total:
            self._count("snapshot_too_big")
            self._ack(m.src, m.term, m.transfer, 0, ACK_REFUSED)
            return None
        try:
            incoming = self.files.receive(m.meta, m.total)
        except SnapshotIOError:
            self._count("snapshot_receive_failed")
            self._ack(m.src, m.term, m.transfer, 0, ACK_REFUSED)
            return None
        r = _Receiving(m.src, m.term, m.meta, m.transfer, m.total, incoming, heard_ms=now_ms)
        self._receiving = r
        self._count("snapshot_receives_started")
        self._write(r, m)
        return None

    def _write(self, r: _Receiving, m: SnapshotChunk) -> None:
        if r.received + len(m.data) > r.total:
            self._drop_receive(r, "snapshot_chunk_past_end")
            return
        try:
            r.incoming.write(m.offset, m.data)
        except SnapshotIOError:
            self._drop_receive(r, "snapshot_receive_failed")
            return
        r.received += len(m.data)
        if r.received == r.total:
            r.job = FinishReceive(r.meta, r.incoming)
            self.jobs.append(r.job)
        self._ack(r.src, r.term, r.transfer, r.received, ACK_PROGRESS)

    def _drop_receive(self, r: _Receiving, why: str) -> None:
        self._count(why)
        r.incoming.abort()
        if self._receiving is r:
            self._receiving = None
        self._ack(r.src, r.term, r.transfer, r.received, ACK_REFUSED)

    def finished(
        self, job: FinishReceive, payload: bytes | memoryview | None, error: BaseException | None
    ) -> Installable | None:
        """The check of a received file ended; what to install, if anything."""
        r = self._receiving
        if r is None or r.job is not job:
            return None
        self._receiving = None
        if error is not None or payload is None:
            self._count("snapshot_receive_damaged")
            self._ack(r.src, r.term, r.transfer, 0, ACK_REFUSED)
            return None
        self._count("snapshot_receives_done")
        return Installable(r.src, r.term, r.meta, r.transfer, payload)

    def installed(self, got: Installable) -> None:
        """``got`` went to the core: tell its sender."""
        self._ack(got.src, got.term, got.transfer, 0, ACK_INSTALLED)

    def _ack(self, to: NodeId, term: int, transfer: int, received: int, status: int) -> None:
        self.messages.append(SnapshotAck(self.me, to, term, transfer, received, status))

    # -- time ---------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        lim = self.limits
        for s in list(self._sending.values()):
            if now_ms - s.progress_ms < lim.ack_timeout_ms:
                continue
            s.resends += 1
            if s.resends > lim.max_resends:
                self._count("snapshot_send_timeouts")
                self._end_send(s, False)
                continue
            s.next, s.progress_ms = s.acked, now_ms
            self._count("snapshot_resends")
            self._pump(s)
        r = self._receiving
        if r is not None and r.job is None and now_ms - r.heard_ms >= lim.receive_idle_ms:
            self._count("snapshot_receive_timeouts")
            r.incoming.abort()
            self._receiving = None

    def close(self) -> None:
        """The node stops: drop every transfer (a partial file is thrown away)."""
        self._sending.clear()
        r = self._receiving
        if r is not None and r.job is None:
            r.incoming.abort()
        self._receiving = None
