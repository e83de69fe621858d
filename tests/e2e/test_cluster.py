"""End-to-end: real `drafty serve` processes, real clients (redis-py, redis-cli)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable

import pytest
import redis

from .conftest import Cluster

Factory = Callable[..., Cluster]


def write_until_ok(c: Cluster, node: int, key: str, value: str, seconds: float = 20) -> None:
    """Write through ``node`` until acknowledged (retrying TRYAGAIN/UNCERTAIN)."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            assert c.client(node).set(key, value) is True
            return
        except (redis.RedisError, OSError) as e:
            last = e
            time.sleep(0.1)
    raise AssertionError(f"write of {key} not acknowledged in {seconds} s: {last}")


def test_writes_and_reads_through_every_node(cluster_factory: Factory) -> None:
    c = cluster_factory(3)
    c.leader()
    for i in (1, 2, 3):
        write_until_ok(c, i, f"k{i}", f"v{i}")
    for i in (1, 2, 3):
        r = c.client(i)
        assert r.mget(["k1", "k2", "k3"]) == [b"v1", b"v2", b"v3"]
        assert r.incr("counter") > 0
    assert c.client(2).get("counter") == b"3"
    assert c.client(1).execute_command("CAS", "k1", "v1", "w1") == 1
    assert c.client(3).execute_command("CAS", "k1", "v1", "x") == 0
    assert c.client(3).get("k1") == b"w1"


def test_leader_kill_then_new_leader_and_catch_up(cluster_factory: Factory) -> None:
    c = cluster_factory(3)
    old = c.leader()
    write_until_ok(c, old, "before", "1")
    c.kill(old)
    t0 = time.monotonic()
    others = [i for i in (1, 2, 3) if i != old]
    new = c.leader(among=others)
    assert new != old
    write_until_ok(c, others[0], "after", "2")
    assert time.monotonic() - t0 < 10, "writes did not resume within seconds"
    c.start(old)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if c.client(old).get("after") == b"2":
                break
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.2)
    else:
        raise AssertionError("restarted node did not catch up:\n" + c.logs())
    assert c.client(old).get("before") == b"1"


def test_full_restart_keeps_acknowledged_writes(cluster_factory: Factory) -> None:
    c = cluster_factory(3)
    c.leader()
    acked = {}
    for k in range(30):
        write_until_ok(c, 1 + k % 3, f"key{k}", f"value{k}")
        acked[f"key{k}"] = f"value{k}".encode()
    for i in (1, 2, 3):
        assert c.stop(i) == 0, f"node {i} did not stop cleanly:\n" + c.logs()
    for i in (1, 2, 3):
        c.start(i)
    c.leader()
    r = c.client(2)
    assert r.mget(list(acked)) == list(acked.values())


def test_five_nodes_survive_two_failures(cluster_factory: Factory) -> None:
    c = cluster_factory(5)
    first = c.leader()
    victims = [first, 1 if first != 1 else 2]
    for v in victims:
        c.kill(v)
    survivors = [i for i in range(1, 6) if i not in victims]
    c.leader(among=survivors)
    write_until_ok(c, survivors[0], "five", "alive")
    assert c.client(survivors[-1]).get("five") == b"alive"


def _raw(port: int, data: bytes, read_for: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(read_for)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out


def test_bad_input_gets_errors_and_node_stays_healthy(cluster_factory: Factory) -> None:
    c = cluster_factory(3)
    c.leader()
    port = c.port(1)
    assert _raw(port, b"*1\r\n$1073741824\r\n").startswith(b"-ERR Protocol error")
    assert _raw(port, b"*2\r\n$3\r\nGET\r\n:oops\r\n").startswith(b"-ERR Protocol error")
    garbage = bytes(range(256)) * 4
    reply = _raw(port, b"*x\r\n" + garbage)
    assert reply.startswith(b"-ERR Protocol error")
    assert _raw(port, b"NOSUCHCOMMAND a b\r\n").startswith(b"-ERR unknown command")
    assert _raw(port, b"*1\r\n$3\r\nGET\r\n").startswith(b"-ERR wrong number of arguments")
    r = c.client(1)
    with pytest.raises(redis.ResponseError, match="wrong number"):
        r.execute_command("SET", "onlykey")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.execute_command("INCRBY", "k", "nope")
    assert r.ping() is True
    write_until_ok(c, 1, "still", "fine")
    assert c.client(3).get("still") == b"fine"
    assert c.procs[1].poll() is None


def test_retry_after_lost_reply_applies_incr_once(cluster_factory: Factory) -> None:
    c = cluster_factory(3)
    c.leader()
    write_until_ok(c, 1, "warmup", "1")
    opened = _raw(c.port(2), b"*2\r\n$7\r\nSESSION\r\n$4\r\nOPEN\r\n")
    assert opened.startswith(b":"), opened
    sid = opened[1:-2]
    cmd = b"*5\r\n$3\r\nSEQ\r\n$%d\r\n%s\r\n$1\r\n1\r\n$4\r\nINCR\r\n$5\r\ncount\r\n" % (
        len(sid),
        sid,
    )
    # First attempt: the reply is lost (the client hangs up without reading).
    with socket.create_connection(("127.0.0.1", c.port(2))) as s:
        s.sendall(cmd)
    time.sleep(1.0)
    # The retry, to another node, with the same client id and sequence number.
    assert _raw(c.port(3), cmd) == b":1\r\n"
    assert _raw(c.port(1), cmd) == b":1\r\n"
    assert c.client(1).get("count") == b"1"
    # The next sequence number is a new write.
    nxt = cmd.replace(b"$1\r\n1\r\n", b"$1\r\n2\r\n")
    assert _raw(c.port(1), nxt) == b":2\r\n"


def test_a_command_of_an_unknown_session_is_answered_sessionexpired(
    cluster_factory: Factory,
) -> None:
    """Issue 8, defect 2: the server answered ``-ERR internal error`` here, so the
    native client raised CommandError where it must open a new session."""
    c = cluster_factory(3)
    c.leader()
    write_until_ok(c, 1, "warmup", "1")
    for seq in (b"1", b"2"):  # a first request is no exception: sessions are opened explicitly
        cmd = b"*5\r\n$3\r\nSEQ\r\n$4\r\n7778\r\n$1\r\n%s\r\n$4\r\nINCR\r\n$1\r\nx\r\n" % seq
        assert _raw(c.port(2), cmd).startswith(b"-SESSIONEXPIRED ")
    assert c.client(1).get("x") is None


def test_native_client_exactly_once_across_leader_kill(cluster_factory: Factory) -> None:
    from drafty.client import Client

    c = cluster_factory(3)
    leader = c.leader()
    addrs = [f"127.0.0.1:{c.port(i)}" for i in (1, 2, 3)]
    with Client(addrs, timeout=1.0, deadline=30) as cl:
        for _ in range(5):
            cl.incr("n")
        c.kill(leader)
        for _ in range(5):
            cl.incr("n")
        assert cl.get("n") == b"10"


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli not installed")
def test_redis_cli_talks_to_the_cluster(cluster_factory: Factory) -> None:
    c = cluster_factory(3)
    c.leader()
    write_until_ok(c, 1, "warm", "up")

    def cli(*args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(c.port(2)), *args], capture_output=True, timeout=20
        )
        return out.stdout.decode().strip()

    assert cli("SET", "greeting", "hello") == "OK"
    assert cli("GET", "greeting") == "hello"
    assert cli("PING") == "PONG"
    assert "role:" in cli("INFO")
    assert cli("-3", "GET", "greeting") == "hello"


