"""``drafty cluster``: a local cluster of real ``drafty serve`` processes.

Writes ``DIR/cluster.toml`` (node i serves Redis clients on ``PORT+i-1`` and
Raft peers on ``PEER_PORT+i-1``, ``PORT+100`` unless ``--peer-port`` says
otherwise), checks that every one of those ports is free (and starts
nothing if one is not, naming it), starts one process per node with its data
in ``DIR/node-i`` and its log in ``DIR/node-i.log``, waits for a leader,
writes a key through one node and reads it back through another to show the
cluster working, then keeps running until Ctrl-C (or SIGTERM), when it stops
every node cleanly. A node that dies, at start-up or later, is reported at
once with its exit status and the end of its log, and the others stopped.
Restarting with the same DIR brings every node back with its data.

Growing: run again on the same DIR with a larger ``--nodes`` and the nodes
past those of ``cluster.toml`` start with ``drafty serve --join`` (same port
scheme), add themselves as learners and are promoted once caught up;
cluster.toml is left as it was (it only seeds a new cluster; the log holds
the membership). Shrinking goes through ``drafty member remove`` (the
README shows how), since which nodes to remove is the operator's choice.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..client import AsyncClient
from .config import ClusterConfig, NodeEntry, load, render
from .join import JOINED_NAME


def free_port_base(span: int) -> int:
    """A port p such that p..p+span-1 and p+100..p+100+span-1 are free on
    127.0.0.1 now (the client and peer ports of ``make_config``).

    Drawn below Linux's ephemeral range (32768 and up), so the ports cannot be
    taken meanwhile by some process's outgoing connection.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, 32000)
        ports = [base + k for k in range(span)] + [base + 100 + k for k in range(span)]
        try:
            for p in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range found")


def make_config(
    nodes: int, port: int, host: str = "127.0.0.1", peer_port: int | None = None
) -> ClusterConfig:
    """Node i serves clients on ``port + i - 1`` and peers on ``peer_port + i - 1``
    (``peer_port`` defaults to ``port + 100``)."""
    peers = port + 100 if peer_port is None else peer_port
    entries = {
        i: NodeEntry(i, (host, peers + i - 1), (host, port + i - 1)) for i in range(1, nodes + 1)
    }
    return ClusterConfig("local", entries)


def taken_ports(entries: dict[int, NodeEntry]) -> list[str]:
    """The client and peer ports of ``entries`` that cannot be bound now, described."""
    taken = []
    for i, e in sorted(entries.items()):
        for what, (host, port) in (("client", e.client), ("peer", e.peer)):
            try:
                with socket.socket() as s:
                    s.bind((host, port))
            except OSError as err:
                taken.append(f"{host}:{port} (node {i}'s {what} port): {err.strerror or err}")
    return taken


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line for line in text[-lines:])


def start_processes(
    config: ClusterConfig,
    path: Path,
    directory: Path,
    extra: list[str] | None = None,
    joiners: dict[int, NodeEntry] | None = None,
) -> dict[int, subprocess.Popen[bytes]]:
    """One ``drafty serve`` per node of ``config``, and one ``--join`` per joiner."""
    procs: dict[int, subprocess.Popen[bytes]] = {}
    members = {**(joiners or {}), **config.nodes}
    seed = "{}:{}".format(*members[min(members)].client)
    for i in sorted(config.nodes) + sorted(joiners or {}):
        logfile = open(directory / f"node-{i}.log", "ab")  # noqa: SIM115 - child keeps it
        cmd = [sys.executable, "-m", "drafty", "serve", "--id", str(i),
               "--data-dir", str(directory / f"node-{i}"), *(extra or [])]  # fmt: skip
        if i in config.nodes:
            cmd += ["--config", str(path)]
        else:
            j = (joiners or {})[i]
            cmd += ["--join", seed, "--peer", "{}:{}".format(*j.peer),
                    "--client", "{}:{}".format(*j.client)]  # fmt: skip
        procs[i] = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT)
        logfile.close()
    return procs


async def _find_leader(config: ClusterConfig, seconds: float) -> tuple[int, str] | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for n in config.nodes.values():
            try:
                async with AsyncClient([n.client], timeout=0.5, deadline=0.5) as c:
                    got = await c.execute("RAFT", "LEADER")
            except Exception:
                continue
            if isinstance(got, list) and len(got) == 2:
                return int(got[0]), got[1].decode()
        await asyncio.sleep(0.2)
    return None


