"""What a node's snapshot holds: the state machine and the node layer's state at one index.

Theory of operation
-------------------
Exactly-once must survive a restart from a snapshot and an InstallSnapshot,
so a snapshot carries, besides the state machine's bytes, everything the
node layer decided from the log up to its index: the client-session table
(each session's last sequence number, remembered reply and last use), log
time, and the duplicate filter's records for the current term. A node
restored from it then treats every later entry exactly as a node that
applied the whole log would: that is the state machine safety the
simulator's oracle checks across snapshots.

The payload is one msgpack array::

    [version, machine bytes, log time ms, sessions, filter term, filter records]
    sessions: [[client, seq, last seen ms, reply], ...] least recently used first
    reply:    [0, result bytes] | [1, state machine error text] | [2] (none yet)
    records:  [[origin, incarnation, highest request], ...]

Results are the state machine's own values, so the state machine encodes
them: ``encode_result(value) -> bytes`` and ``decode_result(bytes) -> value``
when it defines them; otherwise plain values (None, bool, int, float, str,
bytes, lists and dicts of those) are encoded with msgpack, and anything else
is a :class:`SnapshotError` naming the type, at snapshot time, never a
corrupt snapshot.

Decoding checks shapes and types and raises :class:`SnapshotError` on any
mismatch: a snapshot from a broken or hostile peer is refused, never half
applied.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from ..core import DraftyError
from .api import StateMachine, StateMachineError
from .dedupe import DuplicateFilter
from .sessions import Session, SessionTable

SNAPSHOT_VERSION: Final = 1
_NO_REPLY: Final = [2]


class SnapshotError(DraftyError):
    """A snapshot payload cannot be made (unencodable result) or read (malformed)."""


def encode(machine: StateMachine, sessions: SessionTable, dedupe: DuplicateFilter) -> bytes:
    """The payload of a snapshot of this node's state now (see the module docstring)."""
    enc = getattr(machine, "encode_result", None)
    rows = []
    for client, s in sessions.items():
        rows.append([client, s.seq, s.last_seen, _reply_out(s, enc)])
    term, records = dedupe.export()
    body = [
        SNAPSHOT_VERSION,
        machine.snapshot(),
        sessions.now,
        rows,
        term,
        [[o, inc, req] for o, (inc, req) in sorted(records.items())],
    ]
    try:
        data: bytes = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError) as e:
        raise SnapshotError(f"cannot encode the snapshot: {e}") from None
    return data


def _reply_out(s: Session, enc: Any) -> list[Any]:
    r = s.reply
    if s.seq == 0:
        return _NO_REPLY
    if isinstance(r, StateMachineError):
        return [1, str(r)]
    if enc is not None:
        out = enc(r)
        if type(out) is not bytes:
            raise SnapshotError("encode_result must return bytes")
        return [0, out]
    try:
        return [0, msgpack.packb(r, use_bin_type=True, strict_types=True)]
    except (TypeError, ValueError):
        raise SnapshotError(
            f"cannot encode a session's remembered result of type {type(r).__name__}: "
            "give the state machine encode_result/decode_result"
        ) from None


def decode(
    data: bytes, machine: StateMachine, sessions: SessionTable, dedupe: DuplicateFilter
) -> None:
    """Restore ``machine``, ``sessions`` and ``dedupe`` from a snapshot payload."""
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as e:
        raise SnapshotError(f"snapshot payload is not msgpack: {e}") from None
    if type(body) is not list or len(body) != 6 or body[0] != SNAPSHOT_VERSION:
        raise SnapshotError(f"not a version {SNAPSHOT_VERSION} snapshot payload")
    _, machine_bytes, now, rows, term, records = body
    if type(machine_bytes) is not bytes or type(rows) is not list or type(records) is not list:
        raise SnapshotError("snapshot payload fields have the wrong types")
    _nat(now, "log time")
    _nat(term, "filter term")
    dec = getattr(machine, "decode_result", None)
    loaded: list[tuple[int, Session]] = []
    for row in rows:
        if type(row) is not list or len(row) != 4:
            raise SnapshotError("malformed session row")
        client, seq, last_seen, reply = row
        session = Session(_nat(seq, "seq"), _reply_in(reply, dec), _nat(last_seen, "last seen"))
        loaded.append((_nat(client, "session"), session))
    seen: dict[int, tuple[int, int]] = {}
    for rec in records:
        if type(rec) is not list or len(rec) != 3:
            raise SnapshotError("malformed filter record")
        origin, inc, req = (_nat(x, "filter record") for x in rec)
        seen[origin] = (inc, req)
    machine.restore(machine_bytes)
    sessions.load(now, loaded)
    dedupe.load(term, seen)


def _reply_in(v: Any, dec: Any) -> Any:
    if v == _NO_REPLY:
        return None
    if type(v) is not list or len(v) != 2 or v[0] not in (0, 1):
        raise SnapshotError("malformed session reply")
    if v[0] == 1:
        if type(v[1]) is not str:
            raise SnapshotError("malformed state machine error")
        return StateMachineError(v[1])
    if type(v[1]) is not bytes:
        raise SnapshotError("malformed session reply")
    if dec is not None:
        return dec(v[1])
    try:
        return msgpack.unpackb(v[1], raw=False, strict_map_key=False)
    except Exception as e:
        raise SnapshotError(f"malformed session reply: {e}") from None


def _nat(v: Any, what: str) -> int:
    if type(v) is not int or v < 0:
        raise SnapshotError(f"{what} is not a non-negative integer")
    return v
