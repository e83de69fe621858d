"""Leadership transfer on real processes: RAFT TRANSFER and drafty transfer-leader."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis

from .conftest import Cluster
from .test_cluster import write_until_ok

Factory = Callable[..., Cluster]


def test_leadership_moves_where_asked_and_writes_go_on(cluster_factory: Factory) -> None:
    c = cluster_factory(3)
    leader = c.leader()
    write_until_ok(c, leader, "k", "v1")
    target = next(i for i in (1, 2, 3) if i != leader)
    # Asked of the leader: OK once the target leads.
    assert c.client(leader).execute_command("RAFT", "TRANSFER", target) in (True, b"OK")
    assert c.leader() == target
    write_until_ok(c, target, "k", "v2")
    assert c.client(leader).get("k") == b"v2"
    # Asked of a follower: -TRYAGAIN naming the leader.
    with pytest.raises(redis.exceptions.TryAgainError, match=f"leader is node {target}"):
        c.client(leader).execute_command("RAFT", "TRANSFER", leader)
    # Bad targets get errors that say what is wrong.
    with pytest.raises(redis.exceptions.ResponseError, match="not a voter"):
        c.client(target).execute_command("RAFT", "TRANSFER", 9)
    with pytest.raises(redis.exceptions.ResponseError, match="needs a node id"):
        c.client(target).execute_command("RAFT", "TRANSFER", "x")
    # Asking the leader to hand over to itself is already done.
    assert c.client(target).execute_command("RAFT", "TRANSFER", target) in (True, b"OK")
    # The command-line tool finds the leader through any node it is given.
    back = subprocess.run(
        [sys.executable, "-m", "drafty", "transfer-leader", "--server",
         f"127.0.0.1:{c.port(leader)}", "--to", str(leader)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert back.returncode == 0, back.stderr
    assert f"node {leader} leads now" in back.stdout
    deadline = time.monotonic() + 10
    while c.leader() != leader and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.leader() == leader
    write_until_ok(c, leader, "k", "v3")
