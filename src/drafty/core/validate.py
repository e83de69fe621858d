"""The first gate of every message: what the core drops before it touches any state.

A message from the network may be addressed elsewhere, claim an impossible
sender, or be internally impossible (an entry out of sequence, a term below its own
entries', a snapshot of no voters). :func:`drop_reason` names the reason; the
core counts it under that name and never raises (bad remote input never
crashes a node). A sender outside this node's membership is *not* dropped
here: a node that has not yet heard of a membership change must still follow
a leader the change added; the handlers that need a member (a leader's
answers from followers, votes) check it themselves. Transfer messages belong to the node layer
(:mod:`drafty.node.transfer`) and never reach the core.
"""

from __future__ import annotations

from .messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    InstallSnapshot,
    Message,
    SnapshotAck,
    SnapshotChunk,
    VoteRequest,
)
from .types import NodeId


def drop_reason(m: Message, me: NodeId) -> str | None:
    """Why a message must be dropped before it touches any state, or None."""
    if isinstance(m, (SnapshotChunk, SnapshotAck)):
        return "transfer_message_in_core"  # the node layer's (drafty.node.transfer)
    if m.dst != me:
        return "wrong_destination"
    if m.src < 1 or m.src == me:
        return "bad_sender"
    if m.term < 0:
        return "invalid_message"
    if isinstance(m, AppendEntries):
        if m.prev_index < 0 or m.prev_term < 0 or m.commit < 0 or m.prev_term > m.term:
            return "invalid_message"
        index, term = m.prev_index, m.prev_term
        for e in m.entries:
            if e.index != index + 1 or e.term < max(term, 1) or e.term > m.term:
                return "invalid_message"
            index, term = e.index, e.term
    elif isinstance(m, AppendResponse):
        if m.index < 0 or m.conflict_index < 0 or m.conflict_term < 0:
            return "invalid_message"
    elif isinstance(m, VoteRequest):
        if m.term < 1 or m.last_index < 0 or not 0 <= m.last_term <= m.term:
            return "invalid_message"
    elif isinstance(m, Heartbeat) and m.commit < 0:
        return "invalid_message"
    elif isinstance(m, InstallSnapshot):
        meta = m.meta
        if (
            meta.index < 1
            or not 1 <= meta.term <= m.term
            or not meta.voters
            or any(v < 1 for v in (*meta.voters, *meta.learners, *meta.outgoing))
        ):
            return "invalid_message"
    return None
