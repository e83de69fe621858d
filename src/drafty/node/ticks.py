"""Ticks in step with the monotonic clock, for lease reads.

Theory of operation
-------------------
The core counts time in ticks, and a lease read is safe only while the
leader's tick count keeps up with real time (:mod:`drafty.core.readonly`).
A driver that ticks on a timer falls behind whenever the process is paused
(SIGSTOP, a VM freeze) or its event loop stalls: the missed ticks never come,
and a leader that was frozen for seconds would think its lease still fresh.
And when it wakes, messages and client reads may be handled before the timer
fires at all.

So with leases on, the node layer does not take "one call = one tick": every
entry point that carries a clock reading (``tick``, ``receive``, ``read``)
first delivers the ticks that reading says are due, counted from the first
reading as ``floor(elapsed / tick_ms)``. The count never runs ahead of real
time (a follower never times out early because of it) and lags it by less
than one tick. After a long freeze at most ``max_catch_up`` ticks are
delivered at once: enough to run out any lease and to start an election,
without thousands of heartbeats in one batch; the rest are skipped.
"""

from __future__ import annotations


class TickClock:
    """How many core ticks are due at a monotonic clock reading."""

    def __init__(self, tick_ms: int, max_catch_up: int) -> None:
        if tick_ms < 1:
            raise ValueError("tick_ms must be at least 1 to keep ticks in step with the clock")
        if max_catch_up < 1:
            raise ValueError("max_catch_up must be at least 1")
        self.tick_ms = tick_ms
        self.max_catch_up = max_catch_up
        self._origin_ms: int | None = None
        self._delivered = 0
        """Ticks handed out since ``_origin_ms``; never more than the elapsed periods."""
        self.skipped = 0
        """Ticks dropped after freezes longer than ``max_catch_up`` ticks."""

    def due(self, mono_ms: int) -> int:
        """The ticks to deliver now (0 if this period's tick was delivered)."""
        if self._origin_ms is None:
            self._origin_ms = mono_ms
            return 0
        elapsed = (mono_ms - self._origin_ms) // self.tick_ms
        n = elapsed - self._delivered
        if n <= 0:
            return 0
        if n > self.max_catch_up:
            self.skipped += n - self.max_catch_up
            n = self.max_catch_up
        self._delivered = elapsed
        assert self._delivered * self.tick_ms <= mono_ms - self._origin_ms
        return n
