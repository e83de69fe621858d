"""The in-memory log and its marks (drafty.core.log)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drafty.core import Entry, StateError
from drafty.core.log import RaftLog
from drafty.core.types import ENTRY_OVERHEAD

from .helpers import log_of


def sized(index: int, term: int, n: int) -> Entry:
    """An entry that costs exactly ``n`` bytes against message limits."""
    return Entry(index, term, data=b"x" * (n - ENTRY_OVERHEAD))


# -- reading ---------------------------------------------------------------


def test_empty_log() -> None:
    log = RaftLog()
    assert (log.last_index(), log.last_term()) == (0, 0)
    assert log.term(0) == 0
    assert log.term(1) is None
    assert log.unstable() == [] and log.to_apply() == []
    assert (log.committed, log.applied, log.persisted, log.stable) == (0, 0, 0, 0)


def test_term_lookup() -> None:
    log = RaftLog(log_of([1, 1, 2, 3, 3]))
    assert [log.term(i) for i in range(0, 6)] == [0, 1, 1, 2, 3, 3]
    assert log.term(6) is None
    assert log.term(-1) is None
    assert log.matches(3, 2) and not log.matches(3, 1) and not log.matches(6, 3)
    assert (log.last_index(), log.last_term()) == (5, 3)


def test_term_lookup_with_offset() -> None:
    log = RaftLog(log_of([4, 5], start=11), offset=10, offset_term=4, committed=10, applied=10)
    assert log.term(10) == 4  # the compacted boundary is still known
    assert log.term(9) is None  # compacted away
    assert (log.term(11), log.term(12), log.term(13)) == (4, 5, None)
    assert log.last_index() == 12
    empty = RaftLog(offset=10, offset_term=4, committed=10, applied=10)
    assert (empty.last_index(), empty.last_term()) == (10, 4)


def test_restored_log_is_persisted_and_stable() -> None:
    log = RaftLog(log_of([1, 1, 2]), committed=2, applied=1)
    assert (log.persisted, log.stable, log.committed, log.applied) == (3, 3, 2, 1)
    assert log.unstable() == []
    assert [e.index for e in log.to_apply()] == [2]


def test_slice_respects_byte_limit() -> None:
    entries = [sized(i, 1, 100) for i in range(1, 6)]
    log = RaftLog(entries)
    assert log.slice(1, 5, 10_000) == entries
    assert log.slice(1, 5, 300) == entries[:3]  # exactly fits
    assert log.slice(1, 5, 299) == entries[:2]
    assert log.slice(2, 4, 10_000) == entries[1:4]
    assert log.slice(3, 3, 10_000) == [entries[2]]
    assert log.slice(4, 99, 10_000) == entries[3:]  # hi past the end is clipped


def test_slice_always_returns_one_entry() -> None:
    log = RaftLog([sized(1, 1, 5000), sized(2, 1, 100)])
    assert log.slice(1, 2, 10) == [log.entries[0]]
    assert log.slice(2, 2, 0) == [log.entries[1]]


def test_slice_of_compacted_entry_raises() -> None:
    log = RaftLog(log_of([2, 2], start=6), offset=5, offset_term=2, committed=5, applied=5)
    with pytest.raises(StateError, match="compacted"):
        log.slice(5, 7, 1000)
    assert [e.index for e in log.slice(6, 7, 1000)] == [6, 7]


@pytest.mark.parametrize(
    ("last_index", "last_term", "expected"),
    [
        (5, 3, True),  # identical
        (9, 3, True),  # same term, longer
        (4, 3, False),  # same term, shorter
        (1, 4, True),  # higher last term wins however short
        (99, 2, False),  # lower last term loses however long
        (0, 0, False),
    ],
)
def test_is_up_to_date(last_index: int, last_term: int, expected: bool) -> None:
    """Paper §5.4.1: compare last terms, then lengths."""
    log = RaftLog(log_of([1, 1, 2, 3, 3]))
    assert log.is_up_to_date(last_index, last_term) is expected


def test_empty_log_grants_anyone_up_to_date() -> None:
    assert RaftLog().is_up_to_date(0, 0)


# -- term searches against a brute-force scan -----------------------------------


def brute_first_index_of_term(terms: list[int], offset: int, index: int) -> int:
    k = index - offset - 1
    if not 0 <= k < len(terms):
        return index
    while k > 0 and terms[k - 1] == terms[index - offset - 1]:
        k -= 1
    return offset + 1 + k


def brute_last_index_of_term(terms: list[int], offset: int, term: int, at_most: int) -> int:
    best = 0
    for k, t in enumerate(terms):
        i = offset + 1 + k
        if i <= at_most and t == term:
            best = i
    return best


_terms = st.lists(st.integers(1, 6), max_size=30).map(sorted)


def test_first_and_last_index_of_term_examples() -> None:
    log = RaftLog(log_of([1, 1, 1, 4, 4, 5, 5, 6, 6, 6]))
    assert [log.first_index_of_term(i) for i in range(1, 11)] == [1, 1, 1, 4, 4, 6, 6, 8, 8, 8]
    assert log.first_index_of_term(0) == 0
    assert log.first_index_of_term(11) == 11
    assert log.last_index_of_term(4, 10) == 5
    assert log.last_index_of_term(6, 9) == 9
    assert log.last_index_of_term(6, 7) == 0
    assert log.last_index_of_term(2, 10) == 0  # a term the log never held
    assert log.last_index_of_term(6, 100) == 10


@given(terms=_terms, offset=st.integers(0, 5), data=st.data())
def test_first_index_of_term_matches_scan(
    terms: list[int], offset: int, data: st.DataObject
) -> None:
    offset_term = terms[0] if terms and offset else 0
    log = RaftLog(
        log_of(terms, start=offset + 1),
        offset=offset,
        offset_term=offset_term,
        committed=offset,
        applied=offset,
    )
    index = data.draw(st.integers(offset, offset + len(terms) + 2))
    assert log.first_index_of_term(index) == brute_first_index_of_term(terms, offset, index)


@given(terms=_terms, offset=st.integers(0, 5), term=st.integers(1, 7), at_most=st.integers(0, 40))
def test_last_index_of_term_matches_scan(
    terms: list[int], offset: int, term: int, at_most: int
) -> None:
    offset_term = terms[0] if terms and offset else 0
    log = RaftLog(
        log_of(terms, start=offset + 1),
        offset=offset,
        offset_term=offset_term,
        committed=offset,
        applied=offset,
    )
    assert log.last_index_of_term(term, at_most) == brute_last_index_of_term(
        terms, offset, term, at_most
    )


# -- writing ---------------------------------------------------------------


def test_append_after_keeps_duplicates() -> None:
    """A duplicate (or reordered, shorter) message changes nothing."""
    log = RaftLog(log_of([1, 1, 2, 2]))
    before = list(log.entries)
    assert log.append_after(1, log_of([1, 2], start=2))
    assert log.entries == before
    assert log.append_after(0, log_of([1]))
    assert log.entries == before
    assert log.persisted == 4 and log.stable == 4  # nothing was replaced


def test_append_after_extends() -> None:
    log = RaftLog(log_of([1, 1]))
    assert log.append_after(2, log_of([2, 2], start=3))
    assert [e.term for e in log.entries] == [1, 1, 2, 2]
    assert log.unstable() == log.entries[2:]
    # Overlap then extend: the overlapping part is kept, the rest added.
    assert log.append_after(3, log_of([2, 2, 3], start=4))
    assert [e.term for e in log.entries] == [1, 1, 2, 2, 2, 3]


def test_append_after_replaces_conflicting_suffix() -> None:
    log = RaftLog(log_of([1, 1, 2, 2, 2]), committed=2)
    new = log_of([3, 3], start=3)
    assert log.append_after(2, new)
    assert log.entries == log_of([1, 1]) + new
    # The replaced entries no longer count as persisted or stable.
    assert log.persisted == 2 and log.stable == 2
    assert log.unstable() == new


def test_append_after_truncates_longer_tail_on_conflict() -> None:
    log = RaftLog(log_of([1, 1, 1, 1, 1, 1]))
    assert log.append_after(2, [Entry(3, 2)])
    assert [e.term for e in log.entries] == [1, 1, 2]
    assert log.last_index() == 3


def test_append_after_refuses_to_replace_committed() -> None:
    log = RaftLog(log_of([1, 1, 1]), committed=3)
    before = list(log.entries)
    assert not log.append_after(1, log_of([2, 2], start=2))
    assert log.entries == before
    assert (log.committed, log.persisted, log.stable) == (3, 3, 3)
    # A conflict just after the committed prefix is fine.
    assert log.append_after(3, [Entry(4, 2)])
    assert log.last_index() == 4


def test_commit_to_never_lowers_and_clamps() -> None:
    log = RaftLog(log_of([1, 1, 1]))
    assert log.commit_to(2) and log.committed == 2
    assert not log.commit_to(1) and log.committed == 2
    assert not log.commit_to(2)
    log.commit_to(99)
    assert log.committed == 3


def test_to_apply_honours_commit_and_persisted() -> None:
    log = RaftLog(log_of([1, 1]))
    log.append(log_of([2, 2, 2], start=3))
    assert log.unstable() == log.entries[2:]
    log.commit_to(5)
    assert log.committed == 5
    # Only locally durable entries may be applied.
    assert [e.index for e in log.to_apply()] == [1, 2]
    log.stable = 5
    log.persisted = 4
    assert [e.index for e in log.to_apply()] == [1, 2, 3, 4]
    log.applied = 4
    assert log.to_apply() == []
    log.persisted = 5
    assert [e.index for e in log.to_apply()] == [5]
    log.applied = 5
    assert log.to_apply() == []


def test_to_apply_honours_commit_below_persisted() -> None:
    log = RaftLog(log_of([1, 1, 1, 1]), committed=1)
    assert [e.index for e in log.to_apply()] == [1]
    log.applied = 1
    assert log.to_apply() == []


# -- construction checks -----------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "kwargs", "pattern"),
    [
        ([Entry(1, 1), Entry(3, 1)], {}, "gap"),
        ([Entry(2, 1)], {}, "gap"),  # does not follow offset 0
        ([Entry(1, 1)], {"offset": 3, "offset_term": 1}, "gap"),
        ([Entry(1, 2), Entry(2, 1)], {}, "term goes back"),
        ([Entry(4, 1)], {"offset": 3, "offset_term": 2}, "term goes back"),
        ([Entry(1, 1)], {"committed": 2}, "commit index 2"),
        ([], {"committed": 1}, "commit index 1"),
        ([Entry(6, 1)], {"offset": 5, "offset_term": 1, "committed": 4}, "commit index 4"),
        ([Entry(1, 1), Entry(2, 1)], {"committed": 1, "applied": 2}, "applied index 2"),
        ([Entry(1, 1)], {"committed": 1, "applied": -1}, "applied index -1"),
    ],
)
def test_inconsistent_construction_raises(
    entries: list[Entry], kwargs: dict[str, int], pattern: str
) -> None:
    with pytest.raises(StateError, match=pattern):
        RaftLog(entries, **kwargs)
