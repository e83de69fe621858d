"""The envelope around every application entry in the log.

Theory of operation
-------------------
A NORMAL log entry's data is a msgpack array::

    [version, kind, origin, incarnation, request, term, time ms, client, seq, command]

- ``kind``: :class:`Kind`: a state machine ``COMMAND``, the opening of a
  client session (``OPEN_SESSION``), or a leader's ``CLOCK`` reading that
  only moves log time.
- ``origin``, ``incarnation``, ``request``: the request's identity. The node
  that took the request (``origin``) numbers its requests 1, 2, 3... within
  one process life, and every life has its own ``incarnation``, larger than
  every earlier life's of the same node (see :mod:`drafty.node.dedupe`). The
  node finds the waiting caller by this triple when the entry is applied, so
  an entry proposed in an earlier life can never answer a request of this
  one, and a duplicate of a forwarded proposal is recognised.
- ``term``: the proposing node's term when it proposed. The core appends a
  forwarded proposal only in that same term, and the node layer applies an
  entry only when its log term equals this one, so a proposal that straddles
  a leader change has no effect and its caller can be told so for certain.
- ``time ms``: log time, stamped by the leader that proposed the entry (0 on
  entries a follower forwarded, which carry no clock reading): see
  :mod:`drafty.node.clock`.
- ``client``, ``seq``: the client session and its sequence number, for
  exactly-once application across retries (see :mod:`drafty.node.sessions`);
  client 0 means "no session".
- ``command``: opaque bytes for the state machine.

Decoding never raises anything but :class:`EnvelopeError`: an entry written
by a newer or broken node is reported and skipped identically on every
replica, never crashing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import msgpack

ENVELOPE_VERSION: Final = 2
MAX_FIELD: Final = (1 << 64) - 1


class EnvelopeError(Exception):
    """A log entry's data is not a valid envelope."""


class Kind(IntEnum):
    """What an envelope carries. Values are stable: they go to disk."""

    COMMAND = 0
    OPEN_SESSION = 1
    CLOCK = 2


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: Kind
    origin: int
    incarnation: int
    request: int
    term: int
    time_ms: int
    client: int
    seq: int
    command: bytes


def pack(e: Envelope) -> bytes:
    data: bytes = msgpack.packb(
        [
            ENVELOPE_VERSION,
            int(e.kind),
            e.origin,
            e.incarnation,
            e.request,
            e.term,
            e.time_ms,
            e.client,
            e.seq,
            e.command,
        ],
        use_bin_type=True,
    )
    return data


_KINDS: Final = {int(k): k for k in Kind}


def unpack(data: bytes) -> Envelope:
    try:
        v = msgpack.unpackb(data, raw=False, max_map_len=0, max_ext_len=0)
    except Exception as e:
        raise EnvelopeError(f"not msgpack: {e}") from None
    if type(v) is not list or len(v) != 10 or v[0] != ENVELOPE_VERSION:
        raise EnvelopeError(f"not a version {ENVELOPE_VERSION} envelope")
    _, kind, origin, incarnation, request, term, time_ms, client, seq, command = v
    for x in (origin, incarnation, request, term, time_ms, client, seq):
        if type(x) is not int or not 0 <= x <= MAX_FIELD:
            raise EnvelopeError("envelope field is not an unsigned 64-bit integer")
    k = _KINDS.get(kind) if type(kind) is int else None
    if k is None:
        raise EnvelopeError(f"unknown envelope kind {kind!r}")
    if type(command) is not bytes:
        raise EnvelopeError("envelope command is not bytes")
    return Envelope(k, origin, incarnation, request, term, time_ms, client, seq, command)
