"""Service subcommands: serve, cluster, client verbs, status, transfer-leader,
putrnd, the benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any

from ..client import AsyncClient, CommandError
from ..driver.api import OutcomeUnknown, Refused
from .config import ClusterConfig, ClusterConfigError, NodeEntry, load, parse_address


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run one node of the key-value service")
    p.add_argument("--config", type=Path, help="cluster.toml (not needed with --join)")
    p.add_argument("--id", type=int, required=True, help="this node's id")
    p.add_argument("--data-dir", type=Path, required=True, help="this node's data directory")
    p.add_argument(
        "--join",
        metavar="HOST:PORT",
        help="join the running cluster that this member (client address) is in",
    )
    p.add_argument("--peer", metavar="HOST:PORT", help="with --join: this node's Raft address")
    p.add_argument(
        "--client", metavar="HOST:PORT", help="with --join: this node's client (Redis) address"
    )
    p.add_argument(
        "--learner",
        action="store_true",
        help="with --join: stay a learner (never ask to be promoted to voter)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=_serve)

    p = sub.add_parser("cluster", help="run a local cluster of separate node processes")
    p.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    p.add_argument("--dir", type=Path, default=Path("drafty-data"), help="data directory")
    p.add_argument("--port", type=int, default=7379, help="client port of node 1 (default 7379)")
    p.add_argument("--peer-port", type=int, default=None,
                   help="Raft port of node 1 (default: --port + 100)")  # fmt: skip
    p.set_defaults(func=_cluster)

    def client_cmd(name: str, help: str, args: list[str]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--server", "-s", action="append", default=None,
                       help="host:port of a node (repeatable; default 127.0.0.1:7379)")  # fmt: skip
        for a in args:
            p.add_argument(a)
        return p

    client_cmd("get", "read a key", ["key"]).set_defaults(func=_verb, verb="GET")
    client_cmd("set", "write a key", ["key", "value"]).set_defaults(func=_verb, verb="SET")
    client_cmd("del", "delete a key", ["key"]).set_defaults(func=_verb, verb="DEL")
    client_cmd("cas", "compare-and-set a key", ["key", "expected", "new"]).set_defaults(
        func=_verb, verb="CAS"
    )
    p = client_cmd("putrnd", "write random keys and values and print them", [])
    p.add_argument("-n", type=int, default=10, help="how many (default 10)")
    p.set_defaults(func=_putrnd)
    p = client_cmd("transfer-leader", "hand leadership to another voter and wait for it", [])
    p.add_argument("--to", type=int, required=True, metavar="ID", help="the voter's node id")
    p.set_defaults(func=_transfer_leader)
    p = client_cmd("member", "list or change the cluster's members", [])
    p.add_argument("action", choices=["list", "add", "remove", "promote"])
    p.add_argument("node", nargs="?", type=int, help="the node id (add, remove, promote)")
    p.add_argument("--peer", metavar="HOST:PORT", help="add: the new node's Raft address")
    p.add_argument("--client", metavar="HOST:PORT", help="add: its client (Redis) address")
    p.add_argument(
        "--voter",
        action="store_true",
        help="add: as a voter at once (default: a learner, promoted later)",
    )
    p.set_defaults(func=_member)
    p = client_cmd("status", "show every node's Raft state", [])
    p.add_argument("--config", type=Path, help="cluster.toml to list the nodes from")
    p.set_defaults(func=_status)

    from .bench import add_subcommand as add_bench
    from .readbench import add_subcommand as add_readbench
    from .snapbench import add_subcommand as add_snapbench

    add_bench(sub)
    add_readbench(sub)
    add_snapbench(sub)


def servers(args: argparse.Namespace) -> list[str]:
    return list(args.server or ["127.0.0.1:7379"])


def _serve(args: argparse.Namespace) -> int:
    from .join import JoinRequest
    from .serve import serve

    if args.join is not None:
        if args.peer is None or args.client is None:
            print("drafty serve: --join needs --peer and --client", file=sys.stderr)
            return 2
        try:
            join = JoinRequest(args.join, args.id, parse_address(args.peer, "--peer"),
                               parse_address(args.client, "--client"), args.data_dir,
                               args.learner)  # fmt: skip
            parse_address(args.join, "--join")
        except ClusterConfigError as e:
            print(f"drafty serve: {e}", file=sys.stderr)
            return 2
        if args.id < 1:
            print("drafty serve: --id must be a positive integer", file=sys.stderr)
            return 2
        placeholder = ClusterConfig(
            "joining", {args.id: NodeEntry(args.id, join.peer, join.client)}
        )
        return serve(placeholder, args.id, args.data_dir, args.verbose, join)
    if args.config is None:
        print("drafty serve: give --config cluster.toml, or --join to join a cluster",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        config = load(args.config)
    except ClusterConfigError as e:
        print(f"drafty serve: {e}", file=sys.stderr)
        return 2
    if args.id not in config.nodes:
        print(f"drafty serve: node {args.id} is not in {args.config}", file=sys.stderr)
        return 2
    return serve(config, args.id, args.data_dir, args.verbose)


def _member(args: argparse.Namespace) -> int:
    """RAFT MEMBER ... through the given servers (the client follows the leader)."""
    if args.action == "list":
        cmd: list[str] = ["LIST"]
    elif args.node is None or args.node < 1:
        print(f"drafty member {args.action}: give the node id", file=sys.stderr)
        return 2
    elif args.action == "add":
        if args.peer is None or args.client is None:
            print("drafty member add: give --peer and --client", file=sys.stderr)
            return 2
        cmd = ["ADD", str(args.node), args.peer, args.client] + (["VOTER"] if args.voter else [])
    else:
        cmd = [args.action.upper(), str(args.node)]

    async def go() -> Any:
        async with AsyncClient(servers(args), timeout=10.0, deadline=15.0) as c:
            return await c.execute("RAFT", "MEMBER", *cmd)

    try:
        got = asyncio.run(go())
    except (CommandError, Refused, OutcomeUnknown) as e:
        print(f"drafty member {args.action}: {e}", file=sys.stderr)
        return 1
    if args.action != "list":
        print(f"node {args.node}: {args.action} done")
        return 0
    print(f"{'id':>4}  {'role':9} {'peer':22} {'client':22} lag")
    for node, role, peer, client, lag in got:
        shown = "-" if lag < 0 else str(lag)
        print(f"{node:>4}  {_show(role):9} {_show(peer):22} {_show(client):22} {shown}")
    return 0


def _cluster(args: argparse.Namespace) -> int:
    from .localcluster import run_cluster

    if not 1 <= args.nodes <= 9:
        print("drafty cluster: --nodes must be in 1..9", file=sys.stderr)
        return 2
    for name in ("port", "peer_port"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= 65535 - args.nodes:
            print(f"drafty cluster: --{name.replace('_', '-')} must leave room for "
                  f"{args.nodes} ports below 65536", file=sys.stderr)  # fmt: skip
            return 2
    return run_cluster(args.nodes, args.dir, args.port, args.peer_port)


def _show(value: Any) -> str:
    if value is None:
        return "(nil)"
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    return str(value)


async def _run(args: argparse.Namespace, *cmd: str) -> Any:
    async with AsyncClient(servers(args)) as c:
        return await c.execute(*cmd)


def _verb(args: argparse.Namespace) -> int:
    cmd = [args.verb] + [getattr(args, a) for a in ("key", "value", "expected", "new")
                         if hasattr(args, a)]  # fmt: skip
    try:
        print(_show(asyncio.run(_run(args, *cmd))))
    except (CommandError, Refused, OutcomeUnknown) as e:
        print(f"drafty {args.verb.lower()}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def _transfer_leader(args: argparse.Namespace) -> int:
    """RAFT TRANSFER through whichever node is given (the client follows the
    leader hint); done once the target leads."""

    async def go() -> Any:
        async with AsyncClient(servers(args), timeout=5.0, deadline=10.0) as c:
            return await c.execute("RAFT", "TRANSFER", args.to)

    try:
        asyncio.run(go())
    except (CommandError, Refused, OutcomeUnknown) as e:
        print(f"drafty transfer-leader: {e}", file=sys.stderr)
        return 1
    print(f"node {args.to} leads now")
    return 0


def _putrnd(args: argparse.Namespace) -> int:
    async def go() -> None:
        async with AsyncClient(servers(args)) as c:
            for _ in range(args.n):
                key, value = f"key:{secrets.token_hex(4)}", secrets.token_hex(8)
                await c.set(key, value)
                print(f"{key} {value}")

    try:
        asyncio.run(go())
    except (CommandError, Refused, OutcomeUnknown) as e:
        print(f"drafty putrnd: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    addrs = servers(args)
    if args.config is not None:
        addrs = [f"{h}:{p}" for h, p in load(args.config).clients().values()]

    async def one(addr: str) -> str:
        try:
            async with AsyncClient([addr], timeout=1.0, deadline=1.0) as c:
                raw = await c.execute("RAFT", "STATUS")
        except Exception as e:
            return f"{addr}: unreachable ({type(e).__name__})"
        st = {raw[k].decode(): raw[k + 1] for k in range(0, len(raw), 2)}
        line = (
            f"{addr}: node {st['node_id']} {_show(st['role'])} term {st['term']} "
            f"leader {st['leader']} commit {st['commit_index']} applied {st['applied_index']} "
            f"last {st['last_index']}"
        )
        if "voters" in st:  # older servers do not report these
            line += f"\n    voters {_show(st['voters']) or '-'}"
            if _show(st["learners"]):
                line += f", learners {_show(st['learners'])}"
            if _show(st["joint_outgoing"]):
                line += f", joint change from voters {_show(st['joint_outgoing'])}"
            if st["membership_pending"]:
                line += f" (change at index {st['membership_index']} not yet committed)"
            if st["removed"]:
                line += "; this node was REMOVED from the cluster"
            if st["transfer_to"]:
                line += f"; handing leadership to node {st['transfer_to']}"
        if "snapshot_index" in st:  # older servers do not report these
            line += (
                f"\n    snapshot {st['snapshot_index']} (term {st['snapshot_term']}), "
                f"log {st['log_first_index']}..{st['last_index']}: {st['log_entries']} entries, "
                f"{st['log_bytes']} bytes; snapshots taken {st['snapshots_taken']}, "
                f"installed {st['snapshots_installed']}"
            )
        followers = [f"    follower {k[9:]}: {_show(v)}" for k, v in st.items()
                     if k.startswith("follower_")]  # fmt: skip
        return "\n".join([line, *followers])

    async def all_nodes() -> list[str]:
        return list(await asyncio.gather(*(one(a) for a in addrs)))

    for line in asyncio.run(all_nodes()):
        print(line)
    return 0
