"""Reads served without the log: waiting for ReadIndex, then for the apply.

Theory of operation
-------------------
A read-only command goes to the core as a ReadIndex read
(:mod:`drafty.core.readonly`) named ``ctx`` (this life's incarnation and the
request number, so an answer meant for an earlier life can never match). It
waits here in two stages:

1. *unconfirmed*: until the core hands back its :class:`~drafty.core.ReadState`.
   Index 0 means the core refused it (leadership changed): the caller gets
   :class:`~drafty.node.api.Refused`;
2. *confirmed at index i*: until the state machine has applied ``i``; then it
   runs against the state machine's ``query`` (never ``apply``: a read
   changes nothing) and the caller gets its result.

A read has no effect, so every failure (deadline, stop, refusal) is
``Refused``: retrying is always safe.

Invariants
----------
- A read runs only once the state machine applied its confirmed index.
- Every read gets exactly one reply; at most ``max_pending`` wait (with the
  node's other requests).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable
from typing import Any

from ..core import DraftyError, ReadState
from .api import Refused
from .requests import Reply

_CTX = struct.Struct(">QQ")


class Reads:
    """A node's reads in flight; replies go to ``replies``."""

    def __init__(self, incarnation: int, replies: list[Reply]) -> None:
        self.incarnation = incarnation
        self.replies = replies
        self._unconfirmed: dict[bytes, tuple[int, bytes]] = {}
        """ctx -> (request, command)."""
        self._confirmed: list[tuple[int, int, bytes]] = []
        """Heap of (index, request, command) waiting for the apply."""
        self._deadlines: list[tuple[int, int, bytes]] = []
        self._live: set[int] = set()
        self.served = 0
        """Linearizable reads answered."""
        self.served_stale = 0
        """Stale local reads answered (``Node.read_stale``)."""

    def __len__(self) -> int:
        return len(self._live)

    def ctx(self, rid: int) -> bytes:
        return _CTX.pack(self.incarnation, rid)

    def add(self, rid: int, command: bytes, deadline_ms: int) -> bytes:
        ctx = self.ctx(rid)
        self._unconfirmed[ctx] = (rid, command)
        self._live.add(rid)
        heapq.heappush(self._deadlines, (deadline_ms, rid, ctx))
        return ctx

    def confirmed(self, states: tuple[ReadState, ...], leader: int) -> None:
        for rs in states:
            got = self._unconfirmed.pop(rs.ctx, None)
            if got is None or got[0] not in self._live:
                continue
            rid, command = got
            if rs.index == 0:
                self._end(rid, Refused("the read could not be confirmed (leadership changed)",
                                       leader))  # fmt: skip
            else:
                heapq.heappush(self._confirmed, (rs.index, rid, command))

    def serve(self, applied: int, query: Callable[[bytes], Any]) -> None:
        """Run every confirmed read whose index is applied."""
        heap = self._confirmed
        while heap and heap[0][0] <= applied:
            _, rid, command = heapq.heappop(heap)
            if rid in self._live:
                self._live.discard(rid)
                self.served += 1
                self.replies.append(Reply(rid, query(command), index=0, read_at=applied))

    def expire(self, now_ms: int) -> None:
        dl = self._deadlines
        while dl and dl[0][0] <= now_ms:
            _, rid, ctx = heapq.heappop(dl)
            if rid in self._live:
                self._unconfirmed.pop(ctx, None)
                self._end(rid, Refused("the read was not served within its deadline"))
        if not self._live:  # served reads leave their deadlines behind: drop them
            dl.clear()

    def end_all(self, why: str) -> None:
        for rid in list(self._live):
            self._end(rid, Refused(why))
        self._unconfirmed.clear()
        self._confirmed.clear()
        self._deadlines.clear()

    def _end(self, rid: int, error: DraftyError) -> None:
        self._live.discard(rid)
        self.replies.append(Reply(rid, error=error))
