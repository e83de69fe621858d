"""The exactly-once session table (drafty.node.sessions)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drafty.node.sessions import Check, SessionTable


def run(t: SessionTable, client: int, seq: int, ran: list[str]) -> tuple[Check, str | None]:
    """What the node does with one logged command: the verdict and the reply."""
    check, s = t.check(client, seq)
    if check is Check.NEW:
        reply = f"r{client}.{seq}"
        ran.append(reply)
        if s is not None:
            t.record(s, seq, reply)
        return check, reply
    if check is Check.DUPLICATE:
        assert s is not None
        return check, s.reply
    return check, None


def test_a_session_exists_only_once_opened() -> None:
    t = SessionTable()
    ran: list[str] = []
    assert run(t, 7, 1, ran) == (Check.EXPIRED, None)  # never opened: nothing runs
    t.open(7)
    assert run(t, 7, 1, ran) == (Check.NEW, "r7.1")
    assert run(t, 7, 1, ran) == (Check.DUPLICATE, "r7.1")
    assert run(t, 7, 2, ran) == (Check.NEW, "r7.2")
    assert run(t, 7, 1, ran) == (Check.STALE, None)
    assert run(t, 7, 5, ran) == (Check.NEW, "r7.5")  # the client gave up on 3 and 4
    assert ran == ["r7.1", "r7.2", "r7.5"]


def test_client_zero_always_runs() -> None:
    t = SessionTable()
    ran: list[str] = []
    assert run(t, 0, 0, ran)[0] is Check.NEW and run(t, 0, 0, ran)[0] is Check.NEW
    assert len(ran) == 2 and len(t) == 0


def test_idle_sessions_expire_by_log_time_and_a_retried_first_write_stays_refused() -> None:
    """Issue 8, defect 3: a retry of seq 1 after expiry must not open a new session."""
    t = SessionTable(ttl_ms=100)
    ran: list[str] = []
    t.advance_clock(1000)
    t.open(7)
    t.open(8)
    assert run(t, 7, 1, ran)[0] is Check.NEW
    t.advance_clock(1080)
    assert run(t, 8, 1, ran)[0] is Check.NEW  # 8 is used at 1080
    t.advance_clock(1150)  # 7 idle for 150 > 100
    assert 7 not in t and 8 in t and t.expired == 1
    assert run(t, 7, 1, ran) == (Check.EXPIRED, None)
    assert ran == ["r7.1", "r8.1"]


def test_log_time_never_goes_back_and_starts_at_the_first_stamp() -> None:
    t = SessionTable(ttl_ms=100)
    t.open(3)  # opened before any stamp: counts as seen at the first one
    t.advance_clock(5_000_000)
    assert 3 in t and t.now == 5_000_000
    t.advance_clock(10)
    assert t.now == 5_000_000


def test_the_least_recently_used_session_is_evicted_when_full() -> None:
    t = SessionTable(max_sessions=2)
    ran: list[str] = []
    t.open(1)
    t.open(2)
    run(t, 1, 1, ran)  # 1 is now the most recently used
    t.open(3)
    assert 1 in t and 2 not in t and 3 in t and t.evicted == 1
    assert run(t, 2, 1, ran)[0] is Check.EXPIRED


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        SessionTable(ttl_ms=0)
    with pytest.raises(ValueError):
        SessionTable(max_sessions=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(0, 400)), max_size=60))
def test_a_pair_runs_at_most_once_while_its_session_lives(
    ops: list[tuple[int, int, int]],
) -> None:
    t = SessionTable(ttl_ms=150, max_sessions=2)
    ran: list[str] = []
    clock = 1
    alive_since: dict[int, int] = {}
    for client, seq, dt in ops:
        clock += dt
        t.advance_clock(clock)
        if client not in t:
            t.open(client)
            alive_since[client] = len(ran)
        run(t, client, seq, ran)
        mine = [r for r in ran[alive_since[client] :] if r.startswith(f"r{client}.")]
        assert len(mine) == len(set(mine))  # nothing ran twice in this session's life
