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
beyond what the stamps it has applied allow, extrapolated by its own
monotonic clock (which keeps its rate across wall-clock jumps)::

    stamp = min(wall clock, cap)
    cap   = max(other + (mono now - mono when applied) + max_lead,
                own   + (mono now - mono when applied))

where ``other`` is the best stamp applied from another node and ``own`` the
best of its own (this life's or an earlier one's, replayed from the log).
Only *applied* stamps count, with one exception: the leader's first stamp
of its current term binds its later stamps of that term (lead 0) until
something is applied. That is sound because a later entry of a term commits
only with every earlier entry of the same leader's term; and a stamp that
never committed (say, made when the leader had nothing to go by and took its
own clock) binds nothing in later terms.
Another node's stamp lets it lead by ``max_lead_ms``, to absorb honest clock
differences; its own stamps lend no lead, so it cannot ratchet log time up
stamp by stamp. A node whose wall clock runs ten minutes fast thus moves
log time at most ``max_lead_ms`` past the honest clocks that stamped before
it, and one that runs slow only holds log time back (sessions then live
longer: the safe direction). With no stamp applied at all (a new cluster)
(a leader stamps only once it applied an entry of its own term, so it
has seen every earlier stamp) the leader's wall clock is taken as it is: it
sets the epoch, which harms
nothing, since expiry counts idle time; from then on its own first stamp
bounds it.

Invariants: stamps are never 0; log time (the highest stamp applied) never
decreases; with one skewed clock in the cluster, log time stays within ``max_lead_ms`` of the
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
        self._other: int | None = None
        """Best ``stamp - mono at apply`` of another node's stamps (extrapolation base)."""
        self._own: int | None = None
        """The same for this node's own stamps (any life)."""
        self._term_first: tuple[int, int] | None = None
        """(term, stamp - mono) of this node's first stamp in its latest term."""

    def observe(self, origin: int, time_ms: int, mono_ms: int) -> None:
        """A stamped entry from ``origin`` was applied at ``mono_ms``."""
        if time_ms == 0:
            return
        base = time_ms - mono_ms
        if origin == self.node_id:
            if self._own is None or base > self._own:
                self._own = base
        elif self._other is None or base > self._other:
            self._other = base

    def cap(self, now: Instant, term: int = 0) -> int | None:
        """The highest stamp allowed at ``now`` in ``term`` (None: no stamp known yet)."""
        caps = []
        if self._term_first is not None and self._term_first[0] == term:
            caps.append(self._term_first[1] + now.mono_ms)
        if self._other is not None:
            caps.append(self._other + now.mono_ms + self.max_lead_ms)
        if self._own is not None:
            caps.append(self._own + now.mono_ms)
        return max(caps) if caps else None

    def stamp(self, now: Instant, term: int) -> int:
        """The time to stamp a proposal made at ``now`` by the leader of ``term``."""
        cap = self.cap(now, term)
        t = max(1, now.wall_ms if cap is None else min(now.wall_ms, cap))
        if self._term_first is None or self._term_first[0] != term:
            self._term_first = (term, t - now.mono_ms)
        return t
