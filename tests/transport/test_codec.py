"""The peer wire format (drafty.transport.codec): frames and strict decoding."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drafty.core import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    SnapshotMeta,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from drafty.transport.codec import (
    HEADER,
    VERSION,
    DecodeError,
    FrameReader,
    Hello,
    decode_body,
    encode_batch,
    encode_frame,
    encode_hello,
    encode_messages,
)

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
SMALL = st.integers(min_value=0, max_value=1 << 40)
POSITIVE = st.integers(min_value=1, max_value=1 << 40)

entries = st.builds(
    Entry,
    index=POSITIVE,
    term=POSITIVE,
    kind=st.sampled_from(list(EntryKind)),
    data=st.binary(max_size=64),
)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(VoteRequest, U64, U64, U64, U64, U64, st.booleans(), st.booleans()),
    st.builds(TimeoutNow, U64, U64, U64),
    st.builds(VoteResponse, U64, U64, U64, st.booleans(), st.booleans()),
    st.builds(
        AppendEntries,
        U64,
        U64,
        U64,
        U64,
        U64,
        st.lists(entries, max_size=5).map(tuple),
        U64,
    ),
    st.builds(AppendResponse, U64, U64, U64, st.booleans(), U64, U64, U64),
    st.builds(Heartbeat, U64, U64, U64, U64),
    st.builds(HeartbeatResponse, U64, U64, U64),
    st.builds(Propose, U64, U64, U64, st.lists(st.binary(max_size=32), max_size=4).map(tuple)),
    st.builds(
        InstallSnapshot,
        U64,
        U64,
        U64,
        st.builds(
            SnapshotMeta, POSITIVE, POSITIVE, st.lists(POSITIVE, min_size=1, max_size=5).map(tuple)
        ),
    ),
)


def body_of(frame: bytes) -> bytes:
    length, version = HEADER.unpack_from(frame)
    assert version == VERSION
    assert length == len(frame) - 4
    return frame[HEADER.size :]


# -- round trips --------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, max_size=6))
def test_messages_round_trip(msgs: list[Message]) -> None:
    frame = encode_messages(msgs)
    decoded = decode_body(body_of(frame))
    assert decoded == msgs
    assert isinstance(decoded, list)
    assert [type(m) for m in decoded] == [type(m) for m in msgs]


def test_every_message_kind_round_trips() -> None:
    ents = (Entry(1, 1, EntryKind.NOOP, b""), Entry(2, 1, EntryKind.NORMAL, b"\x00\xff"))
    msgs: list[Message] = [
        VoteRequest(1, 2, 3, 4, 5, True),
        VoteResponse(2, 1, 3, True, False),
        AppendEntries(1, 2, 3, 0, 0, ents, 2),
        AppendResponse(2, 1, 3, False, 7, 2, 5),
        Heartbeat(1, 2, 3, 9),
        HeartbeatResponse(2, 1, 3),
        Propose(2, 1, 3, (b"a", b"")),
        VoteRequest(1, 2, 3, 4, 5, False, True),
        TimeoutNow(1, 2, 3),
    ]
    decoded = decode_body(body_of(encode_messages(msgs)))
    assert decoded == msgs
    assert isinstance(decoded, list)
    ae = decoded[2]
    assert isinstance(ae, AppendEntries)
    assert type(ae.entries) is tuple
    assert ae.entries[0].kind is EntryKind.NOOP
    pr = decoded[6]
    assert isinstance(pr, Propose) and type(pr.data) is tuple


@given(st.text(max_size=100), U64)
def test_hello_round_trip(cluster: str, node: int) -> None:
    assert decode_body(body_of(encode_hello(Hello(cluster, node)))) == Hello(cluster, node)


def test_empty_message_list_is_not_hello() -> None:
    assert decode_body(body_of(encode_messages([]))) == []


# -- framing ------------------------------------------------------------------


def test_stream_split_at_every_offset_yields_same_frames() -> None:
    msgs: list[list[Message]] = [
        [Heartbeat(1, 2, 3, 4)],
        [],
        [AppendEntries(1, 2, 3, 0, 0, (Entry(1, 3, EntryKind.NORMAL, b"x" * 300),), 1)],
        [VoteRequest(1, 2, 3, 4, 5), Propose(1, 2, 3, (b"p",))],
    ]
    frames = [encode_hello(Hello("c", 1))] + [encode_messages(m) for m in msgs]
    stream = b"".join(frames)
    expected = [body_of(f) for f in frames]
    assert FrameReader().feed(stream) == expected
    for cut in range(len(stream) + 1):
        r = FrameReader()
        got = r.feed(stream[:cut]) + r.feed(stream[cut:])
        assert got == expected, cut
        assert len(r._buf) == 0


def test_byte_by_byte_feed() -> None:
    frames = [encode_messages([Heartbeat(1, 2, n, n)]) for n in range(5)]
    stream = b"".join(frames)
    r = FrameReader()
    got: list[bytes] = []
    for i in range(len(stream)):
        got += r.feed(stream[i : i + 1])
    assert got == [body_of(f) for f in frames]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(messages, max_size=3), max_size=4), st.data())
def test_random_splits(batches: list[list[Message]], data: st.DataObject) -> None:
    stream = b"".join(encode_messages(b) for b in batches)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    r = FrameReader()
    bodies: list[bytes] = []
    prev = 0
    for c in [*cuts, len(stream)]:
        bodies += r.feed(stream[prev:c])
        prev = c
    assert [decode_body(b) for b in bodies] == batches


def test_oversized_length_refused_before_payload() -> None:
    r = FrameReader(max_frame=1000)
    with pytest.raises(DecodeError):
        r.feed(HEADER.pack(1001, VERSION))  # only the header: nothing else arrived
    r = FrameReader()
    with pytest.raises(DecodeError):
        r.feed(struct.pack(">IB", 0xFFFFFFFF, VERSION) + b"x" * 10)


def test_exact_max_frame_accepted() -> None:
    body = msgpack.packb([b"x" * 20], use_bin_type=True)
    frame = HEADER.pack(len(body) + 1, VERSION) + body
    assert FrameReader(max_frame=len(body) + 1).feed(frame) == [body]
    with pytest.raises(DecodeError):
        FrameReader(max_frame=len(body)).feed(frame)


def test_zero_length_refused() -> None:
    with pytest.raises(DecodeError):
        FrameReader().feed(struct.pack(">IB", 0, VERSION))


@pytest.mark.parametrize("version", [0, 2, 255])
def test_wrong_version_refused_before_payload(version: int) -> None:
    r = FrameReader()
    with pytest.raises(DecodeError):
        r.feed(HEADER.pack(50, version))


def test_partial_header_waits() -> None:
    r = FrameReader()
    frame = encode_messages([HeartbeatResponse(1, 2, 3)])
    for i in range(HEADER.size):
        assert r.feed(frame[i : i + 1]) == []
    assert r.feed(frame[HEADER.size :]) == [body_of(frame)]


# -- strict decoding ----------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_decode_error(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_body(raw)


scalars = st.one_of(
    st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.sampled_from(["hello", 1, 3, 7]),
    st.floats(allow_nan=False),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=8), max_leaves=12)


@settings(max_examples=250, deadline=None)
@given(st.lists(values, max_size=5))
def test_random_msgpack_values_only_raise_decode_error(v: list[Any]) -> None:
    try:
        out = decode_body(msgpack.packb(v, use_bin_type=True))
    except DecodeError:
        return
    # Whatever is accepted is well typed.
    if isinstance(out, Hello):
        assert type(out.cluster) is str and type(out.node) is int
    else:
        for m in out:
            assert type(m.src) is int and type(m.dst) is int and type(m.term) is int


@settings(max_examples=150, deadline=None)
@given(st.lists(messages, min_size=1, max_size=3), st.data())
def test_mutated_valid_messages_only_raise_decode_error(
    msgs: list[Message], data: st.DataObject
) -> None:
    body = msgpack.unpackb(body_of(encode_messages(msgs)), raw=False)
    i = data.draw(st.integers(0, len(body) - 1))
    j = data.draw(st.integers(0, len(body[i]) - 1))
    body[i][j] = data.draw(values)
    with contextlib.suppress(DecodeError):
        decode_body(msgpack.packb(body, use_bin_type=True))


def _raw(msg: list[Any]) -> bytes:
    packed: bytes = msgpack.packb([msg], use_bin_type=True)
    return packed


GOOD_AE: list[Any] = [3, 1, 2, 3, 0, 0, [[1, 1, 0, b"x"]], 0]


def test_good_append_raw_decodes() -> None:
    assert decode_body(_raw(GOOD_AE)) == [
        AppendEntries(1, 2, 3, 0, 0, (Entry(1, 1, EntryKind.NORMAL, b"x"),), 0)
    ]


@pytest.mark.parametrize(
    "msg",
    [
        [5, True, 2, 3, 4],  # bool where int
        [5, 1, 2, 3, False],
        [5, 1, -2, 3, 4],  # negative
        [5, 1, 2, -3, 4],
        [5, 1, 2, 3, 4.0],  # float
        [5, 1, 2, 3, "4"],
        [5, 1, 2, 3],  # wrong arity
        [5, 1, 2, 3, 4, 5, 6],
        [6, 1, 2],
        [2, 1, 2, 3, 1, False],  # int where bool
        [2, 1, 2, 3, True, None],
        [1, 1, 2, 3, 4, 5, 0],
        [7, 1, 2, 3, ["str"]],  # str where bytes
        [7, 1, 2, 3, [1]],
        [7, 1, 2, 3, b"notalist"],
        [3, 1, 2, 3, 0, 0, [[1, 1, 0, "x"]], 0],  # entry data str
        [3, 1, 2, 3, 0, 0, [[1, 1, 9, b"x"]], 0],  # unknown entry kind
        [3, 1, 2, 3, 0, 0, [[1, 1, True, b"x"]], 0],
        [3, 1, 2, 3, 0, 0, [[-1, 1, 0, b"x"]], 0],
        [3, 1, 2, 3, 0, 0, [[1, 1, 0]], 0],  # entry arity
        [3, 1, 2, 3, 0, 0, [[1, 1, 0, b"x", 5]], 0],
        [3, 1, 2, 3, 0, 0, [b"entry"], 0],
        [3, 1, 2, 3, 0, 0, b"", 0],
        [4, 1, 2, 3, 1, 2, 3, 4, False],  # success not a bool
        [4, 1, 2, 3, True, 2, 3, 4, 1],  # lost not a bool
        [11, 1, 2, 3, "ctx"],  # read ctx not bytes
        [12, 1, 2, 3, b"c", -1],  # negative read index
        [8, 1, 2, 3],  # unknown kind
        [0],
        [True, 1, 2, 3, 4],
        ["5", 1, 2, 3, 4],
        [],
    ],
)
def test_wrong_field_types_rejected(msg: list[Any]) -> None:
    with pytest.raises(DecodeError):
        decode_body(_raw(msg))


@pytest.mark.parametrize(
    "body",
    [
        ["hello", b"bytes-cluster", 1],
        ["hello", "c", True],
        ["hello", "c", -1],
        ["hello", "c"],
        ["hello", "c", 1, 2],
        {"hello": 1},
        b"just bytes",
        5,
        None,
        [None],
        [b"\x05"],
    ],
)
def test_bad_bodies_rejected(body: Any) -> None:
    with pytest.raises(DecodeError):
        decode_body(msgpack.packb(body, use_bin_type=True))


def test_trailing_garbage_and_ext_rejected() -> None:
    good = body_of(encode_messages([Heartbeat(1, 2, 3, 4)]))
    with pytest.raises(DecodeError):
        decode_body(good + b"\x00")
    with pytest.raises(DecodeError):
        decode_body(msgpack.packb([msgpack.ExtType(1, b"x")]))
    with pytest.raises(DecodeError):
        decode_body(b"\x91" * 5000)  # deep nesting


def test_declared_huge_array_does_not_allocate() -> None:
    # array32 header announcing 2**32-1 elements, but the body has none
    with pytest.raises(DecodeError):
        decode_body(b"\xdd\xff\xff\xff\xff", max_frame=1000)
    with pytest.raises(DecodeError):
        decode_body(b"\xc6\x7f\xff\xff\xff", max_frame=1000)  # bin32


def test_encode_frame_header() -> None:
    frame = encode_frame([1, 2])
    assert frame[:5] == struct.pack(">IB", len(frame) - 4, 1)


@pytest.mark.parametrize("index, term", [(0, 1), (1, 0)])
def test_entry_index_and_term_start_at_one(index: int, term: int) -> None:
    """types.py: every entry in a log has index >= 1 and term >= 1."""
    frame = encode_messages([AppendEntries(1, 2, 3, 0, 0, (Entry(index, term),), 0)])
    with pytest.raises(DecodeError, match=r"entry (index|term)"):
        decode_body(body_of(frame))


def test_encode_batch_cuts_a_backlog_into_frames_the_receiver_accepts() -> None:
    """A backlog bigger than one frame may hold leaves as several frames, each
    under the receiver's cap, with every message in order."""
    ents = tuple(Entry(i, 1, EntryKind.NORMAL, b"x" * 1000) for i in range(1, 11))
    msgs: list[Message] = [AppendEntries(1, 2, 1, 0, 0, ents, 0) for _ in range(30)]
    budget = 25_000  # about two of these messages
    bodies = FrameReader(max_frame=budget).feed(encode_batch(msgs, frame_budget=budget))
    assert 10 <= len(bodies) <= 20
    assert all(len(b) <= budget for b in bodies)
    decoded = [m for b in bodies for m in decode_body(b)]  # type: ignore[union-attr]
    assert decoded == msgs


