"""One torture run, start to verdict.

Theory of operation
-------------------
:func:`run` is the whole run, in this order:

1. remove namespaces left by earlier runs that died, then build the network
   (:func:`drafty.torture.netns.setup`); if that is impossible, say why on
   stderr and in the report, and fall back to loopback with only the process
   faults (a partition kind is never reported as run when it was not);
2. start the ``drafty serve`` processes (:class:`~drafty.torture.cluster.Nodes`),
   wait for a leader and for every node to serve a write;
3. start the clients (:class:`~drafty.torture.workload.Workload`) and, while
   the run's time lasts, take the next step of the seeded nemesis schedule
   (:func:`drafty.torture.faults.schedule`): resolve it against the current
   leader, inject it, hold it, heal it, then measure each node's time to
   serve (:mod:`drafty.torture.probe`) and keep quiet for the step's quiet
   time. Every fault and heal is logged with its time;
4. stop the clients, heal everything, wait until every node serves, and read
   every key through every node into the history;
5. ``finally`` (also on Ctrl-C and SIGTERM): stop the nodes and tear the
   network down;
6. write ``DIR/history.jsonl``, judge it with :func:`drafty.check.check_history`,
   and write ``DIR/report.json`` (:mod:`drafty.torture.report`).

The run passes when the history is linearizable, nothing unexpected happened
(no error reply other than ``-TRYAGAIN``/``-UNCERTAIN``, no node died on its
own), every node served within the bound after every heal (a restarted node
counted from when it listens, which must itself happen within the startup
allowance), and every key could be read through every node at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from ..check import Verdict, check_history
from ..service.config import ReadSettings, SnapshotSettings
from . import report as rpt
from .cluster import Nodes
from .faults import ALL_KINDS, NETWORK_KINDS, PROCESS_KINDS, Step, resolve, schedule
from .history import Recorder
from .netns import Loopback, Net, NetnsUnavailable, remove_stale, setup
from .probe import ProbeResult, probe_node, summarize, time_to_serve
from .workload import Workload


@dataclass(frozen=True)
class Options:
    nodes: int = 3
    seconds: float = 60.0
    seed: int = 1
    clients: int = 8
    keys: int = 4
    directory: Path | None = None
    kinds: tuple[str, ...] = ALL_KINDS
    fault_seconds: tuple[float, float] = (2.0, 10.0)
    quiet_seconds: tuple[float, float] = (2.0, 4.0)
    long_partition_s: float | None = None
    serve_bound_ms: float = 2000.0
    startup_allowance_ms: float = 5000.0
    serve_limit_s: float = 30.0
    op_timeout_s: float = 1.5
    rate: float = 0.0
    """Operations per second over all clients (0: as fast as the cluster answers)."""
    use_netns: bool = True
    check_seconds: float = 300.0
    snapshot_entries: int = 1000
    lease: bool = False
    """Leaders answer reads from their lease (``[reads] lease``) instead of ReadIndex."""


class _Run:
    """The state of a run while its event loop is going."""

    def __init__(
        self, opts: Options, net: Net, nodes: Nodes, kinds: tuple[str, ...], out: TextIO
    ) -> None:
        self.opts = opts
        self.net = net
        self.nodes = nodes
        self.kinds = kinds
        self.out = out
        self.t0 = time.monotonic()
        self.recorder = Recorder()
        self.workload = Workload(
            nodes, self.recorder, opts.clients, opts.keys, opts.op_timeout_s, opts.seed, opts.rate
        )
        self.rep: dict[str, Any] = {"faults": [], "unexpected": [], "node_exits": []}
        self.error = ""
        self.skipped: list[str] = []

    def at(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def say(self, text: str) -> None:
        print(f"[{self.at():7.2f}s] {text}", file=self.out, flush=True)

    def _watch_exits(self) -> None:
        for i, code in self.nodes.unexpected_exits():
            self.rep["node_exits"].append({"node": i, "status": code, "at_s": self.at()})
            self.say(f"BUG: node {i} exited on its own with status {code}; restarted it")

    async def _hold(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(0.2, left))
            self._watch_exits()

    async def _serve_all(self, label: str) -> dict[str, Any]:
        starts = dict.fromkeys(self.nodes.ids, time.monotonic())
        got = await time_to_serve(self.nodes, starts, self.opts.serve_limit_s)
        summary = summarize(got, dict.fromkeys(self.nodes.ids, self.opts.serve_bound_ms))
        self.say(f"{label}: every node serves? {rpt.serve_line(summary)}")
        return summary

    async def main(self) -> None:
        self.nodes.start_all()
        self.say(f"started {len(self.nodes.ids)} nodes ({self.net.mode}); waiting for a leader")
        leader = await self.nodes.leader(timeout=30)
        if leader is None:
            raise RuntimeError("no leader within 30 s of starting; see the node logs")
        self.rep["startup"] = await self._serve_all(f"leader is node {leader}")
        self.workload.start()
        self.say(f"{self.opts.clients} clients started on keys {self.workload.key_names}")
        await self._hold(1.0)
        deadline = self.t0 + self.opts.seconds
        steps = schedule(
            self.opts.seed,
            self.kinds,
            self.opts.fault_seconds,
            self.opts.quiet_seconds,
            self.opts.long_partition_s,
        )
        for n, step in enumerate(steps, 1):
            if time.monotonic() >= deadline:
                break
            await self._fault(n, step)
        await self.workload.stop()
        self.say(f"clients stopped; {len(self.recorder.events)} events recorded")
        await self.net.apply(frozenset())
        for i in sorted(self.nodes.paused):
            self.nodes.resume(i)
        for i in sorted(self.nodes.down):
            self.nodes.start(i)
        self.rep["final_serve"] = await self._serve_all("after the run")
        self.rep["final_reads"] = await self.workload.final_reads(timeout=30)
        self.rep["raft"] = {str(i): await self.nodes.info(i, 2.0) for i in self.nodes.ids}
        self._watch_exits()

    async def _fault(self, n: int, step: Step) -> None:
        leader = await self.nodes.leader(timeout=2.0)
        fault = resolve(step, self.nodes.ids, leader)
        rec: dict[str, Any] = {
            "n": n,
            "kind": fault.kind,
            "description": fault.description,
            "leader_before": leader,
            "hold_s": step.hold_s,
            "start_s": self.at(),
            "start_wall": rpt.wall(),
        }
        self.rep["faults"].append(rec)
        victim = fault.victim
        if fault.kind in NETWORK_KINDS:
            await self.net.apply(fault.drops)
            rec["drops"] = sorted([list(d) for d in fault.drops])
        elif fault.kind == "kill" and victim is not None:
            self.nodes.kill(victim)
        elif fault.kind == "pause" and victim is not None:
            self.nodes.pause(victim)
        rec["start_s"], rec["start_wall"] = self.at(), rpt.wall()
        self.say(f"fault {n}: {fault.kind} {fault.description} for {step.hold_s:.1f} s")
        await self._hold(step.hold_s)
        bounds = dict.fromkeys(self.nodes.ids, self.opts.serve_bound_ms)
        if fault.kind in NETWORK_KINDS:
            await self.net.apply(frozenset())
        elif fault.kind == "pause" and victim is not None:
            self.nodes.resume(victim)
        healed = time.monotonic()
        rec["heal_s"], rec["heal_wall"] = self.at(), rpt.wall()
        restarted = victim if fault.kind == "kill" else None
        others = {i: healed for i in self.nodes.ids if i != restarted}
        probing = asyncio.ensure_future(time_to_serve(self.nodes, others, self.opts.serve_limit_s))
        victim_result: dict[int, ProbeResult] = {}
        if restarted is not None:
            self.nodes.start(restarted)
            limit = self.opts.startup_allowance_ms / 1000
            listen = await self.nodes.wait_listening(restarted, max(limit, 30.0))
            rec["listen_ms"] = None if listen is None else round(listen * 1000, 1)
            rec["listen_ok"] = listen is not None and listen <= limit
            self.say(f"heal {n}: restarted node {restarted}, listening after {rec['listen_ms']} ms")
            victim_result[restarted] = (
                ProbeResult(None, 0, "never listened")
                if listen is None
                else await probe_node(
                    self.nodes, restarted, healed + listen, self.opts.serve_limit_s
                )
            )
        else:
            self.say(f"heal {n}: {fault.kind}")
        results = {**await probing, **victim_result}
        for r in results.values():
            self.rep["unexpected"].extend(r.unexpected)
        rec["serve"] = summarize(results, bounds)
        self.say(f"time to serve after heal {n}: {rpt.serve_line(rec['serve'])}")
        await self._hold(step.quiet_s - (time.monotonic() - healed))


def _choose_network(opts: Options, pid: int, out: TextIO) -> tuple[Net, dict[str, Any]]:
    info: dict[str, Any] = {"stale_removed": remove_stale() if opts.use_netns else []}
    if not opts.use_netns:
        info.update(mode="loopback", reason="--no-netns given")
        return Loopback(), info
    try:
        net = setup(pid, list(range(1, opts.nodes + 1)))
    except NetnsUnavailable as e:
        info.update(mode="loopback", reason=f"network namespaces unavailable: {e}")
        print(
            f"drafty torture: {info['reason']}; falling back to 127.0.0.1 with kill and "
            "pause faults only (NO partition tests will run)",
            file=sys.stderr,
        )
        return Loopback(), info
    info.update(
        mode="netns",
        iptables=net.restore,
        hub=net.names.hub,
        reason="",
        subnet="10.213.0.0/24",
        self_test="passed",
    )
    return net, info


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(opts: Options, out: TextIO = sys.stdout) -> tuple[int, dict[str, Any]]:
    """Run the torture; returns the exit status (0 only if it passed) and the report."""
    directory = opts.directory or Path(tempfile.mkdtemp(prefix="drafty-torture-"))
    if directory.exists() and any(directory.iterdir()):
        print(
            f"drafty torture: {directory} is not empty; every run needs a fresh directory "
            "(old node data would make the history meaningless)",
            file=sys.stderr,
        )
        return 2, {"passed": False, "error": f"{directory} is not empty"}
    directory.mkdir(parents=True, exist_ok=True)
    old_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        net, netinfo = _choose_network(opts, os.getpid(), out)
        try:
            done = _run_on(opts, net, directory, out)
        finally:
            net.teardown()
    finally:
        signal.signal(signal.SIGTERM, old_term)
    if isinstance(done, tuple):
        return done[0], {"network": netinfo, "passed": False}
    return _verdict(opts, done, directory, netinfo, out)


def _run_on(opts: Options, net: Net, directory: Path, out: TextIO) -> _Run | tuple[int, str]:
    """The run up to its verdict (the network is torn down after it), or (status, why not)."""
    kinds = tuple(k for k in opts.kinds if net.mode == "netns" or k in PROCESS_KINDS)
    skipped = [k for k in opts.kinds if k not in kinds]
    if not kinds:
        print(
            f"drafty torture: no fault kind can run here ({', '.join(skipped)} need "
            "network namespaces)",
            file=sys.stderr,
        )
        return 2, "no fault kind can run"
    snapshot = SnapshotSettings(
        entries=opts.snapshot_entries, keep_entries=opts.snapshot_entries // 4
    )
    nodes = Nodes(net, directory, opts.nodes, snapshot, ReadSettings(lease=opts.lease))
    state = _Run(opts, net, nodes, kinds, out)
    print(
        f"drafty torture: {opts.nodes} nodes, {opts.clients} clients, seed {opts.seed}, "
        f"reads by {'lease' if opts.lease else 'ReadIndex'}, "
        f"faults {', '.join(kinds)}; files in {directory}",
        file=out,
    )
    state.skipped = skipped
    try:
        asyncio.run(state.main())
    except KeyboardInterrupt:
        state.error = "interrupted"
    except Exception as e:
        traceback.print_exc()
        state.error = f"run aborted: {e!r}"
    finally:
        state.rep["stop_notes"] = nodes.stop_all()
    return state


def _verdict(
    opts: Options, state: _Run, directory: Path, netinfo: dict[str, Any], out: TextIO
) -> tuple[int, dict[str, Any]]:
    rep, error, skipped = state.rep, state.error, state.skipped
    rep["unexpected"] = [*state.workload.unexpected, *rep["unexpected"]]
    state.recorder.write_jsonl(directory / "history.jsonl")
    if error:
        rep["verdict"] = {"verdict": "not checked", "explanation": error}
    else:
        res = check_history(state.recorder.events, "register", time_budget_s=opts.check_seconds)
        rep["verdict"] = {
            "verdict": res.verdict.name,
            "explanation": res.explanation,
            "ops": res.ops,
            "keys": res.keys,
            "seconds": round(res.elapsed_s, 2),
            "linearizable": res.verdict is Verdict.OK,
        }
    rep.update(
        directory=str(directory),
        network=netinfo,
        kinds_run=sorted({f["kind"] for f in rep["faults"]}),
        kinds_skipped=skipped,
        error=error,
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        operations=state.recorder.counts(),
        log_tracebacks=rpt.count_tracebacks(directory),
    )
    rep["partitions_ran"] = any(f["kind"] in NETWORK_KINDS for f in rep["faults"])
    rep["reasons"] = rpt.failures(rep, opts.nodes, opts.keys)
    rep["passed"] = not rep["reasons"]
    rpt.write(directory / "report.json", rep)
    print(rpt.summary(rep), file=out)
    return (0 if rep["passed"] else 130 if error == "interrupted" else 1), rep
