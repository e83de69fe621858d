"""``drafty bench``: closed-loop load against a node, with latency percentiles.

C clients, each with its own connection and one request outstanding (like
redis-benchmark without pipelining), send SET and GET of ``--size``-byte
values over a key space of 10,000 keys in the given reads:writes ratio for
``--seconds``. A progress bar on stderr shows the running rate; the summary
gives throughput and p50 / p99 / p99.9 latency in milliseconds. Errors are
counted and reported, never hidden in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time

from ..client import _Connection, _ReplyError
from .config import parse_address


async def _worker(
    addr: tuple[str, int], size: int, read_share: float, stop_at: float, seed: int,
    latencies: list[float], errors: list[str],
) -> None:  # fmt: skip
    rng = random.Random(seed)
    value = rng.randbytes(size)
    r, w = await asyncio.open_connection(*addr)
    conn = _Connection(r, w)
    try:
        while time.monotonic() < stop_at:
            key = b"bench:%d" % rng.randrange(10_000)
            argv = [b"GET", key] if rng.random() < read_share else [b"SET", key, value]
            t0 = time.perf_counter()
            reply = await conn.call(argv)
            latencies.append(time.perf_counter() - t0)
            if isinstance(reply, _ReplyError):
                errors.append(reply.text)
    finally:
        conn.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[k]


async def run_bench(server: str, clients: int, size: int, seconds: float, ratio: str) -> int:
    reads, _, writes = ratio.partition(":")
    if not (reads.isdigit() and writes.isdigit()) or int(reads) + int(writes) == 0:
        print("drafty bench: --ratio must look like 1:1 or 0:1 (reads:writes)", file=sys.stderr)
        return 2
    read_share = int(reads) / (int(reads) + int(writes))
    addr = parse_address(server, "--server")
    latencies: list[float] = []
    errors: list[str] = []
    start = time.monotonic()
    stop_at = start + seconds
    tasks = [
        asyncio.create_task(_worker(addr, size, read_share, stop_at, k, latencies, errors))
        for k in range(clients)
    ]
    width = 30
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0.5)
        elapsed = time.monotonic() - start
        done = min(1.0, elapsed / seconds)
        bar = "#" * int(done * width)
        rate = len(latencies) / max(elapsed, 1e-9)
        print(f"\r[{bar:<{width}}] {elapsed:5.1f}s {rate:9.0f} ops/s", end="", file=sys.stderr)
    print(file=sys.stderr)
    failures = [t.exception() for t in tasks if t.exception() is not None]
    if failures:
        print(f"drafty bench: {len(failures)} client(s) failed: {failures[0]!r}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - start
    lat = sorted(latencies)
    ms = [1000 * _percentile(lat, q) for q in (0.5, 0.99, 0.999)]
    print(f"server {server}, {clients} clients, {size}-byte values, reads:writes {ratio}")
    print(f"  {len(lat)} requests in {elapsed:.1f} s: {len(lat) / elapsed:.0f} ops/s")
    print(f"  latency ms: p50 {ms[0]:.2f}  p99 {ms[1]:.2f}  p99.9 {ms[2]:.2f}")
    if errors:
        print(f"  {len(errors)} error replies, first: {errors[0]}")
    return 0 if not errors else 1


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="measure throughput and latency against a node")
    p.add_argument("--server", default="127.0.0.1:7379", help="host:port of a node")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--size", type=int, default=100, help="value size in bytes (default 100)")
    p.add_argument("--seconds", type=float, default=10.0, help="duration (default 10)")
    p.add_argument("--ratio", default="0:1", help="reads:writes (default 0:1, writes only)")
    p.set_defaults(
        func=lambda a: asyncio.run(run_bench(a.server, a.clients, a.size, a.seconds, a.ratio))
    )
