"""Record framing, payload codecs and the scanner's verdicts."""

from __future__ import annotations

import zlib

import pytest

from drafty.core.types import Entry, EntryKind
from drafty.storage import LogMisuseError
from drafty.storage.record import (
    HEADER_SIZE,
    MAGIC,
    RECORD_HEADER,
    EntryRun,
    RecordBuffer,
    RecordType,
    add_entries_record,
    add_one_entry_record,
    decode_entries,
    encode_entries,
    scan,
)

from .helpers import make_entries


def framed(*batches: list[Entry]) -> bytes:
    buf = RecordBuffer()
    for b in batches:
        add_entries_record(buf, encode_entries(b))
    return bytes(buf)


def test_header_layout_and_checksum() -> None:
    data = framed(make_entries(1, 2))
    crc, length, magic, rtype, flags = RECORD_HEADER.unpack_from(data, 0)
    assert (length, magic, rtype, flags) == (len(data) - HEADER_SIZE, MAGIC, RecordType.ENTRIES, 0)
    assert crc == zlib.crc32(data[4:])
    assert data[8:10] == b"\xd7\x1f"


def test_single_entry_fast_path_writes_the_same_bytes() -> None:
    for e in [Entry(5, 3, EntryKind.NOOP, b""), Entry(9, 2**40, EntryKind.NORMAL, b"x" * 300)]:
        fast = RecordBuffer()
        add_one_entry_record(fast, e)
        assert bytes(fast) == framed([e]) and fast.size == len(framed([e]))


def test_entries_round_trip() -> None:
    batch = [*make_entries(3, 5, term=7, size=0), Entry(8, 7, EntryKind.NOOP, b"\x00" * 70)]
    data = framed(batch)
    cols = decode_entries(data, HEADER_SIZE, len(data))
    assert (cols.first, cols.n, list(cols.terms)) == (3, 6, [7] * 6)
    assert cols.kinds == bytes(e.kind for e in batch)
    assert cols.blob == b"".join(e.data for e in batch)


def test_entry_run_equals_record_by_record_decoding() -> None:
    batches = [
        make_entries(1, 1),
        make_entries(2, 4),
        make_entries(6, 1, size=0),
        make_entries(7, 3, size=50),
    ]
    data = framed(*batches)
    run = EntryRun()
    for off, _, end in scan(data).records:
        assert run.add(data, off, off + HEADER_SIZE, end)
    cols = run.take()
    assert (cols.first, cols.n) == (1, 9)
    assert cols.blob == b"".join(e.data for b in batches for e in b)
    assert list(cols.lens) == [len(e.data) for b in batches for e in b]
    assert run.records == 0  # emptied by take
    later = framed(make_entries(20, 1))
    assert run.add(later, 0, HEADER_SIZE, len(later))
    assert not run.add(data, 0, HEADER_SIZE, scan(data).records[0][2])  # not contiguous


def test_encode_refuses_non_contiguous_or_unencodable() -> None:
    with pytest.raises(LogMisuseError, match="contiguous"):
        encode_entries([*make_entries(1, 1), *make_entries(3, 1)])
    with pytest.raises(LogMisuseError, match="cannot be encoded"):
        encode_entries([Entry(1, -1, EntryKind.NORMAL, b"")])
    with pytest.raises(LogMisuseError, match="cannot be encoded"):
        add_one_entry_record(RecordBuffer(), Entry(1, -1, EntryKind.NORMAL, b""))


def test_scan_verdicts() -> None:
    a, b = framed(make_entries(1, 2)), framed(make_entries(3, 2))
    clean = scan(a + b)
    assert clean.bad_reason is None and len(clean.records) == 2 and clean.good_end == len(a + b)

    short = scan(a + b[:5])
    assert short.bad_reason is not None and "truncated record header" in short.bad_reason
    assert (short.good_end, short.resync, short.zero_tail) == (len(a), None, False)

    zeros = scan(a + bytes(100))
    assert zeros.zero_tail and zeros.resync is None and zeros.good_end == len(a)

    damaged = bytearray(a + b + a)
    damaged[len(a) + 20] ^= 1
    res = scan(bytes(damaged))
    assert res.bad_reason == "record checksum mismatch"
    assert (res.good_end, res.resync) == (len(a), len(a + b))
