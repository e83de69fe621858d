"""A simulated disk with real fsync semantics: unsynced writes die in a crash.

Theory of operation
-------------------
A node's disk holds what drafty's storage does: the log entries after its
compaction point (``base_index``/``base_term``), the hard state, snapshot
files, and the incarnation number of the node's latest life (written
durably before a life begins, as :mod:`drafty.storage.incarnation` does).
Writes do not become durable when they are made: they join an ordered
buffer of unsynced :data:`Write` records (entries first, then hard state, as
the Ready contract orders them). A sync covers every write made before it
started and takes virtual time (the simulation schedules its completion);
:meth:`SimDisk.sync_seq` names it by the node's write number. :meth:`SimDisk.complete_sync` then
folds the covered writes into the durable state.

A crash (:meth:`SimDisk.crash`) throws the unsynced buffer away. A real disk
may also have written *some* of it before the power went: the caller can keep
a prefix of the unsynced records (``keep``), which is what "torn" crashes do.
Only a prefix ever survives, because writes reach the platter in order here.

An entries write at index ``i`` replaces every stored entry ``>= i``, exactly
as the Ready contract says. A compaction write ``(i, t)`` drops the entries
through ``i`` (all of them if the log does not hold ``i`` of term ``t``), as
the write-ahead log does.

Snapshot files (:attr:`SimDisk.snapshots`) are written whole and durably by
the snapshot jobs (:mod:`drafty.sim.files`), which is what the real store's
write-fsync-rename does; a crash before the job completes leaves nothing.

Invariants
----------
- ``synced <= written``; the durable state is the fold of writes ``< synced``.
- Durable entries are contiguous from ``base_index + 1``.
- Nothing but :meth:`complete_sync` (and a torn crash, for its kept prefix)
  changes the durable state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import Entry, HardState
from ..core.types import EMPTY_HARD_STATE
from ..node import DiskWrite


@dataclass(frozen=True, slots=True)
class EntriesWrite:
    """Store ``entries``, replacing every stored entry from the first one's index."""

    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class HardStateWrite:
    hard_state: HardState


@dataclass(frozen=True, slots=True)
class CompactWrite:
    """Drop the log through ``index`` (all of it unless it holds ``index`` of ``term``)."""

    index: int
    term: int


Write = EntriesWrite | HardStateWrite | CompactWrite


@dataclass(slots=True)
class SimDisk:
    """Durable state plus an ordered buffer of unsynced writes."""

    hard_state: HardState = EMPTY_HARD_STATE
    """Durable hard state."""
    entries: list[Entry] = field(default_factory=list)
    """Durable log, entry ``i`` at position ``i - base_index - 1``."""
    base_index: int = 0
    base_term: int = 0
    snapshots: dict[tuple[int, int], bytes] = field(default_factory=dict)
    """Durable snapshot files by (index, term): their whole bytes."""
    pending: list[Write] = field(default_factory=list)
    """Unsynced writes, oldest first; ``pending[0]`` is write number ``synced``."""
    synced: int = 0
    """Number of writes made durable so far."""
    syncs: int = 0
    """Completed syncs (for statistics)."""
    lost_writes: int = 0
    """Unsynced writes thrown away by crashes."""
    ready_ends: list[int] = field(default_factory=list)
    """Write numbers at which an unsynced Ready's writes end (torn-crash cut points)."""
    seq_ends: dict[int, int] = field(default_factory=dict)
    """For each unsynced node write (``DiskWrite.seq``), the record count at its end."""
    incarnation: int = 0
    """The latest life's incarnation (durable at once, like the storage file)."""

    def next_incarnation(self, wall_ms: int) -> int:
        """The incarnation of a new life (see :mod:`drafty.storage.incarnation`)."""
        self.incarnation = max(self.incarnation + 1, wall_ms, 1)
        return self.incarnation

    @property
    def written(self) -> int:
        """Number of writes made so far (durable or not); a sync covers up to here."""
        return self.synced + len(self.pending)

    def write(self, w: DiskWrite) -> None:
        """Buffer one node write (compaction, entries, then hard state)."""
        if w.compact is not None:
            self.pending.append(CompactWrite(*w.compact))
        if w.entries:
            self.pending.append(EntriesWrite(w.entries))
        if w.hard_state is not None:
            self.pending.append(HardStateWrite(w.hard_state))
        self.ready_ends.append(self.written)
        self.seq_ends[w.seq] = self.written

    def sync_seq(self, seq: int) -> None:
        """The sync covering node writes ``<= seq`` finished: make them durable."""
        end = self.seq_ends.get(seq)
        if end is not None:
            self.complete_sync(end)
        self.seq_ends = {k: v for k, v in self.seq_ends.items() if k > seq}

    def complete_sync(self, upto: int) -> None:
        """A sync that covered writes ``< upto`` finished: make them durable."""
        n = upto - self.synced
        if n <= 0:
            return
        for w in self.pending[:n]:
            self._apply(w)
        del self.pending[:n]
        self.synced = upto
        self.syncs += 1
        self.ready_ends = [w for w in self.ready_ends if w > upto]

    def torn_points(self, per_record: bool) -> list[int]:
        """How many unsynced writes a torn crash may keep: 0, then each Ready's
        end (or, ``per_record``, every record boundary)."""
        if per_record:
            return list(range(len(self.pending) + 1))
        return [0] + [w - self.synced for w in self.ready_ends]

    def crash(self, keep: int = 0) -> None:
        """Lose the unsynced writes, except the first ``keep`` (a torn crash)."""
        keep = max(0, min(keep, len(self.pending)))
        for w in self.pending[:keep]:
            self._apply(w)
        self.lost_writes += len(self.pending) - keep
        self.synced += keep
        self.pending.clear()
        self.ready_ends.clear()
        self.seq_ends.clear()

    def _apply(self, w: Write) -> None:
        if isinstance(w, EntriesWrite):
            first = w.entries[0].index
            assert first > self.base_index, "entries are never written into the compacted prefix"
            del self.entries[first - self.base_index - 1 :]
            self.entries.extend(w.entries)
        elif isinstance(w, CompactWrite):
            self.compact(w.index, w.term)
        else:
            self.hard_state = w.hard_state

    def compact(self, index: int, term: int) -> None:
        """Drop the durable log through ``index`` (see :class:`CompactWrite`)."""
        if index <= self.base_index:
            return
        e = self.entry(index)
        if e is not None and e.term == term:
            del self.entries[: index - self.base_index]
        else:
            self.entries.clear()
        self.base_index, self.base_term = index, term

    def holds(self, index: int, term: int) -> bool:
        """Whether the durable log holds entry ``index`` of ``term`` (base included)."""
        e = self.entry(index)
        return (e is not None and e.term == term) or (index, term) == (
            self.base_index,
            self.base_term,
        )

    @property
    def last_index(self) -> int:
        return self.base_index + len(self.entries)

    def entry(self, index: int) -> Entry | None:
        """The durable entry at ``index``, if any (None if compacted or beyond)."""
        if self.base_index < index <= self.last_index:
            return self.entries[index - self.base_index - 1]
        return None

    def save_snapshot(self, index: int, term: int, data: bytes, keep: int = 2) -> None:
        """A snapshot file made durable (older ones beyond ``keep`` removed)."""
        self.snapshots[(index, term)] = data
        for key in sorted(self.snapshots)[:-keep]:
            del self.snapshots[key]

    def newest_snapshot(self) -> bytes | None:
        return self.snapshots[max(self.snapshots)] if self.snapshots else None
