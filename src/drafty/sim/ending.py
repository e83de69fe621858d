"""The end of a run: heal every fault, then judge liveness, convergence and the history.

Theory of operation
-------------------
:class:`EndPhase` holds the part of :class:`~drafty.sim.runner.Simulation`
that runs once the fault phase is over (a mixin: it works on the
simulation's own state):

1. :meth:`EndPhase._heal` ends every fault (network calm, links up, nodes
   restarted and resumed, the membership nemesis stopped), stops the regular
   clients and starts the probe client;
2. within ``bound_ms`` a probe write must be ``ok`` (:meth:`probe_ok`), or
   the cluster must at least have applied more of its backlog in that time
   (:meth:`EndPhase._deadline` then grants another bound);
3. every node expected to follow the log must then apply it, its slowest
   gaining ground in every bound. The expected nodes are the members of the
   newest committed membership that are not retired (all nodes when the
   membership never changes): a removed node stops getting the log, and a
   node that was never added never gets it;
4. once they have, :meth:`EndPhase._final_checks` checks that every
   acknowledged write took effect, that nodes which applied as far hold the
   same state, and (optionally) that the history is linearizable.

Missing a bound raises a ``liveness`` :class:`~drafty.sim.mirror.Violation`.

Invariants: nothing is injected after the heal; the checks only read the
simulation's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import NodeId
from .diagnose import roles, stalled_replication
from .events import Deadline, Event
from .mirror import Violation
from .network import Network, NetworkParams
from .replica import NodeState, Replica

if TYPE_CHECKING:
    from .members import MemberNemesis
    from .nemesis import Nemesis
    from .oracle import Oracle
    from .runner import Outcome
    from .scenario import Scenario, SimConfig
    from .workload import Workload


class EndPhase:
    """Heal, liveness and final checks of :class:`~drafty.sim.runner.Simulation`."""

    cfg: SimConfig
    scenario: Scenario
    now: int
    oracle: Oracle
    replicas: dict[NodeId, Replica]
    retired: set[NodeId]
    network: Network
    nemesis: Nemesis
    members: MemberNemesis
    workload: Workload
    outcome: Outcome
    heal_at: int
    bound_ms: int
    backlog_extensions: int
    _probe_index: int
    _converge_low: int
    _progress_mark: int
    _done: bool
    _queue: list[tuple[int, int, Event]]

    def _at(self, t: int, ev: Event) -> None: ...
    def note(self, text: str, log: bool = True) -> None: ...
    def leader_guess(self) -> NodeId | None: ...

    def expected(self) -> list[Replica]:
        """The nodes that must apply the whole log: see the module docstring."""
        if not self.scenario.members:
            return list(self.replicas.values())
        m = self.oracle.configs.current
        return [self.replicas[i] for i in sorted(m.members) if i not in self.retired]

    def probe_ok(self, token: str) -> None:
        if self._probe_index:
            return
        index = self.oracle.tokens[token]
        self._probe_index = index
        self._converge_low = min(r.applied for r in self.expected())
        self.outcome.liveness_ms = self.now - self.heal_at
        self.note(f"liveness: write committed at index {index}")
        self._at(self.now + self.bound_ms, Deadline("converge"))

    def _heal(self) -> None:
        self.note("heal: every fault ends, probing liveness")
        p = self.network.params
        self.network.params = NetworkParams(
            latency_min=p.latency_min, latency_max=p.latency_max, reorder=p.reorder
        )
        self.network.tail.clear()  # fresh connections: no head-of-line wait on old spikes
        if self.scenario.members:
            self.members.heal()
        self.nemesis.heal_all()
        self.workload.drop = 0.0
        self.workload.start_probe()
        self._progress_mark = max(r.applied for r in self.replicas.values())
        self._at(self.now + self.bound_ms, Deadline("leader"))

    def _deadline(self, what: str) -> None:
        ticks = self.bound_ms // self.cfg.tick_ms
        stalled = stalled_replication(self.leader_guess(), self.replicas, self._queue)
        cause = "stalled-replication" if stalled else None
        if what == "leader" and not self._probe_index:
            high = max(r.applied for r in self.replicas.values())
            if high > self._progress_mark:  # working through a backlog: another bound
                self._progress_mark = high
                self.backlog_extensions += 1
                self._at(self.now + self.bound_ms, Deadline("leader"))
                return
            raise Violation(
                "liveness",
                f"no write committed within {ticks} ticks ({self.cfg.liveness_timeouts} "
                f"election timeouts) after faults healed, and nothing more applied in the "
                f"last {ticks} ticks; {roles(self.replicas)}{stalled}",
                cause=cause,
            )
        if what == "converge" and self.outcome.converge_ms is None:
            expected = self.expected()
            low = min(r.applied for r in expected)
            if low > self._converge_low:  # still catching up: give it another bound
                self._converge_low = low
                self._at(self.now + self.bound_ms, Deadline("converge"))
                return
            lag = [f"node {r.id} applied {r.applied}" for r in expected
                   if r.applied < self._probe_index]  # fmt: skip
            raise Violation(
                "liveness",
                f"within {ticks} ticks of the probe write committing at index "
                f"{self._probe_index}: {', '.join(lag)}; {roles(self.replicas)}{stalled}",
                cause=cause,
            )

    def _check_converged(self) -> None:
        target = self._probe_index
        for rep in self.expected():
            if rep.state is not NodeState.UP or rep.applied < target:
                return
        self.outcome.converge_ms = self.now - self.heal_at
        self.note(f"converged: every node applied index {target}")
        self._final_checks()
        self._done = True

    def _final_checks(self) -> None:
        oracle = self.oracle
        for token in sorted(oracle.acked_tokens):
            if token not in oracle.tokens:
                raise Violation("acknowledged write lost", f"write of {token!r} never took effect")
        prints: dict[int, tuple[str, NodeId]] = {}
        for i, rep in self.replicas.items():
            if rep.state is NodeState.DOWN:
                continue  # retired for good (membership changes)
            fp = rep.fingerprint()
            seen = prints.setdefault(rep.applied, (fp, i))
            if seen[0] != fp:
                raise Violation(
                    "state machine safety",
                    f"nodes {seen[1]} and {i} applied up to {rep.applied} but their states differ",
                    i,
                )
        if self.cfg.check_linearizable:
            verdict, explanation = self.workload.history.judge()
            if verdict == "violation":
                raise Violation("linearizability", explanation)
            self.outcome.linearizable = verdict
