"""Giving memory back to the OS (glibc only; elsewhere the calls do nothing)."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or "musl" in (ctypes.util.find_library("c") or ""),
    reason="glibc's malloc only",
)

# Run in a fresh interpreter: glibc's thresholds are process-wide and sticky.
# A freed 8 MiB block raises glibc's mmap threshold, so later 1 MiB blocks come
# from the heap; small blocks kept between them pin those pages after free.
PROBE = """
import sys
from drafty.driver.memory import keep_big_blocks_mapped, release_freed_memory
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1])
if sys.argv[1] == "pin":
    assert keep_big_blocks_mapped()
big = bytearray(8 << 20); del big
before = rss()
blocks, pins = [], []
for _ in range(64):
    b = bytearray(1 << 20)
    b[::4096] = b"x" * len(b[::4096])
    blocks.append(b)
    pins.append(bytearray(2000))
grown = rss() - before
del blocks
kept = rss() - before
if sys.argv[2] == "trim":
    release_freed_memory()
print(grown, kept, rss() - before)
"""


def _probe(pin: str, trim: str) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, pin, trim], capture_output=True, text=True, check=True
    )
    grown, kept, after = (int(x) for x in out.stdout.split())
    return grown, kept, after


@glibc
def test_pinned_big_blocks_leave_the_resident_set_as_soon_as_they_are_freed() -> None:
    grown, kept, _ = _probe("pin", "no")
    assert grown > 12_000  # pages: the 64 MiB were resident
    assert kept < 2_000  # and went back at free, without a trim


@glibc
def test_without_the_pin_they_stay_until_a_trim_hands_them_back() -> None:
    grown, kept, after = _probe("no", "trim")
    assert grown > 12_000 and kept > 12_000  # the unpinned heap keeps them...
    assert after < 2_000  # ...until malloc_trim
