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

The payload is a head and the state machine's bytes::

    u32 big-endian: length of the head
    head: msgpack [version, log time ms, sessions, filter term, filter records,
                   addresses]
    the state machine's bytes (its snapshot, or its view's chunks joined)

    sessions: [[client, seq, last seen ms, reply], ...] least recently used first
    reply:    [0, result bytes] | [1, state machine error text] | [2] (none yet)
    records:  [[origin, incarnation, highest request], ...]
    addresses: [[id, peer address, client address], ...]  (the members'
              address book, :mod:`drafty.node.members`; version 3 on,
              a version 2 payload has none)

Results are the state machine's own values, so the state machine encodes
them: ``encode_result(value) -> bytes`` and ``decode_result(bytes) -> value``
when it defines them; otherwise plain values (None, bool, int, float, str,
bytes, lists and dicts of those) are encoded with msgpack, and anything else
is a :class:`SnapshotError` naming the type, at snapshot time, never a
corrupt snapshot.

The head is small (bounded by ``max_sessions``) and is encoded on the loop
when the snapshot is taken; the machine's part is produced by
:func:`chunks`, off the loop for a
:class:`~drafty.node.api.StreamingStateMachine`, and is never copied whole.

Decoding checks shapes and types and raises :class:`SnapshotError` on any
mismatch: a snapshot from a broken or hostile peer is refused, never half
applied.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any, Final

import msgpack

from ..core import DraftyError, NodeId
from .api import StateMachine, StateMachineError, StreamingStateMachine
from .dedupe import DuplicateFilter
from .members import AddressError, MemberAddress, from_rows
from .sessions import Session, SessionTable

SNAPSHOT_VERSION: Final = 3
_READABLE_VERSIONS: Final = (2, 3)
_HEAD_LEN: Final = struct.Struct(">I")
_NO_REPLY: Final = [2]


class SnapshotError(DraftyError):
    """A snapshot payload cannot be made (unencodable result) or read (malformed)."""


def encode_head(
    machine: StateMachine,
    sessions: SessionTable,
    dedupe: DuplicateFilter,
    addresses: list[list[object]] | None = None,
) -> bytes:
    """The node layer's part of a snapshot of this node now, length-prefixed
    (``addresses``: the rows of :meth:`drafty.node.members.AddressBook.rows`)."""
    enc = getattr(machine, "encode_result", None)
    rows = []
    for client, s in sessions.items():
        rows.append([client, s.seq, s.last_seen, _reply_out(s, enc)])
    term, records = dedupe.export()
    body = [
        SNAPSHOT_VERSION,
        sessions.now,
        rows,
        term,
        [[o, inc, req] for o, (inc, req) in sorted(records.items())],
        addresses or [],
    ]
    try:
        head: bytes = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError) as e:
        raise SnapshotError(f"cannot encode the snapshot: {e}") from None
    return _HEAD_LEN.pack(len(head)) + head


def chunks(head: bytes, machine_chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The whole payload, in pieces: the head, then the state machine's bytes."""
    yield head
    for c in machine_chunks:
        if type(c) is not bytes:
            raise SnapshotError("a snapshot view's chunks must be bytes")
        yield c


def encode(
    machine: StateMachine,
    sessions: SessionTable,
    dedupe: DuplicateFilter,
    addresses: list[list[object]] | None = None,
) -> bytes:
    """The whole payload of a snapshot of this node now, on the caller's thread."""
    head = encode_head(machine, sessions, dedupe, addresses)
    return b"".join(chunks(head, (machine.snapshot(),)))


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
    data: bytes | memoryview,
    machine: StateMachine,
    sessions: SessionTable,
    dedupe: DuplicateFilter,
) -> dict[NodeId, MemberAddress]:
    """Restore ``machine``, ``sessions`` and ``dedupe`` from a snapshot payload;
    the members' addresses it holds.

    Everything is checked before anything changes, except the state machine's
    own bytes, which its ``restore`` checks (a ValueError from it is turned
    into SnapshotError; the machine must then have kept its old state).
    """
    view = memoryview(data)
    if len(view) < _HEAD_LEN.size:
        raise SnapshotError("snapshot payload is too short")
    (n,) = _HEAD_LEN.unpack_from(view, 0)
    if _HEAD_LEN.size + n > len(view):
        raise SnapshotError("snapshot payload head runs past its end")
    try:
        body = msgpack.unpackb(
            view[_HEAD_LEN.size : _HEAD_LEN.size + n], raw=False, strict_map_key=False
        )
    except Exception as e:
        raise SnapshotError(f"snapshot payload head is not msgpack: {e}") from None
    if (
        type(body) is not list
        or not body
        or body[0] not in _READABLE_VERSIONS
        or len(body) != (5 if body[0] == 2 else 6)
    ):
        raise SnapshotError(f"not a version {_READABLE_VERSIONS} snapshot payload")
    if body[0] == 2:
        body.append([])
    _, now, rows, term, records, addresses = body
    if type(rows) is not list or type(records) is not list or type(addresses) is not list:
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
    try:
        book = from_rows(addresses)
    except AddressError as e:
        raise SnapshotError(f"malformed address book: {e}") from None
    rest = view[_HEAD_LEN.size + n :]
    try:
        if isinstance(machine, StreamingStateMachine):
            machine.restore_view(rest)
        else:
            machine.restore(bytes(rest))
    except ValueError as e:
        raise SnapshotError(f"the state machine refused the snapshot: {e}") from None
    sessions.load(now, loaded)
    dedupe.load(term, seen)
    return book


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
