"""Operator commands: ``drafty storage inspect DIR`` and ``drafty storage bench``.

:func:`add_subcommands` registers a ``storage`` command (with ``inspect`` and
``bench`` under it) on the top-level ``drafty`` parser; each leaf sets
``func(args) -> int`` (the exit status). :func:`main` serves
``python -m drafty.storage inspect DIR`` / ``python -m drafty.storage bench``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .bench import run_bench
from .inspect import run_inspect


def _inspect(args: argparse.Namespace) -> int:
    return run_inspect(Path(args.dir))


def _bench(args: argparse.Namespace) -> int:
    batches = [int(b) for b in str(args.reopen_batches).split(",") if b]
    return run_bench(args.dir, args.seconds, args.reopen_entries, batches)


def _add_leaves(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "inspect",
        help="report on a data directory without changing it",
        description="Print segments, hard state, snapshots and problems of a drafty data "
        "directory (or a bare log directory). Read-only. Exit 0: it would open; 1: it would "
        "refuse to start (corruption); 2: not a directory.",
    )
    p.add_argument("dir", help="node data directory (with meta.json, wal/, snap/) or log dir")
    p.set_defaults(func=_inspect)
    b = sub.add_parser(
        "bench",
        help="measure log appends/fsyncs against the raw disk, and reopen time",
        description="Appends 100-byte entries at batch sizes 1, 16, 256, 4096 with one sync per "
        "batch, next to raw os.write + os.fsync of the same bytes; then times reopening a log.",
    )
    b.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to create the scratch directory (default: system temp dir)",
    )
    b.add_argument("--seconds", type=float, default=2.0, help="time per measurement (2)")
    b.add_argument(
        "--reopen-entries",
        type=int,
        default=1_000_000,
        help="entries in the log to reopen (1000000)",
    )
    b.add_argument(
        "--reopen-batches",
        default="4096,256,1",
        help="comma-separated batch sizes to write the reopen log with (4096,256,1)",
    )
    b.set_defaults(func=_bench)


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``storage inspect`` and ``storage bench`` on a ``drafty`` parser."""
    storage = subparsers.add_parser("storage", help="inspect and benchmark node storage")
    sub = storage.add_subparsers(dest="storage_command", metavar="{inspect,bench}", required=True)
    _add_leaves(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drafty.storage", description="drafty storage tools"
    )
    sub = parser.add_subparsers(dest="command", metavar="{inspect,bench}", required=True)
    _add_leaves(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
