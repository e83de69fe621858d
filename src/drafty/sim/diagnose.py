"""Diagnoses for liveness reports: who is where, and which replication stalled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..core import AppendEntries, AppendResponse, NodeId
from ..core.progress import ProgressState
from .events import Deliver, Event
from .replica import Replica


def stalled_replication(
    leader: NodeId | None,
    replicas: Mapping[NodeId, Replica],
    queue: Sequence[tuple[int, int, Event]],
) -> str:
    """Followers the leader streams to (REPLICATE) that lack entries, while
    nothing is in flight between them: replication to them has stopped."""
    if leader is None:
        return ""
    r = replicas[leader].raw.raft
    busy = set()
    for _, _, ev in queue:
        if (
            isinstance(ev, Deliver)
            and isinstance(ev.msg, (AppendEntries, AppendResponse))
            and leader in (ev.msg.src, ev.msg.dst)
        ):
            busy.add(ev.msg.dst if ev.msg.src == leader else ev.msg.src)
    last = r.log.last_index()
    out = []
    for p, pr in sorted(r.progress.items()):
        if pr.state is ProgressState.REPLICATE and pr.match < last and p not in busy:
            out.append(f"{p} (match={pr.match} next={pr.next} inflight={pr.inflights.count()})")
    if not out:
        return ""
    return (
        f"; replication from leader {leader} stalled to "
        + ", ".join(out)
        + ": REPLICATE with nothing in flight and heartbeats never resend"
    )


def roles(replicas: Mapping[NodeId, Replica]) -> str:
    parts = []
    for i, rep in replicas.items():
        if not rep.running:
            parts.append(f"{i}:{rep.state.value}")
            continue
        r = rep.raw.raft
        parts.append(f"{i}:{r.role.value}@{r.term}/last={r.log.last_index()}")
    return "nodes " + " ".join(parts)
