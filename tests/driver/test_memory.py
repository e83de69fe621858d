"""Giving memory back to the OS (glibc only; elsewhere the calls do nothing)."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from drafty.driver.memory import keep_big_blocks_mapped, release_freed_memory

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or "musl" in (ctypes.util.find_library("c") or ""),
    reason="glibc's malloc only",
)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1])


@glibc
def test_freed_big_blocks_leave_the_resident_set() -> None:
    assert keep_big_blocks_mapped()
    before = _rss()
    blocks = [bytearray(1 << 20) for _ in range(64)]  # 64 MiB, touched
    for b in blocks:
        b[::4096] = b"x" * len(b[::4096])
    grown = _rss()
    del blocks, b
    release_freed_memory()
    assert grown - before > 12_000  # pages: the blocks were resident
    assert _rss() - before < 4_000  # and went back to the OS
