"""Time to serve: how long after a heal each node takes to get a write through.

Theory of operation
-------------------
After a fault heals (rules removed, process continued, or a killed node
restarted and listening), :func:`time_to_serve` measures, for every node at
once, the time from that moment until a ``SET`` of that node's probe key,
sent to *that node's* client port, is acknowledged. A follower forwards the
write to the leader, so this is the time until the node is part of a working
cluster again: it knows the leader, the leader reaches it, and a log entry
commits. Each attempt opens a fresh connection (nothing stale from before
the fault) with a short deadline; ``-TRYAGAIN``, ``-UNCERTAIN``, timeouts and
refused connections are retried after a few milliseconds. A node that does
not serve within ``limit_s`` is reported as ``None`` (not served).

Probe keys (``torture-probe-<i>``) are not register keys, so the probes stay
out of the checked history. Any other error reply is a bug and is reported.

:func:`summarize` is pure: the per-heal record (each node's milliseconds,
the maximum and the median, whether every node made its bound).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .cluster import Nodes
from .resp import ReplyError, call_once

ATTEMPT_TIMEOUT_S = 0.5
RETRY_PAUSE_S = 0.01
_seq = itertools.count(1)


def probe_key(i: int) -> str:
    return f"torture-probe-{i}"


@dataclass
class ProbeResult:
    ms: float | None
    attempts: int
    last_error: str = ""
    unexpected: list[str] = field(default_factory=list)


async def probe_node(nodes: Nodes, i: int, start: float, limit_s: float) -> ProbeResult:
    """Milliseconds from ``start`` (monotonic) until a write through node ``i`` succeeds."""
    res = ProbeResult(None, 0)
    while time.monotonic() - start < limit_s:
        res.attempts += 1
        try:
            reply = await call_once(
                nodes.client(i),
                "SET",
                probe_key(i),
                str(next(_seq)),
                timeout=ATTEMPT_TIMEOUT_S,
                factory=nodes.net.socket,
            )
        except (OSError, TimeoutError, ConnectionError) as e:
            res.last_error = repr(e)
        else:
            if reply == "OK":
                res.ms = (time.monotonic() - start) * 1000
                return res
            res.last_error = reply.text if isinstance(reply, ReplyError) else repr(reply)
            if not (isinstance(reply, ReplyError) and reply.code in ("TRYAGAIN", "UNCERTAIN")):
                res.unexpected.append(f"probe through node {i}: {res.last_error}")
        await asyncio.sleep(RETRY_PAUSE_S)
    return res


async def time_to_serve(
    nodes: Nodes, starts: Mapping[int, float], limit_s: float
) -> dict[int, ProbeResult]:
    """Probe every node in ``starts`` at once, each from its own start time."""
    ids = sorted(starts)
    got = await asyncio.gather(*(probe_node(nodes, i, starts[i], limit_s) for i in ids))
    return dict(zip(ids, got, strict=True))


def summarize(results: Mapping[int, ProbeResult], bounds_ms: Mapping[int, float]) -> dict[str, Any]:
    """The report's record of one heal (pure)."""
    ms = {i: r.ms for i, r in sorted(results.items())}
    served = [v for v in ms.values() if v is not None]
    over = [i for i, v in ms.items() if v is None or v > bounds_ms[i]]
    return {
        "ms": {str(i): None if v is None else round(v, 1) for i, v in ms.items()},
        "max_ms": None if len(served) < len(ms) else round(max(served), 1),
        "p50_ms": round(statistics.median(served), 1) if served else None,
        "bound_ms": {str(i): bounds_ms[i] for i in sorted(bounds_ms)},
        "over_bound": over,
        "ok": not over,
        "not_served": [i for i, v in ms.items() if v is None],
        "last_errors": {str(i): r.last_error for i, r in results.items() if r.ms is None},
    }
