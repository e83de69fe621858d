"""Client sessions: exactly-once application of retried commands.

Theory of operation
-------------------
A client that wants exactly-once commands first opens a session: an
``OPEN_SESSION`` entry goes through the log, and its log index becomes the
session id (unique for the life of the cluster, since a committed index is
never reused). The client then numbers its commands 1, 2, 3... (one
outstanding at a time) and each logged command carries ``(client, seq)``.
When a command is applied (:meth:`SessionTable.check`):

- ``seq > last``: it is new: run it and remember ``(seq, reply)``
  (``seq > last + 1`` means the client gave up on a request and moved on);
- ``seq == last``: a retry of the command just applied (the client lost the
  reply): answer the remembered reply, run nothing;
- ``seq < last``: a late copy of an older request: run nothing, and answer
  that the outcome is unknown (that request may well have been applied
  earlier; the client is no longer waiting for it in any case);
- no session with that id: it expired, was evicted, or was never opened.
  Run nothing and say so (:class:`~drafty.node.api.SessionExpired`): the
  client must open a new session and treat a request that may have been
  applied under the old one as of unknown outcome.

Because a session exists only once its opening entry applied, a retry of a
first command after its session expired is refused like any other, never
taken for a new session (dissertation §6.3 registers clients the same way).
Client 0 means "no session": the command always runs.

Sessions expire deterministically, by log time (:mod:`drafty.node.clock`),
never by a node's own clock: the table keeps the highest time seen in the log
(``now``, never going back), and a session idle for longer than ``ttl_ms`` of
that time is dropped when the next stamped entry applies. Log time starts at
the first stamp: sessions opened before it count as seen then. At most
``max_sessions`` live at once; opening one more drops the least recently used.
All replicas see the same log, so all expire and evict the same sessions at
the same index.

Invariants: ``now`` never decreases; a session's ``seq`` never decreases;
a ``(client, seq)`` pair runs at most once while its session lives; the
table holds at most ``max_sessions`` sessions, in least recently used order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

DEFAULT_TTL_MS: Final = 10 * 60 * 1000
DEFAULT_MAX_SESSIONS: Final = 100_000


@dataclass(slots=True)
class Session:
    seq: int
    """The last sequence number applied (0: none yet)."""
    reply: Any
    """What the command ``seq`` returned (or the error it raised)."""
    last_seen: int
    """Log time (ms) the session was last used."""


class Check(Enum):
    """What to do with a command, by its session."""

    NEW = "new"
    DUPLICATE = "duplicate"
    STALE = "stale"
    EXPIRED = "expired"


class SessionTable:
    """Per-session last sequence number and reply (see the module docstring)."""

    def __init__(self, ttl_ms: int = DEFAULT_TTL_MS, max_sessions: int = DEFAULT_MAX_SESSIONS):
        if ttl_ms < 1 or max_sessions < 1:
            raise ValueError("ttl_ms and max_sessions must be positive")
        self.ttl_ms = ttl_ms
        self.max_sessions = max_sessions
        self.now = 0
        """Highest log time seen (ms); 0 until the first stamped entry."""
        self._sessions: OrderedDict[int, Session] = OrderedDict()
        self.expired = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, client: int) -> bool:
        return client in self._sessions

    def advance_clock(self, time_ms: int) -> None:
        """Move log time forward and drop sessions idle past the ttl."""
        if time_ms <= self.now:
            return
        sessions = self._sessions
        if self.now == 0:
            # Log time starts now: what was opened before counts as seen now.
            for s in sessions.values():
                s.last_seen = time_ms
        self.now = time_ms
        horizon = time_ms - self.ttl_ms
        # Least recently seen first: stop at the first live one.
        while sessions:
            s = next(iter(sessions.values()))
            if s.last_seen >= horizon:
                break
            sessions.popitem(last=False)
            self.expired += 1

    def open(self, client: int) -> None:
        """Open session ``client`` (the index of its opening entry)."""
        if client in self._sessions:
            return  # the same entry applied twice would be a bug upstream; keep the first
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
            self.evicted += 1
        self._sessions[client] = Session(0, None, self.now)

    def check(self, client: int, seq: int) -> tuple[Check, Session | None]:
        """How to treat ``(client, seq)``; the session, if there is one.

        Marks the session used. Client 0 (no session) is always NEW.
        """
        if client == 0:
            return Check.NEW, None
        s = self._sessions.get(client)
        if s is None:
            return Check.EXPIRED, None
        s.last_seen = self.now
        self._sessions.move_to_end(client)
        if seq > s.seq:
            return Check.NEW, s
        if seq == s.seq:
            return Check.DUPLICATE, s
        return Check.STALE, s

    def record(self, session: Session, seq: int, reply: Any) -> None:
        """Remember the reply of a newly applied request of ``session``."""
        assert seq > session.seq, "a session's sequence never goes back"
        session.seq, session.reply = seq, reply

    def get(self, client: int) -> Session | None:
        return self._sessions.get(client)

    def items(self) -> list[tuple[int, Session]]:
        """Every session, least recently used first (for snapshots)."""
        return list(self._sessions.items())

    def load(self, now: int, sessions: list[tuple[int, Session]]) -> None:
        """Replace the table with a snapshot's (least recently used first)."""
        self.now = now
        self._sessions = OrderedDict(sessions)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
            self.evicted += 1
