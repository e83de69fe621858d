"""Peer-to-peer TCP transport on asyncio: persistent links, batching, backoff.

Theory of operation
-------------------
Each node keeps one outbound connection to every peer, used only for
sending, and accepts inbound connections, used only for receiving (so the
two directions never contend for one socket, as in etcd's streams).

Outbound (:class:`_Link`): messages for a peer are appended to its queue and
a writer task wakes up, takes *everything* queued, encodes it as one frame
and writes it in one call: under load many messages share a frame and a
syscall. When the connection fails the task reconnects with a short
exponential backoff (``LinkLimits``); messages queued meanwhile are kept up
to a bound and for a bounded age, and dropped past either, which Raft
tolerates (it retransmits, and a message older than an election timeout
speaks for a leader or a candidate that has moved on). Every failure is
logged with the link's id and counted.

Liveness. A silent network partition (packets dropped, no RST) is invisible
to a socket that is only written: unacknowledged bytes sit in the kernel
while TCP retransmits with exponential backoff, so after the heal the link
would stay dead until the next retransmission, tens of seconds later for a
long partition. Every peer socket therefore carries ``TCP_USER_TIMEOUT``
(bytes unacknowledged for ``user_timeout_s`` abort the connection) and TCP
keepalive (an idle link is probed every ``keepalive_idle_s``, so the same
timeout covers it), connecting is bounded by ``connect_timeout_s``, and the
reconnect backoff is capped at ``backoff_max_s``. A dead link is noticed
within about ``user_timeout_s`` and, once the network heals, reconnected
within about ``connect_timeout_s + backoff_max_s``; the driver derives all
four from the election timeout so that a healed node serves again within
one or two election timeouts however long the partition lasted.

Inbound: the first frame must be a :class:`~drafty.transport.codec.Hello`
from a known peer of the same cluster; then every frame's messages go to the
``deliver`` callback. A peer has at most one inbound connection: a new hello
from it closes the older one (whose sender has given up on it), so a peer
that reconnects often cannot pile up connections. A message whose ``src``
is not the peer that said hello is dropped. Garbage, an oversized frame, or
a wrong hello closes that connection with one log line; it never reaches
the core, and it never takes the node down.

The peer set changes at run time: membership changes add and remove peers,
and the driver hands the transport the new set (:meth:`PeerTransport.set_peers`).
A new peer gets a link; a peer at a new address gets a new link, its old one
stopped; a removed peer's link is stopped and its inbound connection closed,
after which messages for it are dropped as for any unknown node and its
hello is refused. A stopped link's queued messages are dropped and counted
(Raft retransmits to a peer that is still a member), and its task is
cancelled and awaited by :meth:`PeerTransport.close` at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from ..core import Message, NodeId
from ..luid import luid
from .address import Address
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

Deliver = Callable[[list[Message]], None]

HELLO_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkLimits:
    """How long a link may be silent, slow or backed up; every field has its unit.

    The defaults suit an election timeout of about 500 ms (the driver passes
    values derived from its own).
    """

    max_queued_messages: int = 4096
    """Messages kept for one peer while its link is down or slow; the oldest go first."""
    max_message_age_s: float = 1.0
    """A queued message older than this is dropped unsent: its sender's round has passed."""
    user_timeout_s: float = 1.0
    """Bytes unacknowledged this long abort the connection (``TCP_USER_TIMEOUT``)."""
    keepalive_idle_s: int = 1
    """An idle connection is probed after this many seconds (TCP keepalive)."""
    connect_timeout_s: float = 0.5
    """A connection attempt (a SYN into a partition gets no answer) gives up after this."""
    backoff_max_s: float = 0.25
    """The reconnect delay doubles from 50 ms up to this (with jitter)."""

    def __post_init__(self) -> None:
        if self.max_queued_messages < 1:
            raise ValueError("max_queued_messages must be at least 1")
        for name in ("max_message_age_s", "user_timeout_s", "connect_timeout_s", "backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.keepalive_idle_s < 1:
            raise ValueError("keepalive_idle_s must be at least 1 (the kernel counts seconds)")


def tune_socket(sock: socket.socket | None, limits: LinkLimits) -> None:
    """Give a peer socket the liveness options above (where the platform has them)."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = [
        ("TCP_NODELAY", 1),
        ("TCP_USER_TIMEOUT", max(1, int(limits.user_timeout_s * 1000))),
        ("TCP_KEEPIDLE", limits.keepalive_idle_s),
        ("TCP_KEEPINTVL", 1),
        ("TCP_KEEPCNT", 2),
    ]
    for name, value in options:
        opt = getattr(socket, name, None)
        if opt is not None:
            sock.setsockopt(socket.IPPROTO_TCP, opt, value)


class _Link:
    """The outbound side of one peer: a queue and the task that drains it.

    ``queue`` holds (enqueued at, message) in arrival order, never more than
    ``limits.max_queued_messages``.
    """

    def __init__(self, owner: PeerTransport, peer: NodeId, addr: Address) -> None:
        self.owner = owner
        self.peer = peer
        self.addr = addr
        self.name = luid("peer")
        self.queue: deque[tuple[float, Message]] = deque()
        self.wake = asyncio.Event()
        self.connected = False
        self.task: asyncio.Task[None] | None = None

    def push(self, msgs: list[Message], now: float) -> None:
        self.queue.extend((now, m) for m in msgs)
        over = len(self.queue) - self.owner.limits.max_queued_messages
        if over > 0:
            for _ in range(over):
                self.queue.popleft()
            self.owner.stats["dropped_queue_full"] += over
        self.wake.set()

    def take(self, now: float) -> list[Message]:
        """Everything queued that is still fresh; the stale rest is dropped and counted."""
        oldest = now - self.owner.limits.max_message_age_s
        batch = [m for t, m in self.queue if t >= oldest]
        stale = len(self.queue) - len(batch)
        if stale:
            self.owner.stats["dropped_stale"] += stale
        self.queue.clear()
        return batch

    async def run(self) -> None:
        """Connect, pump, and on any failure reconnect with backoff, until closed."""
        limits = self.owner.limits
        delay = 0.05
        rng = self.owner.rng
        while not self.owner.closed:
            try:
                # Not wait_for: on 3.11 it can swallow the cancellation that
                # closes the transport when the connect fails at that moment.
                async with asyncio.timeout(limits.connect_timeout_s):
                    reader, writer = await asyncio.open_connection(*self.addr)
            except (OSError, TimeoutError) as e:
                self.owner.stats["connect_failures"] += 1
                log.debug("%s: connect to node %d at %s:%d failed: %s", self.name, self.peer,
                          *self.addr, e or "timed out")  # fmt: skip
                await asyncio.sleep(delay * (0.5 + rng.random()))
                delay = min(delay * 2, limits.backoff_max_s)
                continue
            delay = 0.05
            tune_socket(writer.get_extra_info("socket"), limits)
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
            if watcher.done() or writer.is_closing():
                raise ConnectionError("peer closed the connection (or the link timed out)")
            batch = self.take(asyncio.get_running_loop().time())
            if not batch:
                continue
            writer.write(encode_batch(batch))
            self.owner.stats["frames_sent"] += 1
            self.owner.stats["messages_sent"] += len(batch)
            await writer.drain()


class UnknownPeerHello(DecodeError):
    """A well-formed hello from a node that is not (or not yet) our peer."""


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
        limits: LinkLimits | None = None,
    ) -> None:
        self.node_id = node_id
        self.cluster = cluster
        self.peers = dict(peers)
        self.deliver = deliver
        self.max_frame = max_frame
        self.rng = rng or random.Random()
        self.limits = limits or LinkLimits()
        self.closed = False
        self.stats: Counter[str] = Counter()
        self._links: dict[NodeId, _Link] = {}
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.Task[None]] = set()
        self._inbound_from: dict[NodeId, asyncio.StreamWriter] = {}
        """The one live inbound connection of each peer that has said hello."""
        self._stopped: set[asyncio.Task[None]] = set()
        """Tasks of links stopped by :meth:`set_peers` that have not finished yet."""

    async def start(self, listen: Address) -> None:
        """Listen for peers on ``listen`` and start connecting out."""
        self._server = await asyncio.start_server(self._accept, *listen)
        for peer, addr in self.peers.items():
            self._start_link(peer, addr)

    def set_peers(self, peers: dict[NodeId, Address]) -> None:
        """Make ``peers`` the peer set (a membership change); from the event loop.

        Before :meth:`start` this only replaces :attr:`peers`. After it, a new
        peer gets a link, a peer at a new address a new link (the old one is
        stopped), and a peer no longer in the set loses its link and its
        inbound connection; a stopped link's queued messages are dropped.
        """
        if self.node_id in peers:
            raise ValueError(f"node {self.node_id} cannot be its own peer")
        new = dict(peers)
        if self._server is None or self.closed:
            self.peers = new
            return
        for peer, addr in self.peers.items():
            if peer in new:
                continue
            log.info("node %d: peer node %d at %s:%d removed", self.node_id, peer, *addr)
            self._stop_link(peer)
            inbound = self._inbound_from.pop(peer, None)
            if inbound is not None:
                inbound.close()
        for peer, addr in new.items():
            old = self.peers.get(peer)
            if old == addr:
                continue
            if old is None:
                log.info("node %d: peer node %d added at %s:%d", self.node_id, peer, *addr)
            else:
                log.info("node %d: peer node %d moved from %s:%d to %s:%d", self.node_id, peer,
                         *old, *addr)  # fmt: skip
                self._stop_link(peer)
            self._start_link(peer, addr)
        self.peers = new

    def _start_link(self, peer: NodeId, addr: Address) -> None:
        link = _Link(self, peer, addr)
        link.task = asyncio.create_task(link.run(), name=link.name)
        self._links[peer] = link

    def _stop_link(self, peer: NodeId) -> None:
        """Cancel a peer's link, dropping (and counting) what it still had queued."""
        link = self._links.pop(peer, None)
        if link is None:
            return
        if link.queue:
            self.stats["dropped_peer_changed"] += len(link.queue)
            link.queue.clear()
        if link.task is not None and not link.task.done():
            link.task.cancel()
            self._stopped.add(link.task)
            link.task.add_done_callback(self._stopped.discard)

    def send(self, msgs: list[Message] | tuple[Message, ...]) -> None:
        """Queue messages; each peer's share leaves in one frame, soon."""
        now = asyncio.get_running_loop().time()
        by_peer: dict[NodeId, list[Message]] = {}
        for m in msgs:
            by_peer.setdefault(m.dst, []).append(m)
        for peer, batch in by_peer.items():
            link = self._links.get(peer)
            if link is None:
                self.stats["dropped_unknown_peer"] += len(batch)
                continue
            link.push(batch, now)

    def connected(self, peer: NodeId) -> bool:
        link = self._links.get(peer)
        return link is not None and link.connected

    async def close(self) -> None:
        self.closed = True
        if self._server is not None:
            self._server.close()
        tasks = [lk.task for lk in self._links.values() if lk.task]
        tasks += [*self._stopped, *self._inbound]
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
        tune_socket(writer.get_extra_info("socket"), self.limits)
        try:
            await self._serve(name, reader, writer)
        except UnknownPeerHello as e:
            # A node that joins dials the members before they all learnt of it:
            # expected for a moment, and it redials.
            self.stats["hello_from_unknown_peer"] += 1
            log.info("%s from %s: closing: %s", name, peername, e)
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
            for peer, w in list(self._inbound_from.items()):
                if w is writer:
                    del self._inbound_from[peer]

    async def _serve(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        frames = FrameReader(self.max_frame)
        peer: NodeId | None = None
        while True:
            if peer is None:
                # Not wait_for: on 3.11 it can swallow the cancellation of close()
                # when the read completes at that moment, and close() then hangs.
                async with asyncio.timeout(HELLO_TIMEOUT):
                    data = await reader.read(65536)
            else:
                data = await reader.read(1 << 20)
            if not data:
                return
            for payload in frames.feed(data):
                body = decode_body(payload, self.max_frame)
                if peer is None:
                    peer = self._check_hello(body)
                    log.info("%s: node %d connected", name, peer)
                    older = self._inbound_from.get(peer)
                    if older is not None:  # its sender reconnected: it is dead
                        self.stats["inbound_superseded"] += 1
                        older.close()
                    self._inbound_from[peer] = writer
                    continue
                if self._inbound_from.get(peer) is not writer:
                    return  # superseded, or the peer was removed: closed already
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
            raise UnknownPeerHello(f"hello from node {body.node}, which is not a peer (yet)")
        return body.node
