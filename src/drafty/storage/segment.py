"""Segment files: naming, listing, and read-only recovery of a log directory.

Naming
------
``wal-<seq>-<first index>.log``, both 16-digit zero-padded decimals: ``seq``
counts segments from 1 with no gaps (so a missing file is visible), ``first
index`` is the log's last index + 1 when the segment was created (an entry
record in it may start lower, replacing a suffix). Order is by ``seq``.

Every segment starts with a SEGMENT record (see :mod:`drafty.storage.record`)
and is sealed (fsynced whole) before the next one is created. So at most the
newest segment can hold bytes that were never fsynced.

Recovery rules (:func:`replay_dir`, which never modifies anything)
------------------------------------------------------------------
- A damaged record (short, bad magic, past EOF, bad checksum) in the NEWEST
  segment with nothing valid after it, or a zero-filled tail there, is a crash
  in mid-write: the tail is reported in ``Replay.torn`` so the caller can
  truncate it (one warning).
- Segment files are created complete: written as ``<name>.tmp``, fsynced,
  renamed, directory fsynced. A leftover ``.tmp`` is a crash while creating
  one and is removed on open; a segment without a valid header is corruption.
- Everything else is corruption and raises :class:`CorruptionError` naming file,
  offset and reason: a damaged record followed by a valid one; any damage in
  an older (sealed) segment; a gap in the ``seq`` numbers; a SEGMENT record
  that does not match its file name or the state the older segments left; an
  ENTRIES record that leaves an index gap; entries an older segment should
  have held but that no durable compaction covers (a lost oldest segment); a
  hard state whose term goes back or whose commit is past the last index; a
  record with a valid checksum but an unknown type.

Limitation, on purpose: after a power loss a file system that writes pages
back out of order could leave a damaged record followed by valid *unsynced*
ones; we cannot tell that from damage to synced data, so we refuse to start
(safe) rather than truncate (possibly losing acknowledged data). The operator
can inspect the directory with ``drafty storage inspect``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from drafty.core.types import HardState

from .errors import CorruptionError
from .record import (
    HEADER_SIZE,
    EntryRun,
    RecordType,
    decode_compact,
    decode_entries,
    decode_hard_state,
    decode_segment_header,
    decode_u64,
    scan,
)
from .state import LogState, LogStateError, MemLog, SegmentInfo

_RUN_LIMIT = 65536
"""Records decoded together at most (bounds the temporary memory of recovery)."""
SEGMENT_RE = re.compile(r"^wal-(\d{16,20})-(\d{16,20})\.log$")


def segment_name(seq: int, first_index: int) -> str:
    return f"wal-{seq:016d}-{first_index:016d}.log"


def list_segments(directory: Path) -> list[tuple[int, int, Path]]:
    """``(seq, first_index, path)`` of every segment file in ``directory``, by seq."""
    found: list[tuple[int, int, Path]] = []
    for p in directory.iterdir():
        m = SEGMENT_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), int(m.group(2)), p))
    found.sort()
    return found


@dataclass(slots=True)
class Problem:
    """Something recovery found; ``fatal`` problems make ``open`` refuse to start."""

    fatal: bool
    path: Path
    offset: int
    reason: str

    def __str__(self) -> str:
        kind = "CORRUPT" if self.fatal else "torn"
        return f"{kind}: {self.path.name} at offset {self.offset}: {self.reason}"


@dataclass(slots=True)
class Replay:
    """What recovery found in a log directory."""

    state: LogState
    scanned: list[SegmentInfo]
    """Every segment file, with its stats as scanned (for ``inspect``)."""
    obsolete: list[SegmentInfo]
    """Old segments holding nothing live: delete them (oldest first) once the newest is synced."""
    torn: Problem | None = None
    """Crash tail of the newest segment: truncate ``path`` to ``offset``."""
    problems: list[Problem] = field(default_factory=list)


class _Fatal(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def replay_dir(directory: Path, *, strict: bool = True) -> Replay:
    """Recover the log state in ``directory`` without modifying anything.

    ``strict`` (used by open) raises CorruptionError at the first fatal problem;
    otherwise (inspect) replay stops at it, records it, and keeps scanning the
    remaining files for their statistics.
    """
    segs = list_segments(directory)
    state = LogState(MemLog(), HardState())
    replay = Replay(state, [], [])
    if not segs:
        _fatal(replay, strict, Problem(True, directory, 0, "no log segment files"))
        return replay
    for (a, _, _), (b, _, path) in pairwise(segs):
        if b != a + 1:
            why = f"missing segment file(s): sequence jumps from {a} to {b}"
            _fatal(replay, strict, Problem(True, path, 0, why))
    failed = bool(replay.problems)
    for i, (seq, first, path) in enumerate(segs):
        newest = i == len(segs) - 1
        try:
            _replay_segment(replay, seq, first, path, i, newest, apply=not failed)
        except _Fatal as exc:
            _fatal(replay, strict, exc.problem)
            failed = True
    if not failed:
        try:
            _final_checks(replay, segs[-1][2])
        except _Fatal as exc:
            _fatal(replay, strict, exc.problem)
    return replay


def _fatal(replay: Replay, strict: bool, problem: Problem) -> None:
    if strict:
        raise CorruptionError(problem.path, problem.offset, problem.reason)
    replay.problems.append(problem)


def _replay_segment(
    replay: Replay,
    seq: int,
    first: int,
    path: Path,
    position: int,
    newest: bool,
    apply: bool,
) -> None:
    data = path.read_bytes()
    res = scan(data)
    info = SegmentInfo(seq, first, path, size=len(data), records=len(res.records))
    replay.scanned.append(info)
    if not apply:  # replay already failed: still show each file's index range (inspect)
        _index_range(info, data, res.records)
    if res.bad_reason is not None:
        where = res.good_end
        if not newest:
            why = f"{res.bad_reason} in a sealed (older) segment"
            raise _Fatal(Problem(True, path, where, why))
        if res.resync is not None:
            why = f"{res.bad_reason}, but a valid record follows at offset {res.resync}"
            raise _Fatal(Problem(True, path, where, why))
        if not res.records:
            raise _Fatal(Problem(True, path, 0, f"segment has no valid header ({res.bad_reason})"))
        what = "zero-filled tail" if res.zero_tail else f"torn record ({res.bad_reason})"
        replay.torn = Problem(False, path, where, f"{what}, {len(data) - where} bytes")
        replay.problems.append(replay.torn)
    if not res.records:
        raise _Fatal(Problem(True, path, 0, "segment file is empty (no header record)"))
    if apply:
        _apply_records(replay, data, res.records, info, position)


def _index_range(info: SegmentInfo, data: bytes, records: list[tuple[int, int, int]]) -> None:
    for off, rtype, end in records:
        if rtype == RecordType.ENTRIES:
            try:
                cols = decode_entries(data, off + HEADER_SIZE, end)
            except ValueError:
                continue
            last = cols.first + cols.n - 1
            info.min_index = cols.first if info.min_index == 0 else min(info.min_index, cols.first)
            info.max_index = max(info.max_index, last)


def _apply_records(
    replay: Replay,
    data: bytes,
    records: list[tuple[int, int, int]],
    seg: SegmentInfo,
    position: int,
) -> None:
    state = replay.state
    seq, first, path = seg.seq, seg.first_index, seg.path
    off, rtype, end = records[0]
    try:
        if rtype != RecordType.SEGMENT:
            raise ValueError(f"first record has type {rtype}, not a segment header")
        hdr = decode_segment_header(data, off + HEADER_SIZE, end)
        if (hdr.seq, hdr.first_index) != (seq, first):
            raise ValueError(
                f"header says seq {hdr.seq}, first index {hdr.first_index}; "
                "the file name says otherwise (renamed or copied file?)"
            )
        log = state.log
        if position == 0:
            if not hdr.base_index < hdr.first_index:
                raise ValueError("header base index is not before its first index")
            state.log = MemLog(hdr.base_index, hdr.base_term, offset=hdr.first_index)
            state.hard_state = hdr.hard_state
        else:
            left = (log.last_index + 1, log.base_index, log.base_term, state.hard_state)
            said = (hdr.first_index, hdr.base_index, hdr.base_term, hdr.hard_state)
            if left != said:
                raise ValueError(
                    f"header (first index, base, base term, hard state) = {said} but the older "
                    f"segments end with {left}: a segment is missing or out of place"
                )
    except ValueError as exc:
        raise _Fatal(Problem(True, path, off, str(exc))) from None
    seg.records = 1  # the header; apply_* count the rest
    state.segments.append(seg)
    run = EntryRun()

    def flush() -> None:
        if run.records:
            n = run.records
            c = run.take()
            state.apply_entries(c.first, c.n, c.terms, c.kinds, c.lens, c.blob, records=n)

    off = 0
    entries_type = int(RecordType.ENTRIES)
    add = run.add
    try:
        for off, rtype, end in records[1:]:
            start = off + HEADER_SIZE
            if rtype == entries_type:
                if run.records >= _RUN_LIMIT or not add(data, off, start, end):
                    off = run.offset
                    flush()
                    off = start - HEADER_SIZE
                    add(data, off, start, end)
                continue
            off = run.offset
            flush()
            off = start - HEADER_SIZE
            if rtype == RecordType.HARD_STATE:
                state.apply_hard_state(decode_hard_state(data, start, end))
            elif rtype == RecordType.TRUNCATE:
                state.apply_truncate(decode_u64(data, start, end))
            elif rtype == RecordType.COMPACT:
                index, term, reset = decode_compact(data, start, end)
                replay.obsolete += state.apply_compact(index, term, reset)
            else:
                raise ValueError(f"unexpected record type {rtype} (valid checksum)")
        off = run.offset
        flush()
    except (ValueError, LogStateError) as exc:
        raise _Fatal(Problem(True, path, off, str(exc))) from None


def _final_checks(replay: Replay, newest: Path) -> None:
    state = replay.state
    log = state.log
    if log.offset != log.base_index + 1:
        why = (
            f"entries {log.base_index + 1}..{log.offset - 1} are missing: the oldest segment "
            "file starts after them and no compaction covers them (lost segment file?)"
        )
        raise _Fatal(Problem(True, replay.scanned[0].path, 0, why))
    hs = state.hard_state
    if hs.commit > log.last_index:
        why = f"hard state commit {hs.commit} is past the last log index {log.last_index}"
        raise _Fatal(Problem(True, newest, 0, why))
    replay.obsolete += state.drop_obsolete()
