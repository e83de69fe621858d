"""Record framing of the write-ahead log, the payload codecs, and the segment scanner.

On-disk record (all integers little-endian)::

    offset  size  field
    0       4     crc      zlib.crc32 of bytes [4, 12 + length): header tail + payload
    4       4     length   payload length in bytes
    8       2     magic    0x1FD7 (bytes D7 1F): never zero, rare in text, lets the
                           scanner find record starts after a damaged one
    10      1     type     RecordType
    11      1     flags    0 (reserved)
    12      length payload

Payloads by type:

- ``SEGMENT`` (first record of every segment file)::

      u32 version=1 | u64 seq | u64 first_index | u64 base_index | u64 base_term
      | u64 term | u64 vote | u64 commit

  ``first_index`` is the log's last index + 1 when the segment was created;
  ``base_*`` is the compaction point then; term/vote/commit is the hard state
  then. So a segment, read alone, knows the state the older segments left, and
  deleting older segments never loses the newest hard state.
- ``ENTRIES`` (one per appended batch, the group-commit unit)::

      u64 first_index | u32 count | count x u64 term | count x u8 kind
      | count x u32 data length | concatenated data

  Columnar so that encode and decode are a handful of C-level copies, not a
  Python loop per entry. The entry at ``first_index`` replaces every entry at
  an index >= ``first_index``.
- ``HARD_STATE``: ``u64 term | u64 vote | u64 commit``; the newest one wins.
- ``TRUNCATE``: ``u64 index``: drop every entry at index >= ``index``.
- ``COMPACT``: ``u64 index | u64 term | u8 mode``: the log now starts after
  ``index`` (whose term is ``term``); mode 0 keeps the entries after ``index``,
  mode 1 (reset) discards the whole log (a snapshot from the leader that the
  log does not match, Raft paper section 7).

Scanner verdicts (:func:`scan`): the scan stops at the first record that is
short, has a bad magic, runs past the end of the file, or fails its checksum.
It then reports whether the bytes from there to EOF are all zero and where the
next valid record after the bad spot starts, if any; the caller applies the
torn-tail-versus-corruption rule (see :mod:`drafty.storage.segment`).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple, TypeAlias

from drafty.core.types import Entry, EntryKind, HardState

from .errors import LogMisuseError

MAGIC = 0x1FD7
MAGIC_BYTES = MAGIC.to_bytes(2, "little")
RECORD_HEADER = struct.Struct("<IIHBB")
HEADER_SIZE = RECORD_HEADER.size
MAX_PAYLOAD = 0xFFFFFFFF

SEGMENT_PAYLOAD = struct.Struct("<IQQQQQQQ")
SEGMENT_VERSION = 1
SEGMENT_HEADER_SIZE = HEADER_SIZE + SEGMENT_PAYLOAD.size
ENTRIES_HEAD = struct.Struct("<QI")
HARD_STATE_PAYLOAD = struct.Struct("<QQQ")
TRUNCATE_PAYLOAD = struct.Struct("<Q")
COMPACT_PAYLOAD = struct.Struct("<QQB")
COMPACT_KEEP = 0
COMPACT_RESET = 1

_LITTLE = sys.byteorder == "little"
_ZERO_HEADER = bytes(HEADER_SIZE)
_CRC = struct.Struct("<I")
_TAIL = struct.Struct("<IHBB")
"""Header bytes 4..12 (length, magic, type, flags): where the checksum starts."""
KNOWN_KINDS = bytes(sorted(int(k) for k in EntryKind))
KIND_OF: dict[int, EntryKind] = {int(k): k for k in EntryKind}

if array("I").itemsize != 4 or array("Q").itemsize != 8:  # pragma: no cover
    raise ImportError("drafty.storage needs 4-byte array('I') and 8-byte array('Q')")


class RecordType(IntEnum):
    """Record types; values are stable (they are on disk)."""

    SEGMENT = 1
    ENTRIES = 2
    HARD_STATE = 3
    TRUNCATE = 4
    COMPACT = 5


def le_bytes(arr: array[int]) -> array[int]:
    """``arr`` as little-endian bytes-like (no copy on little-endian machines)."""
    if _LITTLE:
        return arr
    swapped = array(arr.typecode, arr)  # pragma: no cover - big-endian only
    swapped.byteswap()  # pragma: no cover
    return swapped  # pragma: no cover


def from_le(typecode: str, data: bytes | memoryview) -> array[int]:
    """An array of ``typecode`` decoded from little-endian bytes."""
    arr = array(typecode)
    arr.frombytes(data)
    if not _LITTLE:  # pragma: no cover - big-endian only
        arr.byteswap()
    return arr


Chunk: TypeAlias = "bytes | bytearray | memoryview | array[int]"
"""A piece of a record: anything with the buffer protocol."""


class RecordBuffer:
    """Framed records waiting for one ``os.writev``: payload pieces are not copied."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[Chunk] = []
        self.size = 0
        """Total bytes in ``parts``."""

    def add(self, rtype: int, *payload: Chunk) -> None:
        """Frame one record of type ``rtype`` whose payload is ``payload`` concatenated."""
        length = sum(memoryview(p).nbytes for p in payload)
        if length > MAX_PAYLOAD:
            raise LogMisuseError(f"record payload of {length} bytes exceeds the 4 GiB limit")
        tail = _TAIL.pack(length, MAGIC, rtype, 0)
        crc = zlib.crc32(tail)
        for p in payload:
            crc = zlib.crc32(p, crc)
        self.parts.append(_CRC.pack(crc))
        self.parts.append(tail)
        self.parts.extend(payload)
        self.size += HEADER_SIZE + length

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


