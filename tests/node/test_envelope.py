"""The log entry envelope (drafty.node.envelope)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drafty.node.envelope import ENVELOPE_VERSION, Envelope, EnvelopeError, Kind, pack, unpack

U64 = st.integers(0, (1 << 64) - 1)
envelopes = st.builds(
    Envelope, st.sampled_from(Kind), U64, U64, U64, U64, U64, U64, U64, st.binary(max_size=100)
)


@given(envelopes)
def test_round_trip(e: Envelope) -> None:
    assert unpack(pack(e)) == e


def test_layout() -> None:
    e = Envelope(Kind.OPEN_SESSION, 1, 2, 3, 4, 5, 6, 7, b"cmd")
    assert msgpack.unpackb(pack(e)) == [ENVELOPE_VERSION, 1, 1, 2, 3, 4, 5, 6, 7, b"cmd"]


GOOD: list[Any] = [2, 0, 1, 2, 3, 4, 5, 6, 7, b"cmd"]


@pytest.mark.parametrize(
    "v",
    [
        [1, 0, 1, 2, 3, 4, 5, 6, 7, b"cmd"],  # version
        [3, 0, 1, 2, 3, 4, 5, 6, 7, b"cmd"],
        ["2", 0, 1, 2, 3, 4, 5, 6, 7, b"cmd"],
        [2, 3, 1, 2, 3, 4, 5, 6, 7, b"cmd"],  # kind
        [2, "0", 1, 2, 3, 4, 5, 6, 7, b"cmd"],
        [2, True, 1, 2, 3, 4, 5, 6, 7, b"cmd"],
        GOOD[:9],
        [*GOOD, b"extra"],
        [2, 0, -1, 2, 3, 4, 5, 6, 7, b"cmd"],
        [2, 0, 1, 2, 3, 4, -5, 6, 7, b"cmd"],
        [2, 0, 1, 2, 3, 4, 5, True, 7, b"cmd"],
        [2, 0, 1, 2.0, 3, 4, 5, 6, 7, b"cmd"],
        [2, 0, 1, 2, None, 4, 5, 6, 7, b"cmd"],
        [2, 0, 1, 2, 3, 4, 5, 6, 7, "cmd"],
        [2, 0, 1, 2, 3, 4, 5, 6, 7, None],
        [2, 0, 1, 2, 3, 4, 5, 6, 7, [b"cmd"]],
        {"a": 1},
        b"bytes",
        5,
        None,
        [],
    ],
)
def test_bad_envelopes(v: Any) -> None:
    with pytest.raises(EnvelopeError):
        unpack(msgpack.packb(v, use_bin_type=True))


X = Envelope(Kind.COMMAND, 1, 2, 3, 4, 5, 6, 7, b"x")


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", pack(X)[:-1], pack(X) + b"\x00", msgpack.packb([msgpack.ExtType(3, b"zz")]),
     b"\x9a\xa1\xff" + b"\x00" * 9],
)  # fmt: skip
def test_bad_bytes(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        unpack(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_only_raise_envelope_error(data: bytes) -> None:
    try:
        e = unpack(data)
    except EnvelopeError:
        return
    assert type(e.command) is bytes


values = st.recursive(
    st.one_of(
        st.integers(-(1 << 63), (1 << 64) - 1), st.booleans(), st.none(), st.text(max_size=5),
        st.binary(max_size=5), st.floats(allow_nan=False),
    ),
    lambda inner: st.lists(inner, max_size=8),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=8), st.data())
def test_random_values_only_raise_envelope_error(v: list[Any], data: st.DataObject) -> None:
    if data.draw(st.booleans()):  # most often a near-miss of a good envelope
        v = [*GOOD]
        v[data.draw(st.integers(0, 9))] = data.draw(values)
    try:
        e = unpack(msgpack.packb(v, use_bin_type=True))
    except EnvelopeError:
        return
    for x in (e.origin, e.incarnation, e.request, e.term, e.client, e.seq, e.time_ms):
        assert type(x) is int and x >= 0
    assert type(e.command) is bytes
