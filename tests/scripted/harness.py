"""The command interpreter behind the scripted protocol tests.

Each command drives a :class:`drafty.sim.MemoryCluster` and returns the text
the core's describer renders, so a script reads like a protocol trace.

Commands (ids are node ids; ``k=v`` options are optional):

- ``add-nodes N [prevote=true] [check-quorum=true] [election=10] [heartbeat=1]
  [inflight=256] [max-bytes=N] [forward=false] [lease=false] [lease-drift=2]
  [promote-lag=1000] [seed=0]``: start a cluster; ``join ID`` starts a new,
  empty node that knows no membership (to be added with ``conf-change``)
- ``campaign ID``; ``elect ID`` (campaign and stabilize quietly)
- ``propose ID DATA``; ``propose-batch ID DATA...``
- ``tick ID [N]``; ``tick-election ID...`` (enough ticks to time out for sure);
  ``tick-heartbeat ID``
- ``process-ready ID...``; ``deliver-msgs ID...``; ``drop-msgs ID...``;
  ``duplicate-msgs ID...`` (the network delivers each queued message twice);
  ``stabilize [ID...]`` (both, repeatedly, until quiet)
- ``isolate ID``; ``partition 1,2 3``; ``cut SRC DST`` (one way); ``heal``
- ``crash ID``; ``restart ID``
- ``compact ID INDEX`` (take a snapshot at applied INDEX, drop the log up to it);
  ``report-snapshot ID PEER ok|fail`` (the leader's snapshot transfer ended)
- ``transfer-leader ID TARGET`` (ID hands leadership to TARGET)
- ``conf-change ID add-voter=N add-learner=N promote=N remove=N`` (repeatable);
  ``membership ID...``
- ``status ID...``; ``raft-log ID``; ``applied ID``; ``counters ID``
"""

from __future__ import annotations

from drafty.core import NotLeader, ProposalRefused, describe
from drafty.core.membership import ConfChange
from drafty.sim import MemoryCluster

_OPTION_NAMES = {
    "prevote": ("prevote", "bool"),
    "check-quorum": ("check_quorum", "bool"),
    "election": ("election_ticks", "int"),
    "heartbeat": ("heartbeat_ticks", "int"),
    "inflight": ("max_inflight", "int"),
    "max-bytes": ("max_msg_bytes", "int"),
    "forward": ("forward_proposals", "bool"),
    "lease": ("lease_reads", "bool"),
    "lease-drift": ("lease_drift_ticks", "int"),
    "promote-lag": ("promote_max_lag_entries", "int"),
}