class EntryColumns(NamedTuple):
    """A batch of entries split into the columns of an ENTRIES payload."""

    first: int
    n: int
    terms: array[int]
    kinds: bytes
    lens: array[int]
    blob: bytes


def encode_entries(entries: Sequence[Entry]) -> EntryColumns:
    """Split ``entries`` into columns; raises LogMisuseError unless indexes are contiguous."""
    first = entries[0].index
    count = len(entries)
    if [e.index for e in entries] != list(range(first, first + count)):
        raise LogMisuseError(
            f"entries to append are not contiguous: {[e.index for e in entries][:8]}..."
        )
    try:
        terms = array("Q", [e.term for e in entries])
        kinds = bytes([e.kind for e in entries])
        datas = [e.data for e in entries]
        lens = array("I", [len(d) for d in datas])
        blob = b"".join(datas)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LogMisuseError(f"entry cannot be encoded: {exc}") from exc
    if kinds.translate(None, KNOWN_KINDS):
        raise LogMisuseError(f"unknown entry kind in {sorted(set(kinds))}")
    return EntryColumns(first, count, terms, kinds, lens, blob)


def add_entries_record(buf: RecordBuffer, cols: EntryColumns) -> None:
    """Add the ENTRIES record for ``cols`` to ``buf``."""
    buf.add(
        RecordType.ENTRIES,
        ENTRIES_HEAD.pack(cols.first, cols.n),
        le_bytes(cols.terms),
        cols.kinds,
        le_bytes(cols.lens),
        cols.blob,
    )


def add_one_entry_record(buf: RecordBuffer, e: Entry) -> None:
    """Add the ENTRIES record of a single entry (the batch-of-one fast path).

    Same bytes as ``add_entries_record(buf, encode_entries([e]))``; the caller
    ensures ``e.data`` is bytes and ``e.kind`` a known kind.
    """
    try:
        head = _ONE.pack(e.index, 1, e.term, e.kind, len(e.data))
    except struct.error as exc:
        raise LogMisuseError(f"entry cannot be encoded: {exc}") from exc
    buf.add(RecordType.ENTRIES, head, e.data)


