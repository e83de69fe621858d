"""Peer-to-peer TCP transport on asyncio: persistent links, batching, backoff.

Theory of operation
-------------------
Each node keeps one outbound connection to every peer, used only for
sending, and accepts inbound connections, used only for receiving (so the
two directions never contend for one socket, as in etcd's streams).

Outbound (:class:`_Link`): messages for a peer are appended to its queue and
a writer task wakes up, takes *everything* queued, encodes it as one frame
and writes it in one call: under load many messages share a frame and a
syscall. When the connection fails the task reconnects with exponential
backoff (50 ms doubling to 2 s, with jitter); messages queued meanwhile are
kept up to a bound and then the oldest are dropped, which Raft tolerates
(it retransmits). Every failure is logged with the link's id and counted.

Inbound: the first frame must be a :class:`~drafty.transport.codec.Hello`
from a known peer of the same cluster; then every frame's messages go to the
``deliver`` callback. A message whose ``src`` is not the peer that said hello
is dropped. Garbage, an oversized frame, or a wrong hello closes that
connection with one log line; it never reaches the core, and it never takes
the node down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import Callable

from ..core import Message, NodeId
from ..luid import luid
from .codec import (
    DEFAULT_MAX_FRAME,
    DecodeError,
    FrameReader,
    Hello,
    decode_body,
    encode_batch,
    encode_hello,
)

log = logging.getLogger("drafty.transport")

Address = tuple[str, int]
Deliver = Callable[[list[Message]], None]

MAX_QUEUED = 10_000
"""Messages kept for a disconnected peer before the oldest are dropped."""
HELLO_TIMEOUT = 5.0


class _Link:
    """The outbound side of one peer: a queue and the task that drains it."""

    def __init__(self, owner: PeerTransport, peer: NodeId, addr: Address) -> None:
        self.owner = owner
        self.peer = peer
        self.addr = addr
        self.name = luid("peer")
        self.queue: deque[Message] = deque()
        self.wake = asyncio.Event()
        self.connected = False
        self.task: asyncio.Task[None] | None = None

    def push(self, msgs: list[Message]) -> None:
        self.queue.extend(msgs)
        over = len(self.queue) - MAX_QUEUED
        if over > 0:
            for _ in range(over):
                self.queue.popleft()
            self.owner.stats["dropped_queue_full"] += over
        self.wake.set()

    async def run(self) -> None:
        """Connect, pump, and on any failure reconnect with backoff; never returns."""
        delay = 0.05
        rng = self.owner.rng
        while True:
            try:
                reader, writer = await asyncio.open_connection(*self.addr)
            except OSError as e:
                self.owner.stats["connect_failures"] += 1
                log.debug("%s: connect to node %d at %s:%d failed: %s", self.name, self.peer,
                          *self.addr, e)  # fmt: skip
                await asyncio.sleep(delay * (0.5 + rng.random()))
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            self.connected = True
            log.info("%s: connected to node %d at %s:%d", self.name, self.peer, *self.addr)
            watcher = asyncio.create_task(self._watch_eof(reader))
            try:
                writer.write(encode_hello(Hello(self.owner.cluster, self.owner.node_id)))
                await self._pump(writer, watcher)
            except Exception as e:  # any failure of this link: log it, reconnect
                self.owner.stats["send_failures"] += 1
                log.warning("%s: link to node %d lost: %s", self.name, self.peer, e or repr(e))
            finally:
                self.connected = False
                watcher.cancel()
                writer.close()

    async def _watch_eof(self, reader: asyncio.StreamReader) -> None:
        """The peer never sends on this connection: any read result means it closed."""
        with contextlib.suppress(OSError, ConnectionError):
            await reader.read(1)
        self.wake.set()

    async def _pump(self, writer: asyncio.StreamWriter, watcher: asyncio.Task[None]) -> None:
        while True:
            if not self.queue:
                self.wake.clear()
                await self.wake.wait()
            if watcher.done():
                raise ConnectionError("peer closed the connection")
            batch = list(self.queue)
            self.queue.clear()
            writer.write(encode_batch(batch))
            self.owner.stats["frames_sent"] += 1
            self.owner.stats["messages_sent"] += len(batch)
            await writer.drain()


class PeerTransport:
    """Sends core messages to peers and hands received ones to ``deliver``."""

    def __init__(
        self,
        node_id: NodeId,
        cluster: str,
        peers: dict[NodeId, Address],
        deliver: Deliver,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.cluster = cluster
        self.peers = dict(peers)
        self.deliver = deliver
        self.max_frame = max_frame
        self.rng = rng or random.Random()
        self.stats: Counter[str] = Counter()
        self._links: dict[NodeId, _Link] = {}
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.Task[None]] = set()

    async def start(self, listen: Address) -> None:
        """Listen for peers on ``listen`` and start connecting out."""
        self._server = await asyncio.start_server(self._accept, *listen)
        for peer, addr in self.peers.items():
            link = _Link(self, peer, addr)
            link.task = asyncio.create_task(link.run(), name=link.name)
            self._links[peer] = link

    def send(self, msgs: list[Message] | tuple[Message, ...]) -> None:
        """Queue messages; each peer's share leaves in one frame, soon."""
        by_peer: dict[NodeId, list[Message]] = {}
        for m in msgs:
            by_peer.setdefault(m.dst, []).append(m)
        for peer, batch in by_peer.items():
            link = self._links.get(peer)
            if link is None:
                self.stats["dropped_unknown_peer"] += len(batch)
                continue
            link.push(batch)

    def connected(self, peer: NodeId) -> bool:
        link = self._links.get(peer)
        return link is not None and link.connected

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [lk.task for lk in self._links.values() if lk.task] + list(self._inbound)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inbound.add(task)
        name = luid("inbound")
        peername = writer.get_extra_info("peername")
        try:
            await self._serve(name, reader)
        except DecodeError as e:
            self.stats["garbage_from_peer"] += 1
            log.warning("%s from %s: closing, peer sent garbage: %s", name, peername, e)
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            log.info("%s from %s: closed: %s", name, peername, e)
        except TimeoutError:
            log.warning("%s from %s: no hello within %.0f s; closing", name, peername,
                        HELLO_TIMEOUT)  # fmt: skip
        except asyncio.CancelledError:
            pass  # transport closing
        finally:
            writer.close()
            self._inbound.discard(task)

    async def _serve(self, name: str, reader: asyncio.StreamReader) -> None:
        frames = FrameReader(self.max_frame)
        peer: NodeId | None = None
        while True:
            if peer is None:
                data = await asyncio.wait_for(reader.read(65536), HELLO_TIMEOUT)
            else:
                data = await reader.read(1 << 20)
            if not data:
                return
            for payload in frames.feed(data):
                body = decode_body(payload, self.max_frame)
                if peer is None:
                    peer = self._check_hello(body)
                    log.info("%s: node %d connected", name, peer)
                    continue
                if isinstance(body, Hello):
                    raise DecodeError("second hello on one connection")
                good = [m for m in body if m.src == peer]
                if len(good) != len(body):
                    self.stats["dropped_spoofed_src"] += len(body) - len(good)
                if good:
                    self.stats["messages_received"] += len(good)
                    self.deliver(good)

    def _check_hello(self, body: Hello | list[Message]) -> NodeId:
        if not isinstance(body, Hello):
            raise DecodeError("first frame is not a hello")
        if body.cluster != self.cluster:
            raise DecodeError(f"hello from cluster {body.cluster!r}, not {self.cluster!r}")
        if body.node not in self.peers:
            raise DecodeError(f"hello from node {body.node}, which is not a peer")
        return body.node