class Interaction:
    def __init__(self) -> None:
        self._cluster: MemoryCluster | None = None
        self._restarts: dict[int, int] = {}

    @property
    def c(self) -> MemoryCluster:
        if self._cluster is None:
            raise ValueError("no cluster: start with add-nodes")
        return self._cluster

    def run(self, command: str) -> str:
        words = command.split()
        name, args = words[0], words[1:]
        handler = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {name!r}")
        out: list[str] = handler(args)
        return "\n".join(out)

    # -- set-up ----------------------------------------------------------

    def cmd_add_nodes(self, args: list[str]) -> list[str]:
        n = int(args[0])
        overrides: dict[str, object] = {}
        seed = 0
        for opt in args[1:]:
            key, _, value = opt.partition("=")
            if key == "seed":
                seed = int(value)
                continue
            field, kind = _OPTION_NAMES[key]
            overrides[field] = value == "true" if kind == "bool" else int(value)
        self._cluster = MemoryCluster(n, seed=seed, config_overrides=overrides)
        return []

    def cmd_join(self, args: list[str]) -> list[str]:
        """join ID: start a new, empty node ID that knows no membership yet."""
        self.c.join(int(args[0]))
        return []

    # -- input -------------------------------------------------------------

    def cmd_campaign(self, args: list[str]) -> list[str]:
        self.c.nodes[int(args[0])].raw.campaign()
        return []

    def cmd_elect(self, args: list[str]) -> list[str]:
        """Campaign and stabilize quietly: set-up for scripts about other things."""
        node = int(args[0])
        self.c.nodes[node].raw.campaign()
        self.c.stabilize()
        st = self.c.nodes[node].raw.status()
        return [f"{node}: {st.role.value} Term:{st.term} Commit:{st.commit}"]

    def cmd_propose(self, args: list[str]) -> list[str]:
        return self._propose(int(args[0]), args[1:])

    def cmd_propose_batch(self, args: list[str]) -> list[str]:
        return self._propose(int(args[0]), args[1:])

    def cmd_transfer_leader(self, args: list[str]) -> list[str]:
        """transfer-leader NODE TARGET: NODE hands leadership to TARGET."""
        try:
            self.c.nodes[int(args[0])].raw.transfer_leadership(int(args[1]))
        except ProposalRefused as e:
            return [f"{type(e).__name__}: {e}"]
        return []

    def cmd_conf_change(self, args: list[str]) -> list[str]:
        """conf-change NODE add-voter=ID add-learner=ID promote=ID remove=ID ...:
        NODE proposes the membership change (each option repeatable)."""
        fields: dict[str, list[int]] = {}
        for opt in args[1:]:
            key, _, value = opt.partition("=")
            name = {"add-voter": "add_voters", "add-learner": "add_learners",
                    "promote": "promote", "remove": "remove"}[key]  # fmt: skip
            fields.setdefault(name, []).append(int(value))
        change = ConfChange(**{k: tuple(v) for k, v in fields.items()})
        try:
            index = self.c.nodes[int(args[0])].raw.propose_conf_change(change)
        except ProposalRefused as e:
            return [f"{type(e).__name__}: {e}"]
        return [f"index {index}"]

    def cmd_membership(self, args: list[str]) -> list[str]:
        """membership ID...: the membership each node has in effect."""
        return [f"{a}: {self.c.nodes[int(a)].raw.raft.membership.describe()}" for a in args]

    def cmd_read_index(self, args: list[str]) -> list[str]:
        """read-index NODE CTX...: start linearizable reads (ReadIndex)."""
        node = int(args[0])
        try:
            for ctx in args[1:]:
                self.c.nodes[node].raw.read_index(ctx.encode())
        except NotLeader as e:
            return [f"NotLeader: leader={e.leader}"]
        return []

    def _propose(self, node: int, items: list[str]) -> list[str]:
        try:
            index = self.c.nodes[node].raw.propose_batch(d.encode() for d in items)
        except NotLeader as e:
            return [f"NotLeader: leader={e.leader}"]
        except ProposalRefused as e:
            return [f"{type(e).__name__}: {e}"]
        return (
            [f"forwarded to {self.c.nodes[node].raw.status().leader}"]
            if index is None
            else [f"index {index}"]
        )

    def cmd_tick(self, args: list[str]) -> list[str]:
        self.c.tick(int(args[0]), int(args[1]) if len(args) > 1 else 1)
        return []

    def cmd_tick_election(self, args: list[str]) -> list[str]:
        for a in args:
            node = int(a)
            cfg = self.c.config(node)
            self.c.tick(node, 2 * cfg.election_ticks - 1)
        return []

    def cmd_tick_heartbeat(self, args: list[str]) -> list[str]:
        for a in args:
            node = int(a)
            self.c.tick(node, self.c.config(node).heartbeat_ticks)
        return []

    # -- processing --------------------------------------------------------

    def cmd_process_ready(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for a in args:
            out.extend(self._process(int(a)))
        return out

    def _process(self, node: int) -> list[str]:
        rd = self.c.process_ready(node)
        if rd is None:
            return []
        return [f"> {node} handling Ready"] + ["  " + line for line in describe.ready(rd)]

    def cmd_deliver_msgs(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for a in args:
            out.extend(self._deliver(int(a)))
        return out

    def _deliver(self, node: int) -> list[str]:
        msgs = self.c.deliver(node)
        if not msgs:
            return []
        return [f"> {node} receiving messages"] + ["  " + describe.message(m) for m in msgs]

    def cmd_drop_msgs(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for a in args:
            node = int(a)
            for m in self.c.inbox[node]:
                out.append("dropped: " + describe.message(m))
            self.c.inbox[node] = []
        return out

    def cmd_duplicate_msgs(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for a in args:
            node = int(a)
            out.extend("duplicated: " + describe.message(m) for m in self.c.inbox[node])
            self.c.inbox[node] = [m for m in self.c.inbox[node] for _ in (0, 1)]
        return out

    def cmd_stabilize(self, args: list[str]) -> list[str]:
        ids = [int(a) for a in args] or list(self.c.ids)
        out: list[str] = []
        for _ in range(1000):
            before = len(out)
            for i in ids:
                out.extend(self._process(i))
            for i in ids:
                out.extend(self._deliver(i))
            if len(out) == before:
                return out
        raise RuntimeError("stabilize did not settle")

    # -- faults ------------------------------------------------------------

    def cmd_isolate(self, args: list[str]) -> list[str]:
        self.c.isolate(int(args[0]))
        return []

    def cmd_partition(self, args: list[str]) -> list[str]:
        self.c.partition(*[[int(x) for x in g.split(",")] for g in args])
        return []

    def cmd_cut(self, args: list[str]) -> list[str]:
        self.c.cut.add((int(args[0]), int(args[1])))
        return []

    def cmd_heal(self, args: list[str]) -> list[str]:
        self.c.heal()
        return []

    def cmd_crash(self, args: list[str]) -> list[str]:
        self.c.crash(int(args[0]))
        return []

    def cmd_wipe(self, args: list[str]) -> list[str]:
        """Throw away a crashed node's disk (a lost data directory)."""
        self.c.wipe(int(args[0]))
        return []

    def cmd_restart(self, args: list[str]) -> list[str]:
        node = int(args[0])
        self._restarts[node] = self._restarts.get(node, 0) + 1
        self.c.restart(node, self._restarts[node])
        return []

    # -- snapshots -----------------------------------------------------------

    def cmd_compact(self, args: list[str]) -> list[str]:
        meta = self.c.compact(int(args[0]), int(args[1]))
        return [describe.snapshot(meta)]

    def cmd_report_snapshot(self, args: list[str]) -> list[str]:
        if args[2] not in ("ok", "fail"):
            raise ValueError("report-snapshot ID PEER ok|fail")
        self.c.nodes[int(args[0])].raw.report_snapshot(int(args[1]), args[2] == "ok")
        return []

    # -- inspection --------------------------------------------------------

    def cmd_status(self, args: list[str]) -> list[str]:
        out: list[str] = []
        for a in args:
            out.extend(describe.status(self.c.nodes[int(a)].raw.status()))
        return out

    def cmd_raft_log(self, args: list[str]) -> list[str]:
        log = self.c.nodes[int(args[0])].raw.raft.log
        head = [f"compacted through {log.offset_term}/{log.offset}"] if log.offset else []
        return head + [describe.entry(e) for e in log.entries] or ["empty"]

    def cmd_applied(self, args: list[str]) -> list[str]:
        n = self.c.nodes[int(args[0])]
        head = ["installed " + describe.snapshot(n.installed)] if n.installed else []
        return head + [describe.entry(e) for e in n.applied] or ["none"]

    def cmd_counters(self, args: list[str]) -> list[str]:
        counters = self.c.nodes[int(args[0])].raw.status().counters
        return [f"{k}={v}" for k, v in sorted(counters.items())] or ["none"]
