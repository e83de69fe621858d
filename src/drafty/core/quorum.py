"""Quorum arithmetic: pure functions over a set of voters.

Theory of operation
-------------------
Raft decides two things by majority: whether an election is won (paper §5.2)
and how far the log is committed (§5.3). Both are answered here from plain
mappings, so the rules can be read and tested apart from the protocol:

- :func:`committed_index`: the highest index that a majority of voters has
  durably stored, i.e. the median-ish order statistic of their match indexes.
- :func:`vote_result`: won once a majority granted, lost once a majority can
  no longer be reached, pending otherwise.

A voter missing from the mapping counts as match 0 / no answer yet. Joint
consensus (membership changes) combines two majority configs: the joint
committed index is the minimum of both, and a joint vote is won only when
both halves are won (:class:`drafty.core.membership.Membership` applies these
functions to each half).

Invariants: ``committed_index`` never exceeds the largest match of a voter,
and a result of WON or LOST never changes as more answers arrive.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum

from .types import NodeId


class VoteResult(Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def majority(n: int) -> int:
    """The smallest number of voters that is more than half of ``n``."""
    return n // 2 + 1


def committed_index(voters: Collection[NodeId], match: Mapping[NodeId, int]) -> int:
    """The highest index stored by a majority of ``voters``.

    >>> committed_index([1, 2, 3], {1: 5, 2: 3, 3: 9})
    5
    """
    if not voters:
        return 0
    ranked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return ranked[majority(len(ranked)) - 1]


def vote_result(voters: Collection[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    """Whether the answers in ``votes`` (voter -> granted) decide an election."""
    granted = rejected = 0
    for v in voters:
        answer = votes.get(v)
        if answer is True:
            granted += 1
        elif answer is False:
            rejected += 1
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Collection[NodeId], active: Collection[NodeId]) -> bool:
    """Whether the voters in ``active`` form a majority of ``voters``."""
    return sum(1 for v in voters if v in active) >= majority(len(voters))
