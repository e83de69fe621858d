"""Which logged copies of a proposal take effect (drafty.node.dedupe)."""

from __future__ import annotations

from drafty.node.dedupe import Admission, DuplicateFilter

A = Admission


def test_one_copy_per_identity_in_its_own_term() -> None:
    f = DuplicateFilter()
    assert f.admit(2, 2, origin=1, incarnation=10, request=1) is A.ACCEPT
    assert f.admit(2, 2, 1, 10, 1) is A.SEEN  # a duplicate
    assert f.admit(2, 2, 1, 10, 3) is A.ACCEPT
    assert f.admit(2, 2, 1, 10, 2) is A.SEEN  # an older request after a newer one
    assert f.admit(2, 2, 2, 10, 1) is A.ACCEPT  # another origin counts on its own


def test_a_proposal_takes_effect_only_in_the_term_it_was_made_in() -> None:
    f = DuplicateFilter()
    assert f.admit(3, 2, 1, 10, 1) is A.OTHER_TERM
    assert f.admit(3, 3, 1, 10, 1) is A.ACCEPT  # the rejected copy did not count


def test_a_new_life_replaces_the_old_one_which_is_refused_from_then_on() -> None:
    f = DuplicateFilter()
    assert f.admit(2, 2, 1, 10, 50) is A.ACCEPT
    assert f.admit(2, 2, 1, 11, 1) is A.ACCEPT  # restarted: numbers begin again
    assert f.admit(2, 2, 1, 10, 51) is A.OLD_LIFE  # a late message of the dead life
    assert f.admit(2, 2, 1, 11, 1) is A.SEEN


def test_records_are_dropped_at_a_new_term_and_bounded() -> None:
    f = DuplicateFilter(max_origins=2)
    assert f.admit(1, 1, 1, 1, 1) is A.ACCEPT
    assert f.admit(1, 1, 2, 1, 1) is A.ACCEPT
    assert f.admit(1, 1, 3, 1, 1) is A.TOO_MANY_ORIGINS
    assert f.admit(2, 2, 3, 1, 1) is A.ACCEPT  # a new term starts empty
    assert f.admit(2, 2, 1, 1, 1) is A.ACCEPT
