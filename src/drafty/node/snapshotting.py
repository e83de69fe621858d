"""Taking, saving, installing and restoring snapshots: the part of Node that does it.

See "Snapshots" in :mod:`drafty.node.node` for the theory of operation; this
mixin only holds the methods, so that node.py stays readable. It relies on
the attributes :class:`~drafty.node.node.Node` sets up (declared below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ..core import InstallSnapshot, NodeId, RawNode, Role, SnapshotMeta
from ..core.errors import CoreMisuse
from . import snapshot as snapshot_payload
from .actions import DiskWrite, NodeOptions, Observer
from .api import SnapshotView, StateMachine, StreamingStateMachine
from .clock import Instant, LeaderClock
from .dedupe import DuplicateFilter
from .members import AddressBook
from .ports import Job, SaveSnapshot, SnapshotFiles
from .requests import Waiting
from .sessions import SessionTable
from .transfer import Installable, Transfers

if TYPE_CHECKING:
    from .node import Node


class Snapshotting:
    """Snapshot methods of :class:`~drafty.node.node.Node`."""

    raw: RawNode
    machine: StateMachine
    id: NodeId
    options: NodeOptions
    observer: Observer
    files: SnapshotFiles | None
    sessions: SessionTable
    filter: DuplicateFilter
    clock: LeaderClock
    waiting: Waiting
    addresses: AddressBook
    transfers: Transfers | None
    applied: int
    applied_term: int
    snapshot_index: int
    """Index of the newest snapshot this node holds (0: none)."""
    last_saved: tuple[SnapshotMeta, int] | None
    """The last snapshot this node saved, and its file's size."""
    _now: Instant
    _jobs: list[Job]
    _writes: list[DiskWrite]
    _write_seq: int
    _applied_bytes: int
    """Bytes of entry data applied since ``snapshot_index``."""
    _saving: tuple[SaveSnapshot, SnapshotView | None] | None
    _save_after_ms: int
    _installing: Installable | None

    def capture(self) -> tuple[SnapshotMeta, bytes]:
        """A snapshot of the state applied so far, its description and whole
        payload, made on the caller's thread (for tests and tools; a running
        node takes snapshots with jobs)."""
        payload = snapshot_payload.encode(
            self.machine, self.sessions, self.filter, self.addresses.rows()
        )
        return self._meta_now(), payload

    def _meta_now(self) -> SnapshotMeta:
        r = self.raw.raft
        if r.log.term(self.applied) is None:
            raise CoreMisuse(f"applied index {self.applied} is no longer in the log")
        return r.snapshot_meta(self.applied, self.applied_term)

    def _restore(self, payload: bytes | memoryview) -> None:
        """Take the state of a snapshot's payload (the core is already past it)."""
        book = snapshot_payload.decode(payload, self.machine, self.sessions, self.filter)
        self.addresses.update(book)
        # Restored log time may be this node's own reading: it lends no lead.
        self.clock.observe(self.id, self.sessions.now, self._now.mono_ms)
        self._applied_bytes = 0

    @property
    def saving(self) -> bool:
        """A snapshot is being saved now."""
        return self._saving is not None

    def request_snapshot(self) -> bool:
        """Take a snapshot now, whatever the thresholds (an operator's BGSAVE).

        False if none can start: no snapshot files, one is being saved, or
        nothing was applied since the last one."""
        return self._maybe_snapshot(force=True)

    def _maybe_snapshot(self, force: bool = False) -> bool:
        o = self.options
        if (
            self.files is None
            or self._saving is not None
            or self.applied <= self.snapshot_index
            or not (
                force
                or (
                    self._now.mono_ms >= self._save_after_ms
                    and (
                        (
                            o.snapshot_entries
                            and self.applied - self.snapshot_index >= o.snapshot_entries
                        )
                        or (o.snapshot_bytes and self._applied_bytes >= o.snapshot_bytes)
                    )
                )
            )
        ):
            return False
        meta = self._meta_now()
        try:
            head = snapshot_payload.encode_head(
                self.machine, self.sessions, self.filter, self.addresses.rows()
            )
            view: SnapshotView | None = None
            if isinstance(self.machine, StreamingStateMachine):
                view = self.machine.snapshot_view()
                pieces = snapshot_payload.chunks(head, view.chunks())
            else:
                pieces = snapshot_payload.chunks(head, (self.machine.snapshot(),))
        except snapshot_payload.SnapshotError:
            self.raw.raft.counters["snapshot_unencodable"] += 1
            self._save_after_ms = self._now.mono_ms + o.snapshot_retry_ms
            return False
        job = SaveSnapshot(meta, self.files, pieces)
        self._saving = (job, view)
        self._applied_bytes = 0
        self._jobs.append(job)
        return True

    def _saved(self, job: SaveSnapshot, result: object, error: BaseException | None) -> None:
        assert self._saving is not None and self._saving[0] is job
        view = self._saving[1]
        self._saving = None
        if view is not None:
            view.close()
        r = self.raw.raft
        if error is not None:
            r.counters["snapshot_save_failed"] += 1
            self._save_after_ms = self._now.mono_ms + self.options.snapshot_retry_ms
            return
        meta = job.meta
        r.counters["snapshots_taken"] += 1
        if isinstance(result, int):
            self.last_saved = (meta, result)
        if meta.index <= self.snapshot_index:
            return  # an installed snapshot overtook it
        self.raw.snapshot_taken(meta)
        self.snapshot_index = meta.index
        upto = self._compaction_point(meta.index)
        term = r.log.term(upto) if upto > r.log.offset else None
        if term is not None:
            self.raw.compact(upto)
            self._write_seq += 1
            self._writes.append(DiskWrite(self._write_seq, (), None, compact=(upto, term)))

    def _compaction_point(self, index: int) -> int:
        """Compact through here: keep ``snapshot_keep_entries`` entries behind a
        snapshot at ``index``, but no more than ``snapshot_keep_bytes`` of data."""
        log = self.raw.raft.log
        o = self.options
        upto = max(index - o.snapshot_keep_entries, log.offset)
        kept, i = 0, index
        while i > upto:
            kept += len(log.entries[i - log.offset - 1].data)
            if kept > o.snapshot_keep_bytes:
                return i
            i -= 1
        return upto

    def _install(self, got: Installable) -> None:
        """A received snapshot is checked: step it into the core, bytes in hand."""
        r = self.raw.raft
        if r.role is not Role.FOLLOWER or r.term != got.term:
            r.counters["snapshot_install_stale"] += 1
            return
        self._installing = got
        self.raw.step(InstallSnapshot(got.src, self.id, got.term, got.meta))
        assert self.transfers is not None
        self.transfers.installed(got)

    def _installed(self, meta: SnapshotMeta) -> None:
        """The core installed ``meta``: restore the state from its payload."""
        got = self._installing
        if got is None or got.meta != meta:
            raise CoreMisuse(f"the core installed {meta} without its payload")
        self._installing = None
        self._restore(got.payload)
        self.applied, self.applied_term = meta.index, meta.term
        self.snapshot_index = meta.index
        self.waiting.unknown_upto(meta.index, meta.term)
        self.observer.on_restored(cast("Node", self), meta)

    def _needs(self, meta: SnapshotMeta) -> bool:
        log = self.raw.raft.log
        return meta.index > log.committed and not log.matches(meta.index, meta.term)
