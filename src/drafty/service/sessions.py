"""Client sessions: exactly-once application of retried writes.

Theory of operation
-------------------
A client that wants exactly-once writes picks a random 64-bit client id and
numbers its writes 1, 2, 3... (one outstanding at a time). Each logged
command carries ``(client, seq)``. When a command is applied:

- ``seq == last + 1``: it is new; run it and remember ``(seq, reply)``;
- ``seq == last``: a retry of the write just applied (the client lost the
  reply): answer the remembered reply, run nothing;
- ``seq < last``: an older request the client has given up on: refuse it
  with a typed error, run nothing;
- ``seq > last + 1``: the client gave up on a request (its outcome is
  unknown to it) and moved on: accept it as new, it cannot be a duplicate;
- no session and ``seq == 1``: a new session;
- no session and ``seq > 1``: the session expired (or never existed here), so
  a duplicate can no longer be recognised: refuse with
  :class:`SessionExpired`, run nothing. The client must open a new session
  and treat its unanswered request as of unknown outcome (dissertation §6.3
  rejects requests of unknown sessions the same way).

Client 0 means "no session": the command always runs (plain redis clients).

Sessions expire deterministically: every logged command carries the
proposing leader's clock reading in milliseconds, the session table keeps
the highest seen (``now``, never going back), and a session idle for longer
than ``ttl_ms`` of that log time is dropped when the next command is applied.
All replicas see the same log, so all expire the same sessions at the same
index.

Invariants: ``now`` never decreases; a session's ``seq`` never decreases; a
``(client, seq)`` pair is executed at most once while its session lives.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

R = TypeVar("R")

DEFAULT_TTL_MS: Final = 10 * 60 * 1000


@dataclass(slots=True)
class Session(Generic[R]):
    seq: int
    reply: R
    last_seen: int


class StaleRequest(Exception):
    """The request is older than the session's last one: it was not applied."""


class SessionExpired(Exception):
    """No session for the client and the request is not its first: not applied."""


class SessionTable(Generic[R]):
    """Per-client last sequence number and reply (see the module docstring)."""

    def __init__(self, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        self.ttl_ms = ttl_ms
        self.now = 0
        """Highest leader clock reading seen in the log (ms)."""
        self._sessions: OrderedDict[int, Session[R]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def advance_clock(self, time_ms: int) -> None:
        """Move log time forward and drop sessions idle past the ttl."""
        if time_ms > self.now:
            self.now = time_ms
        horizon = self.now - self.ttl_ms
        sessions = self._sessions
        # Least recently seen first: stop at the first live one.
        while sessions:
            client, s = next(iter(sessions.items()))
            if s.last_seen >= horizon:
                break
            del sessions[client]

    def lookup(self, client: int, seq: int) -> Session[R] | None:
        """The remembered session if ``(client, seq)`` is a duplicate, else None.

        Raises StaleRequest for a sequence number older than the last one,
        SessionExpired for a later request of a client without a session.
        """
        if client == 0:
            return None
        s = self._sessions.get(client)
        if s is None:
            if seq > 1:
                raise SessionExpired(f"client {client} has no session (expired?); start anew")
            return None
        if seq > s.seq:
            return None
        if seq == s.seq:
            return s
        raise StaleRequest(f"request {seq} of client {client} is older than {s.seq}")

    def record(self, client: int, seq: int, reply: R) -> None:
        """Remember the reply of a newly applied request."""
        if client == 0:
            return
        s = self._sessions.pop(client, None)
        if s is None:
            s = Session(seq, reply, self.now)
        else:
            s.seq, s.reply, s.last_seen = seq, reply, self.now
        self._sessions[client] = s
