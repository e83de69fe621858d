"""``drafty bench-reads``: GET (ReadIndex, lease, stale) against SET on a 3-node cluster.

Theory of operation
-------------------
Reads skip the Raft log: a linearizable GET is confirmed by a heartbeat round
(ReadIndex) or the leader's lease; a ``READONLY`` connection's GET is served
from local state. One run starts three ``drafty serve`` processes with
ReadIndex reads (``--dir``/readindex; client ports from ``--port``, peers 100
above), preloads ``--keys`` keys and runs ``SET``, ``GET linearizable
(ReadIndex)`` and ``GET stale (READONLY)``; then a fresh cluster with
``[reads] lease = true`` (``--dir``/lease, the next 3 ports) for ``GET
linearizable (lease)`` and a ``SET`` to compare it with.

A phase is ``--seconds`` of ``--clients`` closed-loop clients (a connection
and one request outstanding each; client k on node k % 3, or all on the
leader), in ``--loaders`` spawned processes (uvloop if installed) so the load
generator is not the bottleneck; each gets its share with one start and stop
time (CLOCK_MONOTONIC is shared) and sends back latencies (an array of
doubles), error counts and CPU time. A phase starts on a settled cluster (one
leader, one log, all applied, no snapshot being written, no entry for QUIET_S:
not even the CLOCK one a leader adds after writes); INFO around it shows
``last_index`` (reads must not move it) and the ``# Reads`` counters. Any
error or entry added by reads exits 1; the 2x target is reported only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..client import _Connection, _ReplyError
from ..node.clock import DEFAULT_CLOCK_INTERVAL_MS
from .config import ReadSettings, render
from .localcluster import free_port_base, make_config, start_processes
from .snapbench import _connect, _info, _key, _value, _wait

INDEXES = ("last_index", "commit_index", "applied_index")
COUNTERS = ("reads_linearizable", "reads_stale", "reads_lease_answered", "reads_round_confirmed")
QUIET_S = DEFAULT_CLOCK_INTERVAL_MS / 1000 + 0.5  # a CLOCK entry may come this long after a write
HANG_S = 10.0  # a request still unanswered this long after its phase ended is a failure
TARGET = 2.0  # the goal: linearizable GETs at least this many times as fast as SETs
PLAN = {  # cluster's read mode: its phases (name, command, READONLY)
    "readindex": [("SET", "SET", False), ("GET linearizable (ReadIndex)", "GET", False),
                  ("GET stale (READONLY)", "GET", True)],
    "lease": [("GET linearizable (lease)", "GET", False), ("SET (lease cluster)", "SET", False)],
}  # fmt: skip


class BenchFailed(Exception):
    """The benchmark cannot go on (a node died, a loader could not connect...)."""


@dataclass(frozen=True)
class Job:  # one loader's share of a phase
    op: str  # "GET" or "SET"
    readonly: bool
    ports: list[int]  # one per client
    keys: int
    size: int
    start_at: float  # time.monotonic(), the same clock in every process
    stop_at: float


@dataclass
class Result:  # what one loader measured in a phase
    latencies: bytes = b""  # array("d") of seconds
    errors: dict[str, int] = field(default_factory=dict)  # by kind
    first_error: str = ""
    last_done: float = 0.0
    cpu_s: float = 0.0

    def fail(self, kind: str, text: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.first_error = self.first_error or text


async def _client(conn: _Connection, job: Job, k: int, lat: array[float], res: Result) -> None:
    rng, value, get, clock = random.Random(), _value(k, job.size), job.op == "GET", time.monotonic
    try:
        while clock() < job.stop_at:
            key = _key(rng.randrange(job.keys))
            t0 = clock()
            reply = await conn.call([b"GET", key] if get else [b"SET", key, value])
            res.last_done = t1 = clock()
            lat.append(t1 - t0)
            ok = isinstance(reply, bytes) and len(reply) == job.size if get else reply == "OK"
            if isinstance(reply, _ReplyError):
                res.fail("error replies", reply.text)
            elif not ok:
                res.fail("wrong answers", f"{job.op} {key.decode()} answered {reply!r:.60}")
    except Exception as e:  # a reset, a closed connection, a garbled reply
        res.fail("failed connections", f"{conn.writer.get_extra_info('peername')}: {e!r}")
    finally:
        conn.close()


async def _load(job: Job) -> Result:
    """Connect the clients, wait for the start time, run them until the stop time."""
    res, conns = Result(), []
    for port in job.ports:
        try:
            conns.append(conn := await _connect(port))
            if job.readonly and (reply := await conn.call([b"READONLY"])) != "OK":
                res.fail("failed connections", f"READONLY answered {reply!r}")
        except OSError as e:
            res.fail("failed connections", f"port {port}: {e!r}")
    await asyncio.sleep(max(0.0, job.start_at - time.monotonic()))
    cpu0, lat = time.process_time(), array("d")
    tasks = [asyncio.create_task(_client(c, job, k, lat, res)) for k, c in enumerate(conns)]
    if tasks:
        _, hung = await asyncio.wait(tasks, timeout=job.stop_at + HANG_S - time.monotonic())
        for t in hung:
            t.cancel()
            res.fail("hung requests", f"no reply {HANG_S:.0f} s after the phase ended")
    res.cpu_s, res.latencies = time.process_time() - cpu0, lat.tobytes()
    return res


def _loader_main(pipe: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, after Ctrl-C too
    run: Callable[..., Any] = asyncio.run
    with contextlib.suppress(ImportError):
        run = __import__("uvloop").run
    with contextlib.suppress(EOFError, OSError):  # the parent is gone
        while (job := pipe.recv()) is not None:
            pipe.send(run(_load(job)))


class Loaders:  # worker processes generating the load (see the module docstring)
    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        ends = [ctx.Pipe() for _ in range(n)]
        self.pipes = [mine for mine, _ in ends]
        self.procs = [ctx.Process(target=_loader_main, args=(theirs,), daemon=True)
                      for _, theirs in ends]  # fmt: skip
        for proc, (_, theirs) in zip(self.procs, ends, strict=True):
            proc.start()
            theirs.close()

    async def run(self, jobs: list[Job]) -> list[Result]:
        for pipe, job in zip(self.pipes, jobs, strict=True):
            pipe.send(job)
        for pipe in self.pipes:
            while not pipe.poll():  # true at end of file too
                await asyncio.sleep(0.01)
        try:
            return [pipe.recv() for pipe in self.pipes]
        except EOFError:
            raise BenchFailed("a loader process died") from None

    def close(self) -> None:  # SIGTERM (a loader ignores only SIGINT), SIGKILL after 5 s
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(5)
            proc.kill()  # nothing happens to one that exited
            proc.join()


class Cluster:  # three ``drafty serve`` processes, ReadIndex or lease reads
    def __init__(self, directory: Path, port: int, lease: bool) -> None:
        self.config = replace(make_config(3, port), reads=ReadSettings(lease=lease))
        self.ids = sorted(self.config.nodes)
        self.ports = {i: n.client[1] for i, n in self.config.nodes.items()}
        directory.mkdir(parents=True)
        (directory / "cluster.toml").write_text(render(self.config))
        self.procs = start_processes(self.config, directory / "cluster.toml", directory)

    def shutdown(self, grace: float = 15) -> None:  # SIGTERM, then SIGKILL after grace s
        for p in self.procs.values():
            p.send_signal(signal.SIGTERM)  # nothing happens to one that exited
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(grace)
            p.kill()  # nothing happens to one that exited
            p.wait()

    def cpu(self) -> dict[int, float]:  # CPU seconds each node used so far (Linux /proc)
        out = {}
        for i, p in self.procs.items():
            with open(f"/proc/{p.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            out[i] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out

    async def infos(self) -> dict[int, dict[str, str]]:
        for i, p in self.procs.items():
            if p.poll() is not None:
                raise BenchFailed(f"node {i} exited with status {p.returncode}")
        return {i: await _info(self.ports[i]) for i in self.ids}

    async def preload(self, keys: int, size: int) -> None:
        port, todo = self.ports[await self.settle()], iter(range(keys))

        async def writer() -> None:
            conn = await _connect(port)
            while batch := list(itertools.islice(todo, 500)):
                argv = [b"MSET"] + [x for k in batch for x in (_key(k), _value(k, size))]
                if (reply := await conn.call(argv)) != "OK":
                    raise BenchFailed(f"preload: MSET answered {reply!r}")
            conn.close()

        await asyncio.gather(*(writer() for _ in range(4)))
        await self.settle()

    async def settle(self) -> int:
        """Wait for 1 leader, 1 log everywhere, all applied and quiet, no save; the leader."""
        leaders, last = [0], [("", 0.0)]  # last index, since when

        async def settled() -> bool:
            infos = await self.infos()
            leaders[:] = [i for i, x in infos.items() if x["role"] == "leader"]
            logs = {x[k] for x in infos.values() for k in INDEXES}  # all equal when settled
            saving = any(x["snapshot_in_progress"] != "0" for x in infos.values())
            if (now := infos[self.ids[0]]["last_index"]) != last[0][0]:
                last[0] = (now, time.monotonic())
            quiet = time.monotonic() - last[0][1] >= QUIET_S
            return len(leaders) == 1 and len(logs) == 1 and not saving and quiet

        await _wait("one leader and the same log on every node", settled, 120)
        return leaders[0]


def _by_node(d: dict[int, Any], unit: str = "") -> str:
    return "/".join(f"{v}{unit}" for v in d.values())


class Bench:
    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args, self.dir, self.loaders = args, directory, Loaders(args.loaders)
        self.phases: list[dict[str, Any]] = []
        self.stopped_outside = False

    async def phase(self, c: Cluster, name: str, op: str, readonly: bool = False) -> None:
        a, n, leader = self.args, self.args.loaders, await c.settle()
        ports = [
            c.ports[leader if a.target == "leader" else c.ids[k % 3]] for k in range(a.clients)
        ]
        print(f"{name}: {a.clients} clients for {a.seconds:g} s...", file=sys.stderr)
        before, cpu0, start_at = await c.infos(), c.cpu(), time.monotonic() + 0.5
        results = await self.loaders.run([Job(op, readonly, ports[j::n], a.keys, a.size, start_at,
                                              start_at + a.seconds) for j in range(n)])  # fmt: skip
        wall = time.monotonic() - start_at  # the 0.5 s before the start has little CPU to count
        cpu = {i: round(100 * (v - cpu0[i]) / wall) for i, v in c.cpu().items()}
        after, lat, errs = await c.infos(), array("d"), collections.Counter[str]()
        for r in results:
            lat.frombytes(r.latencies)
            errs.update(r.errors)
        done, secs = sorted(lat), max(r.last_done for r in results) - start_at
        pct = [1000 * done[min(len(done) - 1, int(q * len(done)))] if done else float("nan")
               for q in (0.5, 0.99, 0.999)]  # fmt: skip
        added = {i: int(after[i]["last_index"]) - int(before[i]["last_index"]) for i in c.ids}
        counters = {k: {i: int(after[i][k]) - int(before[i][k]) for i in c.ids} for k in COUNTERS}
        self.phases.append(p := {
            "phase": name, "cluster": after[leader]["read_mode"], "op": op, "readonly": readonly,
            "leader": leader, "ops": len(done), "seconds": round(secs, 3),
            "ops_per_s": round(len(done) / secs, 1) if secs > 0 else 0.0,
            "p50_ms": pct[0], "p99_ms": pct[1], "p999_ms": pct[2],
            "errors": errs.total(), "errors_by_kind": dict(errs),
            "first_error": next((r.first_error for r in results if r.first_error), ""),
            "log_entries_added": max(added.values()), "log_entries_added_by_node": added,
            "read_counters": counters,
            "term_changed": any(before[i]["term"] != after[i]["term"] for i in c.ids),
            "loader_cpu_pct_of_core": round(100 * sum(r.cpu_s for r in results) / wall),
            "node_cpu_pct_of_core": cpu,
        })  # fmt: skip
        ids, lease_answered = "/".join(map(str, c.ids)), counters["reads_lease_answered"][leader]
        out = [f"{name}: {p['ops_per_s']:,.0f} ops/s ({len(done):,} in {secs:.1f} s), p50 "
               f"{p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms, p99.9 {p['p999_ms']:.2f} ms; "
               f"{p['errors']} errors" + (f" {dict(errs)}, first: {p['first_error']}"
                                          if p["errors"] else ""),
               f"  log entries added: {p['log_entries_added']} (nodes {ids}: {_by_node(added)})"
               + ("; the leader changed meanwhile" if p["term_changed"] else ""),
               f"  CPU, % of one core ({os.cpu_count()} cores here): {n} loaders "
               f"{p['loader_cpu_pct_of_core']}%, nodes {ids} {_by_node(cpu, '%')}"]  # fmt: skip
        if op == "GET":
            out.insert(2, f"  INFO # Reads deltas (nodes {ids}; leader {leader}): "
                       + ", ".join(f"{k} {_by_node(v)}" for k, v in counters.items()))  # fmt: skip
        if op == "GET" and p["cluster"] == "lease" and not lease_answered:
            out.append("  UNEXPECTED: reads_lease_answered did not grow on the leader")
        print("\n".join(out))

    async def run(self) -> None:
        for k, (mode, phases) in enumerate(PLAN.items()):
            c = Cluster(self.dir / mode, self.args.port + 3 * k, lease=mode == "lease")
            try:
                await c.preload(self.args.keys, self.args.size)
                for name, op, readonly in phases:
                    await self.phase(c, name, op, readonly)
            finally:  # a node that exited 0 unasked was stopped by a Ctrl-C at the terminal
                self.stopped_outside |= any(p.poll() == 0 for p in c.procs.values())
                c.shutdown()

    def report(self) -> dict[str, Any]:
        a, rate = self.args, {p["phase"]: p["ops_per_s"] for p in self.phases}

        def ratio(get: str, set_: str) -> float | None:
            return round(rate[get] / rate[set_], 2) if rate.get(get) and rate.get(set_) else None

        s = {
            "readindex_get_over_set": ratio("GET linearizable (ReadIndex)", "SET"),
            "lease_get_over_set": ratio("GET linearizable (lease)", "SET (lease cluster)"),
            "stale_get_over_set": ratio("GET stale (READONLY)", "SET"),
            "log_entries_added_during_reads": sum(p["log_entries_added"] for p in self.phases
                                                  if p["op"] == "GET"),
            "errors": sum(p["errors"] for p in self.phases),
        }  # fmt: skip
        s["passed"] = not (s["errors"] or s["log_entries_added_during_reads"])
        if not self.phases:
            return s
        print(f"\n{a.clients} clients ({a.target}, {a.loaders} loaders), {a.size}-byte values, "
              f"{a.keys:,} keys, {a.seconds:g} s per phase\n"
              f"{'phase':<30} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")  # fmt: skip
        for p in self.phases:
            print(f"{p['phase']:<30} {p['ops_per_s']:>9,.0f} {p['p50_ms']:>8.2f} "
                  f"{p['p99_ms']:>8.2f} {p['errors']:>7}")  # fmt: skip
        print(f"log entries added during reads: {s['log_entries_added_during_reads']}")
        for label, r in (("ReadIndex", s["readindex_get_over_set"]),
                         ("lease", s["lease_get_over_set"])):  # fmt: skip
            verdict = "n/a" if r is None else f"{r:.2f}x: " + ("met" if r >= TARGET else "NOT met")
            print(f"linearizable GET ({label}) / SET = {verdict} (target >= {TARGET:g}x)")
        return s


def run_bench(args: argparse.Namespace) -> int:
    if min(args.clients, args.loaders, args.keys, args.size, args.seconds) <= 0:
        print("drafty bench-reads: every count and size must be positive", file=sys.stderr)
        return 2
    owned = args.dir is None
    directory = Path(tempfile.mkdtemp(prefix="drafty-readbench-") if owned else args.dir)
    args.port = args.port or free_port_base(6)
    bench, status, failure = Bench(args, directory), 0, ""
    try:
        asyncio.run(bench.run())
    except (OSError, BenchFailed, RuntimeError, KeyboardInterrupt) as e:  # RuntimeError: timeout
        stop = isinstance(e, KeyboardInterrupt) or bench.stopped_outside
        failure = "interrupted" if stop else f"{e} (node logs in {directory})"
        status, owned = (130, owned) if stop else (1, False)
        print(f"drafty bench-reads: {failure}", file=sys.stderr)
    finally:
        bench.loaders.close()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
    s = bench.report()
    if status == 0 and not s["passed"]:
        status = 1
        print("FAILED: errors, or log entries added by reads")
    if args.json:
        args.json.write_text(json.dumps({
            "settings": {k: v for k, v in vars(args).items() if k not in ("func", "json", "dir")},
            "cpu_count": os.cpu_count(), "phases": bench.phases,
            "summary": s, "target_ratio": TARGET, "ok": status == 0, "failure": failure,
        }, indent=2) + "\n")  # fmt: skip
    return status


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench-reads", help="measure GET (ReadIndex, lease, stale) against SET")
    p.add_argument("--keys", type=int, default=10_000, help="keys to preload (10,000)")
    p.add_argument("--size", type=int, default=100, help="value size in bytes (100)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each phase (10)")
    p.add_argument("--clients", type=int, default=64, help="closed-loop clients (64)")
    p.add_argument("--loaders", type=int, default=2, help="load-generating processes (2)")
    p.add_argument("--target", choices=("spread", "leader"), default="spread",
                   help="spread: client k on node k %% 3 (default); leader: all on it")  # fmt: skip
    p.add_argument("--port", type=int, default=0, help="first of 6 client ports (default: free)")
    p.add_argument("--dir", type=Path, help="where the nodes keep their data (a temp dir)")
    p.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    p.set_defaults(func=run_bench)
