"""Shared test helpers: entries, a fake disk that forgets unsynced bytes, log snapshots."""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from drafty.core.types import Entry, EntryKind, HardState
from drafty.storage.wal import WriteAheadLog


def make_entries(first: int, n: int, term: int = 1, size: int = 8) -> list[Entry]:
    """``n`` entries from ``first``; data encodes (index, term) so mix-ups show."""
    out = []
    for i in range(first, first + n):
        data = f"{i}:{term}:".encode().ljust(size, b"#")
        kind = EntryKind.NOOP if i % 7 == 0 else EntryKind.NORMAL
        out.append(Entry(i, term, kind, data))
    return out


LogImage = tuple[int, int, tuple[Entry, ...], HardState]
"""(base index, base term, entries, hard state): what a log holds, comparable."""


def image(log: WriteAheadLog) -> LogImage:
    return (
        log.base_index,
        log.base_term,
        tuple(log.entries(log.first_index, log.last_index)),
        log.hard_state,
    )


class FakeDisk:
    """Interposes ``os.fsync``/``os.fdatasync`` to learn what is durable.

    Records, per inode, a regular file's size at its last fsync. ``crash(dir)``
    then makes the directory look like it would after a power loss: files never
    fsynced vanish, others are cut back to their durable size plus, if ``rng``
    is given, a random part of the unsynced tail (a torn write).
    ``real=False`` skips the real fsync (fast tests).
    """

    def __init__(self, real: bool = False) -> None:
        self.real = real
        self.durable: dict[int, int] = {}
        self.fsyncs = 0
        self._real_fsync = os.fsync
        self._real_fdatasync = os.fdatasync

    def _make(self, real_fn: Callable[[int], None]) -> Callable[[int], None]:
        def fake(fd: int) -> None:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                self.durable[st.st_ino] = st.st_size
                self.fsyncs += 1
            if self.real:
                real_fn(fd)

        return fake

    @contextmanager
    def installed(self) -> Iterator[FakeDisk]:
        with (
            mock.patch.object(os, "fsync", self._make(self._real_fsync)),
            mock.patch.object(os, "fdatasync", self._make(self._real_fdatasync)),
        ):
            yield self

    def crash(self, directory: Path, rng: random.Random | None = None) -> None:
        for p in sorted(directory.iterdir()):
            if not p.is_file():
                continue
            st = p.stat()
            size = self.durable.get(st.st_ino)
            if size is None:
                p.unlink()
                continue
            if st.st_size > size:
                keep = size + (rng.randint(0, st.st_size - size) if rng else 0)
                os.truncate(p, keep)


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"))


class Model:
    """The obvious in-memory log the real one must match."""

    def __init__(self) -> None:
        self.base = 0
        self.base_term = 0
        self.entries: list[Entry] = []
        self.hs = HardState()

    @property
    def last(self) -> int:
        return self.base + len(self.entries)

    def term(self, index: int) -> int | None:
        if index == self.base:
            return self.base_term
        if self.base < index <= self.last:
            return self.entries[index - self.base - 1].term
        return None

    def append(self, entries: list[Entry]) -> None:
        if entries:
            del self.entries[entries[0].index - self.base - 1 :]
            self.entries += entries

    def truncate(self, index: int) -> None:
        del self.entries[index - self.base - 1 :]

    def compact(self, index: int, term: int | None = None) -> None:
        if index <= self.base:
            return
        if term is None or self.term(index) == term:
            self.base_term = self.term(index) or 0
            del self.entries[: index - self.base]
        else:
            self.entries = []
            self.base_term = term
        self.base = index

    def image(self) -> LogImage:
        return (self.base, self.base_term, tuple(self.entries), self.hs)
