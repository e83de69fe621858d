"""The Redis protocol (RESP2 and RESP3): request parsing and reply encoding.

Theory of operation
-------------------
Clients send commands as arrays of bulk strings (``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``)
or, from a terminal, as inline text (``GET k\\r\\n``). :class:`RequestParser`
is incremental: feed it whatever arrived, and it returns every complete
command (a list of byte strings) in order, so pipelined requests are answered
in order. It enforces hard limits before allocating anything: a bulk length
above ``max_bulk``, more than ``max_args`` arguments, more than
``max_request`` bytes in one command, or an inline line longer than
``max_inline`` raises :class:`ProtocolError`, after which the connection
must be answered with the error and closed (the stream can no longer be
trusted to be in sync).

Replies are plain Python values turned into bytes by :func:`encode`, for the
protocol version the connection negotiated with HELLO:

- ``None``: null (``$-1`` in RESP2, ``_`` in RESP3);
- ``int`` / ``bool``: integer (RESP3 sends bools as ``#t``/``#f``);
- ``bytes`` / ``str``: bulk string;
- :class:`Simple`: simple string (``+OK``); :class:`Error`: error (``-ERR ...``);
- ``list`` / ``tuple``: array; ``dict``: map (RESP3) or flat array (RESP2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, TypeAlias

CRLF: Final = b"\r\n"
DEFAULT_MAX_BULK: Final = 32 << 20
"""Largest argument (32 MiB): with ``DEFAULT_MAX_REQUEST`` it keeps every log
entry well inside the peer transport's 64 MiB frame, so any accepted command
can be replicated."""
DEFAULT_MAX_ARGS: Final = 1 << 20
DEFAULT_MAX_INLINE: Final = 64 << 10
DEFAULT_MAX_REQUEST: Final = 48 << 20
"""Total bytes of one command's arguments; more is refused."""


class ProtocolError(Exception):
    """The client broke the protocol; reply with the message and close."""


@dataclass(frozen=True, slots=True)
class Simple:
    """A RESP simple string, such as OK or PONG."""

    text: str


@dataclass(frozen=True, slots=True)
class Error:
    """A RESP error reply. ``text`` starts with its code: ``ERR``, ``TRYAGAIN``..."""

    text: str


Reply: TypeAlias = (
    int | bool | bytes | str | Simple | Error | list["Reply"] | tuple["Reply", ...]
    | dict[str, "Reply"] | None
)  # fmt: skip

OK: Final = Simple("OK")


