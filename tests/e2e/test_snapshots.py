"""End-to-end snapshots: `drafty serve` processes configured by cluster.toml's [snapshot]."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from drafty.service.config import SnapshotSettings

from .conftest import Cluster
from .test_cluster import write_until_ok

Factory = Callable[..., Cluster]


def info(c: Cluster, i: int) -> dict[str, Any]:
    got: dict[str, Any] = c.client(i, socket_timeout=2).info()
    return got


def wait_for(check: Callable[[], bool], what: str, c: Cluster, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{c.logs()}")


def test_snapshot_settings_reach_the_servers_and_a_wiped_node_is_restored(
    cluster_factory: Factory,
) -> None:
    c = cluster_factory(3, SnapshotSettings(entries=20, bytes=0, keep_entries=5, chunk_bytes=256))
    assert "[snapshot]" in c.path.read_text()
    c.leader()
    acked = {}
    for k in range(60):
        write_until_ok(c, 1 + k % 3, f"key{k}", f"value{k}")
        acked[f"key{k}"] = f"value{k}".encode()

    def snapshotted(i: int) -> bool:
        st = info(c, i)
        return bool(st["snapshots_taken"] >= 1 and st["snapshot_index"] >= 20)

    for i in (1, 2, 3):
        wait_for(lambda i=i: snapshotted(i), f"node {i} to take a snapshot", c)  # type: ignore[misc]
        st = info(c, i)
        assert st["snapshot_term"] >= 1
        assert 1 < st["log_first_index"] <= st["snapshot_index"]
        assert st["log_entries"] == st["last_index"] - st["log_first_index"] + 1
        assert st["log_bytes"] > 0 and "snapshots_installed" in st

    status = subprocess.run(
        [sys.executable, "-m", "drafty", "status", "--config", str(c.path)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert status.stdout.count("snapshot ") == 3, status.stdout
    assert "snapshots taken" in status.stdout

    # A follower loses its data directory while it is down: it comes back
    # through InstallSnapshot (every log is compacted past entry 1).
    follower = next(i for i in (1, 2, 3) if i != c.leader())
    c.kill(follower)
    shutil.rmtree(c.dir / f"node-{follower}")
    others = [i for i in (1, 2, 3) if i != follower]
    for k in range(60, 80):
        write_until_ok(c, others[k % 2], f"key{k}", f"value{k}")
        acked[f"key{k}"] = f"value{k}".encode()
    c.start(follower)
    wait_for(lambda: info(c, follower)["snapshots_installed"] >= 1, "the install", c)
    assert c.client(follower).mget(list(acked)) == list(acked.values())

    # `drafty storage inspect` reads the new node's snapshot files.
    assert c.stop(follower) == 0
    inspect = subprocess.run(
        [sys.executable, "-m", "drafty", "storage", "inspect", str(c.dir / f"node-{follower}")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stdout
    assert ": ok" in inspect.stdout and "would open" in inspect.stdout


def test_a_retried_exactly_once_write_is_answered_from_a_snapshot_after_restarts(
    cluster_factory: Factory,
) -> None:
    """The session's remembered reply lives only in the snapshot (no log is
    kept behind it), every node restarts from it, and the retry of the same
    (session, seq) is answered from it instead of running again."""
    c = cluster_factory(3, SnapshotSettings(entries=100_000, bytes=0, keep_entries=0))
    leader = c.leader()
    r = c.client(leader)
    session = int(r.execute_command("SESSION", "OPEN"))
    assert r.execute_command("SEQ", session, 1, "INCR", "counter") == 1
    for i in (1, 2, 3):
        wait_for(lambda i=i: c.client(i).execute_command("BGSAVE") is not None
                 and info(c, i)["snapshot_index"] >= info(c, leader)["applied_index"] - 1
                 and info(c, i)["snapshot_in_progress"] == 0,
                 f"node {i}'s snapshot", c)  # fmt: skip
        assert info(c, i)["log_entries"] <= 2  # compacted: the INCR entry is gone
    for i in (1, 2, 3):
        c.kill(i)
    for i in (1, 2, 3):
        c.start(i)
    leader = c.leader()
    r = c.client(leader)
    deadline = time.monotonic() + 20
    while True:
        try:
            got = r.execute_command("SEQ", session, 1, "INCR", "counter")
            break
        except redis.ResponseError as e:  # TRYAGAIN while the new leader settles
            assert "TRYAGAIN" in str(e) and time.monotonic() < deadline, e
            time.sleep(0.1)
    assert got == 1  # the remembered reply, not a second increment
    assert r.get("counter") == b"1"
    assert r.execute_command("SEQ", session, 2, "INCR", "counter") == 2


def test_a_node_killed_while_writing_a_snapshot_restarts_cleanly(cluster_factory: Factory) -> None:
    c = cluster_factory(3, SnapshotSettings(entries=1_000_000, bytes=0, keep_entries=10))
    leader = c.leader()
    r = c.client(leader, socket_timeout=30)
    value = b"v" * 100
    for batch in range(200):  # 200,000 keys: a save takes long enough to catch it
        args: list[Any] = []
        for k in range(1000):
            args += [b"key:%d:%d" % (batch, k), value]
        assert r.mset(dict(zip(args[::2], args[1::2], strict=True)))
    victim = next(i for i in (1, 2, 3) if i != leader)
    snapdir = c.dir / f"node-{victim}" / "snap"
    v = c.client(victim, socket_timeout=30)
    v.set_response_callback("BGSAVE", lambda r, **kw: r)  # the reply's text, not True
    wait_for(lambda: info(c, victim)["applied_index"] >= info(c, leader)["commit_index"],
             "the victim to apply everything", c)  # fmt: skip
    assert v.execute_command("BGSAVE") == b"Background saving started"
    deadline = time.monotonic() + 10
    while not list(snapdir.glob("*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.0005)
    caught = bool(list(snapdir.glob("*.tmp")))
    c.kill(victim)
    assert caught, "the save finished before the kill (make the state bigger)"
    c.start(victim)
    wait_for(lambda: c.client(victim).dbsize() == 200_000, "the victim to serve again", c, 60)
    assert not list(snapdir.glob("*.tmp"))  # the interrupted save was thrown away
    assert c.client(victim).get(b"key:199:999") == value
    # It can still take a snapshot, and restart from it.
    v = c.client(victim)
    v.set_response_callback("BGSAVE", lambda r, **kw: r)
    assert v.execute_command("BGSAVE") == b"Background saving started"
    wait_for(lambda: info(c, victim)["snapshot_index"] > 0
             and info(c, victim)["snapshot_in_progress"] == 0, "the second save", c)  # fmt: skip
    assert c.stop(victim) == 0
    c.start(victim)
    wait_for(lambda: c.client(victim).dbsize() == 200_000, "the restart from it", c, 60)
