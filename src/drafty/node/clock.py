"""Log time: the clock that session expiry (and, later, key TTLs) runs on.

Theory of operation
-------------------
State that expires must expire at the same log index on every replica, so
its clock must come from the log: an entry may carry a time (milliseconds),
and log time is the highest time applied so far (it never goes back). Only a
leader stamps, and only its own proposals (:class:`Instant` readings of its
clocks); a follower's forwarded entries carry 0, "no reading". A leader also
proposes a ``CLOCK`` entry when its last stamp is older than
``clock_interval_ms`` and the log has grown since, so log time moves while
all traffic arrives through followers.

One skewed clock must not drive log time. A leader therefore never stamps
more than ``max_lead_ms`` beyond the *anchor*: the newest stamp it applied
from another node, extrapolated by its own monotonic clock::

    stamp = max(last stamp, min(wall clock, anchor + (mono now - mono at apply) + max_lead))

A node whose wall clock runs ten minutes fast thus moves log time at most
``max_lead_ms`` past the honest clocks that stamped before it, and one that
runs slow only holds log time back (sessions then live longer: the safe
direction). Monotonic clocks keep their rate across wall-clock jumps, which
is all the extrapolation needs. Before any other node's stamp is known (a
new cluster, a single node) the leader's wall clock is taken as it is: it
sets the epoch, which harms nothing, since expiry counts idle time.

Invariants: stamps of one node never decrease and are never 0; with one
skewed clock in the cluster, log time stays within ``max_lead_ms`` of the
honest clocks once another node has stamped (the simulator checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_MAX_LEAD_MS: Final = 1000
DEFAULT_CLOCK_INTERVAL_MS: Final = 1000


@dataclass(frozen=True, slots=True)
class Instant:
    """One reading of a node's clocks, in milliseconds."""

    mono_ms: int
    """Monotonic clock: never goes back within a process life; any origin."""
    wall_ms: int
    """Wall clock (Unix time): may be skewed, may jump."""


class LeaderClock:
    """Stamps this node's proposals while it leads; see the module docstring."""

    def __init__(self, node_id: int, max_lead_ms: int = DEFAULT_MAX_LEAD_MS) -> None:
        if max_lead_ms < 0:
            raise ValueError("max_lead_ms must be >= 0")
        self.node_id = node_id
        self.max_lead_ms = max_lead_ms
        self.last_stamp = 0
        self._anchor: int | None = None
        """Best ``stamp - mono at apply`` of another node's stamps (extrapolation base)."""

    def observe(self, origin: int, time_ms: int, mono_ms: int) -> None:
        """A stamped entry from ``origin`` was applied at ``mono_ms``."""
        if origin == self.node_id or time_ms == 0:
            return
        base = time_ms - mono_ms
        if self._anchor is None or base > self._anchor:
            self._anchor = base

    def cap(self, now: Instant) -> int | None:
        """The highest stamp allowed at ``now`` (None: no anchor yet)."""
        if self._anchor is None:
            return None
        return self._anchor + now.mono_ms + self.max_lead_ms

    def stamp(self, now: Instant) -> int:
        """The time to stamp a proposal made at ``now``."""
        cap = self.cap(now)
        t = now.wall_ms if cap is None else min(now.wall_ms, cap)
        t = max(t, self.last_stamp, 1)
        self.last_stamp = t
        return t
