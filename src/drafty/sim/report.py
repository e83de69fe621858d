"""Running a seed and rendering what happened: summary, violation, trace, replay.

Theory of operation
-------------------
:func:`run_seed` builds a :class:`~drafty.sim.runner.Simulation`, runs it and
wraps it in a :class:`SimResult` whose :meth:`SimResult.lines` is the text the
``sim`` command prints. Every line is a pure function of the run (virtual
times, counters, :mod:`drafty.core.describe` renderings), never of the wall
clock or of object ids, so the same seed prints byte-identical output.

On a violation the report names the seed, the step (tick period), the event
number, the invariant and its detail, then the last events (each with the
Readies it caused and the faults it injected), and a command that replays
the run.

Invariants: rendering never mutates the simulation; lines never contain a
newline.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import describe
from ..core.ready import Ready
from ..node import SaveSnapshot
from .events import (
    ClientAnswer,
    ClientArrive,
    ClientLost,
    ClientWake,
    Deadline,
    Deliver,
    Event,
    Fault,
    Heal,
    JobDone,
    MemberAct,
    NemesisAct,
    Stop,
    SyncDone,
    Tick,
)
from .history import History
from .nemesis import ClogStep, Hunt, Restart, Resume
from .runner import Simulation, TraceItem
from .scenario import ALL_FAULTS, SimConfig

_WIDTH = 240


@dataclass(frozen=True, slots=True)
class SimResult:
    """One finished run."""

    sim: Simulation

    @property
    def ok(self) -> bool:
        return self.sim.outcome.violation is None

    @property
    def invariant(self) -> str | None:
        v = self.sim.outcome.violation
        return None if v is None else v.invariant

    @property
    def history(self) -> History:
        return self.sim.workload.history

    def lines(self) -> list[str]:
        out = summary_lines(self.sim)
        if self.ok:
            if self.sim.cfg.verbose > 1:
                out.append("  events:")
                for item in self.sim.trace:
                    out.extend(trace_lines(item, self.sim.cfg.tick_ms))
            out.append("OK")
        else:
            out.extend(violation_lines(self.sim))
        return out


def run_seed(cfg: SimConfig) -> SimResult:
    """Run one seed to the end (or to its first violation)."""
    sim = Simulation(cfg)
    sim.run()
    return SimResult(sim)


def faults_text(faults: frozenset[str]) -> str:
    if faults == ALL_FAULTS:
        return "all"
    return ",".join(sorted(faults)) or "none"


def replay_command(cfg: SimConfig) -> str:
    cmd = (
        f"python -m drafty.sim --seed {cfg.seed} --nodes {cfg.nodes} --steps {cfg.steps} "
        f"--faults {faults_text(cfg.faults)}"
    )
    for name, value in sorted(cfg.config_overrides.items()):
        text = ("on" if value else "off") if isinstance(value, bool) else str(value)
        cmd += f" --raft {name}={text}"
    if cfg.torn_records:
        cmd += " --torn-records"
    if cfg.members is not None:
        cmd += f" --members {'on' if cfg.members else 'off'}"
    for node, rate in sorted(cfg.clock_rates.items()):
        cmd += f" --clock-rate {node}={rate}"
    return cmd


def summary_lines(sim: Simulation) -> list[str]:
    cfg, sc, out = sim.cfg, sim.scenario, sim.outcome
    net = sim.network.stats
    hist = sim.workload.history.counts
    onoff = {True: "on", False: "off"}
    faults = sorted(sim.nemesis.injected.items())
    finals = [r.raw.raft.log.committed for r in sim.replicas.values() if r.running]
    opts = sc.options
    skew = (
        f"node {sc.skewed} clock {sc.skew_ms:+d}ms (now {sim.replicas[sc.skewed].skew_ms:+d}ms)"
        if sc.skewed
        else "clocks true"
    )
    if any(r != 1.0 for r in sc.clock_rates):
        skew += "; clock rates " + " ".join(f"{r:.3f}" for r in sc.clock_rates)
    live = [r.node.sessions for r in sim.replicas.values() if r.running]
    sessions = max((len(t) for t in live), default=0)
    expired = max((t.expired for t in live), default=0)
    rc = sim.replicas[sim.ids[0]].config
    lines = [
        f"seed {cfg.seed}: nodes={cfg.nodes} steps={cfg.steps} faults={faults_text(cfg.faults)}",
        f"  raft: prevote={onoff[rc.prevote]} check_quorum={onoff[rc.check_quorum]} "
        f"election={rc.election_ticks} heartbeat={rc.heartbeat_ticks} "
        f"inflight={rc.max_inflight} max_bytes={rc.max_msg_bytes} "
        f"forward={onoff[rc.forward_proposals]} lease={onoff[rc.lease_reads]}; hunt={sc.hunt:.0%} "
        f"transfers={sc.transfer_rate:.0%}",
        f"  network: {sc.network.describe()}; disk sync<={sc.sync_ms}ms; clients={sc.clients}",
        f"  ran {sim.now}ms virtual ({sim.now // cfg.tick_ms} steps, {sim.events} events, "
        f"at most {sim.peak_step_events} in one step)",
        f"  elections {sim.oracle.stats.elections} (highest term {sim.oracle.stats.max_term}); "
        f"commits {sim.oracle.commit_index()}; final commit index {max(finals, default=0)}",
        "  faults: "
        + (", ".join(f"{k} {v}" for k, v in faults) or "none")
        + f"; crashes {sim.nemesis.injected['crash']}, restarts {sim.restarts}",
        f"  messages: sent {net.sent}, dropped {net.dropped}, cut {net.cut}, "
        f"duplicated {net.duplicated}, delivered {net.delivered}",
        f"  disk: syncs {sum(r.disk.syncs for r in sim.replicas.values())}, unsynced writes "
        f"lost {sum(r.disk.lost_writes for r in sim.replicas.values())}",
        f"  clients: {hist['invoke']} ops: ok {hist['ok']}, fail {hist['fail']}, "
        f"info {hist['info']}; node replies {sim.replies}; client loss {sc.client_drop:.0%}",
        f"  node layer: session ttl {opts.session_ttl_ms}ms, clock every "
        f"{opts.clock_interval_ms}ms lead {opts.max_clock_lead_ms}ms; {skew}; "
        f"sessions open {sessions}, expired {expired}",
    ]
    sc_ = sim.statecheck
    if opts.snapshot_entries or opts.snapshot_bytes:
        lines.append(
            f"  snapshots: every {opts.snapshot_entries} entries/{opts.snapshot_bytes} bytes, "
            f"keep {opts.snapshot_keep_entries}; files checked {sc_.saved}, "
            f"installs {sim.oracle.stats.installs}, restores checked {sc_.restored}"
        )
    else:
        lines.append("  snapshots: off")
    if sc.members:
        lines.append(members_line(sim))
    if out.liveness_ms is not None:
        conv = "" if out.converge_ms is None else f"; all nodes caught up at {out.converge_ms}ms"
        lines.append(f"  liveness: write committed {out.liveness_ms}ms after heal{conv}")
    if out.linearizable is not None:
        lines.append(f"  history: linearizability {out.linearizable}")
    lines.extend(sim.log)
    return lines


def members_line(sim: Simulation) -> str:
    """What the membership nemesis did, and what committed."""
    st, mn = sim.oracle.stats, sim.members
    goals = ", ".join(f"{k} {v}" for k, v in sorted(mn.done.items())) or "none"
    asked = ", ".join(f"{k} {v}" for k, v in sorted(mn.asked.items()) if k != "sent")
    return (
        f"  membership: changes committed {st.config_changes}, nodes added {st.nodes_added}, "
        f"removed {st.nodes_removed}, leaders removed {st.leaders_removed}; goals reached: "
        f"{goals}; requests {mn.asked['sent']} ({asked or 'no answers'}); promote lag "
        f"{sim.scenario.promote_lag}; now {sim.oracle.configs.current.describe()}"
        + (f"; retired {sorted(sim.retired)}" if sim.retired else "")
    )


def violation_lines(sim: Simulation) -> list[str]:
    out = sim.outcome
    v = out.violation
    assert v is not None
    step = out.time // sim.cfg.tick_ms
    lines = [
        f"VIOLATION seed {sim.cfg.seed} step {step} (event {out.event_number}, "
        f"t={out.time}ms): {v.invariant}",
        f"  {v.detail}",
    ]
    if out.error:
        lines.extend("  | " + ln for ln in out.error.rstrip().splitlines())
    lines.append(f"  last {len(sim.trace)} events:")
    for item in sim.trace:
        lines.extend(trace_lines(item, sim.cfg.tick_ms))
    lines.append(f"  replay: {replay_command(sim.cfg)}")
    return lines


def trace_lines(item: TraceItem, tick_ms: int) -> list[str]:
    head = f"    #{item.number} t={item.time}ms step {item.time // tick_ms}: "
    lines = [_cut(head + event_text(item.event))]
    for note in item.notes:
        if isinstance(note, str):
            lines.append(_cut("        " + note))
        else:
            node, rd = note
            lines.append(_cut(f"        node {node} " + ready_text(rd)))
    return lines


def event_text(ev: Event) -> str:
    if isinstance(ev, Tick):
        return f"tick node {ev.node}"
    if isinstance(ev, Deliver):
        return "deliver " + describe.message(ev.msg)
    if isinstance(ev, JobDone):
        job = ev.job
        what = "saved" if isinstance(job, SaveSnapshot) else "received"
        return f"node {ev.node}: snapshot {job.meta.term}/{job.meta.index} {what}"
    if isinstance(ev, SyncDone):
        return f"sync of writes <= {ev.upto} done on node {ev.node}"
    if isinstance(ev, ClientWake):
        return f"client {ev.client} wakes"
    if isinstance(ev, ClientArrive):
        argv = " ".join(a.decode(errors="replace") for a in ev.argv)
        return f"client {ev.client} attempt {ev.attempt} reaches node {ev.node}: {argv}"
    if isinstance(ev, ClientAnswer):
        what = f"-{ev.error}" if ev.error is not None else repr(ev.value)
        return f"client {ev.client} attempt {ev.attempt} answered {what}"
    if isinstance(ev, ClientLost):
        return f"client {ev.client} attempt {ev.attempt} lost: {ev.why}"
    if isinstance(ev, NemesisAct):
        return "nemesis acts"
    if isinstance(ev, MemberAct):
        return "membership nemesis acts"
    if isinstance(ev, Stop):
        return f"removed node {ev.node} stops"
    if isinstance(ev, Fault):
        a = ev.action
        if isinstance(a, Restart):
            return f"restart node {a.node} due"
        if isinstance(a, Resume):
            return f"resume node {a.node} due"
        if isinstance(a, Hunt):
            return f"hunt leader {a.node} of term {a.term} due"
        assert isinstance(a, ClogStep)
        return "clog step"
    if isinstance(ev, Heal):
        return "heal"
    assert isinstance(ev, Deadline)
    return f"deadline: {ev.what}"


def ready_text(rd: Ready) -> str:
    parts = [f"ready {rd.number}:"]
    if rd.soft_state is not None:
        parts.append(f"role {rd.soft_state.role.value} leader {rd.soft_state.leader};")
    if rd.hard_state is not None:
        parts.append(describe.hard_state(rd.hard_state) + ";")
    if rd.entries:
        parts.append("persist " + describe.entries(rd.entries) + ";")
    if rd.messages:
        parts.append("send " + " | ".join(describe.message(m) for m in rd.messages) + ";")
    if rd.messages_after_persist:
        after = " | ".join(describe.message(m) for m in rd.messages_after_persist)
        parts.append("after persist " + after + ";")
    if rd.committed_entries:
        ce = rd.committed_entries
        what = describe.entry(ce[0])
        if len(ce) > 1:
            what += f" .. {describe.entry(ce[-1])} ({len(ce)} entries)"
        parts.append("apply " + what + ";")
    return " ".join(parts)


def _cut(line: str) -> str:
    return line if len(line) <= _WIDTH else line[: _WIDTH - 3] + "..."
