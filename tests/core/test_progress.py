"""Per-follower replication state (drafty.core.progress)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drafty.core.progress import Inflights, Progress, ProgressState

PROBE, REPLICATE = ProgressState.PROBE, ProgressState.REPLICATE


def replicating(match: int, capacity: int = 4) -> Progress:
    pr = Progress(match + 1, capacity)
    pr.match = match
    pr.become_replicate()
    return pr


# -- Inflights -----------------------------------------------------------------


def test_inflights_fifo_window() -> None:
    inf = Inflights(3)
    assert inf.count() == 0 and not inf.full()
    inf.add(5)
    inf.add(8)
    assert inf.count() == 2 and not inf.full()
    inf.add(12)
    assert inf.full()
    inf.free_to(4)  # acknowledges nothing
    assert inf.count() == 3
    inf.free_to(8)  # frees 5 and 8
    assert inf.count() == 1 and not inf.full()
    inf.free_to(11)
    assert inf.count() == 1
    inf.free_to(100)
    assert inf.count() == 0


def test_inflights_reset() -> None:
    inf = Inflights(2)
    inf.add(1)
    inf.add(2)
    assert inf.full()
    inf.reset()
    assert inf.count() == 0 and not inf.full()


def test_inflights_capacity_one() -> None:
    inf = Inflights(1)
    inf.add(3)
    assert inf.full()
    inf.free_to(2)
    assert inf.full()
    inf.free_to(3)
    assert not inf.full()


# -- PROBE -------------------------------------------------------------------------


def test_new_progress_probes_from_next() -> None:
    pr = Progress(11, 8)
    assert (pr.state, pr.match, pr.next) == (PROBE, 0, 11)
    assert not pr.is_paused()
    assert pr.recent_active


def test_probe_pauses_after_one_send_even_if_empty() -> None:
    pr = Progress(5, 8)
    pr.sent(4, 0)
    assert pr.is_paused()
    assert pr.next == 5  # probing does not advance next
    assert pr.inflights.count() == 0


def test_probe_unpaused_by_successful_update() -> None:
    pr = Progress(5, 8)
    pr.sent(6, 2)
    assert pr.is_paused() and pr.next == 5
    assert pr.maybe_update(6)
    assert not pr.is_paused()
    assert (pr.match, pr.next) == (6, 7)


def test_probe_stale_update_keeps_pause() -> None:
    pr = Progress(5, 8)
    pr.maybe_update(4)
    pr.sent(6, 2)
    assert not pr.maybe_update(3)  # older than match: old news
    assert pr.is_paused()
    assert pr.match == 4


def test_become_replicate_restarts_after_match() -> None:
    pr = Progress(9, 8)
    pr.maybe_update(4)
    pr.sent(8, 4)
    pr.become_replicate()
    assert pr.state is REPLICATE
    assert pr.next == 5
    assert not pr.probe_sent
    assert not pr.is_paused()


def test_probe_decrease_only_for_outstanding_probe() -> None:
    pr = Progress(10, 8)
    pr.sent(9, 0)
    # A rejection of some other prev_index is not the answer we wait for.
    assert not pr.maybe_decrease(7, 3)
    assert pr.next == 10 and pr.is_paused()
    # The answer to our probe (prev_index 9) moves next to the hint, unpauses.
    assert pr.maybe_decrease(9, 4)
    assert pr.next == 4
    assert not pr.is_paused()
    assert pr.state is PROBE


def test_probe_decrease_clamps_hint_into_match_and_rejected() -> None:
    pr = Progress(10, 8)
    pr.maybe_update(3)
    pr.next = 10
    assert pr.maybe_decrease(9, 1)  # hint below match: stays above match
    assert pr.next == 4
    pr.next = 10
    assert pr.maybe_decrease(9, 50)  # hint past the rejected index: at most rejected
    assert pr.next == 9


# -- REPLICATE ---------------------------------------------------------------


def test_replicate_streams_and_pauses_on_full_window() -> None:
    pr = replicating(match=3, capacity=2)
    assert pr.next == 4
    pr.sent(5, 2)
    assert pr.next == 6 and not pr.is_paused()
    pr.sent(7, 2)
    assert pr.next == 8 and pr.is_paused()
    assert pr.inflights.count() == 2
    assert pr.maybe_update(5)  # first message acknowledged
    assert not pr.is_paused()
    assert (pr.match, pr.next) == (5, 8)


def test_replicate_empty_send_changes_nothing() -> None:
    pr = replicating(match=3)
    pr.sent(3, 0)
    assert pr.next == 4
    assert pr.inflights.count() == 0
    assert not pr.probe_sent


def test_replicate_stale_update_does_not_lower_next_or_match() -> None:
    pr = replicating(match=3)
    pr.sent(6, 3)
    pr.sent(9, 3)
    assert pr.maybe_update(9)
    assert not pr.maybe_update(6)
    assert (pr.match, pr.next) == (9, 10)
    assert pr.inflights.count() == 0


def test_replicate_stale_rejection_is_ignored() -> None:
    pr = replicating(match=6)
    pr.sent(9, 3)
    assert not pr.maybe_decrease(6, 2)
    assert not pr.maybe_decrease(4, 2)
    assert pr.state is REPLICATE
    assert (pr.match, pr.next) == (6, 10)
    assert pr.inflights.count() == 1


def test_replicate_rejection_falls_back_to_probe() -> None:
    pr = replicating(match=6)
    pr.sent(9, 3)
    pr.sent(12, 3)
    assert pr.maybe_decrease(9, 8)
    assert pr.state is PROBE
    assert pr.next == 8
    assert pr.inflights.count() == 0
    assert not pr.is_paused()


def test_replicate_rejection_hint_clamped_above_match() -> None:
    pr = replicating(match=6)
    pr.sent(9, 3)
    assert pr.maybe_decrease(9, 2)
    assert (pr.state, pr.next) == (PROBE, 7)


def test_become_probe_restarts_after_match() -> None:
    pr = replicating(match=6)
    pr.sent(20, 14)
    pr.become_probe()
    assert (pr.state, pr.next, pr.inflights.count()) == (PROBE, 7, 0)
    assert not pr.is_paused()


# -- invariants under any sequence -------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 4)),
    st.tuples(st.just("update"), st.integers(0, 40)),
    st.tuples(st.just("decrease"), st.integers(0, 40), st.integers(0, 40)),
    st.tuples(st.just("probe")),
    st.tuples(st.just("replicate")),
)


@given(start=st.integers(1, 10), capacity=st.integers(1, 4), ops=st.lists(_op, max_size=60))
def test_progress_invariants(start: int, capacity: int, ops: list[tuple[object, ...]]) -> None:
    """0 <= match < next; match only grows; PROBE holds no inflights; window bounded."""
    pr = Progress(start, capacity)
    for op in ops:
        old_match = pr.match
        kind = op[0]
        if kind == "send":
            if pr.is_paused():
                continue
            n = op[1]
            assert isinstance(n, int)
            pr.sent(pr.next - 1 + n, n)
        elif kind == "update":
            assert isinstance(op[1], int)
            pr.maybe_update(op[1])
        elif kind == "decrease":
            assert isinstance(op[1], int) and isinstance(op[2], int)
            pr.maybe_decrease(op[1], op[2])
        elif kind == "probe":
            pr.become_probe()
        else:
            pr.become_replicate()
        assert 0 <= pr.match < pr.next
        assert pr.match >= old_match
        assert pr.inflights.count() <= capacity
        if pr.state is PROBE:
            assert pr.inflights.count() == 0
        queue = list(pr.inflights._queue)
        assert queue == sorted(queue)
        assert all(i > pr.match for i in queue)
