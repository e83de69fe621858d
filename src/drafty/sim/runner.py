"""The deterministic cluster simulator: virtual time, one seed, oracle after every event.

Theory of operation
-------------------
:class:`Simulation` runs N :class:`~drafty.sim.replica.Replica` nodes (each
the real node layer, :class:`drafty.node.Node`, around the real core and the
key-value store), a :class:`~drafty.sim.network.Network`, simulated disks and
clocks, clients running the native client's retry rules
(:mod:`drafty.sim.workload`) against each node's service front (the RESP
server's own command and reply mapping, :mod:`drafty.service.commands`), and
a :class:`~drafty.sim.nemesis.Nemesis`, on one event queue ordered by
(virtual ms, insertion number). Everything random comes from ONE
``random.Random(seed)``; each RawNode gets its own ``random.Random`` seeded
from it at every (re)start. No wall clock, no global random: a seed replays
byte for byte.

The run has three phases, in virtual time:

1. **faults** for ``steps`` steps of ``tick_ms`` (one step = one tick period):
   each node ticks every ``tick_ms`` (with its own phase), messages travel
   with latency, syncs take time, clients propose, the nemesis strikes,
   and in a share of seeds the membership nemesis (:mod:`drafty.sim.members`)
   starts new nodes (:meth:`Simulation.add_node`), retires old ones for good
   and changes the membership through whichever node leads;
2. **heal** at ``steps * tick_ms``: every fault ends, the network turns calm,
   regular clients stop and a probe client writes. Within
   ``liveness_timeouts`` election timeouts a write must be ``ok``, or the
   cluster must at least have applied more of its backlog in that time (a
   long log caught up in small messages takes a while) ...
3. **converge**: ... and every member must then apply it, its slowest
   gaining ground in every period of that length (a node catching up a long
   log may take several). Missing either bound is a ``liveness`` violation
   (:mod:`drafty.sim.ending` runs these last two phases).

After every event, the nodes it touched have their Actions carried out and
the :class:`~drafty.sim.oracle.Oracle` checks them (logs, outcomes, replies,
log time); a violation (or any exception escaping the node) stops the run
with the last events kept for the report (:mod:`drafty.sim.report`). A run
that ends cleanly also has its client history judged by the linearizability
checker (:mod:`drafty.check`). So does a *message storm*: more than
``storm_events`` events per node within one step, i.e. traffic that feeds on
itself instead of settling.

Per-seed choices (:class:`Scenario`): PreVote and CheckQuorum on or off,
heartbeat period, inflight window, message byte budget, network rates, disk
latency, number of clients, nemesis tempo, leases, transfers, membership
changes.

Invariants
----------
- Events are processed in (time, insertion) order; time never goes back.
- Only a running node is ticked or stepped; a paused node's deliveries and
  sync completions wait for its resume; a down node's are lost.
- A retired node is never restarted (:meth:`Simulation.down` leaves it out),
  and a node is only retired between events (never inside its own step).
"""

from __future__ import annotations

import heapq
import random
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core import EntryKind, Message, NodeId, ProposalRefused, Ready, Role, SnapshotMeta
from ..core.membership import Membership
from ..node import Applied, Job, Node, Reply
from ..node.envelope import Envelope
from .ending import EndPhase
from .events import (
    ClientAnswer,
    ClientArrive,
    ClientLost,
    ClientWake,
    Deliver,
    Event,
    Fault,
    Heal,
    JobDone,
    MemberAct,
    NemesisAct,
    Note,
    Stop,
    SyncDone,
    Tick,
)
from .front import ServiceFront
from .members import MemberNemesis
from .mirror import Violation
from .nemesis import FAULT_KINDS, FaultAction, Nemesis
from .network import Network
from .oracle import Oracle
from .replica import EPOCH_MS, NodeState, Replica
from .scenario import ALL_FAULTS, Scenario, SimConfig, parse_faults
from .statecheck import StateCheck
from .workload import Workload

__all__ = ["ALL_FAULTS", "Outcome", "SimConfig", "Simulation", "TraceItem", "parse_faults"]


@dataclass(slots=True)
class TraceItem:
    number: int
    time: int
    event: Event
    notes: list[Note] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    """How a run ended, for the report."""

    violation: Violation | None = None
    event_number: int = 0
    time: int = 0
    error: str | None = None
    """Traceback of an exception that escaped the core or the simulator."""
    liveness_ms: int | None = None
    converge_ms: int | None = None
    linearizable: str | None = None
    """The checker's verdict on the history (ok / unknown), once the run ended cleanly."""