def test_encode_batch_keeps_small_batches_in_one_frame() -> None:
    msgs: list[Message] = [Heartbeat(1, 2, 3, k) for k in range(100)]
    bodies = FrameReader().feed(encode_batch(msgs))
    assert len(bodies) == 1
    assert decode_body(bodies[0]) == msgs


def test_a_vote_request_from_a_peer_without_transfer_decodes() -> None:
    """A peer from before leadership transfer sends seven fields, no ``transfer``."""
    old = msgpack.packb([[1, 1, 2, 3, 4, 5, False]], use_bin_type=True)
    assert decode_body(old) == [VoteRequest(1, 2, 3, 4, 5, False, False)]
    with pytest.raises(DecodeError):
        decode_body(msgpack.packb([[13, 1, 2, 3, 4]], use_bin_type=True))  # TimeoutNow + 1


def test_snapshot_metadata_carries_the_membership_and_old_shapes_still_decode() -> None:
    meta = SnapshotMeta(9, 3, (1, 2, 4), learners=(5,), outgoing=(1, 2, 3))
    msgs: list[Message] = [InstallSnapshot(1, 2, 3, meta)]
    assert decode_body(body_of(encode_messages(msgs))) == msgs
    old = msgpack.packb([[8, 1, 2, 3, 9, 3, [1, 2, 4]]], use_bin_type=True)
    assert decode_body(old) == [InstallSnapshot(1, 2, 3, SnapshotMeta(9, 3, (1, 2, 4)))]
    with pytest.raises(DecodeError):
        decode_body(msgpack.packb([[8, 1, 2, 3, 9, 3, [1], [0], []]], use_bin_type=True))
