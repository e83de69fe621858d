"""Log time stamps (drafty.node.clock): one skewed clock cannot drive log time."""

from __future__ import annotations

import pytest

from drafty.node.clock import Instant, LeaderClock

T0 = 1_800_000_000_000


def test_without_any_stamp_known_the_wall_clock_sets_the_epoch() -> None:
    c = LeaderClock(1, max_lead_ms=100)
    assert c.stamp(Instant(0, T0 + 600_000)) == T0 + 600_000


def test_a_fast_clock_leads_other_nodes_stamps_by_at_most_the_lead() -> None:
    c = LeaderClock(1, max_lead_ms=100)
    c.observe(2, T0, 1000)  # node 2 stamped T0; we applied it at mono 1000
    fast = Instant(1500, T0 + 10 * 60_000 + 500)  # ten minutes fast, 500 ms later
    assert c.stamp(fast) == T0 + 500 + 100


def test_own_stamps_lend_no_lead_so_it_cannot_ratchet() -> None:
    c = LeaderClock(1, max_lead_ms=100)
    c.observe(2, T0, 0)
    stamps = [c.stamp(Instant(ms, T0 + 600_000 + ms)) for ms in (10, 20, 30, 40)]
    assert stamps == [T0 + 110, T0 + 120, T0 + 130, T0 + 140]


def test_a_slow_clock_holds_stamps_back_but_never_lowers_them() -> None:
    c = LeaderClock(1, max_lead_ms=100)
    c.observe(2, T0, 0)
    assert c.stamp(Instant(10, T0 + 10)) == T0 + 10
    assert c.stamp(Instant(20, T0 - 5000)) == T0 + 10
    assert c.stamp(Instant(30, T0 + 30)) == T0 + 30


def test_unstamped_entries_are_ignored_and_the_lead_is_validated() -> None:
    c = LeaderClock(1)
    c.observe(2, 0, 5)
    assert c.cap(Instant(10, 0)) is None
    with pytest.raises(ValueError):
        LeaderClock(1, max_lead_ms=-1)
