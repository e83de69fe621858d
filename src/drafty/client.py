"""The native Python client: exactly-once writes through leader changes.

Theory of operation
-------------------
:class:`AsyncClient` speaks RESP2 to any node of a cluster. Its retry rules
live in :mod:`drafty.service.calls` (no sockets there, so the simulator runs
them too): writes go through a session (``SESSION OPEN`` once, then
``SEQ session seq command...``) and a lost or uncertain answer is retried
with the same pair, to the same or another node, so the cluster applies it
once; reads are retried freely; leader hints in ``-TRYAGAIN`` are followed.
When ``deadline`` seconds pass it raises:

- :class:`~drafty.driver.Refused` if no attempt can have taken effect;
- :class:`~drafty.driver.OutcomeUnknown` if one might have (a write was sent
  and its answer never came, or came back ``-UNCERTAIN``, or its session
  expired after such an attempt).

A ``-ERR`` reply (bad arguments, wrong type) raises :class:`CommandError`:
the command ran (or was refused) and retrying would give the same answer.

One client runs one command at a time (each write has one sequence number
outstanding, which is what sessions require). :class:`Client` is a blocking
wrapper with its own event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .service.calls import Call, ClientState, CommandError, Done, Fail, Pause, Send
from .service.config import parse_address

Value = Any

__all__ = ["AsyncClient", "Client", "CommandError", "ReplyError", "read_reply"]


@dataclass(frozen=True)
class ReplyError:
    """An error reply, returned (not raised: it is an answer). ``text`` starts
    with its code (``TRYAGAIN``, ``UNCERTAIN``, ``ERR``...)."""

    text: str

    @property
    def code(self) -> str:
        return self.text.split(" ", 1)[0]


_ReplyError = ReplyError  # the name the benchmarks import


async def read_reply(reader: asyncio.StreamReader) -> Value:
    """One RESP2 reply: bytes, str (simple string), int, None, a list, or a
    :class:`ReplyError`. Raises ``ValueError`` on a reply type RESP2 lacks."""
    line = await reader.readuntil(b"\r\n")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode(errors="replace")
    if kind == b"-":
        return ReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        n = int(body)
        if n < 0:
            return None
        data = await reader.readexactly(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(body)
        return None if n < 0 else [await read_reply(reader) for _ in range(n)]
    raise ValueError(f"unexpected RESP reply type {kind!r}")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def call(self, argv: Sequence[bytes]) -> Value:
        out = [b"*%d\r\n" % len(argv)]
        for a in argv:
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.writer.write(b"".join(out))
        await self.writer.drain()
        try:
            return await read_reply(self.reader)
        except ValueError as e:
            raise ConnectionError(str(e)) from None

    def close(self) -> None:
        self.writer.close()


class AsyncClient:
    """An exactly-once client for a drafty cluster (see the module docstring)."""

    def __init__(
        self,
        servers: Sequence[str | tuple[str, int]],
        *,
        timeout: float = 2.0,
        deadline: float = 30.0,
    ) -> None:
        addresses = [
            s if isinstance(s, tuple) else parse_address(s, "server address") for s in servers
        ]
        self.state = ClientState(addresses)
        self.timeout = timeout
        self.deadline = deadline
        self._conn: _Connection | None = None
        self._conn_target: tuple[str, int] | None = None

    @property
    def session(self) -> int:
        """The exactly-once session's id (0 until the first write opens one)."""
        return self.state.session

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def execute(self, *args: bytes | str | int) -> Value:
        """Run one command; writes are exactly-once. See the module docstring."""
        argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        loop = asyncio.get_running_loop()

        def ms() -> int:
            return int(loop.time() * 1000)

        call = Call(self.state, argv, ms(), int(self.deadline * 1000))
        while True:
            step = call.next(ms())
            if isinstance(step, Done):
                return step.value
            if isinstance(step, Fail):
                raise step.error
            if isinstance(step, Pause):
                await asyncio.sleep(step.ms / 1000)
                continue
            await self._attempt(call, step)

    async def _attempt(self, call: Call, step: Send) -> None:
        host, port = step.target
        try:
            conn = await self._connect(step.target)
        except (OSError, TimeoutError) as e:
            call.unanswered(f"cannot connect to {host}:{port}: {e}", sent=False)
            return
        try:
            reply = await asyncio.wait_for(conn.call(step.argv), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as e:
            await self.close()
            call.unanswered(f"no reply from {host}:{port}: {e!r}", sent=True)
            return
        if isinstance(reply, ReplyError):
            call.replied(None, reply.text)
        else:
            call.replied(reply, None)

    async def _connect(self, target: tuple[str, int]) -> _Connection:
        if self._conn is not None and self._conn_target != target:
            await self.close()
        if self._conn is None:
            r, w = await asyncio.wait_for(asyncio.open_connection(*target), self.timeout)
            self._conn = _Connection(r, w)
            self._conn_target = target
        return self._conn

    # -- conveniences -------------------------------------------------------------

    async def get(self, key: bytes | str) -> bytes | None:
        value: bytes | None = await self.execute("GET", key)
        return value

    async def set(self, key: bytes | str, value: bytes | str | int) -> None:
        await self.execute("SET", key, value)

    async def delete(self, *keys: bytes | str) -> int:
        n: int = await self.execute("DEL", *keys)
        return n

    async def incr(self, key: bytes | str, by: int = 1) -> int:
        n: int = await self.execute("INCRBY", key, by)
        return n

    async def cas(self, key: bytes | str, expected: bytes | str, new: bytes | str) -> bool:
        return bool(await self.execute("CAS", key, expected, new))


class Client:
    """A blocking wrapper around :class:`AsyncClient` with its own event loop."""

    def __init__(self, servers: Sequence[str | tuple[str, int]], **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = AsyncClient(servers, **kwargs)

    def execute(self, *args: bytes | str | int) -> Value:
        return self._runner.run(self._client.execute(*args))

    def get(self, key: bytes | str) -> bytes | None:
        return self._runner.run(self._client.get(key))

    def set(self, key: bytes | str, value: bytes | str | int) -> None:
        self._runner.run(self._client.set(key, value))

    def delete(self, *keys: bytes | str) -> int:
        return self._runner.run(self._client.delete(*keys))

    def incr(self, key: bytes | str, by: int = 1) -> int:
        return self._runner.run(self._client.incr(key, by))

    def cas(self, key: bytes | str, expected: bytes | str, new: bytes | str) -> bool:
        return self._runner.run(self._client.cas(key, expected, new))

    def close(self) -> None:
        self._runner.run(self._client.close())
        self._runner.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
