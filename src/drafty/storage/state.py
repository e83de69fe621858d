"""In-memory image of the log, and the one set of rules for changing it.

Theory of operation
-------------------
:class:`MemLog` keeps every entry after the compaction point in four columns:
terms (``array('Q')``), kinds (``bytearray``), data end offsets
(``array('Q')``) and one ``bytearray`` holding all entry data back to back.
Appending a batch or replaying an ENTRIES record is a few C-level copies;
:class:`~drafty.core.types.Entry` objects are built only when read. Memory is
therefore about the size of the data plus 17 bytes per entry, for every entry
since the last compaction. The data is needed only to hand the recovered log
to the Raft core, which keeps its own copy: the driver then calls
:meth:`MemLog.forget_data` and only the 17 bytes per entry stay (compaction
after a snapshot bounds both).

:class:`LogState` applies the four kinds of change (entries, truncate, compact,
hard state) to a MemLog and keeps per-segment bookkeeping. The live log
(:mod:`drafty.storage.wal`) and recovery (:mod:`drafty.storage.segment`) call
the same methods, so what is replayed is exactly what was written. Each method
validates first and raises :class:`LogStateError` without changing anything:
the live log turns that into ``LogMisuseError``, recovery into
``CorruptionError``.

During recovery the oldest surviving segment may start after a gap that
compaction is expected to cover (its older siblings were deleted): then
``offset > base_index + 1`` ("a hole"). Recovery checks at the end that the
hole is gone.

Invariants
----------
- ``base_index < offset``; ``last_index == offset - 1 + len(terms)``;
  outside recovery ``offset == base_index + 1``.
- ``len(terms) == len(kinds) == len(ends)``; ``ends`` is non-decreasing and
  ``ends[-1] == origin + size`` (``size == len(blob)`` while data is held).
- a segment's ``live_max`` >= every live (not truncated, not compacted) index
  it holds; a segment other than the newest with ``live_max <= base_index``
  holds nothing needed and may be deleted once the record that made it so is
  durable.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from drafty.core.types import ENTRY_OVERHEAD, NONE, Entry, HardState

from .errors import CompactedError, UnavailableError
from .record import KIND_OF


class LogStateError(Exception):
    """A change that does not fit the current log (reason in the message)."""


class MemLog:
    """Entries ``offset .. last_index`` in columns, plus the compaction point."""

    __slots__ = (
        "_blob",
        "_ends",
        "_held",
        "_kinds",
        "_origin",
        "_size",
        "_terms",
        "base_index",
        "base_term",
        "offset",
    )

    def __init__(self, base_index: int = 0, base_term: int = 0, offset: int | None = None) -> None:
        self.base_index = base_index
        self.base_term = base_term
        self.offset = base_index + 1 if offset is None else offset
        self._terms = array("Q")
        self._kinds = bytearray()
        self._ends = array("Q")
        self._blob = bytearray()
        self._origin = 0
        self._held = True
        """Whether entry data is kept (else only its size: :meth:`forget_data`)."""
        self._size = 0
        """Bytes of entry data since ``_origin`` (``len(_blob)`` while held)."""

    def forget_data(self) -> None:
        """Stop keeping entry data in memory (the Raft core holds its own copy
        once recovery handed it over); terms, kinds and sizes stay."""
        self._held = False
        self._blob = bytearray()

    @property
    def last_index(self) -> int:
        return self.offset - 1 + len(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    @property
    def data_bytes(self) -> int:
        """Bytes of entry data in the log (held in memory only until :meth:`forget_data`)."""
        return self._size

    def term(self, index: int) -> int:
        """Term of the entry at ``index`` (``base_index`` included)."""
        k = index - self.offset
        if 0 <= k < len(self._terms):
            return self._terms[k]
        if index == self.base_index:
            return self.base_term
        if index < self.offset:
            raise CompactedError(f"entry {index} is compacted (log starts at {self.offset})")
        raise UnavailableError(f"entry {index} is beyond the last index {self.last_index}")

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``lo..hi`` inclusive, cut to ``max_bytes`` by ``Entry.size()`` (at least one)."""
        if lo < self.offset:
            raise CompactedError(f"entry {lo} is compacted (log starts at {self.offset})")
        if hi > self.last_index:
            raise UnavailableError(f"entry {hi} is beyond the last index {self.last_index}")
        out: list[Entry] = []
        if hi < lo:
            return out
        if not self._held:
            raise UnavailableError("entry data is no longer kept in memory (forget_data)")
        k0 = lo - self.offset
        terms, kinds, ends, origin = self._terms, self._kinds, self._ends, self._origin
        limit = -1 if max_bytes is None else max_bytes
        used = 0
        with memoryview(self._blob) as view:
            start = ends[k0 - 1] - origin if k0 else 0
            index = lo
            for k in range(k0, hi - self.offset + 1):
                end = ends[k] - origin
                if limit >= 0:
                    used += end - start + ENTRY_OVERHEAD
                    if used > limit and out:
                        break
                out.append(Entry(index, terms[k], KIND_OF[kinds[k]], view[start:end].tobytes()))
                start = end
                index += 1
        return out

    def extend(self, terms: array[int], kinds: bytes, lens: array[int], blob: bytes) -> None:
        """Add entries at ``last_index + 1`` (the caller has checked the index)."""
        self._terms += terms
        self._kinds += kinds
        acc = accumulate(lens, initial=self._origin + self._size)
        next(acc)
        self._ends.extend(acc)
        self._size += len(blob)
        if self._held:
            self._blob += blob

    def append_one(self, term: int, kind: int, data: bytes) -> None:
        """Add one entry at ``last_index + 1`` (the caller has checked the index)."""
        self._terms.append(term)
        self._kinds.append(kind)
        self._size += len(data)
        if self._held:
            self._blob += data
        self._ends.append(self._origin + self._size)

    def truncate_from(self, index: int) -> None:
        """Drop every entry at ``index`` or after (``index`` may lie in a recovery hole)."""
        k = index - self.offset
        if k >= len(self._terms):
            return
        if k <= 0:
            self.offset = index
            k = 0
        cut = self._ends[k - 1] if k else self._origin
        self._size = cut - self._origin
        if self._held:
            del self._blob[cut - self._origin :]
        del self._terms[k:]
        del self._kinds[k:]
        del self._ends[k:]

    def compact_to(self, index: int, term: int) -> None:
        """Drop entries ``<= index``; the log now starts after ``(index, term)``."""
        k = index - self.offset + 1
        if k > 0:
            if k >= len(self._terms):
                self._clear()
            else:
                cut = self._ends[k - 1]
                self._size -= cut - self._origin
                if self._held:
                    del self._blob[: cut - self._origin]
                self._origin = cut
                del self._terms[:k]
                del self._kinds[:k]
                del self._ends[:k]
            self.offset = index + 1
        self.base_index = index
        self.base_term = term

    def reset(self, index: int, term: int) -> None:
        """Discard everything: the log is empty and starts after ``(index, term)``."""
        self._clear()
        self.base_index = index
        self.base_term = term
        self.offset = index + 1

    def _clear(self) -> None:
        self._terms = array("Q")
        self._kinds = bytearray()
        self._ends = array("Q")
        self._blob = bytearray()
        self._origin = 0
        self._size = 0


