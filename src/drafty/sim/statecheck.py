"""State machine safety across snapshots: every snapshot is the state at its index.

Theory of operation
-------------------
The log oracle (:mod:`drafty.sim.oracle`) checks that every node applies
the same entries; once nodes restore state from snapshots instead of
replaying the log, that is no longer enough: a snapshot taken, streamed,
saved or restored wrongly would give a node a state no entry sequence
produces, and the log checks would not see it.

:class:`StateCheck` keeps a *reference replica*: a key-value store, session
table and duplicate filter of its own, advanced by the first application of
every committed index (the same :func:`drafty.node.apply.execute` the nodes
run, so it is what applying the log yields), and it records a digest of the
whole replicated state after each index: a multiset hash of the key-value
pairs (kept up to date incrementally as keys change) and a hash of the node
layer's snapshot head (sessions with their remembered replies, log time, the
duplicate filter). Then:

- **snapshot files**: every snapshot a node saves is decoded from the bytes
  on its disk and must digest to the reference at its index (catches a
  copy-on-write view that leaks later writes, a lost session, a bad encoder);
- **restores**: every node that restores a snapshot (at start, or installing
  one from its leader) must then hold exactly the reference state at the
  snapshot's index (catches a bad transfer, a bad decoder, a restore that
  forgets part of the state).

Invariants (of the checker)
---------------------------
- ``digests[i - 1]`` is the digest of the state after applying indexes 1..i.
- The reference applies each index once, in order.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ..core import EntryKind, NodeId, SnapshotMeta
from ..node import Applied, Job, Node, NodeOptions, SaveSnapshot
from ..node import snapshot as snapshot_payload
from ..node.apply import execute
from ..node.dedupe import DuplicateFilter
from ..node.envelope import EnvelopeError, unpack
from ..node.sessions import SessionTable
from ..service.kv import KVStore
from .disk import SimDisk
from .files import load_newest
from .mirror import Violation

_MASK: Final = (1 << 64) - 1


def _pair_hash(key: bytes, value: bytes) -> int:
    h = hashlib.blake2b(digest_size=8)
    h.update(len(key).to_bytes(4, "big") + key + value)
    return int.from_bytes(h.digest(), "big")


def kv_digest(data: dict[bytes, bytes]) -> int:
    """The multiset hash of a store's pairs (order does not matter)."""
    return sum(_pair_hash(k, v) for k, v in data.items()) & _MASK


class _HashedKV(KVStore):
    """A KVStore whose multiset hash follows every change."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = 0

    def _put(self, key: bytes, value: bytes) -> None:
        old = self.data.get(key)
        if old is not None:
            self.digest = (self.digest - _pair_hash(key, old)) & _MASK
        self.digest = (self.digest + _pair_hash(key, value)) & _MASK
        super()._put(key, value)

    def _pop(self, key: bytes) -> bytes | None:
        old = super()._pop(key)
        if old is not None:
            self.digest = (self.digest - _pair_hash(key, old)) & _MASK
        return old


State = tuple[int, bytes]
"""(multiset hash of the pairs, digest of the node layer's snapshot head)."""


def _head_digest(machine: KVStore, sessions: SessionTable, dedupe: DuplicateFilter) -> bytes:
    head = snapshot_payload.encode_head(machine, sessions, dedupe)
    return hashlib.blake2b(head, digest_size=12).digest()


class StateCheck:
    """The reference replica and the snapshot checks; see the module docstring."""

    def __init__(self, options: NodeOptions) -> None:
        self.kv = _HashedKV()
        self.sessions = SessionTable(options.session_ttl_ms, options.max_sessions)
        self.filter = DuplicateFilter()
        self.options = options
        self.digests: list[State] = []
        self.saved = 0
        """Snapshot files checked."""
        self.restored = 0
        """Restores checked."""

    def on_applied(self, node: NodeId, applied: Applied) -> None:
        e = applied.entry
        if e.index != len(self.digests) + 1:
            return  # not the first application of its index (the log oracle checks order)
        if e.kind is EntryKind.NORMAL:
            try:
                env = unpack(e.data)
            except EnvelopeError:
                env = None
            if env is not None:
                execute(e, env, self.kv, self.sessions, self.filter)
        self.digests.append((self.kv.digest, _head_digest(self.kv, self.sessions, self.filter)))

    def _expect(self, index: int, got: State, who: str, node: NodeId) -> None:
        if index > len(self.digests):
            raise Violation(
                "snapshot state", f"{who} is at index {index}, which nobody applied yet", node
            )
        want = self.digests[index - 1]
        if got != want:
            part = "key-value data" if got[0] != want[0] else "sessions, log time or filter"
            raise Violation(
                "snapshot state",
                f"{who} at index {index} differs from the state the log gives there ({part})",
                node,
            )

    def on_job(self, node: NodeId, job: Job, disk: SimDisk) -> None:
        """A job ran: a saved snapshot file must hold the state at its index."""
        if not isinstance(job, SaveSnapshot):
            return
        meta = job.meta
        if (meta.index, meta.term) not in disk.snapshots:
            return  # the save failed (the node counts it)
        newest = load_newest(disk)
        assert newest is not None
        if newest[0] != meta:
            return  # an installed snapshot is newer; it was checked when restored
        kv = KVStore()
        sessions = SessionTable(self.options.session_ttl_ms, self.options.max_sessions)
        dedupe = DuplicateFilter()
        snapshot_payload.decode(newest[1], kv, sessions, dedupe)
        got = (kv_digest(kv.data), _head_digest(kv, sessions, dedupe))
        self._expect(meta.index, got, f"node {node}'s snapshot file", node)
        self.saved += 1

    def on_restored(self, node: Node, meta: SnapshotMeta) -> None:
        """``node`` restored snapshot ``meta``: it must hold the state at its index."""
        kv = node.machine
        assert isinstance(kv, KVStore)
        got = (kv_digest(kv.data), _head_digest(kv, node.sessions, node.filter))
        self._expect(meta.index, got, f"node {node.id} restored from a snapshot", node.id)
        self.restored += 1