def decode_entries(buf: bytes, start: int, end: int) -> EntryColumns:
    """Decode the ENTRIES payload ``buf[start:end]``; ValueError if malformed."""
    if end - start < ENTRIES_HEAD.size:
        raise ValueError("entries record too short")
    first, count = ENTRIES_HEAD.unpack_from(buf, start)
    t0 = start + ENTRIES_HEAD.size
    k0 = t0 + 8 * count
    l0 = k0 + count
    b0 = l0 + 4 * count
    if b0 > end or count == 0 or first == 0:
        raise ValueError(f"entries record malformed (first {first}, count {count})")
    view = memoryview(buf)
    lens = from_le("I", view[l0:b0])
    if b0 + sum(lens) != end:
        raise ValueError("entries record data lengths do not add up to the payload size")
    kinds = buf[k0:l0]
    unknown = kinds.translate(None, KNOWN_KINDS)
    if unknown:
        raise ValueError(f"unknown entry kind {unknown[0]} (written by a newer drafty?)")
    return EntryColumns(first, count, from_le("Q", view[t0:k0]), kinds, lens, buf[b0:end])


_ONE = struct.Struct("<QIQBI")
"""The head of a one-entry ENTRIES payload: first, count, term, kind, data length."""


class EntryRun:
    """Consecutive ENTRIES records, each continuing the previous, decoded in one go.

    Recovery's fast path: a record adds its terms, kinds and lengths to int
    lists and its data slice to a list; the columns are built once per run
    (:meth:`take`), so even a log written one entry per record reopens at
    about two microseconds per record.
    """

    __slots__ = ("_blobs", "_kinds", "_lens", "_terms", "first", "next", "offset", "records")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.first = self.next = self.offset = self.records = 0
        self._terms: list[int] = []
        self._kinds: list[int] = []
        self._lens: list[int] = []
        self._blobs: list[bytes] = []

    def add(self, buf: bytes, offset: int, start: int, end: int) -> bool:
        """Add the record at ``offset`` (payload ``buf[start:end]``) if it continues the run.

        Returns False (adding nothing) if it does not; ValueError if malformed.
        """
        if end - start < _ONE.size:
            raise ValueError("entries record too short")
        first, count, term, kind, dlen = _ONE.unpack_from(buf, start)
        if self.records:
            if first != self.next:
                return False
        else:
            self.first = first
            self.offset = offset
        if count == 1 and first:
            b0 = start + _ONE.size
            if b0 + dlen != end:
                raise ValueError("entries record data length does not match the payload size")
            self._terms.append(term)
            self._kinds.append(kind)
            self._lens.append(dlen)
            self._blobs.append(buf[b0:end])
        else:
            cols = decode_entries(buf, start, end)
            self._terms += cols.terms
            self._kinds += cols.kinds
            self._lens += cols.lens
            self._blobs.append(cols.blob)
        self.next = first + count
        self.records += 1
        return True

    def take(self) -> EntryColumns:
        """The run's entries as columns; the run is empty afterwards."""
        kinds = bytes(self._kinds)
        unknown = kinds.translate(None, KNOWN_KINDS)
        if unknown:
            raise ValueError(f"unknown entry kind {unknown[0]} (written by a newer drafty?)")
        cols = EntryColumns(
            self.first,
            self.next - self.first,
            array("Q", self._terms),
            kinds,
            array("I", self._lens),
            b"".join(self._blobs),
        )
        self._reset()
        return cols


def add_hard_state_record(buf: RecordBuffer, hs: HardState) -> None:
    buf.add(RecordType.HARD_STATE, HARD_STATE_PAYLOAD.pack(hs.term, hs.vote, hs.commit))


def decode_hard_state(buf: bytes, start: int, end: int) -> HardState:
    if end - start != HARD_STATE_PAYLOAD.size:
        raise ValueError("hard state record has the wrong size")
    term, vote, commit = HARD_STATE_PAYLOAD.unpack_from(buf, start)
    return HardState(term, vote, commit)


class SegmentHeader(NamedTuple):
    """Payload of the SEGMENT record that opens every segment file."""

    seq: int
    first_index: int
    base_index: int
    base_term: int
    hard_state: HardState


def segment_header_bytes(h: SegmentHeader) -> bytes:
    buf = RecordBuffer()
    hs = h.hard_state
    payload = SEGMENT_PAYLOAD.pack(
        SEGMENT_VERSION,
        h.seq,
        h.first_index,
        h.base_index,
        h.base_term,
        hs.term,
        hs.vote,
        hs.commit,
    )
    buf.add(RecordType.SEGMENT, payload)
    return bytes(buf)