@dataclass(slots=True)
class SegmentInfo:
    """Bookkeeping for one segment file (also what ``inspect`` prints)."""

    seq: int
    first_index: int
    path: Path
    size: int = 0
    records: int = 0
    min_index: int = 0
    """Lowest entry index written in this segment (0: none)."""
    max_index: int = 0
    """Highest entry index written in this segment (0: none)."""
    live_max: int = 0
    """Highest index in this segment still live (not truncated away)."""


class LogState:
    """A MemLog, the newest hard state and the segments, changed only via ``apply_*``."""

    __slots__ = ("hard_state", "log", "segments")

    def __init__(self, log: MemLog, hard_state: HardState) -> None:
        self.log = log
        self.hard_state = hard_state
        self.segments: list[SegmentInfo] = []

    # -- validation (no changes) -----------------------------------------

    def check_entries(self, first: int) -> None:
        log = self.log
        if first <= log.base_index:
            raise LogStateError(
                f"entries at index {first} would replace compacted entries "
                f"(log starts at {log.base_index + 1})"
            )
        if first > log.last_index + 1:
            raise LogStateError(
                f"index gap: entries start at {first} but the log ends at {log.last_index}"
            )

    def check_truncate(self, index: int) -> None:
        log = self.log
        if not log.base_index < index <= log.last_index + 1:
            raise LogStateError(
                f"truncate at {index} outside the log ({log.base_index + 1}..{log.last_index + 1})"
            )

    def check_hard_state(self, hs: HardState) -> None:
        cur = self.hard_state
        if hs.term < cur.term:
            raise LogStateError(f"hard state term goes back from {cur.term} to {hs.term}")
        if hs.term == cur.term and cur.vote != NONE and hs.vote != cur.vote:
            raise LogStateError(
                f"vote in term {hs.term} changes from {cur.vote} to {hs.vote} (double vote)"
            )

    def compact_keeps(self, index: int, term: int) -> bool:
        """Whether compacting to (index, term) keeps the suffix (the log has that entry)."""
        log = self.log
        if index > log.last_index:
            return False
        if index < log.offset:  # inside a recovery hole: the writer decided; trust "keep"
            return True
        return log.term(index) == term

    # -- changes ---------------------------------------------------------

    def apply_entries(
        self,
        first: int,
        count: int,
        terms: array[int],
        kinds: bytes,
        lens: array[int],
        blob: bytes,
        records: int = 1,
    ) -> None:
        self.check_entries(first)
        log = self.log
        if first <= log.last_index:
            self._truncate(first)
        log.extend(terms, kinds, lens, blob)
        seg = self.segments[-1]
        seg.records += records
        last = first + count - 1
        if seg.min_index == 0 or first < seg.min_index:
            seg.min_index = first
        seg.max_index = max(seg.max_index, last)
        seg.live_max = max(seg.live_max, last)

    def apply_one(self, index: int, term: int, kind: int, data: bytes) -> None:
        """``apply_entries`` for a single entry (the hot path of small batches)."""
        log = self.log
        if index != log.last_index + 1 or index <= log.base_index:
            self.check_entries(index)
            self._truncate(index)
        log.append_one(term, kind, data)
        seg = self.segments[-1]
        seg.records += 1
        if seg.min_index == 0 or index < seg.min_index:
            seg.min_index = index
        if index > seg.max_index:
            seg.max_index = index
        if index > seg.live_max:
            seg.live_max = index

    def apply_truncate(self, index: int) -> None:
        self.check_truncate(index)
        self._truncate(index)
        self.segments[-1].records += 1

    def apply_hard_state(self, hs: HardState) -> None:
        self.check_hard_state(hs)
        self.hard_state = hs
        self.segments[-1].records += 1

    def apply_compact(self, index: int, term: int, reset: bool) -> list[SegmentInfo]:
        """Compact; returns the old segments that became unneeded (removed from ``segments``)."""
        log = self.log
        if index <= log.base_index:
            raise LogStateError(f"compaction to {index} is not past the base {log.base_index}")
        if reset:
            log.reset(index, term)
            for seg in self.segments:
                seg.live_max = 0
        else:
            if index > log.last_index:
                raise LogStateError(f"compaction to {index} beyond the last index {log.last_index}")
            if index >= log.offset and log.term(index) != term:
                raise LogStateError(
                    f"compaction to ({index}, term {term}) but the log has term {log.term(index)}"
                )
            log.compact_to(index, term)
        self.segments[-1].records += 1
        return self.drop_obsolete()

    def drop_obsolete(self) -> list[SegmentInfo]:
        """Remove and return the oldest segments (never the newest) holding nothing live."""
        n = 0
        base = self.log.base_index
        while n < len(self.segments) - 1 and self.segments[n].live_max <= base:
            n += 1
        dropped = self.segments[:n]
        del self.segments[:n]
        return dropped

    def _truncate(self, index: int) -> None:
        self.log.truncate_from(index)
        limit = index - 1
        for seg in self.segments:
            if seg.live_max > limit:
                seg.live_max = limit
