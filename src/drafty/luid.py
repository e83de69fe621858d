"""Locally unique ids for log lines: ``client-17``, ``peer-3``, ``append-4093``.

Every connection, request and RPC worth following in a trace gets a short
name made of its kind and a per-kind counter, unique within the process, so
a reader can follow one of them through interleaved log lines by eye.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator

_counters: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))


def luid(kind: str) -> str:
    """The next id of ``kind``: ``luid("client")`` -> ``"client-1"``, ``"client-2"``..."""
    return f"{kind}-{next(_counters[kind])}"
