"""The Redis-protocol front door of a node.

Theory of operation
-------------------
Each client connection gets a :class:`RequestParser` and an ordered queue of
replies. Commands are dispatched as soon as they are parsed: connection
commands (PING, HELLO, CLIENT...) answer at once, data commands are submitted
to the :class:`~drafty.driver.RaftNode` and answered when applied. A writer
task sends replies strictly in request order, so pipelined requests are
answered in order while their log entries are proposed together (one Ready,
one fsync for the whole pipeline).

Writes go through the log. Read-only commands outside a session do not:
they are linearizable by ReadIndex, or by the leader's lease when the
cluster enables leases (``[reads] lease``), and run against the state
machine once its applied index reaches the confirmed one. A connection that
sent ``READONLY`` (Redis Cluster's convention) gets its reads answered at
once from this node's own state instead, possibly stale, until it sends
``READWRITE``; writes on it are unaffected. Any node accepts any command
(followers forward writes and read confirmations to the leader).
What a data command proposes and which error answers each failure
(``-TRYAGAIN``: certainly no effect; ``-UNCERTAIN``: maybe;
``-SESSIONEXPIRED``) is decided without sockets, in
:mod:`drafty.service.commands`.

Protocol errors (a bulk length over the limit, garbage) get ``-ERR Protocol
error`` and the connection is closed; nothing from it is applied. The
protocol version a reply is encoded in is fixed when its command is parsed,
so a ``HELLO 3`` in a pipeline switches only the replies after it.

``SESSION OPEN`` then ``SEQ session seq command...`` run commands with
exactly-once semantics (see :mod:`drafty.node.sessions`); the native client
uses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import DraftyError, NodeId
from ..driver import RaftNode
from ..luid import luid
from . import commands, kv
from .admin import RaftCommands
from .loopwatch import LoopWatch
from .resp import DEFAULT_MAX_BULK, OK, Error, ProtocolError, Reply, RequestParser, Simple, encode

log = logging.getLogger("drafty.service")

Address = tuple[str, int]
MAX_PIPELINE = 4096
"""Replies one connection may owe before the server stops reading from it."""
VERSION = "7.0.0"
"""The Redis version we claim in HELLO and INFO (the command set is a subset)."""


class _Stop:
    """Queued after the last reply of a connection."""


_STOP = _Stop()


@dataclass
class _Conn:
    name: str
    id: int
    resp3: bool = False
    client_name: bytes | None = None
    readonly: bool = False
    """READONLY: answer this connection's reads from local state (maybe stale)."""
    closing: bool = False
    replies: deque[tuple[Awaitable[Reply] | Reply | _Stop, bool]] = field(default_factory=deque)
    """Replies (or their futures) in request order, with the protocol to encode them in."""
    queued: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task[None] | None = None

    def put(self, item: Awaitable[Reply] | Reply | _Stop, resp3: bool) -> None:
        self.replies.append((item, resp3))
        self.queued.set()


