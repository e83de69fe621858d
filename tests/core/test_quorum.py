"""Majority arithmetic (drafty.core.quorum): commit index, vote tallies, quorums."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drafty.core.quorum import VoteResult, committed_index, has_quorum, majority, vote_result

WON, LOST, PENDING = VoteResult.WON, VoteResult.LOST, VoteResult.PENDING


@pytest.mark.parametrize(
    ("n", "expected"), [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)]
)
def test_majority(n: int, expected: int) -> None:
    assert majority(n) == expected


@pytest.mark.parametrize(
    ("voters", "match", "expected"),
    [
        ((1,), {1: 7}, 7),
        ((1,), {}, 0),
        ((1, 2), {1: 5, 2: 3}, 3),  # two voters: both must have it
        ((1, 2), {1: 5}, 0),
        ((1, 2, 3), {1: 5, 2: 3, 3: 9}, 5),
        ((1, 2, 3), {1: 5, 2: 3}, 3),  # voter 3 missing counts as 0
        ((1, 2, 3), {1: 5}, 0),
        ((1, 2, 3), {1: 4, 2: 4, 3: 4}, 4),
        ((1, 2, 3, 4), {1: 9, 2: 8, 3: 7, 4: 6}, 7),  # needs 3 of 4
        ((1, 2, 3, 4), {1: 9, 2: 8}, 0),
        ((1, 2, 3, 4), {1: 9, 2: 8, 3: 1}, 1),
        ((1, 2, 3, 4, 5), {1: 10, 2: 2, 3: 8, 4: 4, 5: 6}, 6),
        ((1, 2, 3, 4, 5), {1: 10, 3: 8, 5: 6}, 6),  # 2 and 4 missing
        ((1, 2, 3, 4, 5), {1: 10, 3: 8}, 0),
        ((1, 2, 3, 4, 5, 6), {1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1}, 3),  # needs 4 of 6
        ((1, 2, 3, 4, 5, 6, 7), {i: i for i in range(1, 8)}, 4),  # needs 4 of 7
        ((1, 2, 3, 4, 5, 6, 7), {1: 3, 2: 3, 3: 3}, 0),
        ((1, 2, 3, 4, 5, 6, 7), {1: 3, 2: 3, 3: 3, 4: 2}, 2),
        # Matches of non-voters do not count.
        ((1, 2, 3), {1: 9, 7: 9, 8: 9}, 0),
        ((), {1: 5}, 0),
    ],
)
def test_committed_index_table(
    voters: tuple[int, ...], match: dict[int, int], expected: int
) -> None:
    assert committed_index(voters, match) == expected


def test_committed_index_docstring_example() -> None:
    assert committed_index([1, 2, 3], {1: 5, 2: 3, 3: 9}) == 5


@given(
    voters=st.sets(st.integers(1, 9), min_size=1, max_size=7),
    match=st.dictionaries(st.integers(1, 12), st.integers(0, 30), max_size=12),
)
def test_committed_index_is_the_majority_order_statistic(
    voters: set[int], match: dict[int, int]
) -> None:
    """The result is stored by a majority, and no greater index is."""
    c = committed_index(voters, match)
    need = len(voters) // 2 + 1
    have = sum(1 for v in voters if match.get(v, 0) >= c)
    assert have >= need
    above = sum(1 for v in voters if match.get(v, 0) >= c + 1)
    assert above < need
    assert c <= max(match.get(v, 0) for v in voters)


@pytest.mark.parametrize("n", range(1, 8))
def test_vote_result_boundaries(n: int) -> None:
    """Every (granted, rejected) split of n voters, against the definition."""
    voters = list(range(1, n + 1))
    need = n // 2 + 1
    for granted in range(n + 1):
        for rejected in range(n + 1 - granted):
            votes = {v: True for v in voters[:granted]}
            votes.update({v: False for v in voters[granted : granted + rejected]})
            result = vote_result(voters, votes)
            if granted >= need:
                assert result is WON, (n, granted, rejected)
            elif n - rejected < need:
                assert result is LOST, (n, granted, rejected)
            else:
                assert result is PENDING, (n, granted, rejected)


@pytest.mark.parametrize(
    ("voters", "votes", "expected"),
    [
        ((1,), {}, PENDING),
        ((1,), {1: True}, WON),
        ((1,), {1: False}, LOST),
        ((1, 2, 3), {1: True}, PENDING),
        ((1, 2, 3), {1: True, 2: True}, WON),
        ((1, 2, 3), {1: True, 2: False}, PENDING),
        ((1, 2, 3), {1: True, 2: False, 3: False}, LOST),
        ((1, 2, 3, 4), {1: True, 2: True}, PENDING),  # a tie is not a win
        ((1, 2, 3, 4), {1: True, 2: True, 3: False}, PENDING),
        ((1, 2, 3, 4), {1: True, 2: False, 3: False}, LOST),  # 3 of 4 no longer reachable
        ((1, 2, 3, 4, 5), {1: True, 2: True, 3: True}, WON),
        ((1, 2, 3, 4, 5), {1: False, 2: False, 3: False}, LOST),
        ((1, 2, 3, 4, 5), {1: True, 2: True, 3: False, 4: False}, PENDING),
        # Answers from non-voters are ignored, whatever they say.
        ((1, 2, 3), {1: True, 8: True, 9: True}, PENDING),
        ((1, 2, 3), {1: True, 8: False, 9: False}, PENDING),
    ],
)
def test_vote_result_table(
    voters: tuple[int, ...], votes: dict[int, bool], expected: VoteResult
) -> None:
    assert vote_result(voters, votes) is expected


@given(
    n=st.integers(1, 7),
    answers=st.lists(st.tuples(st.integers(1, 7), st.booleans()), max_size=10),
)
def test_vote_result_once_decided_never_changes(n: int, answers: list[tuple[int, bool]]) -> None:
    """WON and LOST are final as more (first) answers arrive."""
    voters = list(range(1, n + 1))
    votes: dict[int, bool] = {}
    decided: VoteResult | None = None
    for who, granted in answers:
        votes.setdefault(who, granted)
        result = vote_result(voters, votes)
        if decided is not None:
            assert result is decided
        elif result is not PENDING:
            decided = result


@pytest.mark.parametrize(
    ("voters", "active", "expected"),
    [
        ((1,), (1,), True),
        ((1,), (), False),
        ((1, 2), (1,), False),
        ((1, 2), (1, 2), True),
        ((1, 2, 3), (1,), False),
        ((1, 2, 3), (1, 3), True),
        ((1, 2, 3, 4), (1, 2), False),
        ((1, 2, 3, 4), (1, 2, 4), True),
        ((1, 2, 3, 4, 5), (2, 4), False),
        ((1, 2, 3, 4, 5), (2, 4, 5), True),
        ((1, 2, 3, 4, 5, 6, 7), (1, 2, 3), False),
        ((1, 2, 3, 4, 5, 6, 7), (1, 2, 3, 7), True),
        ((1, 2, 3), (1, 8, 9), False),  # strangers do not make a quorum
    ],
)
def test_has_quorum(voters: tuple[int, ...], active: tuple[int, ...], expected: bool) -> None:
    assert has_quorum(voters, active) is expected
