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

Where glibc is not the allocator (musl, macOS), :func:`release_freed_memory`
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
_looked = False


def release_freed_memory() -> bool:
    """Return free heap pages to the OS if the C library can; whether it did."""
    global _trim, _looked
    if not _looked:
        _looked = True
        name = ctypes.util.find_library("c")
        try:
            fn = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
        except OSError:
            fn = None
        if fn is not None:
            fn.argtypes = [ctypes.c_size_t]
            fn.restype = ctypes.c_int
            _trim = fn
    if _trim is None:
        return False
    return bool(_trim(0))
