"""``python -m drafty`` is the ``drafty`` command."""

import sys

from .cli import main

sys.exit(main())
