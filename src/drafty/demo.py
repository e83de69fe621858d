"""``drafty demo``: watch the core run a cluster in memory, step by step.

A deterministic story told by :class:`drafty.sim.MemoryCluster` driving the
real core: nodes elect a leader, a client writes through it, the leader
crashes, the others elect a new one and keep writing, and the crashed node
restarts from its disk and catches up. Every line printed is an observed
fact (a role change, a commit, an applied entry count), not a narration of
what should happen: if the core misbehaved, the demo would show it and exit
non-zero.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .core import NodeId, Role
from .sim import MemoryCluster

Print = Callable[[str], None]


class _Watcher:
    """Runs the cluster tick by tick and reports role and commit changes."""

    def __init__(self, cluster: MemoryCluster, out: Print) -> None:
        self.c = cluster
        self.out = out
        self.ticks = 0
        self._roles: dict[NodeId, tuple[Role, int]] = {}

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.ticks += 1
            self.c.tick_all()
            self.c.stabilize()
            self._report()

    def until_leader(self, limit: int = 500, exclude: NodeId | None = None) -> NodeId:
        for _ in range(limit):
            leader = self.c.leader()
            if leader is not None and leader != exclude:
                return leader
            self.run(1)
        raise RuntimeError(f"no leader elected within {limit} ticks")

    def _report(self) -> None:
        for i, n in self.c.nodes.items():
            if not n.up:
                continue
            st = n.raw.status()
            key = (st.role, st.term)
            if self._roles.get(i) != key:
                self._roles[i] = key
                if st.role in (Role.LEADER, Role.CANDIDATE):
                    what = f"node {i} is {st.role.value} of term {st.term}"
                    self.out(f"  tick {self.ticks:4}: {what}")


def run_story(nodes: int, seed: int, writes: int, out: Print) -> bool:
    """Tell the whole story on ``nodes`` nodes; True if every check held."""
    out(f"== {nodes}-node cluster (seed {seed}) ==")
    c = MemoryCluster(nodes, seed=seed)
    w = _Watcher(c, out)
    leader = w.until_leader()
    out(f"  leader elected: node {leader}")

    def write(prefix: str, via: NodeId) -> None:
        for k in range(writes):
            c.nodes[via].raw.propose(f"{prefix}{k}".encode())
        c.stabilize()
        w.run(2)
        st = c.nodes[via].raw.status()
        out(f"  wrote {writes} entries through node {via}; commit index now {st.commit}")

    write("a", leader)
    out(f"  crash node {leader} (the leader)")
    c.crash(leader)
    old, crashed_at = leader, w.ticks
    leader = w.until_leader(exclude=old)
    out(f"  new leader: node {leader}, {w.ticks - crashed_at} ticks after the crash")
    write("b", leader)
    out(f"  restart node {old} from its disk")
    c.restart(old)
    w.run(30)
    ok = True
    reference = [(e.index, e.term, e.data) for e in c.nodes[leader].applied]
    for i, n in sorted(c.nodes.items()):
        mine = [(e.index, e.term, e.data) for e in n.applied]
        same = mine == reference[: len(mine)]
        st = n.raw.status()
        verdict = "matches the leader" if same and len(mine) == len(reference) else "DIFFERS"
        ok = ok and verdict == "matches the leader"
        out(f"  node {i}: {st.role.value:9} term {st.term} applied {len(mine)} entries, {verdict}")
    data = [d for _, _, d in reference if d]
    expect = [f"a{k}".encode() for k in range(writes)] + [f"b{k}".encode() for k in range(writes)]
    if data != expect:
        out("  the applied writes are not exactly the acknowledged ones, in order: FAILED")
        ok = False
    return ok


def main(args: argparse.Namespace) -> int:
    ok = True
    for n in args.nodes:
        ok = run_story(n, args.seed, args.writes, print) and ok
        print()
    print("all nodes agree on every write" if ok else "demo found a disagreement")
    return 0 if ok else 1


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run an in-memory 3- and 5-node cluster through elections, writes and a crash",
    )
    p.add_argument("--seed", type=int, default=1, help="seed for election timeouts")
    p.add_argument("--writes", type=int, default=5, help="writes per phase")
    p.add_argument(
        "--nodes", type=int, nargs="+", default=[3, 5], help="cluster sizes to run (default 3 5)"
    )
    p.set_defaults(func=main)
