"""The run's report: what failed, the human summary, and ``report.json``.

Theory of operation
-------------------
The runner collects one JSON-able dict while it goes (network mode, every
fault with its start and heal times and each node's time to serve, the
operation counts, unexpected replies, node exits, the checker's verdict).
This module only reads it: :func:`failures` lists every reason the run
failed (empty means it passed), :func:`summary` renders the text printed at
the end, :func:`write` saves the dict as ``DIR/report.json``. Apart from
:func:`write`, :func:`wall` and :func:`count_tracebacks` it is pure.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any


def wall() -> str:
    """The wall-clock time now, ISO 8601 with milliseconds (for the fault log)."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


def count_tracebacks(directory: Path) -> dict[str, int]:
    """How many Python tracebacks each node's log holds."""
    out = {}
    for log in sorted(directory.glob("node-*.log")):
        text = log.read_text(errors="replace")
        out[log.stem] = text.count("Traceback (most recent call last)")
    return out


def write(path: Path, rep: dict[str, Any]) -> None:
    path.write_text(json.dumps(rep, indent=2, sort_keys=True, default=str) + "\n")


def serve_line(s: dict[str, Any]) -> str:
    """One heal's time to serve, e.g. ``1: 120 ms, 2: 95 ms, 3: >limit (max -, p50 107 ms)``."""
    parts = [f"{i}: {'not served' if v is None else f'{v:.0f} ms'}" for i, v in s["ms"].items()]
    mx = "-" if s["max_ms"] is None else f"{s['max_ms']:.0f} ms"
    p50 = "-" if s["p50_ms"] is None else f"{s['p50_ms']:.0f} ms"
    flag = "ok" if s["ok"] else f"OVER BOUND: node(s) {', '.join(map(str, s['over_bound']))}"
    return f"{', '.join(parts)} (max {mx}, p50 {p50}) {flag}"


def failures(rep: dict[str, Any], nodes: int, keys: int) -> list[str]:
    """Every reason the run failed; empty when it passed."""
    out = []
    if rep.get("error"):
        out.append(rep["error"])
    v = rep.get("verdict", {})
    if not rep.get("error") and not v.get("linearizable"):
        first = str(v.get("explanation", "")).split("\n", 1)[0]
        out.append(f"history {v.get('verdict', 'unchecked')}: {first}")
    for u in rep.get("unexpected", []):
        out.append(f"unexpected reply: {u}")
    for e in rep.get("node_exits", []):
        out.append(f"node {e['node']} exited on its own (status {e['status']}) at {e['at_s']} s")
    if not rep.get("faults") and not rep.get("error"):
        out.append("no fault was injected (the run was too short)")
    for f in rep.get("faults", []):
        s = f.get("serve")
        if s is None:
            continue
        if f.get("listen_ok") is False:
            out.append(
                f"fault {f['n']} ({f['kind']}): the restarted node listened after "
                f"{f['listen_ms']} ms, beyond the startup allowance"
            )
        for i in s["over_bound"]:
            ms = s["ms"][str(i)]
            took = "did not serve at all" if ms is None else f"took {ms:.0f} ms"
            out.append(
                f"fault {f['n']} ({f['kind']}): node {i} {took} to serve a write after "
                f"the heal (bound {s['bound_ms'][str(i)]:.0f} ms)"
            )
    final = rep.get("final_serve")
    if final is not None and final["not_served"]:
        out.append(f"after the run, node(s) {final['not_served']} never served a write")
    if not rep.get("error"):
        reads = rep.get("final_reads", {})
        missing = [
            f"{k}@{i}"
            for k in (f"r{j}" for j in range(keys))
            for i in range(1, nodes + 1)
            if str(i) not in map(str, reads.get(k, {}))
        ]
        if missing:
            out.append(f"final reads failed for {', '.join(missing)}")
    return out


def _serve_values(rep: dict[str, Any]) -> list[float]:
    return [
        v
        for f in rep.get("faults", [])
        if f.get("serve")
        for v in f["serve"]["ms"].values()
        if v is not None
    ]


def summary(rep: dict[str, Any]) -> str:
    """The human report printed at the end of a run."""
    lines = [f"== drafty torture report ({rep.get('directory')})"]
    net = rep.get("network", {})
    if net.get("mode") == "netns":
        lines.append(
            f"network: namespaces + bridge ({net.get('subnet')}), filtering with "
            f"{net.get('iptables')}; partitions ran: "
            f"{'yes' if rep.get('partitions_ran') else 'no'}"
        )
    else:
        lines.append(f"network: loopback fallback ({net.get('reason')}); NO partition tests ran")
    if rep.get("kinds_skipped"):
        lines.append(f"fault kinds skipped: {', '.join(rep['kinds_skipped'])}")
    for f, kinds in rep.get("operations", {}).items():
        lines.append(f"  {f:5s} " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    kinds = Counter(f["kind"] for f in rep.get("faults", []))
    lines.append("faults: " + (", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) or "none"))
    for f in rep.get("faults", []):
        heal = f.get("heal_s")
        lines.append(
            f"  #{f['n']:<3d} {f['start_s']:7.2f}s..{heal if heal is not None else '?'}s "
            f"{f['kind']}: {f['description']}"
        )
        if "listen_ms" in f:
            lines.append(f"        restarted node listening after {f['listen_ms']} ms")
        if f.get("serve"):
            lines.append(f"        time to serve: {serve_line(f['serve'])}")
    values = _serve_values(rep)
    if values:
        p50 = statistics.median(values)
        lines.append(
            f"time to serve over all heals: max {max(values):.0f} ms, "
            f"p50 {p50:.0f} ms, {len(values)} measurements"
        )
    v = rep.get("verdict", {})
    why = "" if v.get("linearizable") else v.get("explanation", "")
    lines.append(
        f"checker: {v.get('verdict')} ({v.get('ops', '?')} operations, "
        f"{v.get('keys', '?')} keys, {v.get('seconds', '?')} s) {why}"
    )
    for key, by_node in sorted(rep.get("final_reads", {}).items()):
        seen = ", ".join(f"{i}: {v}" for i, v in sorted(by_node.items()))
        lines.append(f"final read of {key} through each node: {seen}")
    raft = rep.get("raft") or {}
    snaps = {
        i: f"{(r or {}).get('snapshots_taken', '?')}/{(r or {}).get('snapshots_installed', '?')}"
        for i, r in raft.items()
    }
    if snaps:
        shown = ", ".join(f"{i}: {n}" for i, n in snaps.items())
        lines.append(f"snapshots taken/installed per node since its last start: {shown}")
    tb = {k: n for k, n in rep.get("log_tracebacks", {}).items() if n}
    if tb:
        lines.append(f"tracebacks in node logs (look at them): {tb}")
    reasons = rep.get("reasons", [])
    lines.append("PASSED" if not reasons else "FAILED:\n  " + "\n  ".join(reasons))
    return "\n".join(lines)
