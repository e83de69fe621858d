"""A minimal asyncio RESP2 client for the torture's clients and probes.

Theory of operation
-------------------
The torture needs to see every reply exactly as the server sent it (an error
reply's code decides how an operation is recorded), to put a deadline on each
command, and to open sockets inside the hub's network namespace. So it speaks
RESP2 itself instead of using a client library that retries or follows
redirects behind its back.

:class:`Conn` sends one command at a time and reads its reply: ``bytes`` for a
bulk string, ``str`` for a simple string, ``int``, ``None``, a list, or a
:class:`ReplyError` (returned, not raised: an error reply is an answer). A
command that takes longer than its timeout raises :class:`TimeoutError` and a
broken connection raises :class:`ConnectionError`; after either, the
connection is closed and must not be used again (a late reply would be read
as the answer to the next command). Deadlines use ``asyncio.timeout``, not
``wait_for``, whose 3.11 version can swallow a cancellation (a client task
must end when the run is interrupted).

Sockets come from a :data:`SocketFactory`, so the caller decides which network
namespace they are created in (see :mod:`drafty.torture.netns`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeAlias

from ..client import ReplyError, read_reply

__all__ = ["Conn", "Reply", "ReplyError", "call_once", "encode_command", "plain_socket"]

Address = tuple[str, int]
SocketFactory = Callable[[], socket.socket]


Reply: TypeAlias = "bytes | str | int | list[Reply] | ReplyError | None"


def plain_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def encode_command(args: tuple[str | bytes | int, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        raw = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Conn:
    """One RESP connection; not safe for concurrent commands."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.closed = False

    @classmethod
    async def open(
        cls, addr: Address, timeout: float, factory: SocketFactory = plain_socket
    ) -> Conn:
        """Connect to ``addr`` within ``timeout`` seconds (TimeoutError, OSError)."""
        sock = factory()
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, addr)
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    async def call(self, *args: str | bytes | int, timeout: float) -> Reply:
        """Send one command and return its reply (TimeoutError, ConnectionError)."""
        if self.closed:
            raise ConnectionError("connection already closed")
        try:
            self._writer.write(encode_command(args))
            async with asyncio.timeout(timeout):
                return await self._roundtrip()
        except TimeoutError:
            self.close()
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            self.close()
            raise ConnectionError(f"connection lost: {e!r}") from None
        except BaseException:
            self.close()
            raise

    async def _roundtrip(self) -> Reply:
        await self._writer.drain()
        reply: Reply = await read_reply(self._reader)
        return reply

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()


async def call_once(
    addr: Address,
    *args: str | bytes | int,
    timeout: float,
    factory: SocketFactory = plain_socket,
) -> Reply:
    """Open a connection, run one command, close (TimeoutError, OSError, ConnectionError)."""
    async with asyncio.timeout(timeout):
        conn = await Conn.open(addr, timeout, factory)
        try:
            return await conn.call(*args, timeout=timeout)
        finally:
            conn.close()
