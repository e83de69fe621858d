"""The requests a node's callers wait on, and the one reply each gets.

Theory of operation
-------------------
Every request (a command or a session opening) is numbered by the node and
waits here until exactly one :class:`Reply` decides it. What is remembered
per request: the term it was proposed in (its entry can only be of that
term), the log index it was appended at when this node leads (forwarded
ones learn theirs only when applied), and a deadline. The node settles a
request when its entry applies, and the rules below settle the rest:

- :meth:`Waiting.refuse_older_than`: an entry of a later term applied, so an
  entry of an earlier term can no longer apply (a term's entries are
  contiguous): certainly no effect;
- :meth:`Waiting.unknown_upto`: a snapshot replaced the log up to a term; a
  request of that term or earlier may be inside it, applied or not;
- :meth:`Waiting.expire`: the deadline passed (unknown outcome);
- :meth:`Waiting.end_all`: the node stops or fails (unknown outcome).

Invariants
----------
- A request gets one reply: answering removes it, and an answer for a
  request not waiting is dropped.
- At most ``max_pending`` wait at once (the node refuses more).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from ..core import NONE, DraftyError, NodeId
from .api import OutcomeUnknown, Refused


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of request ``request``: ``error`` if not None, else ``value``."""

    request: int
    value: Any = None
    error: DraftyError | None = None
    index: int = 0
    """The log index whose application decided it (0: decided otherwise)."""
    read_at: int = 0
    """For a read served without the log: the applied index it saw (else 0)."""


class Waiting:
    """Requests waiting for their outcome; replies accumulate in ``replies``."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.replies: list[Reply] = []
        self._term: dict[int, int] = {}
        """Request -> the term it was proposed in."""
        self._at: dict[int, int] = {}
        """Index -> request, for requests this node appended as leader."""
        self._deadlines: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._term)

    def __contains__(self, rid: int) -> bool:
        return rid in self._term

    def add(self, rid: int, term: int, deadline_ms: int, index: int | None) -> None:
        self._term[rid] = term
        heapq.heappush(self._deadlines, (deadline_ms, rid))
        if index is not None:
            self._at[index] = rid

    def term_of(self, rid: int) -> int | None:
        """The term request ``rid`` was proposed in, if it still waits."""
        return self._term.get(rid)

    def take_at(self, index: int) -> int | None:
        """The request this node appended at ``index``, if it still waits on it."""
        return self._at.pop(index, None) if self._at else None

    def answer(
        self, rid: int, value: Any = None, error: DraftyError | None = None, index: int = 0
    ) -> None:
        if self._term.pop(rid, None) is not None:
            self.replies.append(Reply(rid, value, error, index))

    def expire(self, now_ms: int) -> None:
        dl = self._deadlines
        while dl and dl[0][0] <= now_ms:
            _, rid = heapq.heappop(dl)
            if rid in self._term:
                self.answer(
                    rid,
                    error=OutcomeUnknown(f"no outcome within the deadline ({self.timeout_ms} ms)"),
                )
        if not self._term and dl:
            dl.clear()

    def end_all(self, error: DraftyError) -> None:
        for rid in list(self._term):
            self.answer(rid, error=error)
        self._at.clear()
        self._deadlines.clear()

    def refuse_older_than(self, term: int, leader: NodeId = NONE) -> None:
        """An entry of ``term`` applied: requests of earlier terms can never apply."""
        for rid in [r for r, t in self._term.items() if t < term]:
            self.answer(
                rid,
                error=Refused("leadership changed before its entry committed; it had no effect",
                              leader),
            )  # fmt: skip

    def unknown_upto(self, index: int, term: int) -> None:
        """A snapshot replaced the log through ``index`` (of ``term``)."""
        for rid in [r for r, t in self._term.items() if t <= term]:
            self.answer(
                rid,
                error=OutcomeUnknown(
                    f"a snapshot through index {index} replaced the log; the request may be in it"
                ),
            )
        self._at = {i: r for i, r in self._at.items() if i > index and r in self._term}
