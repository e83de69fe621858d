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
