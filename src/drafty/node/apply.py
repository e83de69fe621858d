"""Applying one committed entry, and what its proposer's caller is told.

Theory of operation
-------------------
:func:`execute` is everything a replica does with a decoded entry: admit it
through the duplicate filter (:mod:`drafty.node.dedupe`), move log time with
its stamp, then by kind open a session, do nothing more (a clock entry), or
run the command through the session table and the state machine. It depends
only on the log, so every replica does the same.

:func:`outcome` maps what happened to the one reply the proposing node gives
its caller (see :mod:`drafty.node.api` for what each error promises).
"""

from __future__ import annotations

from typing import Any

from ..core import DraftyError, Entry, NodeId
from .actions import Verdict
from .api import OutcomeUnknown, Refused, SessionExpired, StateMachine, StateMachineError
from .dedupe import Admission, DuplicateFilter
from .envelope import Envelope, Kind
from .sessions import Check, SessionTable


def execute(
    e: Entry, env: Envelope, machine: StateMachine, sessions: SessionTable, dedupe: DuplicateFilter
) -> tuple[Verdict, Admission, Any]:
    """Apply entry ``e`` carrying ``env``: what it did, its admission and its result."""
    adm = dedupe.admit(e.term, env.term, env.origin, env.incarnation, env.request)
    if adm is not Admission.ACCEPT:
        return Verdict.REJECTED, adm, None
    if env.time_ms:
        sessions.advance_clock(env.time_ms)
    if env.kind is Kind.CLOCK:
        return Verdict.CLOCK, adm, None
    if env.kind is Kind.OPEN_SESSION:
        sessions.open(e.index)
        return Verdict.OPENED, adm, e.index
    check, session = sessions.check(env.client, env.seq)
    if check is Check.EXPIRED:
        return Verdict.SESSION_EXPIRED, adm, None
    if check is Check.STALE:
        return Verdict.SESSION_STALE, adm, None
    if check is Check.DUPLICATE:
        assert session is not None
        return Verdict.DUPLICATE, adm, session.reply
    try:
        result = machine.apply(env.command)
    except Exception as exc:
        result = StateMachineError(f"state machine raised {type(exc).__name__}: {exc}")
    if session is not None:
        sessions.record(session, env.seq, result)
    return Verdict.EXECUTED, adm, result


def outcome(
    e: Entry, env: Envelope, verdict: Verdict, admission: Admission, result: Any, leader: NodeId
) -> tuple[Any, DraftyError | None] | None:
    """(value, error) for the caller of ``env``'s request, whose entry ``e``
    just applied; None if this copy decides nothing (another may follow)."""
    i = e.index
    if verdict is Verdict.REJECTED:
        if admission is Admission.OTHER_TERM and e.term < env.term:
            return None  # cannot happen with drafty's core; a copy of its own term may follow
        return None, Refused(f"its entry at {i} had no effect ({admission.value})", leader)
    if verdict is Verdict.SESSION_EXPIRED:
        return None, SessionExpired(
            f"session {env.client} is unknown (expired or never opened); open a new one"
        )
    if verdict is Verdict.SESSION_STALE:
        return None, OutcomeUnknown(
            f"request {env.seq} of session {env.client} is older than its last one; "
            "it may have been applied before"
        )
    if isinstance(result, StateMachineError):
        return None, result
    return result, None
