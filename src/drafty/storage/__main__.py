"""``python -m drafty.storage inspect DIR`` / ``python -m drafty.storage bench``."""

from __future__ import annotations

import logging
import sys

from .cli import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
