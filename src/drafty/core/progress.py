"""What the leader knows and assumes about each follower's log.

Theory of operation
-------------------
For every peer the leader keeps ``match`` (the highest index known to be
stored there) and ``next`` (the index of the next entry to send). A follower
is in one of two states:

- PROBE: the leader does not know where the logs diverge. It sends one
  AppendEntries at a time and waits for the answer (or the next heartbeat)
  before sending another, moving ``next`` back on each rejection. Every peer
  starts here when a leader is elected.
- REPLICATE: the last append succeeded, so the leader streams entries
  optimistically, advancing ``next`` as it sends, with at most
  ``max_inflight`` messages unacknowledged (:class:`Inflights`). A rejection
  drops the follower back to PROBE.

- SNAPSHOT: the follower needs entries the leader compacted away, so it was
  sent a snapshot (``pending_snapshot`` is its index). Nothing else is sent
  until the follower answers the snapshot (its match reaches
  ``pending_snapshot``) or the driver reports the transfer failed; either
  way the follower goes back to PROBE.

Invariants
----------
- ``0 <= match < next``: the leader never re-sends what it knows is stored.
- ``match`` only grows (within one leadership).
- In REPLICATE, ``inflights`` holds the last index of each unacknowledged
  message, in increasing order; in PROBE it is empty.
"""

from __future__ import annotations

from collections import deque
from enum import Enum


class ProgressState(Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """A bounded FIFO of the last index carried by each in-flight append."""

    __slots__ = ("_capacity", "_queue")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._queue: deque[int] = deque()

    def add(self, last_index: int) -> None:
        """Record a message whose entries end at ``last_index``."""
        self._queue.append(last_index)

    def free_to(self, index: int) -> None:
        """Forget every message acknowledged by a match of ``index``."""
        q = self._queue
        while q and q[0] <= index:
            q.popleft()

    def full(self) -> bool:
        return len(self._queue) >= self._capacity

    def count(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        self._queue.clear()


class Progress:
    """The leader's view of one follower (see the module docstring)."""

    __slots__ = (
        "heartbeat_answered",
        "inflights",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        """In PROBE: an append is outstanding; send no more until an answer or heartbeat."""
        self.recent_active = True
        """Heard from since the last CheckQuorum round."""
        self.heartbeat_answered = False
        """An answer to the latest heartbeat arrived (later ones trigger no resend)."""
        self.inflights = Inflights(max_inflight)
        self.pending_snapshot = 0
        """In SNAPSHOT: the index of the snapshot sent (0 otherwise)."""

    def __repr__(self) -> str:
        return (
            f"Progress(state={self.state.value}, match={self.match}, next={self.next}, "
            f"inflight={self.inflights.count()})"
        )

    def become_probe(self) -> None:
        """Go back to one-at-a-time probing from just after ``match``.

        Leaving SNAPSHOT, probing starts after the snapshot if it was
        installed (the follower's match says so), else after ``match``.
        """
        self.state = ProgressState.PROBE
        self.next = self.match + 1
        self.pending_snapshot = 0
        self.probe_sent = False
        self.inflights.reset()

    def become_snapshot(self, index: int) -> None:
        """A snapshot up to ``index`` was sent: wait for its outcome."""
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.probe_sent = False
        self.inflights.reset()

    def become_replicate(self) -> None:
        """Start streaming right after ``match``."""
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflights.reset()

    def is_paused(self) -> bool:
        """Whether the leader must hold further appends to this follower."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.SNAPSHOT:
            return True
        return self.inflights.full()

    def sent(self, last_index: int, n_entries: int) -> None:
        """Account for an append carrying entries up to ``last_index``."""
        if self.state is ProgressState.REPLICATE:
            if n_entries:
                self.next = last_index + 1
                self.inflights.add(last_index)
        else:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """Record a successful append up to ``index``; False if it was old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        self.inflights.free_to(index)
        return updated

    def forget_match(self, index: int) -> None:
        """The follower lost its log past ``index`` (a wiped disk): the only
        time ``match`` goes down. Probe again from there."""
        self.match = min(self.match, index)
        self.become_probe()

    def maybe_decrease(self, rejected: int, next_hint: int) -> bool:
        """Handle a rejection of ``prev_index == rejected``; False if stale.

        ``next_hint`` is where the leader computed it should retry from; it is
        clamped into ``(match, rejected]`` so ``next`` stays above ``match``.
        """
        if self.state is ProgressState.SNAPSHOT:
            return False  # the snapshot's own answer decides
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # a rejection older than what we know matched
            self.become_probe()
            self.next = max(self.match + 1, min(rejected, next_hint))
            return True
        if rejected != self.next - 1:
            return False  # not the answer to our outstanding probe
        self.next = max(self.match + 1, min(rejected, next_hint))
        self.probe_sent = False
        return True
