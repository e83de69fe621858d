"""Unit tests of the simulated disk: fsync semantics, crashes, torn writes."""

from __future__ import annotations

from drafty.core import Entry, HardState
from drafty.node import DiskWrite
from drafty.sim import SimDisk


def _ready(n: int, entries: tuple[Entry, ...] = (), hs: HardState | None = None) -> DiskWrite:
    return DiskWrite(n, entries, hs)


def _e(index: int, term: int = 1) -> Entry:
    return Entry(index, term, data=f"e{index}".encode())


def test_writes_are_not_durable_until_synced() -> None:
    d = SimDisk()
    d.write(_ready(1, (_e(1), _e(2)), HardState(1, 1, 0)))
    assert d.entries == [] and d.hard_state == HardState()
    assert d.written == 2 and d.synced == 0
    d.complete_sync(d.written)
    assert d.entries == [_e(1), _e(2)] and d.hard_state == HardState(1, 1, 0)


def test_a_sync_by_write_number_covers_that_write_and_earlier_ones() -> None:
    d = SimDisk()
    d.write(_ready(1, (_e(1),)))
    d.write(_ready(2, (_e(2),), HardState(1, 0, 1)))
    d.write(_ready(3, (_e(3),)))
    d.sync_seq(2)
    assert d.entries == [_e(1), _e(2)] and d.hard_state == HardState(1, 0, 1)
    d.sync_seq(3)
    assert d.entries == [_e(1), _e(2), _e(3)] and not d.pending


def test_incarnations_grow_across_lives_even_when_the_clock_goes_back() -> None:
    d = SimDisk()
    a = d.next_incarnation(1000)
    b = d.next_incarnation(500)
    c = d.next_incarnation(5000)
    assert (a, b, c) == (1000, 1001, 5000)


def test_syncs_cover_only_what_was_written_before_them() -> None:
    d = SimDisk()
    d.write(_ready(1, (_e(1),)))
    first = d.written
    d.write(_ready(2, (_e(2),), HardState(1, 0, 1)))
    d.complete_sync(first)
    assert d.entries == [_e(1)] and d.hard_state == HardState()
    d.complete_sync(d.written)
    assert d.entries == [_e(1), _e(2)] and d.hard_state.commit == 1
    d.complete_sync(1)  # an old sync completing late changes nothing
    assert d.synced == 3


def test_entries_at_i_replace_the_suffix_from_i() -> None:
    d = SimDisk()
    d.write(_ready(1, (_e(1), _e(2), _e(3))))
    d.write(_ready(2, (_e(2, 2),)))
    d.complete_sync(d.written)
    assert d.entries == [_e(1), _e(2, 2)]


def test_crash_loses_unsynced_writes() -> None:
    d = SimDisk()
    d.write(_ready(1, (_e(1),), HardState(1, 2, 0)))
    d.complete_sync(d.written)
    d.write(_ready(2, (_e(2),), HardState(2, 3, 1)))
    d.crash()
    assert d.entries == [_e(1)] and d.hard_state == HardState(1, 2, 0)
    assert d.lost_writes == 2 and d.pending == []


def test_torn_crash_keeps_a_prefix_at_ready_or_record_boundaries() -> None:
    d = SimDisk()
    d.write(_ready(1, (_e(1),), HardState(1, 0, 0)))
    d.write(_ready(2, (_e(2, 2),), HardState(2, 0, 0)))
    assert d.torn_points(per_record=False) == [0, 2, 4]
    assert d.torn_points(per_record=True) == [0, 1, 2, 3, 4]
    d.crash(keep=3)  # second Ready's entries survive, its hard state does not
    assert d.entries == [_e(1), _e(2, 2)] and d.hard_state == HardState(1, 0, 0)
    assert d.lost_writes == 1 and d.synced == 3


def test_torn_points_forget_synced_readies() -> None:
    d = SimDisk()
    d.write(_ready(1, (_e(1),)))
    d.complete_sync(d.written)
    d.write(_ready(2, (_e(2),)))
    assert d.torn_points(per_record=False) == [0, 1]
    assert d.entry(1) == _e(1) and d.entry(2) is None and d.entry(0) is None
