"""Giving freed memory back to the operating system after a compaction.

Theory of operation
-------------------
Log entries are allocated one by one as they arrive and freed in bulk when a
snapshot compacts the log. With glibc's allocator, blocks freed in the middle
of the heap stay mapped (they are reused for new allocations but still count
in the resident set), so a node that compacted a 64 MiB log can look 60 MiB
bigger than its data for the rest of its life. ``malloc_trim(0)`` hands
those free pages back (madvise) without moving anything. It is called on the
loop after each compaction, which is rare; it costs a few milliseconds on a
heap of a few hundred megabytes.

Blocks of 256 KiB and more (big entries, snapshot chunks, transport frames)
are a second source: glibc serves them from ``mmap`` at first, but raises
its threshold each time one is freed, after which they come from the heap
and stay resident after use. :func:`keep_big_blocks_mapped` pins the
threshold (``mallopt(M_MMAP_THRESHOLD)``) so they always go back when freed.

Where glibc is not the allocator (musl, macOS), both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

M_MMAP_THRESHOLD = -3
"""glibc's mallopt parameter number for the mmap threshold."""
BIG_BLOCK_BYTES = 256 << 10

_libc: ctypes.CDLL | None = None
_looked = False


def _c_function(name: str) -> Callable[..., int] | None:
    global _libc, _looked
    if not _looked:
        _looked = True
        path = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(path) if path else None
        except OSError:
            _libc = None
    fn = getattr(_libc, name, None) if _libc is not None else None
    return fn


def release_freed_memory() -> bool:
    """Return free heap pages to the OS if the C library can; whether it did."""
    trim = _c_function("malloc_trim")
    if trim is None:
        return False
    return bool(trim(ctypes.c_size_t(0)))


def keep_big_blocks_mapped() -> bool:
    """Serve blocks of :data:`BIG_BLOCK_BYTES` and more from mmap, always."""
    mallopt = _c_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(BIG_BLOCK_BYTES)))
