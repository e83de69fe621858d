"""Wire format of peer traffic: frames of msgpack-encoded core messages.

Theory of operation
-------------------
A connection between two nodes carries frames::

    +----------------+-----------+---------------------------+
    | length: u32 BE | version u8| body: msgpack, length - 1 |
    +----------------+-----------+---------------------------+

``length`` counts the version byte and the body, and is capped (a peer that
announces more is cut off before anything is allocated). The body of the
first frame on a connection is a :class:`Hello` naming the cluster and the
sender; every later body is an array of messages, so everything queued for a
peer travels in one frame and one write.

A message is a msgpack array whose first element is its kind code, followed
by the dataclass fields in declaration order; an entry is
``[index, term, kind, data]``. Decoding is strict: every field must have the
exact type and range the dataclass promises (an int where an int belongs,
never a bool; bytes where bytes belong; no negative index or term), so the
core only ever sees well-typed messages. Anything else raises
:class:`DecodeError`: the peer sent garbage, and the connection is closed.

Never pickle: decoding cannot run code, and msgpack's own limits bound every
allocation to the frame size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from ..core import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotAck,
    SnapshotChunk,
    SnapshotMeta,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)

VERSION: Final = 1
HEADER = struct.Struct(">IB")
DEFAULT_MAX_FRAME: Final = 64 << 20
"""Largest frame accepted by default (64 MiB): bigger than any append we send."""


class DecodeError(Exception):
    """The peer sent bytes that are not a valid frame or message."""


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame on a peer connection: who is calling, in which cluster."""

    cluster: str
    node: int


_KINDS: dict[type, int] = {
    VoteRequest: 1,
    VoteResponse: 2,
    AppendEntries: 3,
    AppendResponse: 4,
    Heartbeat: 5,
    HeartbeatResponse: 6,
    Propose: 7,
    InstallSnapshot: 8,
    SnapshotChunk: 9,
    SnapshotAck: 10,
    ReadIndexRequest: 11,
    ReadIndexResponse: 12,
    TimeoutNow: 13,
}
_ENTRY_KINDS = {k.value: k for k in EntryKind}


def _entry_out(e: Entry) -> list[Any]:
    return [e.index, e.term, int(e.kind), e.data]


def _message_out(m: Message) -> list[Any]:
    code = _KINDS[type(m)]
    if isinstance(m, VoteRequest):
        return [code, m.src, m.dst, m.term, m.last_index, m.last_term, m.pre, m.transfer]
    if isinstance(m, VoteResponse):
        return [code, m.src, m.dst, m.term, m.granted, m.pre]
    if isinstance(m, AppendEntries):
        ents = [_entry_out(e) for e in m.entries]
        return [code, m.src, m.dst, m.term, m.prev_index, m.prev_term, ents, m.commit]
    if isinstance(m, AppendResponse):
        return [
            code, m.src, m.dst, m.term, m.success, m.index, m.conflict_term, m.conflict_index,
            m.lost,
        ]  # fmt: skip
    if isinstance(m, Heartbeat):
        return [code, m.src, m.dst, m.term, m.commit, m.round]
    if isinstance(m, HeartbeatResponse):
        return [code, m.src, m.dst, m.term, m.round]
    if isinstance(m, ReadIndexRequest):
        return [code, m.src, m.dst, m.term, m.ctx]
    if isinstance(m, ReadIndexResponse):
        return [code, m.src, m.dst, m.term, m.ctx, m.index]
    if isinstance(m, InstallSnapshot):
        meta = m.meta
        return [code, m.src, m.dst, m.term, meta.index, meta.term, list(meta.voters),
                list(meta.learners), list(meta.outgoing)]  # fmt: skip
    if isinstance(m, SnapshotChunk):
        meta = m.meta
        return [
            code, m.src, m.dst, m.term, meta.index, meta.term, list(meta.voters), m.transfer,
            m.offset, m.total, m.data, list(meta.learners), list(meta.outgoing),
        ]  # fmt: skip
    if isinstance(m, SnapshotAck):
        return [code, m.src, m.dst, m.term, m.transfer, m.received, m.status]
    if isinstance(m, TimeoutNow):
        return [code, m.src, m.dst, m.term]
    return [code, m.src, m.dst, m.term, list(m.data)]


