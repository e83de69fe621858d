"""Data commands: what each one proposes to the log, and what each outcome answers.

Theory of operation
-------------------
The RESP server (:mod:`drafty.service.server`) and the simulator's service
both take data commands through these two functions, so the simulator runs
the reply path real clients see, without sockets:

- :func:`plan` turns a parsed command (``argv``) into either an immediate
  error reply (unknown command, wrong arity, a bad option, caught before it
  costs a log entry) or a :class:`Proposal` for the node:

  - ``SESSION OPEN``: open an exactly-once client session; the reply is its
    id (an integer);
  - ``SEQ session seq command...``: run ``command`` exactly once in that
    session (see :mod:`drafty.node.sessions`);
  - a read-only key-value command (GET, MGET, EXISTS, STRLEN, DBSIZE, SCAN,
    KEYS) outside a session: a linearizable read that never enters the log
    (ReadIndex, :mod:`drafty.node.reads`);
  - any other key-value command: run it once per receipt.

- :func:`answer` turns the node's outcome into the reply. Errors say whether
  the command took effect:

  - ``-TRYAGAIN ...``: certainly no effect (no leader, shutting down, its
    entry was replaced or outlived by a leader change): retry freely; names
    the leader when known (``leader is node N at host:port``);
  - ``-UNCERTAIN ...``: it may or may not have taken effect;
  - ``-SESSIONEXPIRED ...``: the session is unknown: this attempt had no
    effect; open a new session (an earlier attempt may have applied);
  - ``-ERR ...``: the state machine failed on it (a bug, logged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core import DraftyError, NodeId
from ..node import OutcomeUnknown, Refused, SessionExpired, StateMachineError
from . import kv
from .resp import Error, Reply


@dataclass(frozen=True, slots=True)
class Proposal:
    """What to submit to the node for one data command."""

    command: bytes
    """The state machine command (empty for a session opening)."""
    client: int = 0
    seq: int = 0
    open_session: bool = False
    read: bool = False
    """A read-only command outside a session: served by ReadIndex, not the log."""


OPEN_SESSION = Proposal(b"", open_session=True)


def plan(argv: list[bytes]) -> Proposal | Error:
    """The proposal for a data command, or the error that answers it at once."""
    name = argv[0].upper()
    if name == b"SESSION":
        if len(argv) == 2 and argv[1].upper() == b"OPEN":
            return OPEN_SESSION
        return Error("ERR usage: SESSION OPEN")
    client = seq = 0
    if name == b"SEQ":
        if len(argv) < 4:
            return kv.wrong_arity(b"SEQ")
        c, s = kv.parse_int(argv[1]), kv.parse_int(argv[2])
        if c is None or s is None or c <= 0 or s <= 0:
            return Error("ERR SEQ needs a positive session id and sequence number")
        client, seq, argv = c, s, argv[3:]
    bad = kv.check(argv)
    if bad is not None:
        return bad
    spec = kv.SPECS.get(argv[0].upper())
    read = not client and spec is not None and not spec.write
    return Proposal(kv.encode_command(argv), client, seq, read=read)


def answer(value: Any, error: BaseException | None, hint: Callable[[NodeId], str]) -> Reply:
    """The reply to a proposal's outcome. ``hint(leader)`` describes where the leader is."""
    if error is None:
        reply: Reply = value
        return reply
    if isinstance(error, Refused):
        return Error(f"TRYAGAIN {error.reason}{hint(error.leader)}")
    if isinstance(error, OutcomeUnknown):
        return Error(f"UNCERTAIN {error}")
    if isinstance(error, SessionExpired):
        return Error(f"SESSIONEXPIRED {error}")
    if isinstance(error, StateMachineError | DraftyError):
        return Error(f"ERR {error}")
    return Error("ERR internal error (logged on the server)")
