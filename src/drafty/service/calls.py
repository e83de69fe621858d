"""The native client's retry rules, without sockets: one :class:`Call` per command.

Theory of operation
-------------------
:class:`drafty.client.AsyncClient` and the simulator's clients run the same
rules, so the simulator checks the retry logic users run. A :class:`Call` is
a small state machine: ask it what to do (:meth:`Call.next`), do it, and
report what happened (:meth:`Call.replied`, :meth:`Call.unanswered`). Steps:

- :class:`Send`: send ``argv`` to ``target``, report the reply or its absence;
- :class:`Pause`: wait ``ms`` milliseconds (backoff), then ask again;
- :class:`Done`: the command's result; :class:`Fail`: raise ``error``.

The rules:

- **Exactly-once writes.** A write needs a session: the call first sends
  ``SESSION OPEN`` (retried freely: a lost opening only leaves an unused
  session to expire), then ``SEQ session seq command...`` with a sequence
  number taken once per call, and it resends the *same* pair after every
  lost or uncertain answer, to the same or another node, so the cluster
  runs it at most once. Reads are sent bare and retried freely.
- **Which node.** Start with the first address; follow the leader named in a
  ``-TRYAGAIN`` (``leader is node N at host:port``); move to the next address
  after a connection failure, a missing answer, or a ``-TRYAGAIN`` naming no
  new leader.
- **When to give up.** After ``deadline_ms``, fail with
  :class:`~drafty.node.OutcomeUnknown` if an attempt of this write may have
  taken effect (it was sent and not answered, or answered ``-UNCERTAIN``),
  else with :class:`~drafty.node.Refused`.
- ``-SESSIONEXPIRED``: if no attempt may have applied, open a new session
  and send the command under it (a new sequence number); otherwise the
  outcome is unknown: fail at once.
- ``-ERR`` and any other error: :class:`CommandError`; retrying would give
  the same answer.

Invariants: a call resends one ``(session, seq)`` pair until the session is
known to be gone; ``maybe_applied`` never goes back to False; the call ends
in exactly one :class:`Done` or :class:`Fail`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from ..core import DraftyError
from ..node import OutcomeUnknown, Refused

Address = tuple[str, int]

WRITES: Final = frozenset(
    b"SET DEL INCR DECR INCRBY DECRBY APPEND MSET GETDEL CAS".split()
)  # fmt: skip
"""Commands that change the store: sent with SEQ so retries apply once."""

_LEADER_HINT: Final = re.compile(r"leader is node \d+ at ([^\s:]+):(\d+)")
FIRST_BACKOFF_MS: Final = 20
MAX_BACKOFF_MS: Final = 500


class CommandError(DraftyError):
    """The server answered with an error about the command itself."""


@dataclass(frozen=True, slots=True)
class Send:
    target: Address
    argv: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Pause:
    ms: int


@dataclass(frozen=True, slots=True)
class Done:
    value: Any


@dataclass(frozen=True, slots=True)
class Fail:
    error: DraftyError


Step = Send | Pause | Done | Fail


@dataclass(slots=True)
class ClientState:
    """What outlives one call: where to send, and the exactly-once session."""

    servers: list[Address]
    current: int = 0
    target: Address = ("", 0)
    session: int = 0
    """The open session's id (0: none yet)."""
    seq: int = 0
    """The last sequence number taken in ``session``."""
    sessions_opened: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("give at least one server address")
        if self.target == ("", 0):
            self.target = self.servers[0]

    def next_server(self) -> None:
        self.current = (self.current + 1) % len(self.servers)
        self.target = self.servers[self.current]

    def follow_hint(self, text: str) -> bool:
        """Switch to the leader a ``-TRYAGAIN`` names; False if it names none new."""
        m = _LEADER_HINT.search(text)
        if m is None:
            return False
        hinted = (m.group(1), int(m.group(2)))
        if hinted == self.target:
            return False
        self.target = hinted
        return True


class Call:
    """One command's attempts; see the module docstring."""

    def __init__(self, state: ClientState, argv: list[bytes], now_ms: int, deadline_ms: int):
        if not argv:
            raise ValueError("empty command")
        self.state = state
        self.argv = tuple(argv)
        self.write = argv[0].upper() in WRITES
        self.give_up_ms = now_ms + deadline_ms
        self.deadline_ms = deadline_ms
        self.maybe_applied = False
        self.attempts = 0
        self.seq = 0
        self.last_problem = "no attempt made"
        self._end: Done | Fail | None = None
        self._pause = 0
        self._backoff = FIRST_BACKOFF_MS
        self._opening = False
        self._sent_seq = False

    def next(self, now_ms: int) -> Step:
        """What to do now."""
        if self._end is not None:
            return self._end
        if now_ms >= self.give_up_ms:
            self._end = Fail(self._give_up_error())
            return self._end
        if self._pause:
            ms, self._pause = self._pause, 0
            return Pause(min(ms, self.give_up_ms - now_ms))
        st = self.state
        self.attempts += 1
        if not self.write:
            self._opening = self._sent_seq = False
            return Send(st.target, self.argv)
        if st.session == 0:
            self._opening, self._sent_seq = True, False
            return Send(st.target, (b"SESSION", b"OPEN"))
        if self.seq == 0:
            st.seq += 1
            self.seq = st.seq
        self._opening, self._sent_seq = False, True
        head = (b"SEQ", str(st.session).encode(), str(self.seq).encode())
        return Send(st.target, head + self.argv)

    def replied(self, value: Any, error: str | None) -> None:
        """The last :class:`Send` was answered: ``error`` is an error reply's text."""
        st = self.state
        if self._opening:
            self._opening = False
            if error is None:
                if type(value) is not int or value <= 0:
                    self._end = Fail(CommandError(f"SESSION OPEN answered {value!r}"))
                    return
                st.session, st.seq = value, 0
                st.sessions_opened += 1
                self.seq = 0
                return
        elif error is None:
            self._end = Done(value)
            return
        if error.startswith("TRYAGAIN"):
            self.last_problem = error
            if not st.follow_hint(error):
                st.next_server()  # this node knows no leader (it may be cut off)
                self._backoff_next()
        elif error.startswith("UNCERTAIN"):
            self.last_problem = error
            self.maybe_applied = self.maybe_applied or self._sent_seq
            self._backoff_next()
        elif error.startswith("SESSIONEXPIRED"):
            self.last_problem = error
            if self.maybe_applied:
                self._end = Fail(
                    OutcomeUnknown(f"session expired after an attempt that may have applied: "
                                   f"{error}")
                )  # fmt: skip
                return
            if self._sent_seq and st.session != 0:
                st.session = 0  # open a new one; this command gets a new number there
            self.seq = 0
        else:
            self._end = Fail(CommandError(error))

    def unanswered(self, why: str, sent: bool) -> None:
        """The last :class:`Send` got no answer (``sent``: it may have arrived)."""
        self.last_problem = why
        if sent and self._sent_seq:
            self.maybe_applied = True
        self._opening = False
        self.state.next_server()
        if not sent:
            self._backoff_next()

    def _backoff_next(self) -> None:
        self._pause = self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_MS)

    def _give_up_error(self) -> DraftyError:
        text = f"gave up after {self.deadline_ms / 1000:.1f} s: {self.last_problem}"
        if self.maybe_applied:
            return OutcomeUnknown(text)
        return Refused(text)
