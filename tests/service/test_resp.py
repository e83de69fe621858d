"""RESP request parsing and reply encoding (drafty.service.resp)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drafty.service.resp import OK, Error, ProtocolError, Reply, RequestParser, Simple, encode


def wire(*argv: bytes) -> bytes:
    out = [b"*%d\r\n" % len(argv)]
    for a in argv:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


COMMANDS: list[list[bytes]] = [
    [b"SET", b"key", b"value"],
    [b"GET", b"key"],
    [b"SET", b"bin", b"\r\n\x00$*\r\n"],
    [b"ECHO", b""],
    [b"MSET", b"a", b"1", b"b", b"2"],
]


def test_single_command() -> None:
    assert RequestParser().feed(wire(b"GET", b"k")) == [[b"GET", b"k"]]


def test_split_at_every_byte_boundary() -> None:
    stream = b"".join(wire(*c) for c in COMMANDS) + b"PING hello\r\n"
    expected = [*COMMANDS, [b"PING", b"hello"]]
    assert RequestParser().feed(stream) == expected
    for cut in range(len(stream) + 1):
        p = RequestParser()
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == expected, cut
        assert len(p._buf) == 0


def test_byte_at_a_time() -> None:
    stream = b"".join(wire(*c) for c in COMMANDS)
    p = RequestParser()
    got: list[list[bytes]] = []
    for i in range(len(stream)):
        got += p.feed(stream[i : i + 1])
    assert got == COMMANDS


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.binary(max_size=20), min_size=1, max_size=5), max_size=5),
    st.data(),
)
def test_random_commands_random_splits(cmds: list[list[bytes]], data: st.DataObject) -> None:
    stream = b"".join(wire(*c) for c in cmds)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    p = RequestParser()
    got: list[list[bytes]] = []
    prev = 0
    for c in [*cuts, len(stream)]:
        got += p.feed(stream[prev:c])
        prev = c
    assert got == cmds


def test_pipelined_in_order() -> None:
    cmds = [[b"INCR", b"k%d" % i] for i in range(100)]
    assert RequestParser().feed(b"".join(wire(*c) for c in cmds)) == cmds


def test_inline_commands() -> None:
    p = RequestParser()
    assert p.feed(b"PING\r\n") == [[b"PING"]]
    assert p.feed(b"SET  a   b\r\nGET a\r\n") == [[b"SET", b"a", b"b"], [b"GET", b"a"]]
    assert p.feed(b"\r\n   \r\n") == []  # empty lines are ignored
    assert p.feed(b"GET") == []
    assert p.feed(b" x\r\n") == [[b"GET", b"x"]]
    # inline and multibulk mixed in one pipeline
    assert p.feed(b"PING\r\n" + wire(b"GET", b"y")) == [[b"PING"], [b"GET", b"y"]]


def test_empty_and_null_multibulk_ignored() -> None:
    p = RequestParser()
    assert p.feed(b"*0\r\n*-1\r\n" + wire(b"PING")) == [[b"PING"]]


def test_inline_line_at_limit_accepted_over_limit_refused() -> None:
    p = RequestParser(max_inline=10)
    assert p.feed(b"A" * 10 + b"\r\n") == [[b"A" * 10]]
    p = RequestParser(max_inline=10)
    assert p.feed(b"A" * 10 + b"\r") == []  # might still end in time
    p = RequestParser(max_inline=10)
    with pytest.raises(ProtocolError):
        p.feed(b"A" * 12)
    p = RequestParser(max_inline=10)
    with pytest.raises(ProtocolError):
        p.feed(b"A" * 11 + b"\r\n")


def test_overlong_inline_refused_even_in_small_pieces() -> None:
    p = RequestParser(max_inline=100)
    with pytest.raises(ProtocolError):
        for _ in range(100):
            p.feed(b"x" * 10)
    assert len(p._buf) < 200


@pytest.mark.parametrize(
    "data",
    [
        wire(b"SET", b"k", b"x" * 11),  # bulk over max_bulk
        b"*1\r\n$-1\r\n",  # negative bulk length
        b"*1\r\n$-5\r\nhello\r\n",
        b"*11\r\n",  # more args than max_args
        b"*abc\r\n",  # non-numeric lengths
        b"*1\r\n$abc\r\nx\r\n",
        b"*1\r\n$\r\n",
        b"*\r\n",
        b"*1\r\n$1.5\r\nx\r\n",
        b"*1\r\n$3\r\nabcXY",  # missing CRLF after the bulk
        b"*1\r\n$3\r\nabc\n\n",
        b"*1\r\n$3\r\nabcd\r\n",
        b"*2\r\n$1\r\na\r\n:1\r\n",  # not a bulk string
        b"*1\r\n+GET\r\n",
        b"*" + b"9" * 40 + b"\r\n",  # length line too long
        b"*1\r\n$" + b"1" * 40,
    ],
)
def test_limits_and_garbage_raise_protocol_error(data: bytes) -> None:
    p = RequestParser(max_bulk=10, max_args=10)
    with pytest.raises(ProtocolError):
        p.feed(data)


def test_limits_are_inclusive() -> None:
    p = RequestParser(max_bulk=10, max_args=3)
    assert p.feed(wire(b"SET", b"k", b"x" * 10)) == [[b"SET", b"k", b"x" * 10]]


def test_giant_bulk_header_refused_without_buffering() -> None:
    p = RequestParser()  # default limits
    with pytest.raises(ProtocolError):
        p.feed(b"*2\r\n$3\r\nSET\r\n$1073741824\r\n")
    p = RequestParser()
    with pytest.raises(ProtocolError):
        p.feed(b"*2\r\n$1073741824\r\n" + b"x" * 1000)
    assert len(p._buf) < 2000
    p = RequestParser()
    with pytest.raises(ProtocolError):
        p.feed(b"*4294967296\r\n")
    assert len(p._buf) < 100


def test_incomplete_bulk_keeps_only_what_arrived() -> None:
    p = RequestParser()
    assert p.feed(b"*1\r\n$1000000\r\n" + b"x" * 10) == []
    assert len(p._buf) < 100


@pytest.mark.parametrize(("length", "n"), [(b"1_0", 10), (b" 3", 3), (b"+3", 3), (b"3 ", 3)])
def test_lenient_lengths_refused(length: bytes, n: int) -> None:
    p = RequestParser()
    with pytest.raises(ProtocolError):
        p.feed(b"*1\r\n$" + length + b"\r\n" + b"x" * n + b"\r\n")


# -- encoding -----------------------------------------------------------------

CASES: list[tuple[Reply, bytes, bytes]] = [
    (None, b"$-1\r\n", b"_\r\n"),
    (0, b":0\r\n", b":0\r\n"),
    (-42, b":-42\r\n", b":-42\r\n"),
    (1 << 63, b":9223372036854775808\r\n", b":9223372036854775808\r\n"),
    (True, b":1\r\n", b"#t\r\n"),
    (False, b":0\r\n", b"#f\r\n"),
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
    ("é", b"$2\r\n\xc3\xa9\r\n", b"$2\r\n\xc3\xa9\r\n"),
    (OK, b"+OK\r\n", b"+OK\r\n"),
    (Simple("a\r\nb"), b"+a  b\r\n", b"+a  b\r\n"),
    (Error("ERR bad\nthing"), b"-ERR bad thing\r\n", b"-ERR bad thing\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    (
        [1, b"x", None, [True]],
        b"*4\r\n:1\r\n$1\r\nx\r\n$-1\r\n*1\r\n:1\r\n",
        b"*4\r\n:1\r\n$1\r\nx\r\n_\r\n*1\r\n#t\r\n",
    ),
    ((b"a", 2), b"*2\r\n$1\r\na\r\n:2\r\n", b"*2\r\n$1\r\na\r\n:2\r\n"),
    (
        {"k": 1, "m": [b"v"]},
        b"*4\r\n$1\r\nk\r\n:1\r\n$1\r\nm\r\n*1\r\n$1\r\nv\r\n",
        b"%2\r\n$1\r\nk\r\n:1\r\n$1\r\nm\r\n*1\r\n$1\r\nv\r\n",
    ),
    ({}, b"*0\r\n", b"%0\r\n"),
]


@pytest.mark.parametrize(("value", "resp2", "resp3"), CASES)
def test_encode_exact_bytes(value: Reply, resp2: bytes, resp3: bytes) -> None:
    assert encode(value) == resp2
    assert encode(value, resp3=False) == resp2
    assert encode(value, resp3=True) == resp3


def test_partial_command_is_not_reparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    import drafty.service.resp as resp

    calls = 0
    real = resp._number

    def counting(raw: bytes, what: str) -> int:
        nonlocal calls
        calls += 1
        return real(raw, what)

    monkeypatch.setattr(resp, "_number", counting)
    n = 500
    p = RequestParser()
    assert p.feed(b"*%d\r\n" % n) == []
    for i in range(n - 1):
        assert p.feed(b"$1\r\nx\r\n") == [], i
    assert p.feed(b"$1\r\nx\r\n") == [[b"x"] * n]
    assert calls <= 2 * (n + 1)  # one length line per argument (and the count), not n^2/2


def test_default_limits_keep_every_command_replicable() -> None:
    """Any command the parser accepts must fit in one peer frame once logged."""
    from drafty.service.resp import DEFAULT_MAX_BULK, DEFAULT_MAX_REQUEST
    from drafty.transport.codec import DEFAULT_MAX_FRAME

    assert DEFAULT_MAX_BULK <= DEFAULT_MAX_REQUEST < DEFAULT_MAX_FRAME - (1 << 20)
    p = RequestParser()
    with pytest.raises(ProtocolError):
        p.feed(b"*2\r\n$3\r\nSET\r\n$%d\r\n" % (DEFAULT_MAX_BULK + 1))
    q = RequestParser()
    head = b"*4\r\n$4\r\nMSET\r\n"
    with pytest.raises(ProtocolError):
        q.feed(head + b"$%d\r\n" % DEFAULT_MAX_BULK + b"k" * DEFAULT_MAX_BULK + b"\r\n"
               + b"$%d\r\n" % DEFAULT_MAX_BULK)  # fmt: skip