async def _show_work(config: ClusterConfig) -> None:
    ids = sorted(config.nodes)
    first, last = config.nodes[ids[0]].client, config.nodes[ids[-1]].client
    stamp = time.strftime("%H:%M:%S")
    async with AsyncClient([first]) as c:
        await c.set("hello", f"world at {stamp}")
        n = await c.incr("cluster:starts")
    async with AsyncClient([last]) as c:
        value = await c.get("hello")
    print(f"wrote hello through node {ids[0]} and read it back through node {ids[-1]}: "
          f"{value!r}; this cluster has been started {n} time(s)")  # fmt: skip


def _plan(
    config: ClusterConfig, directory: Path, nodes: int, port: int, peer_port: int | None
) -> tuple[ClusterConfig, dict[int, NodeEntry]]:
    """Which seed nodes to start, and which nodes join (new, or joined before).

    A seed node whose data directory is gone while others have data was
    removed (or is being replaced): starting it empty with cluster.toml's
    seed would make it a voter of a membership long changed, so it is left
    out. Nodes that joined before (their directory has ``joined.toml``) are
    started again even past ``nodes``."""
    has_data = any((directory / f"node-{i}").exists() for i in range(1, 100))
    seeds = {}
    for i, e in config.nodes.items():
        if has_data and not (directory / f"node-{i}").exists():
            print(f"node {i} has no data directory: not started (removed from the cluster? "
                  "a replacement joins with a new id)")  # fmt: skip
            continue
        seeds[i] = e
    joined = [i for i in range(1, 100) if (directory / f"node-{i}" / JOINED_NAME).exists()]
    top = max([nodes, *joined])
    grown = make_config(top, port, peer_port=peer_port)
    joiners = {
        i: e
        for i, e in grown.nodes.items()
        if i not in config.nodes and (i <= nodes or i in joined)
    }
    return ClusterConfig(config.name, seeds, config.tick_ms, config.snapshot, config.reads), joiners


def run_cluster(nodes: int, directory: Path, port: int, peer_port: int | None = None) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cluster.toml"
    if path.exists():
        config = load(path)
        if nodes < len(config.nodes):
            print(f"{path} seeds {len(config.nodes)} nodes; to shrink a cluster remove members "
                  "with `drafty member remove ID` (see the README)", file=sys.stderr)  # fmt: skip
            return 2
        first = config.nodes[min(config.nodes)]
        port = first.client[1] - (first.id - 1)
        peer_port = first.peer[1] - (first.id - 1)
    else:
        config = make_config(nodes, port, peer_port=peer_port)
    config, joiners = _plan(config, directory, nodes, port, peer_port)
    taken = taken_ports({**config.nodes, **joiners})
    if taken:
        print("drafty cluster: ports in use, nothing started:\n  " + "\n  ".join(taken)
              + "\npick others with --port and --peer-port", file=sys.stderr)  # fmt: skip
        return 2
    if not path.exists():
        path.write_text(render(config))
    procs = start_processes(config, path, directory, joiners=joiners)
    config = ClusterConfig(config.name, {**config.nodes, **joiners})
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"cluster of {nodes} nodes, config {path}")
    for i, n in sorted(config.nodes.items()):
        print(f"  node {i}: redis-cli -p {n.client[1]}   (pid {procs[i].pid}, "
              f"data {directory / f'node-{i}'}, log {directory / f'node-{i}.log'})")  # fmt: skip
    status = 0

    def exited() -> bool:
        """Report every node that exited (its status and the end of its log)."""
        gone = [(i, p.poll()) for i, p in procs.items() if p.poll() is not None]
        for i, code in gone:
            log = directory / f"node-{i}.log"
            print(f"node {i} exited with status {code}; the end of {log}:\n{_log_tail(log)}",
                  file=sys.stderr)  # fmt: skip
        return bool(gone)

    try:
        leader = None
        deadline = time.monotonic() + 30
        while leader is None and time.monotonic() < deadline and not stopping:
            if exited():  # a node that cannot start says why at once, not in 30 s
                status = 1
                break
            leader = asyncio.run(_find_leader(config, 0.5))
        if status == 0 and leader is None:
            print("no leader within 30 s; see the node logs", file=sys.stderr)
            status = 1
        elif status == 0 and leader is not None:
            print(f"leader: node {leader[0]} ({leader[1]})")
            asyncio.run(_show_work(config))
            print("serving; press Ctrl-C to stop every node")
        while not stopping and status == 0:
            if exited():
                status = 1
            time.sleep(0.2)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for i, p in procs.items():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                print(f"node {i} did not stop in 10 s; killing it", file=sys.stderr)
                p.kill()
        print("all nodes stopped")
    return status
