"""Which logged proposals take effect: one per request identity, in its own term.

Theory of operation
-------------------
Every proposal carries its identity ``(origin, incarnation, request)`` and
the term its origin was in when it proposed (:mod:`drafty.node.envelope`).
A proposal can reach the log more than once (a duplicated or replayed
forwarding message), or late, in a later term, after its caller was told
something. :class:`DuplicateFilter` decides, from the log alone and so
identically on every replica, which logged copies take effect:

1. **Own term only.** An entry whose log term differs from the term its
   origin proposed it in has no effect. drafty's core appends a forwarded
   proposal only in the sender's term, so this rejects nothing a correct
   core produces; it turns "a proposal may surface in any later term" into
   "a proposal lives in one term", which lets the origin answer *certainly
   not applied* as soon as it applies an entry of a later term (entries of
   one term are contiguous in the log).
2. **Once per identity.** Within a term, for each origin the filter keeps
   the newest incarnation seen and the highest request number applied from
   it. An entry takes effect only if its incarnation is that newest one (or
   newer, which replaces the record) and its request number is higher. A
   duplicate, or an older request arriving after a newer one, has no effect;
   an entry of an older incarnation (a process that has since restarted)
   has none either.

At the first entry of a new term the records are dropped: rule 1 already
rejects every older proposal, so nothing is lost and memory stays at one
record per origin.

Why a waiting caller can be told :class:`~drafty.node.api.Refused` when its
request's first copy in log order is rejected: every later copy is rejected
too (the record only grows, and later terms fail rule 1), and no earlier copy
ran, or the caller would have been answered then.

Incarnations must grow across a node's lives: the driver derives each from
the wall clock and the last one it stored, and stores it before use.

Invariants: records exist only for the current ``term``; a record's
incarnation and request number never decrease within a term; at most
``max_origins`` records.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

MAX_ORIGINS: Final = 4096
"""Distinct proposing nodes remembered per term; entries of more are rejected."""


class Admission(Enum):
    ACCEPT = "accept"
    OTHER_TERM = "other term"
    SEEN = "duplicate or older request"
    OLD_LIFE = "older incarnation"
    TOO_MANY_ORIGINS = "too many origins"


class DuplicateFilter:
    """See the module docstring."""

    def __init__(self, max_origins: int = MAX_ORIGINS) -> None:
        self.term = 0
        self.max_origins = max_origins
        self._seen: dict[int, tuple[int, int]] = {}
        """origin -> (newest incarnation, highest request applied), this term."""

    def export(self) -> tuple[int, dict[int, tuple[int, int]]]:
        """The term and its records (for snapshots)."""
        return self.term, dict(self._seen)

    def load(self, term: int, seen: dict[int, tuple[int, int]]) -> None:
        """Replace the records with a snapshot's."""
        self.term, self._seen = term, dict(seen)

    def admit(
        self, entry_term: int, proposed_term: int, origin: int, incarnation: int, request: int
    ) -> Admission:
        """Whether the entry of ``entry_term`` carrying this proposal takes effect."""
        if entry_term != self.term:
            assert entry_term > self.term, "entries are applied in log order"
            self.term = entry_term
            self._seen.clear()
        if proposed_term != entry_term:
            return Admission.OTHER_TERM
        seen = self._seen.get(origin)
        if seen is None:
            if len(self._seen) >= self.max_origins:
                return Admission.TOO_MANY_ORIGINS
        elif incarnation < seen[0]:
            return Admission.OLD_LIFE
        elif incarnation == seen[0] and request <= seen[1]:
            return Admission.SEEN
        self._seen[origin] = (incarnation, request)
        return Admission.ACCEPT
