"""The in-memory Raft log of one node, with its commit, persist and apply marks.

Theory of operation
-------------------
The core keeps every entry after ``offset`` in a Python list (etcd's server
does the same with its MemoryStorage). Storage is a durable *mirror* of this
list, written by the driver from each Ready; on restart the driver hands the
recovered entries back. Two operations move ``offset``, which is what bounds
memory: :meth:`RaftLog.compact` drops an applied prefix that a snapshot now
covers, and :meth:`RaftLog.restore` replaces the whole log with a snapshot
received from the leader.

Four marks move along the log:

- ``committed``: known stored on a majority (only ever grows);
- ``persisted``: durable on *this* node's disk, as reported by the driver;
  it falls back when a suffix is replaced, since the replaced entries no
  longer count;
- ``stable``: handed to the driver for persisting (entries after it are
  "unstable" and go into the next Ready);
- ``applied``: handed to the state machine via Ready (each exactly once).

Invariants
----------
- ``offset <= applied <= committed <= last_index()``
- ``applied <= persisted``: only locally durable entries are applied, so a
  node's state machine never runs ahead of its own disk.
- ``offset <= persisted <= stable <= last_index()``
- entries are contiguous: ``entries[k].index == offset + 1 + k`` and terms
  never decrease along the log.
- a committed entry is never replaced (:meth:`append_after` refuses).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from .errors import CoreMisuse, StateError
from .types import Entry, SnapshotMeta


class RaftLog:
    """Entries after ``offset`` plus the commit / persist / apply marks."""

    __slots__ = (
        "applied",
        "committed",
        "entries",
        "offset",
        "offset_term",
        "persisted",
        "stable",
    )

    def __init__(
        self,
        entries: Sequence[Entry] = (),
        *,
        offset: int = 0,
        offset_term: int = 0,
        committed: int = 0,
        applied: int = 0,
    ) -> None:
        self.offset = offset
        """Index of the last entry compacted away (0: nothing compacted)."""
        self.offset_term = offset_term
        self.entries: list[Entry] = list(entries)
        self._check_shape()
        last = self.last_index()
        if not offset <= committed <= last:
            raise StateError(f"commit index {committed} outside log range [{offset}, {last}]")
        if not offset <= applied <= committed:
            raise StateError(f"applied index {applied} outside [{offset}, commit {committed}]")
        self.committed = committed
        self.applied = applied
        self.persisted = last
        self.stable = last

    def _check_shape(self) -> None:
        prev_index, prev_term = self.offset, self.offset_term
        for e in self.entries:
            if e.index != prev_index + 1:
                raise StateError(f"log gap: entry {e.index} follows entry {prev_index}")
            if e.term < prev_term:
                raise StateError(f"log term goes back at entry {e.index}: {e.term} < {prev_term}")
            prev_index, prev_term = e.index, e.term

    # -- reading ---------------------------------------------------------

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, index: int) -> int | None:
        """Term of the entry at ``index``; None if compacted away or beyond the end."""
        if index == self.offset:
            return self.offset_term
        k = index - self.offset - 1
        if 0 <= k < len(self.entries):
            return self.entries[k].term
        return None

    def matches(self, index: int, term: int) -> bool:
        """Whether the log holds an entry at ``index`` with ``term``."""
        return self.term(index) == term

    def slice(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries ``lo..hi`` inclusive, cut to ``max_bytes`` (at least one)."""
        start = lo - self.offset - 1
        stop = hi - self.offset
        if start < 0:
            raise StateError(f"entry {lo} is compacted (log starts after {self.offset})")
        out: list[Entry] = []
        size = 0
        for e in self.entries[start:stop]:
            size += e.size()
            if out and size > max_bytes:
                break
            out.append(e)
        return out

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """The election restriction (paper §5.4.1): is that log at least as new as ours?"""
        mine = self.last_term()
        return last_term > mine or (last_term == mine and last_index >= self.last_index())

    def first_index_of_term(self, index: int) -> int:
        """The first index holding the same term as ``index`` (for rejection hints).

        Terms never decrease along the log, so this is a binary search.
        """
        term = self.term(index)
        if term is None or index == self.offset:
            return index
        k = bisect_left(self.entries, term, hi=index - self.offset, key=_term_of)
        return self.offset + 1 + k

    def last_index_of_term(self, term: int, at_most: int) -> int:
        """The last index ``<= at_most`` whose term is ``term``, or 0 if none."""
        hi = max(0, min(at_most, self.last_index()) - self.offset)
        k = bisect_right(self.entries, term, hi=hi, key=_term_of)
        if k > 0 and self.entries[k - 1].term == term:
            return self.offset + k
        return 0

    # -- writing ---------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Add entries at the end (a leader's own proposals)."""
        self.entries.extend(entries)

    def append_after(self, prev_index: int, entries: Sequence[Entry]) -> bool:
        """Store a follower's incoming entries, which follow ``prev_index``.

        Entries already present with the same term are kept (the message may
        be a duplicate); from the first conflict on, our suffix is replaced.
        Returns False, changing nothing, if that would replace a committed
        entry: a sign of a confused or malicious sender.
        """
        for k, e in enumerate(entries):
            t = self.term(e.index)
            if t == e.term:
                continue
            if t is not None and e.index <= self.committed:
                return False
            self._truncate_from(e.index)
            self.entries.extend(entries[k:])
            return True
        return True

    def _truncate_from(self, index: int) -> None:
        del self.entries[index - self.offset - 1 :]
        self.stable = min(self.stable, index - 1)
        self.persisted = min(self.persisted, index - 1)

    def compact(self, index: int) -> None:
        """Drop entries up to ``index``, which must be applied (a snapshot covers them)."""
        if index <= self.offset:
            return
        if index > self.applied:
            raise CoreMisuse(f"cannot compact to {index}: only {self.applied} is applied")
        term = self.term(index)
        assert term is not None, "applied entries are in the log"
        del self.entries[: index - self.offset]
        self.offset, self.offset_term = index, term

    def restore(self, meta: SnapshotMeta) -> None:
        """Replace the whole log with snapshot ``meta`` (a follower installing it).

        Everything up to ``meta.index`` counts as committed, applied and
        durable: the Ready that hands the snapshot out must persist and
        restore it before anything that follows.
        """
        assert meta.index > self.committed, "only a snapshot ahead of the commit is restored"
        self.entries = []
        self.offset, self.offset_term = meta.index, meta.term
        self.committed = self.applied = self.persisted = self.stable = meta.index

    def commit_to(self, index: int) -> bool:
        """Raise the commit mark; never lowers it. Returns whether it moved."""
        if index > self.committed:
            self.committed = min(index, self.last_index())
            return True
        return False

    def unstable(self) -> list[Entry]:
        """Entries not yet handed to the driver for persisting."""
        return self.entries[self.stable - self.offset :]

    def to_apply(self) -> list[Entry]:
        """Committed, locally durable entries not yet handed to the state machine."""
        hi = min(self.committed, self.persisted)
        if hi <= self.applied:
            return []
        return self.entries[self.applied - self.offset : hi - self.offset]


def _term_of(entry: Entry) -> int:
    return entry.term