def _peer_port(c: Cluster, i: int) -> int:
    return c.config.nodes[i].peer[1]


def test_garbage_on_the_peer_port_closes_that_connection_only(cluster_factory: Factory) -> None:
    """A peer that sends garbage, an oversized frame or a wrong hello is cut off;
    the node keeps serving and replicating."""
    from drafty.transport.codec import HEADER, Hello, encode_hello

    c = cluster_factory(3)
    c.leader()
    write_until_ok(c, 1, "before", "1")
    port = _peer_port(c, 2)
    attacks = [
        bytes(range(256)) * 8,  # not a frame at all
        HEADER.pack(1 << 30, 1),  # a 1 GiB frame announced
        HEADER.pack(5, 99) + b"xxxx",  # unknown version
        encode_hello(Hello("another-cluster", 1)),  # wrong cluster
        encode_hello(Hello("e2e", 42)),  # not a member
        encode_hello(Hello("e2e", 1)) + HEADER.pack(3, 1) + b"\xc1\xc1",  # invalid msgpack
    ]
    for attack in attacks:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(attack)
            s.settimeout(5)
            with contextlib.suppress(ConnectionResetError):  # a reset is a close too
                assert s.recv(1) == b"", "the node should close the connection"
    assert c.procs[2].poll() is None
    write_until_ok(c, 2, "after", "2")
    assert c.client(3).get("after") == b"2"
    log = (c.dir / "node-2.log").read_text()
    assert "peer sent garbage" in log


def test_shutdown_answers_every_waiting_client(cluster_factory: Factory) -> None:
    """SIGTERM with a write waiting for a quorum that is gone: the client gets
    -UNCERTAIN (or -TRYAGAIN), never a silently dropped connection."""
    c = cluster_factory(3)
    leader = c.leader()
    write_until_ok(c, leader, "k", "v")
    others = [i for i in (1, 2, 3) if i != leader]
    for i in others:
        c.kill(i)
    with socket.create_connection(("127.0.0.1", c.port(leader)), timeout=10) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nw\r\n")
        time.sleep(0.5)  # the write is in the log, waiting for a quorum
        c.procs[leader].send_signal(15)
        s.settimeout(10)
        reply = s.recv(1024)
    assert reply.startswith((b"-UNCERTAIN", b"-TRYAGAIN")), reply
    assert c.procs[leader].wait(15) == 0


def test_deep_pipeline_is_answered_in_order(cluster_factory: Factory) -> None:
    """6,000 pipelined INCRs in one write (more than the server's read-ahead
    limit, so backpressure engages): every reply arrives, in order."""
    c = cluster_factory(3)
    leader = c.leader()
    write_until_ok(c, leader, "warm", "up")
    n = 6000
    with socket.create_connection(("127.0.0.1", c.port(leader)), timeout=30) as s:
        s.sendall(b"*2\r\n$4\r\nINCR\r\n$1\r\np\r\n" * n)
        data = b""
        while data.count(b"\r\n") < n:
            chunk = s.recv(1 << 16)
            assert chunk, "connection closed early"
            data += chunk
    replies = [int(line[1:]) for line in data.split(b"\r\n")[:n]]
    assert replies == list(range(1, n + 1))
