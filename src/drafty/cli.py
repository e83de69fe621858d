"""The ``drafty`` command: parses arguments and hands off to each subcommand.

Each subcommand lives with the layer it belongs to and registers itself here
through an ``add_subcommand(subparsers)`` function that sets ``func``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, demo
from .check import cli as check_cli
from .service import cli as service_cli
from .sim import cli as sim_cli
from .storage import cli as storage_cli
from .torture import cli as torture_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drafty", description="drafty: a Raft library and replicated key-value service"
    )
    parser.add_argument("--version", action="version", version=f"drafty {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    demo.add_subcommand(sub)
    service_cli.add_subcommands(sub)
    storage_cli.add_subcommands(sub)
    sim_cli.add_subcommand(sub)
    check_cli.add_subcommand(sub)
    torture_cli.add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