class RespServer:
    """Serves the Redis protocol for one node (see the module docstring)."""

    def __init__(
        self,
        node: RaftNode,
        clients: dict[NodeId, Address],
        *,
        max_bulk: int = DEFAULT_MAX_BULK,
        loopwatch: LoopWatch | None = None,
        cluster_toml: str = "",
    ) -> None:
        """``clients``: the client address of each node cluster.toml lists (the
        address book learnt from the log takes precedence); ``cluster_toml``:
        the cluster's settings, offered to joining nodes (RAFT MEMBER JOININFO)."""
        self.node = node
        self.loopwatch = loopwatch
        self.clients = dict(clients)
        self.admin = RaftCommands(node, self._leader_hint, cluster_toml)
        self.max_bulk = max_bulk
        self._server: asyncio.Server | None = None
        self._conns: dict[asyncio.Task[None], _Conn] = {}
        self._next_id = 1
        self._commands: dict[bytes, Callable[[_Conn, list[bytes]], Awaitable[Reply] | Reply]] = {
            b"PING": self._ping,
            b"ECHO": self._echo,
            b"HELLO": self._hello,
            b"CLIENT": self._client,
            b"QUIT": self._quit,
            b"COMMAND": self._command,
            b"INFO": self._info,
            b"SELECT": self._select,
            b"CONFIG": self._config,
            b"AUTH": self._auth,
            b"RAFT": self._raft,
            b"BGSAVE": self._bgsave,
            b"READONLY": self._readonly,
            b"READWRITE": self._readwrite,
        }

    async def start(self, listen: Address) -> None:
        self._server = await asyncio.start_server(self._serve, *listen)

    async def close(self, grace: float = 2.0) -> None:
        """Stop listening; flush every reply still owed, then drop the connections.

        Call after the node stopped: its waiting commands then resolve (with
        -UNCERTAIN) and new ones are refused (-TRYAGAIN), so every client
        gets an answer it can act on before its connection closes.
        """
        if self._server is not None:
            self._server.close()
        for conn in self._conns.values():
            conn.closing = True
            conn.put(_STOP, False)
        senders = [c.sender for c in self._conns.values() if c.sender is not None]
        if senders:
            await asyncio.wait(senders, timeout=grace)
        tasks = list(self._conns)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- connections -------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Conn(luid("client"), self._next_id)
        self._conns[task] = conn
        self._next_id += 1
        parser = RequestParser(max_bulk=self.max_bulk)
        sender = conn.sender = asyncio.create_task(self._send_replies(conn, writer))
        try:
            while not conn.closing:
                if len(conn.replies) >= MAX_PIPELINE:
                    # Backpressure: stop reading until the owed replies drain,
                    # so one client cannot queue unbounded work.
                    conn.drained.clear()
                    await conn.drained.wait()
                    continue
                data = await reader.read(1 << 16)
                if not data:
                    break
                try:
                    commands = parser.feed(data)
                except ProtocolError as e:
                    log.info("%s: protocol error, closing: %s", conn.name, e)
                    conn.put(Error(f"ERR {e}"), conn.resp3)
                    conn.closing = True
                    break
                for argv in commands:
                    conn.put(self._dispatch_safely(conn, argv), conn.resp3)
                    if conn.closing:
                        break
        except (ConnectionError, OSError) as e:
            log.debug("%s: connection lost: %s", conn.name, e)
        finally:
            conn.put(_STOP, False)
            conn.closing = True
            with contextlib.suppress(ConnectionError, OSError):
                await sender
            writer.close()
            self._conns.pop(task, None)

    async def _send_replies(self, conn: _Conn, writer: asyncio.StreamWriter) -> None:
        """Write replies in request order; those already known leave in one write."""
        try:
            await self._write_replies(conn, writer)
        finally:
            conn.closing = True
            conn.drained.set()  # never leave the reader waiting on a dead sender

    async def _write_replies(self, conn: _Conn, writer: asyncio.StreamWriter) -> None:
        q = conn.replies
        while True:
            if not q:
                conn.queued.clear()
                await conn.queued.wait()
            head, _ = q[0]
            if isinstance(head, asyncio.Future) and not head.done():
                await asyncio.wait([head])
            out: list[bytes] = []
            while q:
                item, resp3 = q[0]
                if isinstance(item, _Stop):
                    if out:
                        writer.write(b"".join(out))
                    await writer.drain()
                    return
                if isinstance(item, asyncio.Future):
                    if not item.done():
                        break
                    item = item.result()
                q.popleft()
                out.append(encode(item, resp3))  # type: ignore[arg-type]
            writer.write(b"".join(out))
            await writer.drain()
            if len(q) < MAX_PIPELINE:
                conn.drained.set()

    # -- dispatch ----------------------------------------------------------------

    def _dispatch_safely(self, conn: _Conn, argv: list[bytes]) -> Awaitable[Reply] | Reply:
        """Dispatch; a bug in a handler answers an error instead of dropping the client."""
        try:
            return self._dispatch(conn, argv)
        except Exception:
            log.exception("%s: handler failed on %r", conn.name, argv[0][:32])
            return Error("ERR internal error (logged on the server)")

    def _dispatch(self, conn: _Conn, argv: list[bytes]) -> Awaitable[Reply] | Reply:
        name = argv[0].upper()
        handler = self._commands.get(name)
        if handler is not None:
            return handler(conn, argv)
        proposal = commands.plan(argv)
        if isinstance(proposal, Error):
            return proposal
        if proposal.read and conn.readonly:
            return self._read_stale(proposal)
        return asyncio.ensure_future(self._submit(proposal))

    def _read_stale(self, p: commands.Proposal) -> Reply:
        try:
            value = self.node.read_stale(p.command)
        except DraftyError as e:
            return commands.answer(None, e, self._leader_hint)
        return commands.answer(value, None, self._leader_hint)

    async def _submit(self, p: commands.Proposal) -> Reply:
        try:
            if p.read:
                value: Any = await self.node.read(p.command)
            elif p.open_session:
                value = await self.node.open_session()
            else:
                value = await self.node.submit(p.command, client=p.client, seq=p.seq)
        except DraftyError as e:
            return commands.answer(None, e, self._leader_hint)
        except Exception:
            log.exception("submit of a %d-byte command failed", len(p.command))
            return Error("ERR internal error (logged on the server)")
        return commands.answer(value, None, self._leader_hint)

    def _leader_hint(self, leader: NodeId) -> str:
        """Where the leader is, for a ``-TRYAGAIN`` (the native client follows it)."""
        addr = self.admin.client_address(leader)
        if not addr and leader in self.clients:
            addr = "{}:{}".format(*self.clients[leader])
        return f" (leader is node {leader} at {addr})" if addr else ""

    # -- connection and server commands -------------------------------------------

    def _ping(self, conn: _Conn, argv: list[bytes]) -> Reply:
        if len(argv) > 2:
            return kv.wrong_arity(b"PING")
        return argv[1] if len(argv) == 2 else Simple("PONG")

    def _echo(self, conn: _Conn, argv: list[bytes]) -> Reply:
        return argv[1] if len(argv) == 2 else kv.wrong_arity(b"ECHO")

    def _hello(self, conn: _Conn, argv: list[bytes]) -> Reply:
        if len(argv) >= 2:
            ver = kv.parse_int(argv[1])
            if ver not in (2, 3):
                return Error("NOPROTO unsupported protocol version")
            rest = argv[2:]
            while rest:
                opt = rest[0].upper()
                if opt == b"SETNAME" and len(rest) >= 2:
                    conn.client_name, rest = rest[1], rest[2:]
                elif opt == b"AUTH" and len(rest) >= 3:
                    return Error("ERR AUTH is not supported: drafty has no passwords yet")
                else:
                    return Error("ERR syntax error in HELLO")
            conn.resp3 = ver == 3
        st = self.node.status()
        reply: dict[str, Reply] = {
            "server": "drafty",
            "version": VERSION,
            "proto": 3 if conn.resp3 else 2,
            "id": conn.id,
            "mode": "standalone",
            "role": "master" if st.leader == st.id else "replica",
            "modules": [],
        }
        return reply

    def _client(self, conn: _Conn, argv: list[bytes]) -> Reply:
        if len(argv) < 2:
            return kv.wrong_arity(b"CLIENT")
        sub = argv[1].upper()
        if sub == b"SETNAME" and len(argv) == 3:
            if b" " in argv[2]:
                return Error("ERR Client names cannot contain spaces")
            conn.client_name = argv[2] or None
            return OK
        if sub == b"GETNAME" and len(argv) == 2:
            return conn.client_name
        if sub == b"ID" and len(argv) == 2:
            return conn.id
        if sub == b"SETINFO" and len(argv) == 4:
            return OK
        return Error(f"ERR unknown CLIENT subcommand '{argv[1].decode(errors='replace')}'")

    def _quit(self, conn: _Conn, argv: list[bytes]) -> Reply:
        conn.closing = True
        return OK

    def _command(self, conn: _Conn, argv: list[bytes]) -> Reply:
        if len(argv) >= 2 and argv[1].upper() == b"COUNT":
            return len(kv.SPECS) + len(self._commands) + 1
        return []  # enough for redis-cli, which only uses COMMAND DOCS for hints

    def _readonly(self, conn: _Conn, argv: list[bytes]) -> Reply:
        """READONLY: this connection's reads may be stale (served locally)."""
        if len(argv) != 1:
            return kv.wrong_arity(b"READONLY")
        conn.readonly = True
        return OK

    def _readwrite(self, conn: _Conn, argv: list[bytes]) -> Reply:
        """READWRITE: back to linearizable reads (the default)."""
        if len(argv) != 1:
            return kv.wrong_arity(b"READWRITE")
        conn.readonly = False
        return OK

    def _select(self, conn: _Conn, argv: list[bytes]) -> Reply:
        if len(argv) != 2:
            return kv.wrong_arity(b"SELECT")
        return OK if argv[1] == b"0" else Error("ERR DB index is out of range")

    def _config(self, conn: _Conn, argv: list[bytes]) -> Reply:
        """CONFIG GET for the few settings tools ask about (redis-benchmark does);
        CONFIG RESETSTAT resets INFO's statistics (the event-loop lateness)."""
        if len(argv) == 2 and argv[1].upper() == b"RESETSTAT":
            if self.loopwatch is not None:
                self.loopwatch.reset()
            return OK
        if len(argv) < 3 or argv[1].upper() != b"GET":
            return Error("ERR CONFIG supports only GET and RESETSTAT")
        facts = {"appendonly": "yes", "appendfsync": "always", "save": "", "databases": "1"}
        found: dict[str, Reply] = {}
        for pattern in argv[2:]:
            for k, v in facts.items():
                if kv.glob_match(pattern.lower(), k.encode()):
                    found[k] = v
        return found

    def _auth(self, conn: _Conn, argv: list[bytes]) -> Reply:
        return Error("ERR AUTH <password> called without any password configured")

    def _info(self, conn: _Conn, argv: list[bytes]) -> Reply:
        st = self.node.status()
        lines = [
            "# Server",
            f"redis_version:{VERSION}",
            "drafty_version:0.1.0",
            f"tcp_port:{self.clients.get(st.id, ('', 0))[1]}",
            "",
            "# Raft",
        ]
        for k, v in self.admin.status().items():
            lines.append(f"{k}:{v.decode() if isinstance(v, bytes) else v}")
        lg = self.node.log_status()
        lines += [
            "",
            "# Persistence",
            f"snapshot_in_progress:{int(lg.snapshot_saving)}",
            f"snapshot_last_bytes:{lg.last_save_bytes}",
            f"snapshot_last_ms:{lg.last_save_ms:.0f}",
        ]
        rs = self.node.read_stats()
        lines += [
            "",
            "# Reads",
            f"read_mode:{rs.mode}",
            f"reads_linearizable:{rs.linearizable}",
            f"reads_stale:{rs.stale}",
            f"reads_lease_answered:{rs.lease_answered}",
            f"reads_round_confirmed:{rs.round_confirmed}",
            f"readonly_connections:{sum(c.readonly for c in self._conns.values())}",
        ]
        w = self.loopwatch
        if w is not None:
            lines += [
                "",
                "# Stats",
                f"loop_max_lateness_ms:{w.max_lateness_ms:.1f}",
                f"loop_stalls_over_{w.stall_ms}ms:{w.stalls}",
                f"used_memory_rss:{_rss_bytes()}",
            ]
        return ("\r\n".join(lines) + "\r\n").encode()

    def _bgsave(self, conn: _Conn, argv: list[bytes]) -> Reply:
        """BGSAVE: take a snapshot now, written off the event loop."""
        if len(argv) != 1:
            return kv.wrong_arity(b"BGSAVE")
        if self.node.request_snapshot():
            return Simple("Background saving started")
        if self.node.log_status().snapshot_saving:
            return Error("ERR Background save already in progress")
        return Simple("Background saving skipped: nothing applied since the last snapshot")

    def _raft(self, conn: _Conn, argv: list[bytes]) -> Awaitable[Reply] | Reply:
        return self.admin.dispatch(argv)


def _rss_bytes() -> int:
    """Resident set size of this process (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
