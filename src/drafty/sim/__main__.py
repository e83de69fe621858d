"""``python -m drafty.sim ...`` runs the ``sim`` command alone (see :mod:`drafty.sim.cli`)."""

import argparse
import sys

from .cli import add_arguments, main

parser = argparse.ArgumentParser(
    prog="python -m drafty.sim", description="drafty's deterministic cluster simulator"
)
add_arguments(parser)
sys.exit(main(parser.parse_args()))
