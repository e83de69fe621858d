"""The ``torture`` command: real ``drafty serve`` processes under faults, judged at the end.

Theory of operation
-------------------
:func:`add_subcommand` registers ``torture`` on the ``drafty`` command's
subparsers; :func:`main` turns the arguments into
:class:`drafty.torture.runner.Options` and hands off to
:func:`drafty.torture.runner.run`. Usage::

    sudo drafty torture                          # 3 nodes, 60 s, every fault kind
    sudo drafty torture --nodes 5 --seconds 300 --seed 7 --dir /tmp/t1
    sudo drafty torture --nemesis partition-halves,bridge --long-partitions 30
    drafty torture --no-netns                    # loopback: kill and pause only

Exit status: 0 when the run passed (linearizable, nothing unexpected, every
node served within the bound after every heal), 1 when it failed, 2 for bad
arguments or when no requested fault can run here, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .faults import ALL_KINDS, parse_kinds, parse_range
from .runner import Options, run


def _range(text: str) -> tuple[float, float]:
    try:
        return parse_range(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _kinds(text: str) -> tuple[str, ...]:
    try:
        return parse_kinds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "torture",
        help="run a real cluster under partitions, kills and pauses and check its history",
        description="Start a cluster of drafty serve processes (each in its own network "
        "namespace when run as root), run concurrent clients against it while a seeded "
        "nemesis partitions, kills and pauses nodes, measure how fast every node serves "
        "again after each heal, and check the recorded history for linearizability. "
        "Without root or network namespaces it falls back to 127.0.0.1 with kill and "
        "pause faults only, and says so.",
    )
    p.add_argument("--nodes", type=int, choices=[3, 5], default=3, help="cluster size (3)")
    p.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="how long faults keep starting (default 60; the last one runs to its end)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the nemesis and clients (1)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    p.add_argument("--keys", type=int, default=4, help="registers the clients share (4)")
    p.add_argument("--dir", type=Path, help="keep every file here (default: a new temp dir)")
    p.add_argument(
        "--nemesis",
        type=_kinds,
        default=ALL_KINDS,
        metavar="KIND,...",
        help=f"fault kinds to cycle through (default all: {','.join(ALL_KINDS)})",
    )
    p.add_argument(
        "--fault-seconds",
        type=_range,
        default=(2.0, 10.0),
        metavar="LOW..HIGH",
        help="how long each fault holds (default 2..10)",
    )
    p.add_argument(
        "--quiet-seconds",
        type=_range,
        default=(2.0, 4.0),
        metavar="LOW..HIGH",
        help="quiet time after each heal (default 2..4)",
    )
    p.add_argument(
        "--long-partitions",
        type=float,
        metavar="SECONDS",
        help="hold every network fault this long instead (e.g. 30)",
    )
    p.add_argument(
        "--serve-bound-ms",
        type=float,
        default=2000.0,
        help="each node must serve a write within this after a heal (2000)",
    )
    p.add_argument(
        "--startup-allowance-ms",
        type=float,
        default=5000.0,
        help="a restarted node must listen within this of its restart (5000); its "
        "time to serve counts from then",
    )
    p.add_argument(
        "--serve-limit",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="stop measuring a node's time to serve after this (30)",
    )
    p.add_argument(
        "--op-timeout",
        type=float,
        default=1.5,
        metavar="SECONDS",
        help="per-operation client timeout (1.5)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="OPS",
        help="operations per second over all clients (default 0: as fast as answered)",
    )
    p.add_argument(
        "--check-seconds",
        type=float,
        default=300.0,
        help="time budget of the linearizability check (300)",
    )
    p.add_argument(
        "--lease",
        action="store_true",
        help="leaders answer reads from a lease ([reads] lease = true) instead of ReadIndex",
    )
    p.add_argument(
        "--snapshot-entries",
        type=int,
        default=1000,
        help="nodes snapshot after this many entries (1000)",
    )
    p.add_argument(
        "--no-netns",
        action="store_true",
        help="do not use network namespaces: loopback, kill and pause only",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    for name in ("seconds", "clients", "keys", "serve_bound_ms", "op_timeout", "serve_limit"):
        if getattr(args, name) <= 0:
            print(f"drafty torture: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2
    opts = Options(
        nodes=args.nodes,
        seconds=args.seconds,
        seed=args.seed,
        clients=args.clients,
        keys=args.keys,
        directory=args.dir,
        kinds=args.nemesis,
        fault_seconds=args.fault_seconds,
        quiet_seconds=args.quiet_seconds,
        long_partition_s=args.long_partitions,
        serve_bound_ms=args.serve_bound_ms,
        startup_allowance_ms=args.startup_allowance_ms,
        serve_limit_s=args.serve_limit,
        op_timeout_s=args.op_timeout,
        rate=max(0.0, args.rate),
        use_netns=not args.no_netns,
        check_seconds=args.check_seconds,
        snapshot_entries=max(1, args.snapshot_entries),
        lease=args.lease,
    )
    try:
        status, _ = run(opts)
    except KeyboardInterrupt:
        print("drafty torture: interrupted; nodes stopped, network removed", file=sys.stderr)
        return 130
    return status
