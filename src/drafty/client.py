"""The native Python client: exactly-once writes through leader changes.

Theory of operation
-------------------
:class:`AsyncClient` speaks RESP2 to any node of a cluster. It picks a random
64-bit client id and numbers its writes; every write is sent as
``SEQ client seq command...``, so when a reply is lost (timeout, dropped
connection, ``-UNCERTAIN``) the client sends the *same* pair again, to the
same or another node, and the cluster's session table answers the retry
without applying it twice. Reads are retried freely.

Which node: the client starts with the first address it was given, follows
leader hints in ``-TRYAGAIN`` replies (``leader is node N at host:port``), and
moves on to the next address after a connection failure. It keeps trying
until ``deadline`` seconds have passed, then raises:

- :class:`~drafty.driver.Refused` if no attempt can have taken effect;
- :class:`~drafty.driver.OutcomeUnknown` if one might have (a write was sent
  and its answer never came, or came back ``-UNCERTAIN``).

A ``-ERR`` reply (bad arguments, wrong type) raises :class:`CommandError`:
the command ran (or was refused) and retrying would give the same answer.

One client runs one command at a time (each write has one sequence number
outstanding, which is what sessions require). :class:`Client` is a blocking
wrapper with its own event loop.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Sequence
from typing import Any

from .core import DraftyError
from .driver.api import OutcomeUnknown, Refused
from .service.config import parse_address

Value = Any

_LEADER_HINT = re.compile(r"leader is node \d+ at ([^\s:]+):(\d+)")
_WRITES = frozenset(b"SET DEL INCR DECR INCRBY DECRBY APPEND MSET GETDEL CAS".split())


class CommandError(DraftyError):
    """The server answered with an error about the command itself."""


class _ReplyError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


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
        return await self._read()

    async def _read(self) -> Value:
        line = await self.reader.readuntil(b"\r\n")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            return _ReplyError(body.decode(errors="replace"))
        if kind == b":":
            return int(body)
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None
            data = await self.reader.readexactly(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(body)
            return None if n < 0 else [await self._read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply type {kind!r}")

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
        client_id: int | None = None,
    ) -> None:
        if not servers:
            raise ValueError("give at least one server address")
        self.servers = [
            s if isinstance(s, tuple) else parse_address(s, "server address") for s in servers
        ]
        self.timeout = timeout
        self.deadline = deadline
        self.client_id = client_id or random.SystemRandom().randrange(1, 1 << 63)
        self._seq = 0
        self._current = 0
        self._conn: _Connection | None = None
        self._target: tuple[str, int] = self.servers[0]

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
        write = argv[0].upper() in _WRITES
        if write:
            self._seq += 1
            argv = [b"SEQ", str(self.client_id).encode(), str(self._seq).encode(), *argv]
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.deadline
        maybe_applied = False
        last_problem = "no attempt made"
        delay = 0.02
        while loop.time() < give_up:
            try:
                conn = await self._connect()
            except (OSError, TimeoutError) as e:
                last_problem = f"cannot connect to {self._target[0]}:{self._target[1]}: {e}"
                self._next_server()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            try:
                reply = await asyncio.wait_for(conn.call(argv), self.timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as e:
                maybe_applied = maybe_applied or write
                last_problem = f"no reply from {self._target[0]}:{self._target[1]}: {e!r}"
                await self.close()
                self._next_server()
                continue
            if not isinstance(reply, _ReplyError):
                return reply
            text = reply.text
            if text.startswith("TRYAGAIN"):
                last_problem = text
                if not self._follow_hint(text):
                    # This node knows no leader (it may be cut off): try another.
                    await self.close()
                    self._next_server()
            elif text.startswith("SESSIONEXPIRED"):
                if maybe_applied:
                    raise OutcomeUnknown(f"session expired after an unanswered attempt: {text}")
                self._new_session()
                argv[1:3] = [str(self.client_id).encode(), str(self._seq).encode()]
                continue
            elif text.startswith("UNCERTAIN"):
                maybe_applied = maybe_applied or write
                last_problem = text
            else:
                raise CommandError(text)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        if maybe_applied:
            raise OutcomeUnknown(f"gave up after {self.deadline:.0f} s: {last_problem}")
        raise Refused(f"gave up after {self.deadline:.0f} s: {last_problem}")

    async def _connect(self) -> _Connection:
        if self._conn is None:
            r, w = await asyncio.wait_for(asyncio.open_connection(*self._target), self.timeout)
            self._conn = _Connection(r, w)
        return self._conn

    def _next_server(self) -> None:
        self._current = (self._current + 1) % len(self.servers)
        self._target = self.servers[self._current]

    def _new_session(self) -> None:
        self.client_id = random.SystemRandom().randrange(1, 1 << 63)
        self._seq = 1

    def _follow_hint(self, text: str) -> bool:
        """Switch to the leader a TRYAGAIN names; False if it names none new."""
        m = _LEADER_HINT.search(text)
        if m is None:
            return False
        hinted = (m.group(1), int(m.group(2)))
        if hinted == self._target:
            return False
        self._target = hinted
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return True

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
