"""Snapshots in the simulator: the sweep really exercises them, and they bound the log."""

from __future__ import annotations

from drafty.sim import SimConfig
from drafty.sim.runner import Simulation


def test_the_sweep_takes_checks_installs_and_restores_snapshots() -> None:
    saved = installs = restored = 0
    for seed in range(1, 26):
        sim = Simulation(SimConfig(seed=seed))
        out = sim.run()
        assert out.violation is None, f"seed {seed}: {out.violation}"
        saved += sim.statecheck.saved
        installs += sim.oracle.stats.installs
        restored += sim.statecheck.restored
    # Each counted event passed the state checks; zero would mean the sweep no
    # longer covers snapshots at all.
    assert saved > 100
    assert installs > 5
    assert restored > installs


def test_snapshots_keep_the_log_bounded_on_disk_and_in_memory() -> None:
    sim = Simulation(SimConfig(seed=3, nodes=3, faults=frozenset(), snapshot_entries=20))
    out = sim.run()
    assert out.violation is None
    opts = sim.scenario.options
    assert opts.snapshot_entries == 20
    bound = opts.snapshot_entries + opts.snapshot_keep_entries + 10  # one apply batch of slack
    for rep in sim.replicas.values():
        assert rep.applied > 100
        assert rep.disk.base_index > 0 and rep.disk.snapshots
        assert len(rep.disk.entries) <= bound
        assert len(rep.raw.raft.log.entries) <= bound
        assert rep.node.snapshot_index >= rep.applied - opts.snapshot_entries - 10
