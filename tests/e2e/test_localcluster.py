"""`drafty cluster`: ports checked before anything starts, a node that cannot
start reported at once with the end of its log."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from drafty.service.localcluster import free_port_base, make_config, taken_ports


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drafty", "cluster", *args],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_peer_ports_can_be_chosen() -> None:
    config = make_config(3, 7379, peer_port=9000)
    assert [n.peer[1] for n in config.nodes.values()] == [9000, 9001, 9002]
    assert [n.client[1] for n in config.nodes.values()] == [7379, 7380, 7381]
    assert make_config(2, 7379).nodes[2].peer == ("127.0.0.1", 7480)  # default: port + 100


def test_a_taken_peer_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    base = free_port_base(3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 101))  # node 2's peer port
        busy.listen()
        assert taken_ports(make_config(3, base).nodes) == [
            f"127.0.0.1:{base + 101} (node 2's peer port): Address already in use"
        ]
        started = time.monotonic()
        got = run("--nodes", "3", "--dir", str(tmp_path / "c"), "--port", str(base))
    assert got.returncode == 2 and time.monotonic() - started < 20
    assert f"127.0.0.1:{base + 101} (node 2's peer port)" in got.stderr
    assert "--peer-port" in got.stderr
    assert not (tmp_path / "c" / "node-1").exists()  # nothing was started


def test_a_node_that_cannot_start_is_reported_at_once_with_its_log(tmp_path: Path) -> None:
    base = free_port_base(1)
    d = tmp_path / "c"
    d.mkdir()
    (d / "node-1").write_text("not a data directory")  # the node cannot open its data
    started = time.monotonic()
    got = run("--nodes", "1", "--dir", str(d), "--port", str(base))
    took = time.monotonic() - started
    assert got.returncode == 1, got
    assert took < 25, took  # not the 30 s wait for a leader
    assert "node 1 exited with status" in got.stderr and "node-1.log" in got.stderr
    tail = got.stderr.split("the end of", 1)[1]  # the log's tail, with the reason
    assert "cannot open its data directory" in tail and "File exists" in tail, tail
