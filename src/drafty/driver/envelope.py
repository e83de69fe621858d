"""The envelope around every application command in the log.

Theory of operation
-------------------
A log entry's data is a msgpack array::

    [version, origin node, request id, client id, sequence, time ms, command]

- ``origin`` and ``request id`` let the node that took the request find the
  waiting caller when the entry is applied, even when a follower forwarded it
  to the leader and never learnt its index.
- ``client`` and ``sequence`` give exactly-once application across retries
  (see :mod:`drafty.service.sessions`); client 0 means "no session".
- ``time ms`` is the proposing node's clock, the log time by which sessions
  expire: every replica sees the same value, so expiry is deterministic.
- ``command`` is opaque bytes for the state machine.

Decoding never raises anything but :class:`EnvelopeError`: an entry written
by a newer or broken node is reported and skipped identically on every
replica, never crashing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgpack

ENVELOPE_VERSION: Final = 1


class EnvelopeError(Exception):
    """A log entry's data is not a valid envelope."""


@dataclass(frozen=True, slots=True)
class Envelope:
    origin: int
    request: int
    client: int
    seq: int
    time_ms: int
    command: bytes


def pack(e: Envelope) -> bytes:
    data: bytes = msgpack.packb(
        [ENVELOPE_VERSION, e.origin, e.request, e.client, e.seq, e.time_ms, e.command],
        use_bin_type=True,
    )
    return data


def unpack(data: bytes) -> Envelope:
    try:
        v = msgpack.unpackb(data, raw=False, max_map_len=0, max_ext_len=0)
    except Exception as e:
        raise EnvelopeError(f"not msgpack: {e}") from None
    if type(v) is not list or len(v) != 7 or v[0] != ENVELOPE_VERSION:
        raise EnvelopeError("not a version 1 envelope")
    _, origin, request, client, seq, time_ms, command = v
    for x in (origin, request, client, seq, time_ms):
        if type(x) is not int or x < 0:
            raise EnvelopeError("envelope field is not a non-negative integer")
    if type(command) is not bytes:
        raise EnvelopeError("envelope command is not bytes")
    return Envelope(origin, request, client, seq, time_ms, command)