class Simulation(EndPhase):
    """One seeded run; see the module docstring. Call :meth:`run` once."""

    def __init__(self, cfg: SimConfig) -> None:
        if cfg.nodes < 1:
            raise ValueError("nodes must be at least 1")
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.scenario = sc = Scenario.choose(self.rng, cfg)
        self.ids: tuple[NodeId, ...] = tuple(range(1, cfg.nodes + 1))
        self.now = 0
        self.events = 0
        self._seq = 0
        self._queue: list[tuple[int, int, Event]] = []
        self.network = Network(self.rng, self.ids, sc.network)
        drift = max(0.0, max(sc.clock_rates, default=1.0) - 1.0)
        self.oracle = Oracle(max_lead_ms=sc.options.max_clock_lead_ms, clock_drift=drift)
        self.statecheck = StateCheck(sc.options)
        self.replicas: dict[NodeId, Replica] = {
            i: Replica(
                sc.config(i, cfg),
                sc.options,
                cfg.node_factory,
                cfg.layer_factory,
                skew_ms=sc.skew_ms if i == sc.skewed else 0,
                clock_rate=sc.clock_rates[i - 1],
                ack_before_fsync=cfg.ack_before_fsync,
                forget_vote=cfg.forget_vote_on_restart,
            )
            for i in self.ids
        }
        self.deferred: dict[NodeId, list[Event]] = {i: [] for i in self.ids}
        self.front = ServiceFront(self, self.ids)
        kinds = tuple(k for k in FAULT_KINDS if k in cfg.faults and k != "network")
        self.nemesis = Nemesis(
            self, self.rng, self.ids, kinds, hunt=sc.hunt, max_faulty=sc.max_faulty,
            transfer_rate=sc.transfer_rate, trng=random.Random(f"transfer-{cfg.seed}"),
        )  # fmt: skip
        c = sc.config(1, cfg)
        self.members = MemberNemesis(
            self, random.Random(f"member-acts-{cfg.seed}"), max_members=cfg.nodes + 2,
            lease=c.prevote or c.check_quorum,
        )  # fmt: skip
        self.retired: set[NodeId] = set()
        """Nodes crashed for good by the membership nemesis."""
        timeout = sc.options.request_timeout_ms
        self.workload = Workload(
            self, self.rng, self.ids, sc.clients,
            attempt_timeout_ms=timeout + 4 * cfg.tick_ms, deadline_ms=3 * timeout,
            think_ms=3 * cfg.tick_ms, drop=sc.client_drop,
        )  # fmt: skip
        self.trace: deque[TraceItem] = deque(maxlen=None if cfg.verbose > 1 else cfg.trace_len)
        """The last events (every event with ``verbose > 1``), for the report."""
        self.log: list[str] = []
        self.outcome = Outcome()
        self.heal_at = cfg.steps * cfg.tick_ms
        self.bound_ms = cfg.liveness_timeouts * cfg.election_ticks * cfg.tick_ms
        self.restarts = 0
        self.peak_step_events = 0
        """Most events processed in one step (bursts show up here)."""
        self.replies = 0
        self.backlog_extensions = 0
        """Times the post-heal deadline was extended because the backlog was still applying."""
        self._probe_index = 0
        self._converge_low = 0
        self._progress_mark = 0
        self._done = False
        self._item: TraceItem | None = None

    # -- scheduling ----------------------------------------------------------

    def _at(self, t: int, ev: Event) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t, self._seq, ev))

    def schedule(self, at: int, ev: Event) -> None:
        self._at(at, ev)

    def schedule_fault(self, at: int, action: FaultAction) -> None:
        self._at(at, Fault(action))

    def client_latency(self) -> int:
        return self.rng.randint(1, 4)

    def note(self, text: str, log: bool = True) -> None:
        """Attach ``text`` to the current event's trace (and, with -v and ``log``, print it)."""
        if self._item is not None:
            self._item.notes.append(text)
        if log and self.cfg.verbose:
            self.log.append(f"  t={self.now}ms {text}")

    # -- the run ---------------------------------------------------------------

    def run(self) -> Outcome:
        cfg = self.cfg
        for i in self.ids:
            self._start(i)
            self._at(self.rng.randrange(cfg.tick_ms), Tick(i))
        self._at(0, NemesisAct())
        if self.scenario.members:
            self._at(self.members.next_gap(), MemberAct())
        self._at(self.heal_at, Heal())
        self.workload.start()
        queue = self._queue
        limit = cfg.storm_events * cfg.nodes
        window, in_window = -1, 0
        while queue and not self._done:
            t, _, ev = heapq.heappop(queue)
            self.now = t
            self.events += 1
            if t // cfg.tick_ms != window:
                self.peak_step_events = max(self.peak_step_events, in_window)
                window, in_window = t // cfg.tick_ms, 0
            in_window += 1
            if in_window > limit:
                self._fail(self._storm(limit))
                break
            item = TraceItem(self.events, t, ev)
            self._item = item
            try:
                self._handle(ev)
            except Violation as v:
                self._fail(v)
            except Exception as e:  # the node or the sim raised: a finding either way
                self._fail(Violation("exception", f"{type(e).__name__}: {e}"))
                self.outcome.error = traceback.format_exc()
            if item.notes or not isinstance(ev, Tick | NemesisAct | ClientWake) or self._done:
                self.trace.append(item)
        self._item = None
        self.peak_step_events = max(self.peak_step_events, in_window)
        return self.outcome

    def _storm(self, limit: int) -> Violation:
        kinds: dict[str, int] = {}
        for _, _, ev in self._queue:
            if isinstance(ev, Deliver):
                m = ev.msg
                key = f"{m.src}->{m.dst} {type(m).__name__}"
                kinds[key] = kinds.get(key, 0) + 1
        top = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
        return Violation(
            "message storm",
            f"more than {limit} events in one step ({self.cfg.tick_ms}ms); in flight: "
            + ", ".join(f"{k} x{n}" for k, n in top),
        )

    def _fail(self, v: Violation) -> None:
        self.outcome.violation = v
        self.outcome.event_number = self.events
        self.outcome.time = self.now
        self._done = True

    def _handle(self, ev: Event) -> None:
        if isinstance(ev, Tick):
            rep = self.replicas[ev.node]
            self._at(self.now + rep.tick_period(self.cfg.tick_ms), ev)
            if rep.running:
                rep.node.tick(rep.now(self.now))
                self.drive(ev.node)
        elif isinstance(ev, Deliver):
            self._deliver(ev)
        elif isinstance(ev, SyncDone):
            self._sync_done(ev)
        elif isinstance(ev, JobDone):
            self._job_done(ev)
        elif isinstance(ev, ClientWake):
            self.workload.wake(ev.client)
        elif isinstance(ev, ClientArrive):
            self._arrive(ev)
        elif isinstance(ev, ClientAnswer):
            self.workload.answer(ev.client, ev.attempt, ev.value, ev.error)
        elif isinstance(ev, ClientLost):
            self.workload.lost(ev.client, ev.attempt, ev.why)
        elif isinstance(ev, NemesisAct):
            if self.now < self.heal_at:
                self.nemesis.act()
                lo, hi = self.scenario.nemesis_gap
                self._at(self.now + self.rng.randint(lo, hi), ev)
        elif isinstance(ev, MemberAct):
            if self.now < self.heal_at:
                self.members.act()
                self._at(self.now + self.members.next_gap(), ev)
        elif isinstance(ev, Stop):
            if ev.node not in self.retired:
                self.retire(ev.node)
        elif isinstance(ev, Fault):
            self.nemesis.apply(ev.action)
        elif isinstance(ev, Heal):
            self._heal()
        else:
            self._deadline(ev.what)
        if self._probe_index and self.outcome.converge_ms is None:
            self._check_converged()

    def _deliver(self, ev: Deliver) -> None:
        m = ev.msg
        rep = self.replicas[m.dst]
        if rep.state is NodeState.DOWN:
            self.network.refuse()
        elif not self.network.admit(m):
            pass
        elif rep.state is NodeState.PAUSED:
            self.deferred[m.dst].append(ev)
        else:
            rep.node.receive((m,), rep.now(self.now))
            self.drive(m.dst)

    def _running_life(self, ev: SyncDone | JobDone) -> Replica | None:
        """The replica a disk event is for, if it runs the life that started it
        (a paused one gets the event on resume; a crashed one lost it)."""
        rep = self.replicas[ev.node]
        if rep.epoch != ev.epoch or rep.state is NodeState.DOWN:
            return None
        if rep.state is NodeState.PAUSED:
            self.deferred[ev.node].append(ev)
            return None
        return rep

    def _sync_done(self, ev: SyncDone) -> None:
        rep = self._running_life(ev)
        if rep is None:
            return
        rep.sync_done(ev.upto, self)
        self.oracle.on_durable(ev.node, rep.disk)
        self._after(ev.node)

    def _job_done(self, ev: JobDone) -> None:
        rep = self._running_life(ev)
        if rep is None:
            return
        rep.job_done(ev.job, self.now, self)
        self.statecheck.on_job(ev.node, ev.job, rep.disk)
        self._after(ev.node)

    def drive(self, node: NodeId) -> None:
        """Carry out ``node``'s Actions, then run the per-event role checks."""
        self.replicas[node].drive(self)
        self._after(node)

    def _after(self, node: NodeId) -> None:
        raw = self.replicas[node].raw
        was = self.oracle.stats.elections
        self.oracle.after_event(node, raw)
        if self.oracle.stats.elections != was:
            self.note(f"node {node} is leader of term {raw.raft.term}")
            self.nemesis.elected(node, raw.raft.term)

    def _arrive(self, ev: ClientArrive) -> None:
        rep = self.replicas[ev.node]
        if rep.state is NodeState.DOWN:
            self.front.refuse(ev)
        elif rep.state is NodeState.PAUSED:
            self.deferred[ev.node].append(ev)
        else:
            self.front.arrive(rep, ev)

    def answer_survives(self) -> bool:
        return self.workload.answer_survives()

    # -- replica Host and node Observer ----------------------------------------------

    def send(self, msgs: Sequence[Message]) -> None:
        net = self.network
        now = self.now
        on_send = self.oracle.on_send
        for m in msgs:
            on_send(m)
            for t in net.route(m, now):
                self._at(t, Deliver(m))

    def sync_started(self, replica: Replica, upto: int) -> None:
        if replica.slow_until > self.now:
            latency = self.rng.randint(20, 200)
        else:
            latency = self.rng.randint(1, self.scenario.sync_ms)
        done = max(replica.sync_tail, self.now + latency)
        replica.sync_tail = done
        self._at(done, SyncDone(replica.id, replica.epoch, upto))

    def job_started(self, replica: Replica, job: Job) -> None:
        latency = self.rng.randint(1, 10 * self.scenario.sync_ms)
        self._at(self.now + latency, JobDone(replica.id, replica.epoch, job))

    def on_replies(self, replica: Replica, replies: Sequence[Reply]) -> None:
        incarnation = replica.node.incarnation
        members = self.members
        for r in replies:
            if members.owns(replica.id, incarnation, r):
                self.oracle.on_member_reply(replica.id, r)
                members.replied(replica.id, incarnation, r)
                continue
            self.oracle.on_reply(replica.id, incarnation, r)
        self.replies += len(replies)
        self.front.replied(replica, replies)

    def on_ready(self, node: Node, rd: Ready) -> None:
        if self._item is not None:
            self._item.notes.append((node.id, rd))
        self.oracle.on_ready(node.id, rd)

    def on_propose(self, node: Node, envelope: Envelope, index: int | None) -> None:
        self.oracle.on_propose(envelope, EPOCH_MS + self.now)

    def on_applied(self, node: Node, applied: Applied) -> None:
        rep = self.replicas[node.id]
        oracle = self.oracle
        before = oracle.configs.current
        oracle.on_applied(node.id, applied, node.raw.raft.term, rep.disk)
        self.statecheck.on_applied(node.id, applied)
        if applied.entry.kind is EntryKind.CONFIG and oracle.configs.current is not before:
            now = oracle.configs.current
            self.workload.set_servers(sorted(now.members))
            self.members.removal_committed(set(before.members - now.members))

    def on_restored(self, node: Node, meta: SnapshotMeta) -> None:
        self.statecheck.on_restored(node, meta)
        self.note(f"node {node.id} restored snapshot {meta.term}/{meta.index}")

    # -- workload Host ---------------------------------------------------------

    def replica(self, node: NodeId) -> Replica:
        return self.replicas[node]

    def write_ended(self, op: Any, outcome: str, pairs: list[tuple[int, int]]) -> None:
        self.oracle.on_write_ended(op.value, outcome)

    def client_error(self, text: str) -> None:
        raise Violation("client error", text)

    def leader_guess(self) -> NodeId | None:
        best: tuple[int, NodeId] | None = None
        for i, rep in self.replicas.items():
            if rep.running:
                r = rep.raw.raft
                if r.role is Role.LEADER and (best is None or r.term > best[0]):
                    best = (r.term, i)
        return None if best is None else best[1]

    def leader_term(self, node: NodeId) -> int | None:
        rep = self.replicas[node]
        if rep.state is NodeState.DOWN:
            return None
        r = rep.raw.raft
        return r.term if r.role is Role.LEADER else None

    # -- nemesis FaultHost -----------------------------------------------------

    def running(self) -> list[NodeId]:
        return [i for i in self.ids if self.replicas[i].state is NodeState.UP]

    def down(self) -> list[NodeId]:
        """Nodes down for now (the retired stay down: they are not listed)."""
        return [
            i for i in self.ids
            if self.replicas[i].state is NodeState.DOWN and i not in self.retired
        ]  # fmt: skip

    def paused(self) -> list[NodeId]:
        return [i for i in self.ids if self.replicas[i].state is NodeState.PAUSED]

    def transfer_leadership(self, leader: NodeId, target: NodeId) -> bool:
        try:
            self.replicas[leader].raw.transfer_leadership(target)
        except ProposalRefused:
            return False
        self.drive(leader)
        return True

    # -- membership MemberHost -----------------------------------------------

    def committed_membership(self) -> Membership:
        return self.oracle.configs.current

    def voters(self) -> list[NodeId]:
        return sorted(self.oracle.configs.current.all_voters)

    def add_node(self) -> NodeId:
        node = max(self.ids) + 1
        cfg, sc = self.cfg, self.scenario
        self.replicas[node] = Replica(
            sc.config(node, cfg, joiner=True), sc.options, cfg.node_factory, cfg.layer_factory,
            ack_before_fsync=cfg.ack_before_fsync, forget_vote=cfg.forget_vote_on_restart,
        )  # fmt: skip
        self.ids += (node,)
        self.deferred[node] = []
        self.front.waiting[node] = {}
        self.network.nodes += (node,)
        self.nemesis.nodes += (node,)
        self.workload.nodes += (node,)
        self._start(node)
        self._at(self.now + self.rng.randrange(cfg.tick_ms), Tick(node))
        return node

    def retire(self, node: NodeId) -> None:
        if self.replicas[node].state is not NodeState.DOWN:
            self.crash(node)
        self.retired.add(node)

    def retire_soon(self, node: NodeId) -> None:
        self._at(self.now, Stop(node))

    def unretire(self, node: NodeId) -> None:
        self.retired.discard(node)

    def _start(self, node: NodeId) -> None:
        rep = self.replicas[node]
        rep.start(random.Random(self.rng.getrandbits(64)), self.now, self)
        self.oracle.on_start(node, rep.raw, rep.disk)
        self.drive(node)

    def crash(self, node: NodeId) -> None:
        rep = self.replicas[node]
        keep = 0
        if "disk" in self.cfg.faults and self.rng.random() < 0.5:
            keep = self.rng.choice(rep.disk.torn_points(self.cfg.torn_records))
        lost = len(rep.disk.pending) - keep
        rep.crash(keep)
        self.deferred[node].clear()
        self.front.reset(node, f"node {node} crashed")
        self.oracle.on_durable(node, rep.disk)
        self.oracle.on_crash(node, rep.disk)
        torn = f", kept {keep} torn" if keep else ""
        self.note(f"crash node {node} (lost {lost} unsynced writes{torn})")

    def restart(self, node: NodeId) -> None:
        self.restarts += 1
        self.note(f"restart node {node}")
        self._start(node)

    def pause(self, node: NodeId) -> None:
        self.replicas[node].state = NodeState.PAUSED
        self.note(f"pause node {node}")

    def resume(self, node: NodeId) -> None:
        self.replicas[node].state = NodeState.UP
        self.note(f"resume node {node}")
        events, self.deferred[node] = self.deferred[node], []
        for ev in events:
            if isinstance(ev, Deliver):
                self._deliver(ev)
            elif isinstance(ev, ClientArrive):
                self._arrive(ev)
            elif isinstance(ev, JobDone):
                self._job_done(ev)
            else:
                assert isinstance(ev, SyncDone)
                self._sync_done(ev)

    def slow_disk(self, node: NodeId, until: int) -> None:
        self.replicas[node].slow_until = until

    def jump_clock(self, by_ms: int) -> bool:
        node = self.scenario.skewed
        if not node:
            return False
        self.replicas[node].skew_ms += by_ms
        self.note(f"clock of node {node} jumps {by_ms:+d} ms")
        return True
