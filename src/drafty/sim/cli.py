"""The ``sim`` command: run one seed, or sweep a range, and report violations.

Theory of operation
-------------------
:func:`add_subcommand` registers ``sim`` on the ``drafty`` command's
subparsers (``python -m drafty.sim`` runs the same :func:`main` alone). One
seed prints its summary and, on a violation, the invariant, the step and a
trace of the last events, then a replay command. A sweep (``--seeds A..B``)
prints only the failing seeds' reports and a closing tally, with a plain
``\\r`` progress line on stderr.

Usage::

    drafty sim --seed 42                 # one seed, 5 nodes, every fault kind
    drafty sim --seeds 1..500 --nodes 3  # a sweep
    drafty sim --seed 42 --faults crash,partition --history h.jsonl -v
    drafty sim --seeds 1..300 --members on  # every seed changes the membership
    python -m drafty.sim --seeds 1..10000   # the long sweep (~7 min per core)

Output on stdout is a pure function of the arguments (virtual time only), so
running a seed twice prints the same bytes; the exit status is 1 if any seed
found a violation, 2 on bad arguments.

Invariants: the handler never raises on a failing seed (it reports and
returns 1); nothing here reads the wall clock.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from .report import SimResult, run_seed
from .runner import SimConfig, parse_faults

_FAULTS_HELP = "comma list of network,partition,crash,pause,disk,clock, or all / none (default all)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=1, help="the seed to run (default 1)")
    p.add_argument("--seeds", metavar="A..B", help="sweep seeds A to B inclusive")
    p.add_argument("--nodes", type=int, default=5, help="cluster size (default 5)")
    p.add_argument(
        "--steps", type=int, default=300, help="fault-phase length in ticks of 10 virtual ms"
    )
    p.add_argument("--faults", default="all", help=_FAULTS_HELP)
    p.add_argument("--no-faults", action="store_true", help="same as --faults none")
    p.add_argument(
        "--torn-records",
        action="store_true",
        help="torn crashes may keep a Ready's entries without its hard state",
    )
    p.add_argument(
        "--members",
        choices=("on", "off", "auto"),
        default="auto",
        help="membership changes (nodes added, removed, replaced while faults strike): in "
        "every seed, in none, or in a per-seed share (default auto)",
    )
    p.add_argument(
        "--raft",
        metavar="FIELD=VALUE",
        action="append",
        default=[],
        help="force a core Config field for every node (e.g. max_inflight=256); repeatable",
    )
    p.add_argument(
        "--clock-rate",
        metavar="NODE=RATE",
        action="append",
        default=[],
        help="test only: make NODE's clock run at RATE (e.g. 2=1.5); with lease_reads=on, a "
        "rate past the lease's drift bound lets a deposed leader serve stale reads",
    )
    p.add_argument(
        "--history",
        metavar="PATH",
        help="write the client history (JSON lines); in a sweep PATH must contain {seed}",
    )
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: faults and elections; -vv: all"
    )


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sim",
        help="deterministic cluster simulator with fault injection and a safety oracle",
        description="Run the Raft core in a simulated cluster (virtual time, one seed) "
        "with network, crash, pause and disk faults; check safety after every event "
        "and liveness once faults heal.",
    )
    add_arguments(p)
    p.set_defaults(func=main)


def parse_range(text: str) -> range:
    """``A..B`` (inclusive) as a range."""
    lo, sep, hi = text.partition("..")
    if not sep:
        raise ValueError(f"expected A..B, got {text!r}")
    a, b = int(lo), int(hi)
    if b < a:
        raise ValueError(f"empty seed range {text!r}")
    return range(a, b + 1)


def config_from_args(args: argparse.Namespace, seed: int) -> SimConfig:
    faults = parse_faults("none" if args.no_faults else args.faults)
    return SimConfig(
        seed=seed,
        nodes=args.nodes,
        steps=args.steps,
        faults=faults,
        torn_records=args.torn_records,
        config_overrides=parse_overrides(args.raft),
        clock_rates=parse_rates(args.clock_rate),
        members={"on": True, "off": False}.get(args.members),
        verbose=args.verbose,
    )


_CONFIG_FIELDS = {
    "election_ticks": int,
    "heartbeat_ticks": int,
    "max_inflight": int,
    "max_msg_bytes": int,
    "prevote": bool,
    "check_quorum": bool,
    "forward_proposals": bool,
    "lease_reads": bool,
    "lease_drift_ticks": int,
}


def parse_rates(items: list[str]) -> dict[int, float]:
    """``["2=1.5"]`` as {node: clock rate}."""
    out: dict[int, float] = {}
    for item in items:
        node, sep, rate = item.partition("=")
        try:
            n, r = int(node), float(rate)
        except ValueError:
            n, r = 0, 0.0
        if not sep or n < 1 or not 0.05 <= r <= 20:
            raise ValueError(f"--clock-rate expects NODE=RATE with RATE in 0.05..20, got {item!r}")
        out[n] = r
    return out


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``["max_inflight=256", "prevote=off"]`` as Config field values."""
    out: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        kind = _CONFIG_FIELDS.get(name.strip())
        if not sep or kind is None:
            raise ValueError(
                f"--raft expects FIELD=VALUE with FIELD in {', '.join(_CONFIG_FIELDS)}"
            )
        v = value.strip().lower()
        if kind is bool:
            if v not in ("on", "off", "true", "false", "1", "0"):
                raise ValueError(f"--raft {name}: expected on/off, got {value!r}")
            out[name.strip()] = v in ("on", "true", "1")
        else:
            out[name.strip()] = int(v)
    return out


