"""The peer transport's bounds and liveness (issue 10).

The partition test needs root: it runs a pair of transports in a private
network namespace (``unshare -n``) and drops their packets silently with
iptables, as a real partition does, then measures how long the link takes to
carry a message again after the heal.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from drafty.core import Heartbeat, Message
from drafty.transport.codec import Hello, encode_batch, encode_hello
from drafty.transport.tcp import LinkLimits, PeerTransport, _Link, tune_socket


def _transport(limits: LinkLimits, got: list[Message] | None = None) -> PeerTransport:
    sink = got if got is not None else []
    return PeerTransport(1, "c", {2: ("127.0.0.1", 1)}, sink.extend, limits=limits)


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_queued_messages"):
        LinkLimits(max_queued_messages=0)
    with pytest.raises(ValueError, match="user_timeout_s"):
        LinkLimits(user_timeout_s=0)
    with pytest.raises(ValueError, match="keepalive_idle_s"):
        LinkLimits(keepalive_idle_s=0)


def test_a_link_queue_is_bounded_in_count_and_in_age() -> None:
    async def scenario() -> None:
        t = _transport(LinkLimits(max_queued_messages=3, max_message_age_s=1.0))
        link = _Link(t, 2, ("127.0.0.1", 1))
        link.push([Heartbeat(1, 2, 1, i) for i in range(5)], now=10.0)
        assert [m.commit for _, m in link.queue] == [2, 3, 4]  # type: ignore[union-attr]
        assert t.stats["dropped_queue_full"] == 2
        assert len(link.take(now=10.5)) == 3 and not link.queue  # fresh: all sent
        link.push([Heartbeat(1, 2, 1, 7)], now=10.0)
        link.push([Heartbeat(1, 2, 1, 9)], now=10.8)
        # At 11.5 the first is 1.5 s old: dropped unsent; the second is kept.
        assert link.take(now=11.5) == [Heartbeat(1, 2, 1, 9)]
        assert t.stats["dropped_stale"] == 1 and not link.queue

    asyncio.run(scenario())


def test_peer_sockets_get_the_liveness_options() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    try:
        tune_socket(client, LinkLimits(user_timeout_s=1.5, keepalive_idle_s=3))
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 1500
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 3
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        client.close()
        server.close()


def test_a_peers_new_connection_closes_its_old_one() -> None:
    """A sender that reconnected has given up on its old connection: the
    receiver keeps one inbound connection per peer, never a pile of them."""

    async def scenario() -> None:
        got: list[Message] = []
        receiver = PeerTransport(2, "c", {1: ("127.0.0.1", 1)}, got.extend)
        listen = socket.create_server(("127.0.0.1", 0))
        port = listen.getsockname()[1]
        listen.close()
        await receiver.start(("127.0.0.1", port))
        try:
            r1, w1 = await asyncio.open_connection("127.0.0.1", port)
            w1.write(encode_hello(Hello("c", 1)))
            await w1.drain()
            await asyncio.sleep(0.1)
            _r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            w2.write(encode_hello(Hello("c", 1)) + encode_batch([Heartbeat(1, 2, 1, 7)]))
            await w2.drain()
            assert await asyncio.wait_for(r1.read(1), 2.0) == b""  # the old one is closed
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.02)
            assert got == [Heartbeat(1, 2, 1, 7)]
            assert receiver.stats["inbound_superseded"] == 1
            w1.close()
            w2.close()
        finally:
            await receiver.close()

    asyncio.run(scenario())


PARTITION_SCRIPT = textwrap.dedent(
    """
    import asyncio, socket, subprocess, sys, time
    from drafty.core import Heartbeat
    from drafty.transport.tcp import LinkLimits, PeerTransport

    PARTITION_S = float(sys.argv[1])

    def free_port():
        s = socket.create_server(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

    def rules(op, port):
        for chain, way in (("INPUT", "--dport"), ("INPUT", "--sport")):
            subprocess.run(["iptables", op, chain, "-p", "tcp", way, str(port), "-j", "DROP"],
                           check=True)

    async def main():
        pa, pb = free_port(), free_port()
        got = []
        a = PeerTransport(1, "c", {2: ("127.0.0.1", pb)}, lambda ms: None,
                          limits=LinkLimits())
        b = PeerTransport(2, "c", {1: ("127.0.0.1", pa)},
                          lambda ms: got.extend((time.monotonic(), m) for m in ms))
        await a.start(("127.0.0.1", pa)); await b.start(("127.0.0.1", pb))
        n = 0
        async def beat():
            nonlocal n
            while True:
                n += 1; a.send([Heartbeat(1, 2, 1, n)]); await asyncio.sleep(0.05)
        beater = asyncio.create_task(beat())
        await asyncio.sleep(1.0)
        assert got, "no message crossed before the partition"
        rules("-A", pb)
        await asyncio.sleep(PARTITION_S)
        rules("-D", pb)
        healed, first = time.monotonic(), n
        while not any(t > healed and m.commit > first for t, m in got):
            await asyncio.sleep(0.01)
            if time.monotonic() - healed > 60:
                break
        delivered = min((t for t, m in got if t > healed and m.commit > first), default=None)
        print("RECOVERED", -1 if delivered is None else delivered - healed)
        print("STALE", a.stats["dropped_stale"])
        beater.cancel()
        await a.close(); await b.close()

    asyncio.run(main())
    """
)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables"),
    reason="needs root, unshare and iptables for a private network namespace",
)
def test_a_link_carries_messages_again_soon_after_a_silent_partition_heals() -> None:
    """8 s of silent packet loss: TCP alone would next retransmit 4-5 s after
    the heal (exponential backoff); the link's user timeout and short
    reconnect bring it back within about 1.5 s."""
    cmd = ["unshare", "-n", "sh", "-c",
           f'ip link set lo up && exec "{sys.executable}" -c "$0" 8', PARTITION_SCRIPT]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    recovered = float(lines["RECOVERED"])
    assert 0 <= recovered < 2.0, f"link back {recovered:.2f} s after the heal\n{out.stderr[-2000:]}"
    # Messages queued during the partition were too old to send afterwards.
    assert int(lines["STALE"]) > 0
