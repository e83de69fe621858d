"""Real-process clusters for end-to-end tests: `drafty serve` children on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis

from drafty.service.config import (
    ClusterConfig,
    NodeEntry,
    ReadSettings,
    SnapshotSettings,
    render,
)
from drafty.service.localcluster import free_port_base

_free_base = free_port_base  # the name the driver tests import


class Cluster:
    """N `drafty serve` processes with their data under a temporary directory."""

    def __init__(
        self,
        directory: Path,
        n: int,
        snapshot: SnapshotSettings | None = None,
        reads: ReadSettings | None = None,
    ) -> None:
        self.dir = directory
        base = _free_base(n)
        self.config = ClusterConfig(
            "e2e",
            {
                i: NodeEntry(i, ("127.0.0.1", base + 100 + i - 1), ("127.0.0.1", base + i - 1))
                for i in range(1, n + 1)
            },
            tick_ms=50,
            snapshot=snapshot or SnapshotSettings(),
            reads=reads or ReadSettings(),
        )
        self.path = directory / "cluster.toml"
        self.path.write_text(render(self.config))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        for i in self.config.nodes:
            self.start(i)

    def start(self, i: int) -> None:
        log = open(self.dir / f"node-{i}.log", "ab")  # noqa: SIM115
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "drafty", "serve", "--config", str(self.path), "--id", str(i),
             "--data-dir", str(self.dir / f"node-{i}")],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def kill(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(10)

    def stop(self, i: int) -> int:
        self.procs[i].send_signal(signal.SIGTERM)
        return self.procs[i].wait(15)

    def port(self, i: int) -> int:
        return self.config.nodes[i].client[1]

    def client(self, i: int, socket_timeout: float = 10) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port(i), socket_timeout=socket_timeout)

    def alive(self) -> list[int]:
        return [i for i, p in self.procs.items() if p.poll() is None]

    def leader(self, among: list[int] | None = None, timeout: float = 20.0) -> int:
        """The leader id as reported by a majority-agreeing live node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in among or self.alive():
                try:
                    got = self.client(i, socket_timeout=1).execute_command("RAFT", "LEADER")
                except (redis.RedisError, OSError):
                    continue
                if got and int(got[0]) in (among or self.alive()):
                    return int(got[0])
            time.sleep(0.1)
        raise AssertionError(f"no leader within {timeout} s; logs in {self.dir}")

    def logs(self) -> str:
        return "\n".join(
            f"--- node {i}\n" + (self.dir / f"node-{i}.log").read_text()[-3000:]
            for i in self.config.nodes
        )

    def shutdown(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def finish(made: Sequence[Cluster]) -> None:
    """Stop every cluster a test made; print their logs if DRAFTY_E2E_SHOW_LOGS is set."""
    for c in made:
        c.shutdown()
    if os.environ.get("DRAFTY_E2E_SHOW_LOGS"):
        for c in made:
            print(c.logs())


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[type[Cluster] | object]:
    made: list[Cluster] = []

    def make(
        n: int = 3, snapshot: SnapshotSettings | None = None, reads: ReadSettings | None = None
    ) -> Cluster:
        c = Cluster(tmp_path, n, snapshot, reads)
        made.append(c)
        return c

    yield make
    finish(made)
