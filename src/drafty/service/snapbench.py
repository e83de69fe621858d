"""``drafty bench-snapshots``: snapshots of a big state on a real 3-node cluster.

What it measures, in order (every figure is printed with what it is):

1. **load**: ``--keys`` keys of ``--size``-byte values written with MSET
   (``--batch`` keys per command, a few commands in flight);
2. **snapshot**: after ``CONFIG RESETSTAT``, a BGSAVE on every node; each
   node reports how long the save took, its file's size, and the longest
   event-loop stall while it ran (a timer in the node that records its own
   lateness, INFO ``loop_max_lateness_ms``); meanwhile a client keeps
   writing, so the loop has work to be late for;
3. **memory**: each node's resident set size against the raw data (keys plus
   values);
4. **restart**: a follower stopped and started again: time from process start
   to serving (PING answered: the snapshot is restored before the port opens)
   and to having applied everything;
5. **catch-up**: a follower's data directory wiped: time for the empty node
   to get the snapshot and catch up;
6. **steady load** (``--minutes``, 0 to skip): overwrites of random keys
   for that long; each node's disk use (its data directory) and RSS at the
   start, every minute and at the end. Both must stay flat: snapshots
   compact the log as it grows.

The cluster runs in ``--dir`` (a temporary directory by default, removed at
the end) on ports ``--port`` .. ``--port + 2`` (Raft peers 100 above).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..client import _Connection, _ReplyError
from .config import ClusterConfig, SnapshotSettings, render
from .localcluster import make_config, start_processes


async def _connect(port: int) -> _Connection:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    return _Connection(r, w)


async def _call(port: int, *argv: bytes | str, timeout: float = 30) -> object:
    conn = await _connect(port)
    try:
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        return await asyncio.wait_for(conn.call(args), timeout)
    finally:
        conn.close()


async def _info(port: int) -> dict[str, str]:
    raw = await _call(port, "INFO")
    if not isinstance(raw, bytes):
        raise RuntimeError(f"INFO on port {port} answered {raw!r}")
    out = {}
    for line in raw.decode().splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v
    return out


async def _wait(what: str, check: Callable[[], Awaitable[bool]], seconds: float = 300) -> float:
    """Poll ``check`` until it is true; the seconds that took."""
    start = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - start
        except (TimeoutError, OSError, RuntimeError, ConnectionError):
            pass
        if time.monotonic() - start > seconds:
            raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def _key(i: int) -> bytes:
    return b"key:%07d" % i


def _value(i: int, size: int) -> bytes:
    return (b"%07d" % i) * (size // 7) + b"x" * (size % 7)


def _du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # a segment deleted meanwhile
                total += os.stat(os.path.join(root, f)).st_size
    return total


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class Bench:
    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.dir = directory
        base = make_config(3, args.port)
        self.config = ClusterConfig(
            base.name, base.nodes, base.tick_ms,
            SnapshotSettings(entries=args.snapshot_entries, bytes=args.snapshot_bytes << 20),
        )  # fmt: skip
        self.path = directory / "cluster.toml"
        self.path.write_text(render(self.config))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.raw_bytes = args.keys * (len(_key(0)) + args.size)

    def port(self, i: int) -> int:
        return self.config.nodes[i].client[1]

    def start(self, i: int | None = None) -> None:
        if i is None:
            self.procs = start_processes(self.config, self.path, self.dir)
            return
        cfg = ClusterConfig(self.config.name, {i: self.config.nodes[i]}, self.config.tick_ms,
                            self.config.snapshot)  # fmt: skip
        one = start_processes(cfg, self.path, self.dir)
        self.procs[i] = one[i]

    def stop(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGTERM)
        self.procs[i].wait(60)

    def shutdown(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    async def leader(self) -> int:
        async def found() -> bool:
            for i in self.config.nodes:
                got = await _call(self.port(i), "RAFT", "LEADER", timeout=2)
                if isinstance(got, list) and got:
                    self._leader = int(got[0])
                    return True
            return False

        self._leader = 0
        await _wait("a leader", found, 60)
        return self._leader

    async def rss(self, i: int) -> int:
        return int((await _info(self.port(i)))["used_memory_rss"])

    async def applied_all(self, i: int, target: int) -> bool:
        return int((await _info(self.port(i)))["applied_index"]) >= target

    # -- phases ---------------------------------------------------------------

    async def load(self) -> None:
        a = self.args
        leader = await self.leader()
        start = time.monotonic()
        conns = [await _connect(self.port(leader)) for _ in range(4)]
        next_key = 0

        async def writer(conn: _Connection) -> None:
            nonlocal next_key
            while next_key < a.keys:
                lo = next_key
                next_key = hi = min(a.keys, lo + a.batch)
                argv = [b"MSET"]
                for k in range(lo, hi):
                    argv += [_key(k), _value(k, a.size)]
                reply = await conn.call(argv)
                if isinstance(reply, _ReplyError):
                    raise RuntimeError(f"MSET failed: {reply.text}")
                if hi % 100_000 == 0 or hi == a.keys:
                    print(f"  loaded {hi:,} keys", file=sys.stderr)

        await asyncio.gather(*(writer(c) for c in conns))
        for c in conns:
            c.close()
        secs = time.monotonic() - start
        print(file=sys.stderr)
        commit = int((await _info(self.port(leader)))["commit_index"])
        for i in self.config.nodes:
            await _wait(f"node {i} to apply", functools.partial(self.applied_all, i, commit))
        print(f"load: {a.keys:,} keys of {a.size} bytes ({_mib(self.raw_bytes)} raw) in "
              f"{secs:.1f} s ({a.keys / secs:,.0f} keys/s, {commit} log entries)")  # fmt: skip

    async def snapshot(self) -> None:
        leader = await self.leader()
        stop = asyncio.Event()
        writes = 0

        async def background_writes() -> None:
            nonlocal writes
            conn = await _connect(self.port(leader))
            rng = random.Random(1)
            while not stop.is_set():
                k = rng.randrange(self.args.keys)
                await conn.call([b"SET", _key(k), _value(k + 1, self.args.size)])
                writes += 1
            conn.close()

        task = asyncio.create_task(background_writes())
        await asyncio.sleep(0.5)
        for i in self.config.nodes:
            await _call(self.port(i), "CONFIG", "RESETSTAT")
        for i in self.config.nodes:
            reply = await _call(self.port(i), "BGSAVE")
            if isinstance(reply, _ReplyError):
                raise RuntimeError(f"BGSAVE on node {i}: {reply.text}")

            async def saved(i: int = i) -> bool:
                info = await _info(self.port(i))
                return info["snapshot_in_progress"] == "0" and int(info["snapshot_last_bytes"]) > 0

            await _wait(f"node {i}'s snapshot", saved)
        stop.set()
        await task
        print(f"snapshot (BGSAVE on each node, {writes} writes served meanwhile):")
        for i in self.config.nodes:
            info = await _info(self.port(i))
            stall = float(info["loop_max_lateness_ms"])
            print(f"  node {i}: saved {_mib(int(info['snapshot_last_bytes']))} in "
                  f"{info['snapshot_last_ms']} ms; longest event-loop stall {stall:.1f} ms "
                  f"({'ok' if stall <= 50 else 'OVER'} the 50 ms target)")  # fmt: skip

    async def memory(self) -> None:
        print(f"memory (raw data {_mib(self.raw_bytes)}; target under 2.5x):")
        for i in self.config.nodes:
            rss = await self.rss(i)
            ratio = rss / self.raw_bytes
            print(f"  node {i}: RSS {_mib(rss)} = {ratio:.2f}x raw "
                  f"({'ok' if ratio < 2.5 else 'OVER'})")  # fmt: skip

    async def restart(self) -> None:
        leader = await self.leader()
        follower = next(i for i in self.config.nodes if i != leader)
        self.stop(follower)
        commit = int((await _info(self.port(leader)))["commit_index"])
        self.start(follower)  # timed from here: Popen returns as the process starts

        async def pong() -> bool:
            return await _call(self.port(follower), "PING", timeout=1) == "PONG"

        serving = await _wait("the restarted node to serve", pong)
        caught = await _wait("it to catch up", lambda: self.applied_all(follower, commit))
        print(f"restart: node {follower} serving {serving:.2f} s after process start "
              f"({'ok' if serving < 5 else 'OVER'} the 5 s target), caught up after "
              f"{serving + caught:.2f} s")  # fmt: skip

    async def catch_up(self) -> None:
        leader = await self.leader()
        follower = next(i for i in self.config.nodes if i != leader)
        self.stop(follower)
        shutil.rmtree(self.dir / f"node-{follower}")
        commit = int((await _info(self.port(leader)))["commit_index"])
        start = time.monotonic()
        self.start(follower)
        await _wait("the empty node to catch up", lambda: self.applied_all(follower, commit), 600)
        secs = time.monotonic() - start
        size = await _call(self.port(follower), "DBSIZE")
        print(f"catch-up: an empty node {follower} installed the snapshot and caught up in "
              f"{secs:.1f} s ({size} keys)")  # fmt: skip

    async def steady(self) -> None:
        minutes = self.args.minutes
        if minutes <= 0:
            return
        leader = await self.leader()
        stop = asyncio.Event()
        count = 0

        async def client(seed: int) -> None:
            nonlocal count
            conn = await _connect(self.port(leader))
            rng = random.Random(seed)
            while not stop.is_set():
                k = rng.randrange(self.args.keys)
                reply = await conn.call([b"SET", _key(k), _value(rng.randrange(1 << 20),
                                                                   self.args.size)])  # fmt: skip
                if isinstance(reply, _ReplyError):
                    raise RuntimeError(f"SET failed: {reply.text}")
                count += 1
            conn.close()

        print(f"steady overwrite load for {minutes} min "
              f"({self.args.clients} clients on the leader, node {leader}):")  # fmt: skip
        tasks = [asyncio.create_task(client(s)) for s in range(self.args.clients)]
        start = time.monotonic()
        for m in range(minutes + 1):
            if m:
                await asyncio.sleep(max(0.0, start + 60 * m - time.monotonic()))
            parts = []
            for i in self.config.nodes:
                info = await _info(self.port(i))
                parts.append(f"node {i} disk {_mib(_du(self.dir / f'node-{i}'))} "
                             f"rss {_mib(int(info['used_memory_rss']))} "
                             f"log {info['log_entries']} entries")  # fmt: skip
            rate = count / max(1e-9, time.monotonic() - start)
            print(f"  t={m:2d} min, {count:,} writes ({rate:,.0f}/s): " + "; ".join(parts))
        stop.set()
        await asyncio.gather(*tasks)

    async def run(self) -> None:
        self.start()
        await self.leader()
        await self.load()
        await self.snapshot()
        await self.memory()
        await self.restart()
        await self.catch_up()
        await self.memory()
        await self.steady()


def run_bench(args: argparse.Namespace) -> int:
    owned = args.dir is None
    directory = Path(tempfile.mkdtemp(prefix="drafty-snapbench-") if owned else args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, directory)
    try:
        asyncio.run(bench.run())
    except RuntimeError as e:
        print(f"drafty bench-snapshots: {e} (node logs in {directory})", file=sys.stderr)
        owned = False
        return 1
    finally:
        bench.shutdown()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench-snapshots", help="measure snapshots of a big state on 3 nodes")
    p.add_argument("--keys", type=int, default=1_000_000, help="keys to load (1,000,000)")
    p.add_argument("--size", type=int, default=100, help="value size in bytes (100)")
    p.add_argument("--batch", type=int, default=1000, help="keys per MSET (1000)")
    p.add_argument("--minutes", type=int, default=10, help="steady overwrite load (10; 0: skip)")
    p.add_argument("--clients", type=int, default=16, help="clients in the steady load (16)")
    p.add_argument("--snapshot-entries", type=int, default=10_000,
                   help="[snapshot] entries of the cluster (10000)")  # fmt: skip
    p.add_argument("--snapshot-bytes", type=int, default=64,
                   help="[snapshot] bytes of the cluster, in MiB (64)")  # fmt: skip
    p.add_argument("--port", type=int, default=7479, help="first client port (7479)")
    p.add_argument("--dir", type=Path, help="where the nodes keep their data (a temp dir)")
    p.set_defaults(func=run_bench)
