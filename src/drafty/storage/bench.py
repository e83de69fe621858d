"""``drafty storage bench``: log throughput next to the raw disk, and reopen time.

For 100-byte entries at batch sizes 1, 16, 256 and 4096 it times
``append(batch)`` + ``sync()`` (one fsync per batch: the group-commit unit) and,
in the same run and directory, a raw loop that ``os.write``s the same bytes
(the encoded record) and calls ``os.fsync`` (and ``os.fdatasync``). The three
loops take turns batch by batch, so a disk whose speed drifts affects them alike;
rates are 1 / the median batch time, so a rare stall of a shared disk does not
decide the comparison.
Only the log calls are timed; building the Entry objects (the core's job) is not.
Then it writes a log of ``--reopen-entries`` entries and times
``WriteAheadLog.open`` on it (recovery: read, checksum and index every record).

Targets (issue 4): batch 1 >= 85% of the raw fsync rate; batch 4096 >=
300,000 entries/s; reopen of 1,000,000 entries < 3 s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

from drafty.core.types import Entry, EntryKind

from .fsutil import HAVE_FDATASYNC, sync_data
from .record import RecordBuffer, add_entries_record, encode_entries
from .wal import WriteAheadLog

ENTRY_BYTES = 100
BATCHES = (1, 16, 256, 4096)


def _batch(first: int, n: int, payload: bytes) -> list[Entry]:
    return [Entry(i, 1, EntryKind.NORMAL, payload) for i in range(first, first + n)]


class _LogRunner:
    """append(batch) + sync() on a log, one batch per step."""

    def __init__(self, directory: Path, n: int, payload: bytes) -> None:
        self.log = WriteAheadLog.open(directory)
        self.n = n
        self.payload = payload
        self.index = 1
        self.times: list[float] = []
        self.spent = 0.0

    def step(self) -> None:
        batch = _batch(self.index, self.n, self.payload)  # the core's work: not timed
        t0 = time.perf_counter()
        self.log.append(batch)
        self.log.sync()
        took = time.perf_counter() - t0
        self.times.append(took)
        self.spent += took
        self.index += self.n

    def close(self) -> None:
        self.log.close()


class _RawRunner:
    """os.write(record) + flush(fd) on a plain file, one batch per step."""

    def __init__(self, path: Path, record: bytes, flush: Callable[[int], None]) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self.path = path
        self.record = record
        self.flush = flush
        self.times: list[float] = []

    def step(self) -> None:
        t0 = time.perf_counter()
        os.write(self.fd, self.record)
        self.flush(self.fd)
        self.times.append(time.perf_counter() - t0)

    def close(self) -> None:
        os.close(self.fd)
        self.path.unlink()


def _measure(base: Path, n: int, seconds: float, payload: bytes) -> list[float]:
    """[entries/s, fsyncs/s, raw fsync/s, raw fdatasync/s] from median batch times.

    The three loops take turns batch by batch, so a disk whose speed drifts
    affects them alike, and medians keep a rare stall of a shared disk from
    deciding the comparison."""
    record = RecordBuffer()
    add_entries_record(record, encode_entries(_batch(1, n, payload)))
    log = _LogRunner(base / f"wal-{n}", n, payload)
    raw = _RawRunner(base / "raw-fsync.bin", bytes(record), os.fsync)
    raw_d = _RawRunner(base / "raw-fdatasync.bin", bytes(record), sync_data)
    runners = (log, raw, raw_d)
    try:
        while log.spent < seconds:
            for runner in runners:
                runner.step()
    finally:
        for runner in runners:
            runner.close()
        shutil.rmtree(base / f"wal-{n}")
    syncs = 1 / median(log.times)
    return [syncs * n, syncs, 1 / median(raw.times), 1 / median(raw_d.times)]


def _bench_reopen(directory: Path, entries: int, batch: int, payload: bytes) -> float:
    log = WriteAheadLog.open(directory)
    index = 1
    while index <= entries:
        n = min(batch, entries - index + 1)
        log.append(_batch(index, n, payload))
        index += n
    log.close()
    t0 = time.perf_counter()
    log = WriteAheadLog.open(directory)
    took = time.perf_counter() - t0
    assert log.last_index == entries, (log.last_index, entries)
    log.close()
    return took


def run_bench(
    directory: Path | None,
    seconds: float,
    reopen_entries: int,
    reopen_batches: list[int],
) -> int:
    base = Path(tempfile.mkdtemp(prefix="drafty-bench-", dir=directory))
    payload = bytes(range(ENTRY_BYTES))
    sync_name = "os.fdatasync" if HAVE_FDATASYNC else "os.fsync"
    print(
        f"directory: {base}  (log syncs with {sync_name}; {ENTRY_BYTES}-byte entries; "
        f"{seconds:g} s of log time per batch size)"
    )
    print(
        f"{'batch':>6} {'entries/s':>12} {'fsyncs/s':>10} {'raw fsync/s':>12} "
        f"{'raw fdatasync/s':>16} {'log/raw fsync':>14}"
    )
    try:
        for n in BATCHES:
            per_s, syncs, raw, raw_d = _measure(base, n, seconds, payload)
            print(
                f"{n:>6} {per_s:>12,.0f} {syncs:>10,.0f} {raw:>12,.0f} {raw_d:>16,.0f} "
                f"{syncs / raw:>13.0%}"
            )
        for batch in reopen_batches:
            wal_dir = base / f"reopen-{batch}"
            took = _bench_reopen(wal_dir, reopen_entries, batch, payload)
            shutil.rmtree(wal_dir)
            print(f"reopen {reopen_entries:,} entries written {batch} per record: {took:.2f} s")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0