def main(args: argparse.Namespace) -> int:
    try:
        seeds = parse_range(args.seeds) if args.seeds else None
        config_from_args(args, 0)
        if args.nodes < 1 or args.steps < 0:
            raise ValueError("--nodes must be >= 1 and --steps >= 0")
        if seeds is not None and args.history and "{seed}" not in args.history:
            raise ValueError("--history in a sweep needs {seed} in PATH")
    except ValueError as e:
        print(f"drafty sim: {e}", file=sys.stderr)
        return 2
    if seeds is None:
        res = run_seed(config_from_args(args, args.seed))
        _write_history(args, res)
        print("\n".join(res.lines()))
        return 0 if res.ok else 1
    return _sweep(args, seeds)


def _write_history(args: Any, res: SimResult) -> None:
    if args.history:
        res.history.write(str(args.history).replace("{seed}", str(res.sim.cfg.seed)))


def _sweep(args: argparse.Namespace, seeds: range) -> int:
    failed: list[int] = []
    total = len(seeds)
    members: Counter[str] = Counter()
    for k, seed in enumerate(seeds, 1):
        res = run_seed(config_from_args(args, seed))
        _write_history(args, res)
        _count_members(res, members)
        if not res.ok:
            failed.append(seed)
            print("\n".join(res.lines()), flush=True)
        sys.stderr.write(f"\rsim: {k}/{total} seeds, seed {seed}, {len(failed)} failed ")
        sys.stderr.flush()
    sys.stderr.write("\n")
    tally = f"sweep {seeds.start}..{seeds.stop - 1}: {total} seeds, {len(failed)} failed"
    if failed:
        tally += ": " + " ".join(str(s) for s in failed)
    print(tally)
    if members["seeds"]:
        print(
            f"membership changes in {members['seeds']} seeds: {members['changes']} committed, "
            f"nodes added {members['added']}, removed {members['removed']}, leaders removed "
            f"{members['leaders']}; goals reached: "
            + ", ".join(f"{k[5:]} {v}" for k, v in sorted(members.items()) if k[:5] == "goal:")
        )
    return 1 if failed else 0


def _count_members(res: SimResult, into: Counter[str]) -> None:
    """Add a run's membership tallies (if its nemesis changed members) to ``into``."""
    sim = res.sim
    if not sim.scenario.members:
        return
    st = sim.oracle.stats
    into["seeds"] += 1
    into.update(changes=st.config_changes, added=st.nodes_added, removed=st.nodes_removed,
                leaders=st.leaders_removed)  # fmt: skip
    into.update({f"goal:{k}": v for k, v in sim.members.done.items()})
