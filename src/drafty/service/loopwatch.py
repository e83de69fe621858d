"""LoopWatch: how late the event loop runs, measured by a timer that records its own lateness.

Theory of operation
-------------------
A task sleeps ``interval_ms`` at a time and, each time it wakes, notes how
much later than asked it woke: that is how long something held the loop (a
long callback, a snapshot taken on the loop, a garbage collection). The
largest lateness since the last :meth:`LoopWatch.reset` and a count of
stalls over ``stall_ms`` are what INFO shows (``CONFIG RESETSTAT`` resets
them), so an operator (or the snapshot benchmark) can see whether anything
stalls the loop, and by how much, without a profiler.

The cost is one wake-up per interval (1% of a core at 10 ms is far less).
"""

from __future__ import annotations

import asyncio
import time


class LoopWatch:
    """Measures event-loop lateness; see the module docstring."""

    def __init__(self, interval_ms: int = 10, stall_ms: int = 50) -> None:
        if interval_ms < 1 or stall_ms < 1:
            raise ValueError("interval_ms and stall_ms must be at least 1")
        self.interval_ms = interval_ms
        self.stall_ms = stall_ms
        self.max_lateness_ms = 0.0
        """The longest the loop was late since the last reset."""
        self.stalls = 0
        """Wake-ups later than ``stall_ms`` since the last reset."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loopwatch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def reset(self) -> None:
        self.max_lateness_ms = 0.0
        self.stalls = 0

    async def _run(self) -> None:
        interval = self.interval_ms / 1000
        while True:
            asked = time.perf_counter() + interval
            await asyncio.sleep(interval)
            late = (time.perf_counter() - asked) * 1000
            if late > self.max_lateness_ms:
                self.max_lateness_ms = late
            if late > self.stall_ms:
                self.stalls += 1
