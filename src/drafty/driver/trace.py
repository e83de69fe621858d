"""What a running node tells its operator: the ``drafty.driver`` log.

One line at INFO per event an operator cares about (a role change, a
snapshot saved, installed or restored, the log compacted), never one per
entry or per message: with debug on, each Ready and each RPC in it is named
by a locally unique id (``append-4093``) so one exchange can be followed
across nodes' logs.
"""

from __future__ import annotations

import logging

from ..core import NONE, Ready, Role, SnapshotMeta, describe
from ..luid import luid
from ..node import Applied, Node, Verdict
from ..node.envelope import Envelope

log = logging.getLogger("drafty.driver")

_RPC_NAMES = {
    "AppendEntries": "append",
    "AppendResponse": "append-ack",
    "VoteRequest": "vote",
    "VoteResponse": "vote-ack",
    "Heartbeat": "heartbeat",
    "HeartbeatResponse": "heartbeat-ack",
    "Propose": "forward",
    "SnapshotChunk": "snapshot-chunk",
    "SnapshotAck": "snapshot-ack",
}


class Tracer:
    """The node's :class:`~drafty.node.Observer`: logs role changes and installed
    snapshots, and with debug on every Ready and RPC."""

    def __init__(self) -> None:
        self.started = False
        """False while the node is built: a restore then is a restart, which
        the driver logs itself (with its figures)."""

    def on_ready(self, node: Node, rd: Ready) -> None:
        soft = rd.soft_state
        if soft is not None and (soft.role is not Role.LEADER or soft.leader != node.id):
            who = f"node {soft.leader}" if soft.leader != NONE else "unknown"
            log.info("node %d: %s, term %d, leader %s", node.id, soft.role.value,
                     node.raw.raft.term, who)  # fmt: skip
        elif soft is not None:
            log.info("node %d: leader of term %d", node.id, node.raw.raft.term)
        if not log.isEnabledFor(logging.DEBUG):
            return
        name = luid("ready")
        log.debug("node %d %s: %d entries to persist, %d to apply, hard state %s", node.id,
                  name, len(rd.entries), len(rd.committed_entries), rd.hard_state)  # fmt: skip
        for m in (*rd.messages, *rd.messages_after_persist):
            rpc = luid(_RPC_NAMES.get(type(m).__name__, "message"))
            log.debug("node %d %s %s: %s", node.id, name, rpc, describe.message(m))

    def on_propose(self, node: Node, envelope: Envelope, index: int | None) -> None:
        pass

    def on_applied(self, node: Node, applied: Applied) -> None:
        if applied.verdict is Verdict.MALFORMED:
            log.error("node %d: entry %d skipped: not a valid envelope", node.id,
                      applied.entry.index)  # fmt: skip

    def on_restored(self, node: Node, meta: SnapshotMeta) -> None:
        if self.started:
            log.info("node %d: installed a snapshot from leader %d: index %d, term %d",
                     node.id, node.leader, meta.index, meta.term)  # fmt: skip