def encode_frame(body: Any) -> bytes:
    payload: bytes = msgpack.packb(body, use_bin_type=True)
    return HEADER.pack(len(payload) + 1, VERSION) + payload


def encode_messages(msgs: list[Message]) -> bytes:
    """One frame carrying every message in ``msgs``."""
    return encode_frame([_message_out(m) for m in msgs])


def _weight(m: Message) -> int:
    """An upper estimate of a message's encoded size in bytes."""
    if isinstance(m, AppendEntries):
        return 64 + sum(len(e.data) + 32 for e in m.entries)
    if isinstance(m, Propose):
        return 64 + sum(len(d) + 8 for d in m.data)
    if isinstance(m, SnapshotChunk):
        return 96 + 9 * len(m.meta.voters) + len(m.data)
    return 64


def encode_batch(msgs: list[Message], frame_budget: int = DEFAULT_MAX_FRAME // 2) -> bytes:
    """Frames for ``msgs``, as few as possible, each within ``frame_budget``.

    Everything queued for a peer leaves in one write, but no frame may grow
    past what the receiver accepts (``DEFAULT_MAX_FRAME``): a backlog that
    built up while a peer was away is cut into several frames. A single
    message is never split (the service bounds command sizes well below it).
    """
    out: list[bytes] = []
    start, size = 0, 0
    for k, m in enumerate(msgs):
        w = _weight(m)
        if size and size + w > frame_budget:
            out.append(encode_messages(msgs[start:k]))
            start, size = k, 0
        size += w
    if start < len(msgs):
        out.append(encode_messages(msgs[start:]))
    return b"".join(out)


def encode_hello(hello: Hello) -> bytes:
    return encode_frame(["hello", hello.cluster, hello.node])


# -- decoding ---------------------------------------------------------------


def _int(v: Any, what: str, least: int = 0) -> int:
    if type(v) is not int or v < least:
        shown = v if type(v) is int else type(v).__name__
        raise DecodeError(f"{what}: expected an integer >= {least}, got {shown}")
    return v


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise DecodeError(f"{what}: expected a boolean, got {type(v).__name__}")
    return v


def _bytes(v: Any, what: str) -> bytes:
    if type(v) is not bytes:
        raise DecodeError(f"{what}: expected bytes, got {type(v).__name__}")
    return v


def _list(v: Any, what: str, n: int | None = None) -> list[Any]:
    if type(v) is not list or (n is not None and len(v) != n):
        shape = f"an array of {n}" if n is not None else "an array"
        got = f"{len(v)} items" if type(v) is list else type(v).__name__
        raise DecodeError(f"{what}: expected {shape}, got {got}")
    return v


def _entry_in(v: Any) -> Entry:
    index, term, kind, data = _list(v, "entry", 4)
    k = _ENTRY_KINDS.get(_int(kind, "entry kind"))
    if k is None:
        raise DecodeError(f"entry kind {kind} is unknown")
    index, term = _int(index, "entry index", 1), _int(term, "entry term", 1)
    return Entry(index, term, k, _bytes(data, "data"))


def _message_in(v: Any) -> Message:
    fields = _list(v, "message")
    if not fields:
        raise DecodeError("message: empty array")
    code = fields[0]
    shapes = {1: (7, 8), 2: (6,), 3: (8,), 4: (9,), 5: (6,), 6: (5,), 7: (5,), 8: (7, 9),
              9: (11, 13), 10: (7,), 11: (5,), 12: (6,), 13: (4,)}  # fmt: skip
    if type(code) is not int or code not in shapes or len(fields) not in shapes[code]:
        shown = code if type(code) is int else type(code).__name__
        raise DecodeError(f"message kind {shown} with {len(fields)} fields is unknown")
    src, dst, term = (_int(x, "src/dst/term") for x in fields[1:4])
    rest = fields[4:]
    if code == 1:
        # A peer from before leadership transfer sends no ``transfer`` field.
        transfer = _bool(rest[3], "transfer") if len(rest) > 3 else False
        return VoteRequest(
            src, dst, term, _int(rest[0], "last_index"), _int(rest[1], "last_term"),
            _bool(rest[2], "pre"), transfer,
        )  # fmt: skip
    if code == 2:
        return VoteResponse(src, dst, term, _bool(rest[0], "granted"), _bool(rest[1], "pre"))
    if code == 3:
        ents = tuple(_entry_in(e) for e in _list(rest[2], "entries"))
        return AppendEntries(
            src, dst, term, _int(rest[0], "prev_index"), _int(rest[1], "prev_term"), ents,
            _int(rest[3], "commit"),
        )  # fmt: skip
    if code == 4:
        return AppendResponse(
            src, dst, term, _bool(rest[0], "success"), _int(rest[1], "index"),
            _int(rest[2], "conflict_term"), _int(rest[3], "conflict_index"),
            _bool(rest[4], "lost"),
        )  # fmt: skip
    if code == 5:
        return Heartbeat(src, dst, term, _int(rest[0], "commit"), _int(rest[1], "round"))
    if code == 6:
        return HeartbeatResponse(src, dst, term, _int(rest[0], "round"))
    if code == 11:
        return ReadIndexRequest(src, dst, term, _bytes(rest[0], "read ctx"))
    if code == 12:
        return ReadIndexResponse(
            src, dst, term, _bytes(rest[0], "read ctx"), _int(rest[1], "read index")
        )
    if code in (8, 9):
        voters = tuple(_int(v, "voter", 1) for v in _list(rest[2], "voters"))
        # Learners and outgoing voters come last; a peer from before
        # membership changes sends neither.
        more = rest[3:5] if code == 8 else rest[7:9]
        learners, outgoing = (
            tuple(tuple(_int(v, "member", 1) for v in _list(x, "members")) for x in more)
            if more else ((), ())
        )  # fmt: skip
        meta = SnapshotMeta(_int(rest[0], "snapshot index", 1), _int(rest[1], "snapshot term", 1),
                            voters, learners, outgoing)  # fmt: skip
        if code == 8:
            return InstallSnapshot(src, dst, term, meta)
        return SnapshotChunk(
            src, dst, term, meta, _int(rest[3], "transfer"), _int(rest[4], "offset"),
            _int(rest[5], "total"), _bytes(rest[6], "chunk"),
        )  # fmt: skip
    if code == 10:
        return SnapshotAck(
            src, dst, term, _int(rest[0], "transfer"), _int(rest[1], "received"),
            _int(rest[2], "status"),
        )  # fmt: skip
    if code == 13:
        return TimeoutNow(src, dst, term)
    data = tuple(_bytes(d, "proposal") for d in _list(rest[0], "proposals"))
    return Propose(src, dst, term, data)


def decode_body(payload: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> Hello | list[Message]:
    """Decode one frame body (after the header). Raises DecodeError."""
    try:
        body = msgpack.unpackb(
            payload,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=max_frame,
            max_str_len=1 << 16,
            max_array_len=max_frame,
            max_map_len=0,
            max_ext_len=0,
        )
    except DecodeError:
        raise
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise DecodeError(f"not msgpack: {type(e).__name__}: {e}") from None
    items = _list(body, "frame body")
    if items and items[0] == "hello":
        _, cluster, node = _list(items, "hello", 3)
        if type(cluster) is not str:
            raise DecodeError("hello: cluster must be a string")
        return Hello(cluster, _int(node, "hello node"))
    return [_message_in(m) for m in items]


class FrameReader:
    """Splits a byte stream into frame bodies, enforcing the size cap.

    Feed it whatever arrived with :meth:`feed`; it returns the complete frame
    bodies and keeps the partial tail. Raises DecodeError on a bad version or
    an oversized length, before buffering the oversized frame.
    """

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while len(buf) - pos >= HEADER.size:
            length, version = HEADER.unpack_from(buf, pos)
            if length < 1 or length > self.max_frame:
                raise DecodeError(f"frame length {length} outside 1..{self.max_frame}")
            if version != VERSION:
                raise DecodeError(f"frame version {version} is not {VERSION}")
            end = pos + 4 + length
            if len(buf) < end:
                break
            out.append(bytes(buf[pos + HEADER.size : end]))
            pos = end
        del buf[:pos]
        return out
