"""The ``drafty serve`` processes under torture: start, kill, pause, find the leader.

Theory of operation
-------------------
:class:`Nodes` writes ``DIR/cluster.toml`` (with a ``[snapshot]`` table that
makes snapshots and log compaction happen during the run) and runs node ``i``
as ``python -m drafty serve --config DIR/cluster.toml --id i --data-dir
DIR/node-i`` inside its network namespace (:meth:`drafty.torture.netns.Network.wrap`;
``ip netns exec`` execs the command, so the child's pid is the node's),
appending its output to ``DIR/node-i.log``. In a namespace every node has its
own address and the same ports (clients 6379, peers 7000); on loopback the
ports are a free range below the ephemeral ports.

Faults on processes are signals: SIGKILL (then a restart later), SIGSTOP and
SIGCONT. :meth:`Nodes.unexpected_exits` notices a node that died without
being killed (a crash: reported as a bug) and restarts it so the run goes
on. :meth:`Nodes.leader` asks every node ``INFO`` and takes the node that
says it is leader in the highest term.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..service.config import ClusterConfig, NodeEntry, ReadSettings, SnapshotSettings, render
from ..service.localcluster import free_port_base
from .netns import Net
from .resp import Address, Conn, call_once

CLIENT_PORT = 6379
PEER_PORT = 7000


def make_config(
    net: Net, n: int, snapshot: SnapshotSettings, reads: ReadSettings | None = None
) -> ClusterConfig:
    if net.mode == "netns":
        entries = {
            i: NodeEntry(i, (net.host(i), PEER_PORT), (net.host(i), CLIENT_PORT))
            for i in range(1, n + 1)
        }
    else:
        base = free_port_base(n)
        entries = {
            i: NodeEntry(i, ("127.0.0.1", base + 100 + i - 1), ("127.0.0.1", base + i - 1))
            for i in range(1, n + 1)
        }
    return ClusterConfig(
        "torture", entries, tick_ms=50, snapshot=snapshot, reads=reads or ReadSettings()
    )


def parse_info(text: bytes) -> dict[str, str]:
    """``INFO`` output as a dict of its ``field:value`` lines."""
    out = {}
    for line in text.decode(errors="replace").splitlines():
        k, sep, v = line.partition(":")
        if sep and not k.startswith("#"):
            out[k.strip()] = v.strip()
    return out


class Nodes:
    """The node processes of one run."""

    def __init__(
        self,
        net: Net,
        directory: Path,
        n: int,
        snapshot: SnapshotSettings,
        reads: ReadSettings | None = None,
    ) -> None:
        self.net = net
        self.dir = directory
        self.config = make_config(net, n, snapshot, reads)
        self.path = directory / "cluster.toml"
        self.path.write_text(render(self.config))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.down: set[int] = set()
        """Nodes killed on purpose (not yet restarted)."""
        self.paused: set[int] = set()

    @property
    def ids(self) -> list[int]:
        return sorted(self.config.nodes)

    def client(self, i: int) -> Address:
        return self.config.nodes[i].client

    def start(self, i: int) -> None:
        log = open(self.dir / f"node-{i}.log", "ab")  # noqa: SIM115 - the child keeps it
        argv = [
            sys.executable,
            "-m",
            "drafty",
            "serve",
            "--config",
            str(self.path),
            "--id",
            str(i),
            "--data-dir",
            str(self.dir / f"node-{i}"),
        ]
        try:
            self.procs[i] = subprocess.Popen(
                self.net.wrap(i, argv), stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        self.down.discard(i)

    def start_all(self) -> None:
        for i in self.ids:
            self.start(i)

    def kill(self, i: int) -> None:
        self.down.add(i)
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(10)
        self.paused.discard(i)

    def pause(self, i: int) -> None:
        self.paused.add(i)
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGCONT)
        self.paused.discard(i)

    def unexpected_exits(self) -> list[tuple[int, int]]:
        """Nodes that exited without being killed: ``(id, status)``; each is restarted."""
        dead = []
        for i, p in self.procs.items():
            code = p.poll()
            if code is not None and i not in self.down:
                dead.append((i, code))
                self.start(i)
        return dead

    async def wait_listening(self, i: int, timeout: float) -> float | None:
        """Seconds until node ``i`` accepts connections (None if not within ``timeout``)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                conn = await Conn.open(self.client(i), 0.5, self.net.socket)
                conn.close()
                return time.monotonic() - start
            except (OSError, TimeoutError):
                await asyncio.sleep(0.02)
        return None

    async def info(self, i: int, timeout: float = 0.5) -> dict[str, str] | None:
        try:
            got = await call_once(self.client(i), "INFO", timeout=timeout, factory=self.net.socket)
        except (OSError, TimeoutError, ConnectionError):
            return None
        return parse_info(got) if isinstance(got, bytes) else None

    async def leader(self, timeout: float = 3.0) -> int | None:
        """The node that says it leads in the highest term (None if none within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            up = [i for i in self.ids if i not in self.down and i not in self.paused]
            infos = await asyncio.gather(*(self.info(i) for i in up))
            best: tuple[int, int] | None = None
            for i, info in zip(up, infos, strict=True):
                if info and info.get("role") == "leader":
                    term = int(info.get("term", "0"))
                    if best is None or term > best[0]:
                        best = (term, i)
            if best is not None:
                return best[1]
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.1)

    def stop_all(self, grace: float = 10.0) -> list[str]:
        """Stop every node (SIGCONT, SIGTERM, then SIGKILL after ``grace``); problems seen."""
        notes = []
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for i, p in self.procs.items():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                notes.append(f"node {i} did not stop within {grace:.0f} s of SIGTERM; killed")
                p.kill()
                p.wait(10)
        return notes
