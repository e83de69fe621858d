"""Log time stamps (drafty.node.clock): one skewed clock cannot drive log time."""

from __future__ import annotations

import pytest

from drafty.node.clock import Instant, LeaderClock

T0 = 1_800_000_000_000


def test_without_any_stamp_known_the_wall_clock_sets_the_epoch() -> None:
    c = LeaderClock(1, max_lead_ms=100)
    assert c.stamp(Instant(0, T0 + 600_000), 1) == T0 + 600_000


def test_a_fast_clock_leads_other_nodes_stamps_by_at_most_the_lead() -> None:
    c = LeaderClock(1, max_lead_ms=100)
    c.observe(2, T0, 1000)  # node 2 stamped T0; we applied it at mono 1000
    fast = Instant(1500, T0 + 10 * 60_000 + 500)  # ten minutes fast, 500 ms later
    assert c.stamp(fast, 1) == T0 + 500 + 100


def test_own_applied_stamps_lend_no_lead_so_it_cannot_ratchet() -> None:
    c = LeaderClock(1, max_lead_ms=100)
    c.observe(1, T0, 0)  # its own stamp, applied at mono 0
    fast = [Instant(ms, T0 + 600_000 + ms) for ms in (10, 20, 30)]
    stamps = []
    for now in fast:
        stamps.append(c.stamp(now, 1))
        c.observe(1, stamps[-1], now.mono_ms)  # applied at once
    assert stamps == [T0 + 10, T0 + 20, T0 + 30]


def test_a_stamp_that_never_applied_binds_nothing() -> None:
    """A leader with nothing to go by takes its own (fast) clock; if that entry is
    lost, its next stamps are bound by what the log holds, not by the lost one
    (found by the 10,000-seed sweep: seeds 5994, 6185, 7898, 1779)."""
    c = LeaderClock(1, max_lead_ms=100)
    assert c.stamp(Instant(0, T0 + 600_000), 1) == T0 + 600_000  # never applied
    c.observe(2, T0 + 5, 5)
    assert c.stamp(Instant(10, T0 + 600_010), 2) == T0 + 10 + 100  # a later term


def test_the_first_stamp_of_a_term_binds_the_later_ones_until_anything_applies() -> None:
    """Seed 114 (7 nodes): a leader with nothing applied stamped twice in one
    term, its clock jumping ten minutes between; both entries committed."""
    c = LeaderClock(1, max_lead_ms=100)
    first = c.stamp(Instant(0, T0), 4)
    assert first == T0
    assert c.stamp(Instant(50, T0 + 600_050), 4) == T0 + 50
    assert c.stamp(Instant(60, T0 + 600_060), 5) == T0 + 600_060  # nothing binds a new term


def test_a_slow_clock_holds_stamps_back() -> None:
    c = LeaderClock(1, max_lead_ms=100)
    c.observe(2, T0, 0)
    assert c.stamp(Instant(10, T0 + 10), 1) == T0 + 10
    assert c.stamp(Instant(20, T0 - 5000), 1) == T0 - 5000  # log time itself never goes back


def test_unstamped_entries_are_ignored_and_the_lead_is_validated() -> None:
    c = LeaderClock(1)
    c.observe(2, 0, 5)
    assert c.cap(Instant(10, 0)) is None
    with pytest.raises(ValueError):
        LeaderClock(1, max_lead_ms=-1)