class RequestParser:
    """Incremental parser of client commands (see the module docstring).

    Parsing state survives between :meth:`feed` calls (how many arguments are
    still expected, which are done, how long the next bulk is), so every byte
    is examined once however the command is split across reads.
    """

    __slots__ = (
        "_args", "_buf", "_bulk", "_left", "_pos", "_size", "max_args", "max_bulk",
        "max_inline", "max_request",
    )  # fmt: skip

    def __init__(
        self,
        max_bulk: int = DEFAULT_MAX_BULK,
        max_args: int = DEFAULT_MAX_ARGS,
        max_inline: int = DEFAULT_MAX_INLINE,
        max_request: int = DEFAULT_MAX_REQUEST,
    ) -> None:
        self.max_bulk = max_bulk
        self.max_args = max_args
        self.max_inline = max_inline
        self.max_request = max_request
        self._buf = bytearray()
        self._pos = 0
        self._args: list[bytes] | None = None
        """Arguments of the multibulk command in progress (None: between commands)."""
        self._left = 0
        """Arguments still expected by the command in progress."""
        self._bulk = -1
        """Length of the bulk string being read, -1 while expecting its header."""
        self._size = 0
        """Bytes of arguments in the command in progress (capped by max_request)."""

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add received bytes; return every complete command, in order."""
        self._buf += data
        out: list[list[bytes]] = []
        try:
            while True:
                cmd = self._one()
                if cmd is None:
                    break
                if cmd:  # an empty inline line is ignored, as Redis does
                    out.append(cmd)
        finally:
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
        return out

    def _line(self, limit: int, what: str) -> bytes | None:
        buf, start = self._buf, self._pos
        end = buf.find(CRLF, start, start + limit + 2)
        if end < 0:
            if len(buf) - start > limit + 1:
                raise ProtocolError(f"Protocol error: too big {what}")
            return None
        self._pos = end + 2
        return bytes(buf[start:end])

    def _one(self) -> list[bytes] | None:
        buf = self._buf
        if self._args is None:
            if self._pos >= len(buf):
                return None
            if buf[self._pos] != 0x2A:  # not '*': an inline command
                line = self._line(self.max_inline, "inline request")
                return None if line is None else line.split()
            save = self._pos
            self._pos += 1
            header = self._line(32, "multibulk length")
            if header is None:
                self._pos = save
                return None
            count = _number(header, "multibulk length")
            if count > self.max_args:
                raise ProtocolError("Protocol error: invalid multibulk length")
            self._args, self._left, self._bulk, self._size = [], max(count, 0), -1, 0
        args = self._args
        while self._left:
            if self._bulk < 0:
                if self._pos >= len(buf):
                    return None
                if buf[self._pos] != 0x24:  # '$'
                    got = chr(buf[self._pos])
                    raise ProtocolError(f"Protocol error: expected '$', got '{got}'")
                save = self._pos
                self._pos += 1
                header = self._line(32, "bulk length")
                if header is None:
                    self._pos = save
                    return None
                size = _number(header, "bulk length")
                self._size += max(size, 0)
                if size < 0 or size > self.max_bulk or self._size > self.max_request:
                    raise ProtocolError("Protocol error: invalid bulk length")
                self._bulk = size
            end = self._pos + self._bulk
            if len(buf) < end + 2:
                return None
            if buf[end : end + 2] != CRLF:
                raise ProtocolError("Protocol error: bulk string not terminated by CRLF")
            args.append(bytes(buf[self._pos : end]))
            self._pos = end + 2
            self._bulk = -1
            self._left -= 1
        self._args = None
        return args


_NUMBER = re.compile(rb"-?[0-9]{1,19}")


def _number(raw: bytes, what: str) -> int:
    if _NUMBER.fullmatch(raw) is None:
        raise ProtocolError(f"Protocol error: invalid {what}")
    return int(raw)


def encode(value: Reply, resp3: bool = False) -> bytes:
    """The wire form of one reply."""
    out: list[bytes] = []
    _encode(value, resp3, out)
    return b"".join(out)


def _encode(v: Reply, resp3: bool, out: list[bytes]) -> None:
    if v is None:
        out.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif isinstance(v, bool):
        if resp3:
            out.append(b"#t\r\n" if v else b"#f\r\n")
        else:
            out.append(b":1\r\n" if v else b":0\r\n")
    elif isinstance(v, int):
        out.append(b":%d\r\n" % v)
    elif isinstance(v, bytes):
        out.append(b"$%d\r\n%s\r\n" % (len(v), v))
    elif isinstance(v, str):
        b = v.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    elif isinstance(v, Simple):
        out.append(b"+" + _one_line(v.text) + CRLF)
    elif isinstance(v, Error):
        out.append(b"-" + _one_line(v.text) + CRLF)
    elif isinstance(v, dict):
        if resp3:
            out.append(b"%%%d\r\n" % len(v))
        else:
            out.append(b"*%d\r\n" % (2 * len(v)))
        for k, item in v.items():
            _encode(k, resp3, out)
            _encode(item, resp3, out)
    else:
        out.append(b"*%d\r\n" % len(v))
        for item in v:
            _encode(item, resp3, out)


def _one_line(text: str) -> bytes:
    return text.replace("\r", " ").replace("\n", " ").encode()
