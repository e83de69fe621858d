"""Reads on real processes: never in the log, ReadIndex or lease, and
READONLY's stale local reads (issue 10)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from drafty.service.config import ReadSettings

from .conftest import Cluster
from .test_cluster import write_until_ok

Factory = Callable[..., Cluster]


def counts(c: Cluster, i: int) -> dict[str, str]:
    """INFO's fields (every section), as text."""
    return {k: str(v) for k, v in c.client(i).info().items()}


@pytest.mark.parametrize("lease", [False, True], ids=["readindex", "lease"])
def test_reads_add_no_log_entry_and_are_counted_by_mode(
    cluster_factory: Factory, lease: bool
) -> None:
    c = cluster_factory(3, reads=ReadSettings(lease=lease))
    leader = c.leader()
    write_until_ok(c, leader, "k", "v")
    follower = next(i for i in (1, 2, 3) if i != leader)
    time.sleep(0.3)  # let the heartbeats settle the followers' commit
    before = {i: counts(c, i)["last_index"] for i in (1, 2, 3)}
    for _ in range(50):
        assert c.client(leader).get("k") == b"v"
        assert c.client(follower).mget(["k", "nope"]) == [b"v", None]
    after = {i: counts(c, i) for i in (1, 2, 3)}
    # A read-only load adds no entry to any log.
    assert {i: a["last_index"] for i, a in after.items()} == before
    mode = "lease" if lease else "readindex"
    assert all(a["read_mode"] == mode for a in after.values())
    assert int(after[leader]["reads_linearizable"]) >= 50
    assert int(after[follower]["reads_linearizable"]) >= 50
    lead = after[leader]
    if lease:  # the leader answered (nearly) all of them from its lease
        assert int(lead["reads_lease_answered"]) >= 90, lead
    else:
        assert int(lead["reads_lease_answered"]) == 0
        assert int(lead["reads_round_confirmed"]) >= 100, lead


def test_readonly_connections_read_local_state_even_without_a_leader(
    cluster_factory: Factory,
) -> None:
    c = cluster_factory(3)
    leader = c.leader()
    write_until_ok(c, leader, "k", "v")
    lone = next(i for i in (1, 2, 3) if i != leader)
    deadline = time.monotonic() + 10
    while c.client(lone).get("k") != b"v" and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in (1, 2, 3):
        if i != lone:
            c.kill(i)
    r = c.client(lone, socket_timeout=10)
    # Linearizable (the default): no majority, so no read can be confirmed.
    with pytest.raises(redis.exceptions.TryAgainError, match="could not be confirmed"):
        r.get("k")
    # READONLY: answered from this node's own state at once (possibly stale).
    assert r.execute_command("READONLY") in (True, b"OK")
    assert r.get("k") == b"v" and r.exists("k") == 1
    with pytest.raises(redis.exceptions.RedisError):
        r.set("k", "w")  # writes still need the cluster (-TRYAGAIN or -UNCERTAIN)
    stats = counts(c, lone)
    assert int(stats["reads_stale"]) == 2 and stats["readonly_connections"] == "1"
    assert r.execute_command("READWRITE") in (True, b"OK")
    with pytest.raises(redis.exceptions.TryAgainError):
        r.get("k")
