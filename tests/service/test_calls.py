"""The client's retry rules as a pure state machine (drafty.service.calls)."""

from __future__ import annotations

from drafty.node import OutcomeUnknown, Refused
from drafty.service.calls import Call, ClientState, CommandError, Done, Fail, Pause, Send

A, B = ("a", 1), ("b", 2)


def test_a_write_opens_a_session_then_resends_one_pair_until_answered() -> None:
    st = ClientState([A, B])
    call = Call(st, [b"SET", b"k", b"v"], 0, 1000)
    assert call.next(0) == Send(A, (b"SESSION", b"OPEN"))
    call.replied(9, None)
    first = call.next(1)
    assert first == Send(A, (b"SEQ", b"9", b"1", b"SET", b"k", b"v"))
    call.unanswered("timeout", sent=True)  # moves on to B, same pair
    assert call.next(2) == Send(B, first.argv) and call.maybe_applied
    call.replied(None, "UNCERTAIN lost leadership")
    assert isinstance(call.next(3), Pause)
    assert call.next(4) == Send(B, first.argv)
    call.replied("OK", None)
    assert call.next(5) == Done("OK")
    nxt = Call(st, [b"DEL", b"k"], 5, 1000).next(5)
    assert isinstance(nxt, Send) and nxt.argv[:3] == (b"SEQ", b"9", b"2")


def test_tryagain_follows_the_hint_and_reads_are_sent_bare() -> None:
    st = ClientState([A, B])
    call = Call(st, [b"GET", b"k"], 0, 1000)
    assert call.next(0) == Send(A, (b"GET", b"k"))
    call.replied(None, "TRYAGAIN not the leader (leader is node 3 at c:3)")
    assert call.next(0) == Send(("c", 3), (b"GET", b"k"))
    call.replied(None, "UNCERTAIN timed out")  # a read can always be retried
    assert not call.maybe_applied


def test_an_expired_session_reopens_unless_an_attempt_may_have_applied() -> None:
    st = ClientState([A], session=4, seq=1)
    call = Call(st, [b"INCR", b"n"], 0, 1000)
    assert call.next(0) == Send(A, (b"SEQ", b"4", b"2", b"INCR", b"n"))
    call.replied(None, "SESSIONEXPIRED session 4 is unknown")
    assert call.next(0) == Send(A, (b"SESSION", b"OPEN"))
    call.replied(5, None)
    assert call.next(0) == Send(A, (b"SEQ", b"5", b"1", b"INCR", b"n"))
    call.unanswered("reset", sent=True)
    assert isinstance(call.next(0), Send)
    call.replied(None, "SESSIONEXPIRED session 5 is unknown")
    step = call.next(0)
    assert isinstance(step, Fail) and isinstance(step.error, OutcomeUnknown)


def test_giving_up_says_whether_anything_may_have_applied() -> None:
    st = ClientState([A])
    call = Call(st, [b"SET", b"k", b"v"], 0, 100)
    call.next(0)
    call.replied(None, "TRYAGAIN no leader is known")
    step = call.next(200)
    assert isinstance(step, Fail) and isinstance(step.error, Refused)
    err = Call(st, [b"GET", b"k"], 0, 100)
    err.next(0)
    err.replied(None, "ERR wrong type")
    step = err.next(0)
    assert isinstance(step, Fail) and isinstance(step.error, CommandError)
