"""A simulated disk with real fsync semantics: unsynced writes die in a crash.

Theory of operation
-------------------
A node's disk holds two things, as drafty's storage does: the log entries
and the hard state. Writes do not become durable when they are made: they
join an ordered buffer of unsynced :data:`Write` records (entries first, then
hard state, as the Ready contract orders them). A sync covers every write
made before it started, takes virtual time (the driver schedules its
completion), and syncs complete in the order they were started, so several
may be in flight at once (pipelining). :meth:`SimDisk.complete_sync` then
folds the covered writes into the durable state.

A crash (:meth:`SimDisk.crash`) throws the unsynced buffer away. A real disk
may also have written *some* of it before the power went: the caller can keep
a prefix of the unsynced records (``keep``), which is what "torn" crashes do.
Only a prefix ever survives, because writes reach the platter in order here.

An entries write at index ``i`` replaces every stored entry ``>= i``, exactly
as the Ready contract says.

Invariants
----------
- ``synced <= written``; the durable state is the fold of writes ``< synced``.
- Durable entries are contiguous from index 1 (no compaction here yet).
- Nothing but :meth:`complete_sync` (and a torn crash, for its kept prefix)
  changes the durable state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import Entry, HardState, Ready
from ..core.types import EMPTY_HARD_STATE


@dataclass(frozen=True, slots=True)
class EntriesWrite:
    """Store ``entries``, replacing every stored entry from the first one's index."""

    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class HardStateWrite:
    hard_state: HardState


Write = EntriesWrite | HardStateWrite


@dataclass(slots=True)
class SimDisk:
    """Durable state plus an ordered buffer of unsynced writes."""

    hard_state: HardState = EMPTY_HARD_STATE
    """Durable hard state."""
    entries: list[Entry] = field(default_factory=list)
    """Durable log, entry ``i`` at position ``i - 1``."""
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

    @property
    def written(self) -> int:
        """Number of writes made so far (durable or not); a sync covers up to here."""
        return self.synced + len(self.pending)

    def write_ready(self, rd: Ready) -> bool:
        """Buffer a Ready's persist step (entries, then hard state); True if any."""
        if rd.entries:
            self.pending.append(EntriesWrite(rd.entries))
        if rd.hard_state is not None:
            self.pending.append(HardStateWrite(rd.hard_state))
        if rd.must_persist():
            self.ready_ends.append(self.written)
            return True
        return False

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

    def _apply(self, w: Write) -> None:
        if isinstance(w, EntriesWrite):
            first = w.entries[0].index
            del self.entries[first - 1 :]
            self.entries.extend(w.entries)
        else:
            self.hard_state = w.hard_state

    def entry(self, index: int) -> Entry | None:
        """The durable entry at ``index``, if any."""
        if 1 <= index <= len(self.entries):
            return self.entries[index - 1]
        return None