def decode_segment_header(buf: bytes, start: int, end: int) -> SegmentHeader:
    if end - start != SEGMENT_PAYLOAD.size:
        raise ValueError("segment header record has the wrong size")
    version, seq, first, base, base_term, term, vote, commit = SEGMENT_PAYLOAD.unpack_from(
        buf, start
    )
    if version != SEGMENT_VERSION:
        raise ValueError(f"segment format version {version} is not supported (want 1)")
    return SegmentHeader(seq, first, base, base_term, HardState(term, vote, commit))


def decode_u64(buf: bytes, start: int, end: int) -> int:
    if end - start != TRUNCATE_PAYLOAD.size:
        raise ValueError("truncate record has the wrong size")
    (index,) = TRUNCATE_PAYLOAD.unpack_from(buf, start)
    return int(index)


def decode_compact(buf: bytes, start: int, end: int) -> tuple[int, int, bool]:
    if end - start != COMPACT_PAYLOAD.size:
        raise ValueError("compact record has the wrong size")
    index, term, mode = COMPACT_PAYLOAD.unpack_from(buf, start)
    if mode not in (COMPACT_KEEP, COMPACT_RESET):
        raise ValueError(f"compact record has unknown mode {mode}")
    return int(index), int(term), mode == COMPACT_RESET


@dataclass(slots=True)
class ScanResult:
    """Outcome of scanning one segment's bytes."""

    records: list[tuple[int, int, int]]
    """(offset, type, end) of each valid record, in order; payload is [offset+12, end)."""
    good_end: int
    """Offset just past the last valid record."""
    bad_reason: str | None
    """Why the scan stopped before EOF; None when the file ended cleanly."""
    resync: int | None
    """Offset of a valid record found after the bad spot (None: nothing valid after it)."""
    zero_tail: bool
    """Whether every byte from ``good_end`` to EOF is zero."""


def _valid_at(buf: bytes, view: memoryview, pos: int) -> int:
    """End offset of a valid record starting at ``pos``, or -1."""
    n = len(buf)
    if n - pos < HEADER_SIZE:
        return -1
    crc, length, magic, _rtype, _flags = RECORD_HEADER.unpack_from(buf, pos)
    end: int = pos + HEADER_SIZE + length
    if magic != MAGIC or end > n or zlib.crc32(view[pos + 4 : end]) != crc:
        return -1
    return end


def find_valid_record(buf: bytes, start: int) -> int | None:
    """Offset of the first valid record starting at or after ``start``, or None."""
    view = memoryview(buf)
    hit = buf.find(MAGIC_BYTES, start + 8)
    while hit != -1:
        if _valid_at(buf, view, hit - 8) != -1:
            return hit - 8
        hit = buf.find(MAGIC_BYTES, hit + 1)
    return None


def scan(buf: bytes) -> ScanResult:
    """Split ``buf`` into valid records; see the module docstring for the verdicts."""
    view = memoryview(buf)
    n = len(buf)
    unpack = RECORD_HEADER.unpack_from
    crc32 = zlib.crc32
    records: list[tuple[int, int, int]] = []
    add = records.append
    pos = 0
    reason: str | None = None
    while pos < n:
        if n - pos < HEADER_SIZE:
            reason = f"truncated record header ({n - pos} bytes)"
            break
        crc, length, magic, rtype, _flags = unpack(buf, pos)
        if magic != MAGIC:
            reason = "bad record magic"
            break
        end = pos + HEADER_SIZE + length
        if end > n:
            reason = f"record of {length} bytes runs past the end of the file"
            break
        if crc32(view[pos + 4 : end]) != crc:
            reason = "record checksum mismatch"
            break
        add((pos, rtype, end))
        pos = end
    if reason is None:
        return ScanResult(records, pos, None, None, False)
    zero_tail = buf.count(b"\0", pos) == n - pos
    resync = None if zero_tail else find_valid_record(buf, pos + 1)
    return ScanResult(records, pos, reason, resync, zero_tail)
