"""Data commands without sockets (drafty.service.commands): proposals and replies."""

from __future__ import annotations

from drafty.node import OutcomeUnknown, Refused, SessionExpired, StateMachineError
from drafty.service import commands
from drafty.service.commands import OPEN_SESSION, Proposal
from drafty.service.kv import decode_command
from drafty.service.resp import Error, Simple


def hint(leader: int) -> str:
    return f" (leader is node {leader} at h:{leader})" if leader else ""


def test_plain_commands_propose_their_log_form_without_a_session() -> None:
    p = commands.plan([b"set", b"k", b"v"])
    assert isinstance(p, Proposal) and (p.client, p.seq, p.open_session) == (0, 0, False)
    assert decode_command(p.command) == [b"set", b"k", b"v"]


def test_sessions_are_opened_explicitly_and_seq_names_one() -> None:
    assert commands.plan([b"session", b"open"]) is OPEN_SESSION
    assert commands.plan([b"SESSION"]) == Error("ERR usage: SESSION OPEN")
    p = commands.plan([b"SEQ", b"17", b"3", b"INCR", b"n"])
    assert isinstance(p, Proposal) and (p.client, p.seq) == (17, 3)
    assert decode_command(p.command) == [b"INCR", b"n"]


def test_bad_commands_are_answered_before_they_cost_a_log_entry() -> None:
    for argv in (
        [b"SEQ", b"1", b"2"],
        [b"SEQ", b"0", b"1", b"GET", b"k"],
        [b"SEQ", b"1", b"-1", b"GET", b"k"],
        [b"SEQ", b"x", b"1", b"GET", b"k"],
        [b"SEQ", b"1", b"1", b"NOPE"],
        [b"GET"],
        [b"NOPE", b"k"],
    ):
        assert isinstance(commands.plan(argv), Error), argv


def test_each_outcome_says_whether_the_command_took_effect() -> None:
    assert commands.answer(Simple("OK"), None, hint) == Simple("OK")
    assert commands.answer(None, Refused("no leader", 2), hint) == Error(
        "TRYAGAIN no leader (leader is node 2 at h:2)"
    )
    assert commands.answer(None, OutcomeUnknown("late"), hint) == Error("UNCERTAIN late")
    assert commands.answer(None, SessionExpired("gone"), hint) == Error("SESSIONEXPIRED gone")
    assert commands.answer(None, StateMachineError("bug"), hint) == Error("ERR bug")
    assert commands.answer(None, ValueError("?"), hint) == Error(
        "ERR internal error (logged on the server)"
    )
