"""The exactly-once session table (drafty.service.sessions)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drafty.service.sessions import SessionExpired, SessionTable, StaleRequest


def apply(t: SessionTable[str], client: int, seq: int, time_ms: int, ran: list[str]) -> str:
    """What the driver does with one logged command: the reply, and ``ran`` what ran."""
    t.advance_clock(time_ms)
    dup = t.lookup(client, seq)
    if dup is not None:
        return dup.reply
    reply = f"r{client}.{seq}"
    ran.append(reply)
    t.record(client, seq, reply)
    return reply


def test_new_then_duplicate_returns_cached_reply() -> None:
    t: SessionTable[str] = SessionTable()
    ran: list[str] = []
    assert apply(t, 7, 1, 0, ran) == "r7.1"
    assert apply(t, 7, 1, 5, ran) == "r7.1"
    assert ran == ["r7.1"]
    assert apply(t, 7, 2, 6, ran) == "r7.2"
    assert apply(t, 7, 2, 7, ran) == "r7.2"
    assert ran == ["r7.1", "r7.2"]
    s = t.lookup(7, 2)
    assert s is not None and s.seq == 2 and s.reply == "r7.2"


def test_older_seq_is_stale() -> None:
    t: SessionTable[str] = SessionTable()
    t.record(7, 5, "five")
    with pytest.raises(StaleRequest):
        t.lookup(7, 4)
    with pytest.raises(StaleRequest):
        t.lookup(7, 1)
    s = t.lookup(7, 5)
    assert s is not None and s.reply == "five"


def test_gap_accepted_as_new() -> None:
    t: SessionTable[str] = SessionTable()
    t.record(7, 1, "one")
    assert t.lookup(7, 5) is None
    t.record(7, 5, "five")
    with pytest.raises(StaleRequest):
        t.lookup(7, 3)
    assert t.lookup(9, 1) is None  # unknown client, first request: a new session


def test_unknown_client_after_first_request_is_refused() -> None:
    """An expired session's late retry must not run again (dissertation §6.3)."""
    t: SessionTable[str] = SessionTable(ttl_ms=100)
    t.record(9, 1, "one")
    t.record(9, 2, "two")
    t.advance_clock(500)
    assert len(t) == 0
    with pytest.raises(SessionExpired):
        t.lookup(9, 2)
    with pytest.raises(SessionExpired):
        t.lookup(10, 100)


def test_client_zero_never_cached() -> None:
    t: SessionTable[str] = SessionTable()
    ran: list[str] = []
    assert apply(t, 0, 0, 0, ran) == "r0.0"
    assert apply(t, 0, 0, 0, ran) == "r0.0"
    assert ran == ["r0.0", "r0.0"]
    assert len(t) == 0
    assert t.lookup(0, 1) is None
    t.record(0, 5, "x")
    assert len(t) == 0


def test_clock_never_goes_back() -> None:
    t: SessionTable[str] = SessionTable(ttl_ms=100)
    t.advance_clock(1000)
    t.advance_clock(500)  # a leader with a slower clock
    assert t.now == 1000
    t.record(1, 1, "x")
    assert t._sessions[1].last_seen == 1000
    t.advance_clock(0)
    assert t.now == 1000
    assert len(t) == 1


def test_expiry_by_log_time() -> None:
    t: SessionTable[str] = SessionTable(ttl_ms=100)
    t.advance_clock(0)
    t.record(1, 1, "x")
    t.advance_clock(100)
    assert len(t) == 1  # idle exactly ttl: still alive
    t.advance_clock(101)
    assert len(t) == 0
    assert t.lookup(1, 1) is None  # gone: the retry would run again


def test_recording_refreshes_and_lru_expires_first() -> None:
    t: SessionTable[str] = SessionTable(ttl_ms=100)
    for c in (1, 2, 3):
        t.advance_clock(c * 10)
        t.record(c, 1, "x")
    t.advance_clock(40)
    t.record(1, 2, "y")  # client 1 is now the most recently seen
    t.advance_clock(121)  # horizon 21: client 2 (seen at 20) expires, 3 (30) lives
    assert list(t._sessions) == [3, 1]
    t.advance_clock(131)  # horizon 31: 3 goes
    assert list(t._sessions) == [1]
    t.advance_clock(140)
    assert list(t._sessions) == [1]
    t.advance_clock(141)
    assert len(t) == 0


def test_lookup_does_not_refresh() -> None:
    t: SessionTable[str] = SessionTable(ttl_ms=100)
    t.record(1, 1, "x")
    t.advance_clock(50)
    assert t.lookup(1, 1) is not None
    t.advance_clock(101)
    assert len(t) == 0


ops = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6), st.integers(0, 500)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_replicas_agree_and_invariants_hold(log: list[tuple[int, int, int]]) -> None:
    """Two tables fed the same log agree on every outcome; now and seq never go back;
    a (client, seq) pair runs at most once while its session lives."""
    a: SessionTable[str] = SessionTable(ttl_ms=200)
    b: SessionTable[str] = SessionTable(ttl_ms=200)
    ran_a: list[str] = []
    ran_b: list[str] = []
    last_now = 0
    for client, seq, time_ms in log:
        horizon = max(last_now, time_ms) - a.ttl_ms
        live = {c: s.seq for c, s in a._sessions.items() if s.last_seen >= horizon}
        outcomes = []
        ran_before = len(ran_a)
        for t, ran in ((a, ran_a), (b, ran_b)):
            try:
                outcomes.append(apply(t, client, seq, time_ms, ran))
            except StaleRequest:
                outcomes.append("stale")
            except SessionExpired:
                outcomes.append("expired")
        assert outcomes[0] == outcomes[1]
        if client and client in live and seq <= live[client]:
            assert len(ran_a) == ran_before  # a duplicate or stale request runs nothing
        assert ran_a == ran_b
        assert a.now >= last_now and a.now == max(last_now, time_ms)
        last_now = a.now
        for c, s in a._sessions.items():
            if c in live:  # a live session's seq never goes back
                assert s.seq >= live[c]
            assert s.last_seen >= a.now - a.ttl_ms
        seen = [s.last_seen for s in a._sessions.values()]
        assert seen == sorted(seen)  # least recently seen first
    assert list(a._sessions) == list(b._sessions)
