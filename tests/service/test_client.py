"""The native client (drafty.client.AsyncClient) against fake RESP servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from drafty.client import AsyncClient, CommandError
from drafty.driver.api import OutcomeUnknown, Refused
from drafty.service import kv
from drafty.service.calls import WRITES
from drafty.service.resp import RequestParser

Handler = Callable[[list[bytes], int], bytes | None]
"""Gets a command and how many commands this server got before (not counting
``SESSION OPEN``, which every fake server answers with session 42); returns
the raw reply, or None to hang up without answering."""

OPEN = [b"SESSION", b"OPEN"]


class FakeServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[list[bytes]] = []
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        parser = RequestParser()
        try:
            while data := await reader.read(4096):
                for argv in parser.feed(data):
                    n = sum(1 for r in self.received if r != OPEN)
                    self.received.append(argv)
                    reply = b":42\r\n" if argv == OPEN else self.handler(argv, n)
                    if reply is None:
                        writer.close()
                        return
                    if reply:
                        writer.write(reply)
                        await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def ok(argv: list[bytes], n: int) -> bytes:
    return b"+OK\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, 10)

    return asyncio.run(main())


def client(*servers: str, **kw: Any) -> AsyncClient:
    kw.setdefault("timeout", 0.5)
    kw.setdefault("deadline", 2.0)
    return AsyncClient(list(servers), **kw)


# -- what goes on the wire -------------------------------------------------------


def test_writes_are_sequenced_reads_are_not() -> None:
    def handler(argv: list[bytes], n: int) -> bytes:
        inner = argv[3:] if argv[0] == b"SEQ" else argv
        return {b"GET": b"$1\r\nv\r\n", b"INCRBY": b":5\r\n"}.get(inner[0], b"+OK\r\n")

    async def main() -> FakeServer:
        async with FakeServer(handler) as srv, client(srv.addr) as c:
            assert await c.execute("SET", "k", "v") == "OK"
            assert await c.get("k") == b"v"
            assert await c.incr("k", 5) == 5
            await c.execute("MGET", "a", "b")
            await c.execute(b"set", b"k", 3)
            return srv

    srv = run(main())
    assert srv.received == [
        OPEN,
        [b"SEQ", b"42", b"1", b"SET", b"k", b"v"],
        [b"GET", b"k"],
        [b"SEQ", b"42", b"2", b"INCRBY", b"k", b"5"],
        [b"MGET", b"a", b"b"],
        [b"SEQ", b"42", b"3", b"set", b"k", b"3"],
    ]
    assert srv.connections == 1


def test_no_session_until_the_first_write() -> None:
    async def main() -> FakeServer:
        async with FakeServer(ok) as srv, client(srv.addr) as c:
            await c.execute("GET", "k")
            assert c.session == 0
            await c.execute("SET", "k", "v")
            assert c.session == 42
            return srv

    assert run(main()).received == [[b"GET", b"k"], OPEN, [b"SEQ", b"42", b"1", b"SET", b"k", b"v"]]


def test_client_write_set_matches_kv_specs() -> None:
    assert {name for name, spec in kv.SPECS.items() if spec.write} == set(WRITES)


def test_reply_types() -> None:
    replies = {
        b"A": b":-7\r\n",
        b"B": b"$-1\r\n",
        b"C": b"*3\r\n$1\r\nx\r\n$-1\r\n*1\r\n:1\r\n",
        b"D": b"$0\r\n\r\n",
        b"E": b"*-1\r\n",
        b"F": b"$4\r\na\r\nb\r\n",
    }

    async def main() -> list[Any]:
        async with FakeServer(lambda argv, n: replies[argv[0]]) as srv, client(srv.addr) as c:
            return [await c.execute(k.decode()) for k in replies]

    assert run(main()) == [-7, None, [b"x", None, [1]], b"", None, b"a\r\nb"]


# -- retries ----------------------------------------------------------------------


def test_uncertain_resends_same_pair() -> None:
    def handler(argv: list[bytes], n: int) -> bytes:
        return b"-UNCERTAIN timed out\r\n" if n < 2 else b":1\r\n"

    async def main() -> FakeServer:
        async with FakeServer(handler) as srv, client(srv.addr) as c:
            assert await c.execute("INCR", "k") == 1
            return srv

    srv = run(main())
    assert srv.received == [OPEN] + [[b"SEQ", b"42", b"1", b"INCR", b"k"]] * 3


def test_tryagain_hint_is_followed() -> None:
    async def main() -> tuple[FakeServer, FakeServer]:
        async with FakeServer(ok) as leader:
            hint = f"-TRYAGAIN not the leader (leader is node 2 at {leader.addr})\r\n".encode()
            async with FakeServer(lambda argv, n: hint) as follower:
                async with client(follower.addr) as c:
                    assert await c.execute("SET", "k", "v") == "OK"
                    assert await c.execute("SET", "k", "w") == "OK"  # stays on the leader
                return follower, leader

    follower, leader = run(main())
    assert follower.received == [OPEN, [b"SEQ", b"42", b"1", b"SET", b"k", b"v"]]
    assert leader.received == [
        [b"SEQ", b"42", b"1", b"SET", b"k", b"v"],
        [b"SEQ", b"42", b"2", b"SET", b"k", b"w"],
    ]


def test_dropped_connection_retries_same_pair_elsewhere() -> None:
    async def main() -> tuple[FakeServer, FakeServer]:
        async with FakeServer(lambda argv, n: None) as a, FakeServer(ok) as b:
            async with client(a.addr, b.addr) as c:
                assert await c.execute("DEL", "k") == "OK"
            return a, b

    a, b = run(main())
    assert a.received == [OPEN, [b"SEQ", b"42", b"1", b"DEL", b"k"]]
    assert b.received == [[b"SEQ", b"42", b"1", b"DEL", b"k"]]


def test_unreachable_server_skipped() -> None:
    async def main() -> FakeServer:
        async with FakeServer(ok) as b, client(f"127.0.0.1:{free_port()}", b.addr) as c:
            assert await c.execute("GET", "k") == "OK"
            return b

    assert run(main()).received == [[b"GET", b"k"]]


def test_err_raises_without_retry() -> None:
    async def main() -> FakeServer:
        async with FakeServer(lambda argv, n: b"-ERR value is not an integer\r\n") as srv:
            async with client(srv.addr) as c:
                with pytest.raises(CommandError, match="not an integer"):
                    await c.execute("INCR", "k")
                with pytest.raises(CommandError):
                    await c.execute("GET", "k")
            return srv

    srv = run(main())
    assert srv.received == [OPEN, [b"SEQ", b"42", b"1", b"INCR", b"k"], [b"GET", b"k"]]


# -- giving up ----------------------------------------------------------------------


def test_deadline_after_uncertain_write_is_outcome_unknown() -> None:
    async def main() -> FakeServer:
        async with FakeServer(lambda argv, n: b"-UNCERTAIN lost leadership\r\n") as srv:
            async with client(srv.addr, deadline=0.3) as c:
                with pytest.raises(OutcomeUnknown, match="UNCERTAIN"):
                    await c.execute("SET", "k", "v")
            return srv

    srv = run(main())
    assert len(srv.received) >= 3 and srv.received[0] == OPEN
    assert all(r == [b"SEQ", b"42", b"1", b"SET", b"k", b"v"] for r in srv.received[1:])


def test_deadline_after_unanswered_write_is_outcome_unknown() -> None:
    async def main() -> None:
        async with (
            FakeServer(lambda argv, n: b"") as srv,  # never answers
            client(srv.addr, deadline=0.3, timeout=0.1) as c,
        ):
            with pytest.raises(OutcomeUnknown):
                await c.execute("SET", "k", "v")

    run(main())


def test_deadline_after_tryagain_is_refused() -> None:
    async def main() -> None:
        async with (
            FakeServer(lambda argv, n: b"-TRYAGAIN no leader known\r\n") as srv,
            client(srv.addr, deadline=0.3) as c,
        ):
            with pytest.raises(Refused, match="no leader"):
                await c.execute("SET", "k", "v")

    run(main())


def test_deadline_with_nothing_reachable_is_refused() -> None:
    async def main() -> None:
        async with client(f"127.0.0.1:{free_port()}", deadline=0.3) as c:
            with pytest.raises(Refused):
                await c.execute("SET", "k", "v")

    run(main())


def test_uncertain_read_is_refused_not_unknown() -> None:
    async def main() -> None:
        async with (
            FakeServer(lambda argv, n: b"-UNCERTAIN timed out\r\n") as srv,
            client(srv.addr, deadline=0.3) as c,
        ):
            with pytest.raises(Refused):
                await c.execute("GET", "k")

    run(main())


def test_uncertain_then_tryagain_stays_unknown() -> None:
    def handler(argv: list[bytes], n: int) -> bytes:
        return b"-UNCERTAIN timed out\r\n" if n == 0 else b"-TRYAGAIN no leader known\r\n"

    async def main() -> None:
        async with FakeServer(handler) as srv, client(srv.addr, deadline=0.3) as c:
            with pytest.raises(OutcomeUnknown):
                await c.execute("SET", "k", "v")

    run(main())


def test_tryagain_without_hint_tries_other_servers() -> None:
    async def main() -> None:
        async with (
            FakeServer(lambda argv, n: b"-TRYAGAIN no leader known\r\n") as cut_off,
            FakeServer(ok) as healthy,
            client(cut_off.addr, healthy.addr, deadline=1.0) as c,
        ):
            assert await c.execute("SET", "k", "v") == "OK"

    run(main())


# -- sessions ------------------------------------------------------------------------


def test_expired_session_with_nothing_applied_opens_a_new_one() -> None:
    """Defect 2 of issue 8: SESSIONEXPIRED must lead to a new session, not an error."""

    def handler(argv: list[bytes], n: int) -> bytes:
        return b"-SESSIONEXPIRED session 42 is unknown\r\n" if n == 0 else b":7\r\n"

    async def main() -> FakeServer:
        async with FakeServer(handler) as srv, client(srv.addr) as c:
            assert await c.execute("INCR", "k") == 7
            assert c.state.sessions_opened == 2
            return srv

    srv = run(main())
    assert srv.received == [
        OPEN,
        [b"SEQ", b"42", b"1", b"INCR", b"k"],
        OPEN,
        [b"SEQ", b"42", b"1", b"INCR", b"k"],
    ]


def test_expired_session_after_a_lost_answer_is_outcome_unknown() -> None:
    def handler(argv: list[bytes], n: int) -> bytes | None:
        if n == 0:
            return None  # hang up: the first attempt may have applied
        return b"-SESSIONEXPIRED session 42 is unknown\r\n"

    async def main() -> FakeServer:
        async with FakeServer(handler) as srv, client(srv.addr) as c:
            with pytest.raises(OutcomeUnknown, match="session expired"):
                await c.execute("INCR", "k")
            return srv

    srv = run(main())
    assert srv.received.count([b"SEQ", b"42", b"1", b"INCR", b"k"]) == 2
