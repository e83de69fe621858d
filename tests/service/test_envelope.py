"""The log entry envelope (drafty.driver.envelope)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drafty.driver.envelope import ENVELOPE_VERSION, Envelope, EnvelopeError, pack, unpack

U64 = st.integers(0, (1 << 64) - 1)
envelopes = st.builds(Envelope, U64, U64, U64, U64, U64, st.binary(max_size=100))


@given(envelopes)
def test_round_trip(e: Envelope) -> None:
    assert unpack(pack(e)) == e


def test_layout() -> None:
    e = Envelope(1, 2, 3, 4, 5, b"cmd")
    assert msgpack.unpackb(pack(e)) == [ENVELOPE_VERSION, 1, 2, 3, 4, 5, b"cmd"]


GOOD: list[Any] = [1, 1, 2, 3, 4, 5, b"cmd"]


@pytest.mark.parametrize(
    "v",
    [
        [2, 1, 2, 3, 4, 5, b"cmd"],  # version
        [0, 1, 2, 3, 4, 5, b"cmd"],
        ["1", 1, 2, 3, 4, 5, b"cmd"],
        GOOD[:6],
        [*GOOD, b"extra"],
        [1, -1, 2, 3, 4, 5, b"cmd"],
        [1, 1, 2, 3, -4, 5, b"cmd"],
        [1, 1, 2, 3, 4, True, b"cmd"],
        [1, 1, 2.0, 3, 4, 5, b"cmd"],
        [1, 1, 2, None, 4, 5, b"cmd"],
        [1, 1, 2, 3, 4, 5, "cmd"],
        [1, 1, 2, 3, 4, 5, None],
        [1, 1, 2, 3, 4, 5, [b"cmd"]],
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


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", pack(Envelope(1, 2, 3, 4, 5, b"x"))[:-1], pack(Envelope(1, 2, 3, 4, 5, b"x"))
     + b"\x00", msgpack.packb([msgpack.ExtType(3, b"zz")]), b"\x97\xa1\xff" + b"\x00" * 6],
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
        v[data.draw(st.integers(0, 6))] = data.draw(values)
    try:
        e = unpack(msgpack.packb(v, use_bin_type=True))
    except EnvelopeError:
        return
    for x in (e.origin, e.request, e.client, e.seq, e.time_ms):
        assert type(x) is int and x >= 0
    assert type(e.command) is bytes
