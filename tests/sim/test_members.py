"""Membership changes in the simulator (issue 11): the nemesis adds, removes and
replaces nodes while every fault strikes, and the oracle judges each log by its
own configuration.

``test_membership_sweep`` runs ``SEEDS`` with the membership nemesis forced on
and asserts both that they pass and that changes really happened (so a nemesis
that silently did nothing fails it). The unit tests below check the
configuration-aware parts of the oracle on hand-made logs.
"""

from __future__ import annotations

from collections import Counter

import pytest

from drafty.core import Entry, EntryKind, NodeId
from drafty.core.membership import Membership, encode
from drafty.node import Reply
from drafty.sim import SimConfig, Simulation, Violation, run_seed
from drafty.sim.cli import add_arguments, config_from_args
from drafty.sim.configs import Configs, check_protected
from drafty.sim.mirror import EMPTY_DIGEST, NodeView, OracleStats, chain
from drafty.sim.report import replay_command

SEEDS = [(5, range(1, 26)), (3, range(1, 26))]
"""50 seeds, about 10 s on one core."""


def test_membership_sweep() -> None:
    totals: Counter[str] = Counter()
    failures: list[str] = []
    for nodes, seeds in SEEDS:
        for seed in seeds:
            res = run_seed(SimConfig(seed=seed, nodes=nodes, members=True))
            if not res.ok:
                failures.append("\n".join(res.lines()))
            st = res.sim.oracle.stats
            totals.update(changes=st.config_changes, added=st.nodes_added,
                          removed=st.nodes_removed, leaders=st.leaders_removed)  # fmt: skip
            totals.update(res.sim.members.done)
            totals["grew"] += max(res.sim.ids) > nodes
    assert not failures, f"{len(failures)} seeds failed; first:\n" + failures[0]
    # What the nemesis did, committed (the oracle counts committed configuration entries):
    assert totals["changes"] >= 200, totals
    assert totals["added"] >= 50 and totals["removed"] >= 50, totals
    assert totals["leaders"] >= 10, totals  # leaders removed by their own change
    assert totals["grew"] >= 30, totals  # brand-new nodes joined in most seeds
    for goal in ("add", "remove", "replace", "swap", "learner", "remove leader"):
        assert totals[goal] >= 2, (goal, totals)


def test_the_report_shows_membership_changes() -> None:
    res = run_seed(SimConfig(seed=2, members=True))
    assert res.ok, "\n".join(res.lines())
    line = next(ln for ln in res.lines() if ln.startswith("  membership:"))
    st = res.sim.oracle.stats
    assert f"changes committed {st.config_changes}, nodes added {st.nodes_added}" in line
    assert st.config_changes > 0
    off = run_seed(SimConfig(seed=2, members=False, steps=50))
    assert not any(ln.startswith("  membership:") for ln in off.lines())


def test_seeds_without_membership_changes_run_as_before() -> None:
    """The nemesis draws from its own generators: forcing it off changes nothing
    in a seed that would not have used it, and some seeds use it, some not."""
    drawn = {s: Simulation(SimConfig(seed=s)).scenario.members for s in range(1, 41)}
    assert 5 < sum(drawn.values()) < 35
    seed = next(s for s, on in drawn.items() if not on)
    auto = run_seed(SimConfig(seed=seed, nodes=3, steps=100))
    off = run_seed(SimConfig(seed=seed, nodes=3, steps=100, members=False))
    assert auto.lines() == off.lines()


def test_members_switch_on_the_command_line() -> None:
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    for text, want in (("on", True), ("off", False), ("auto", None)):
        cfg = config_from_args(p.parse_args(["--members", text]), 7)
        assert cfg.members is want
    assert "--members on" in replay_command(SimConfig(seed=7, members=True))
    assert "--members" not in replay_command(SimConfig(seed=7))


def test_clients_follow_the_membership() -> None:
    res = run_seed(SimConfig(seed=3, nodes=3, members=True))
    assert res.ok, "\n".join(res.lines())
    sim = res.sim
    members = sorted(sim.oracle.configs.current.members)
    assert sim.workload.servers == members
    for c in sim.workload.clients:
        assert sorted(n for _, n in c.state.servers) == members


# -- the oracle's configurations, on hand-made logs ----------------------------------


def _cfg(index: int, term: int, m: Membership) -> Entry:
    return Entry(index, term, EntryKind.CONFIG, encode(m))


def _view(entries: list[Entry], configs: Configs, seed: Membership) -> NodeView:
    v = NodeView()
    configs.seeded(v, seed)
    prev = EMPTY_DIGEST
    for e in entries:
        prev = chain(prev, e)
        v.log.append(e)
        v.digests.append(prev)
    if entries:
        configs.extend(1, v, entries)
    return v


FOUNDERS = Membership.of((1, 2, 3))
JOINT = Membership.of((1, 2, 4), outgoing=(1, 2, 3))


def test_commit_safety_needs_a_majority_of_both_halves() -> None:
    """Node 3 lacks committed entry 3; its own log says the membership is joint
    {1,2,4}+{1,2,3}. Node 2 would vote for it in both halves; node 4, which the
    oracle never saw, would too: a majority of each half, so it could win."""
    configs = Configs(OracleStats())
    a, j = Entry(1, 1, data=b"a"), _cfg(2, 1, JOINT)
    views = {
        1: _view([a, j, Entry(3, 1, data=b"b")], configs, FOUNDERS),
        2: _view([a, j], configs, FOUNDERS),
        3: _view([a, j], configs, FOUNDERS),
    }
    with pytest.raises(Violation, match="majority of each half"):
        check_protected(views, views[1].digests)
    # Once node 4 holds the entry, the incoming half refuses node 3: safe.
    views[4] = _view(list(views[1].log), configs, Membership(()))
    check_protected(views, views[1].digests)


def test_commit_safety_skips_nodes_that_cannot_campaign() -> None:
    """A node whose own log removed it (or a joiner knowing no membership) never
    campaigns, however stale its log."""
    configs = Configs(OracleStats())
    a = Entry(1, 1, data=b"a")
    out = _cfg(2, 1, Membership.of((1, 2)))
    views = {
        1: _view([a, out, Entry(3, 1, data=b"b")], configs, FOUNDERS),
        2: _view([a, out], configs, FOUNDERS),
        3: _view([a, out], configs, FOUNDERS),
        4: _view([], configs, Membership(())),
    }
    check_protected(views, views[1].digests)
    # Without the entry removing it node 3 is a voter, and node 2 would vote for it.
    views[2] = views[3] = _view([a], configs, FOUNDERS)
    with pytest.raises(Violation, match="commit safety"):
        check_protected(views, views[1].digests)


def test_views_track_configuration_entries_through_truncation_and_snapshots() -> None:
    configs = Configs(OracleStats())
    v = _view([Entry(1, 1), _cfg(2, 1, JOINT)], configs, FOUNDERS)
    assert v.membership == JOINT
    configs.extend(1, v, [Entry(2, 2)])  # a new leader overwrote the change
    assert v.membership == FOUNDERS and not v.configs
    joiner = _view([], configs, Membership(()))
    assert not joiner.membership.known
    configs.on_committed(1, _cfg(5, 2, JOINT), {2: 1})
    configs.reset(joiner, 4)  # a snapshot at 4: no change before it, the founders'
    assert joiner.membership == FOUNDERS
    configs.reset(joiner, 9)
    assert joiner.membership == JOINT


def test_committed_changes_are_counted_and_a_removed_leader_is_seen() -> None:
    stats = OracleStats()
    configs = Configs(stats)
    configs.seeded(NodeView(), FOUNDERS)
    leaders: dict[int, NodeId] = {3: 3, 4: 1}
    configs.on_committed(3, _cfg(10, 3, Membership.of((1, 2, 4), outgoing=(1, 2, 3))), leaders)
    configs.on_committed(1, _cfg(11, 4, Membership.of((1, 2, 4))), leaders)
    assert (stats.config_changes, stats.nodes_added, stats.nodes_removed) == (2, 1, 1)
    assert stats.leaders_removed == 1  # node 3 led the term of the change removing it
    assert configs.current == Membership.of((1, 2, 4))


def test_a_core_using_another_membership_than_its_log_is_caught() -> None:
    configs = Configs(OracleStats())
    v = _view([Entry(1, 1), _cfg(2, 1, JOINT)], configs, FOUNDERS)
    configs.check_agrees(1, v, JOINT)
    with pytest.raises(Violation, match="membership"):
        configs.check_agrees(1, v, FOUNDERS)


def test_a_membership_reply_must_come_from_its_committed_entry() -> None:
    configs = Configs(OracleStats())
    committed = [Entry(1, 1), _cfg(2, 1, JOINT)]
    configs.check_reply(1, Reply(7, JOINT, index=2), committed)
    for bad in (Reply(7, FOUNDERS, index=2), Reply(7, JOINT, index=1), Reply(7, JOINT, index=3)):
        with pytest.raises(Violation, match="reply routing"):
            configs.check_reply(1, bad, committed)


def test_leader_completeness_holds_for_leaders_of_new_configurations() -> None:
    """Node 4 joined (seeded with no membership) and became a voter through the
    joint entry at 2; it must not lead term 2 without committed entry 3."""
    import random

    from drafty.core import Config, RawNode
    from drafty.node import DiskWrite
    from drafty.sim import SimDisk

    from .test_oracle import World, _fires, _noop

    w = World()
    a, j, b = Entry(1, 1, data=b"a"), _cfg(2, 1, JOINT), Entry(3, 1, data=b"b")
    for i in (1, 2, 3):
        w.store(i, a, j, b)
    disk = SimDisk()
    disk.write(DiskWrite(1, (a, j), None))
    disk.complete_sync(disk.written)
    raw = RawNode(Config(4, ()), random.Random(0), entries=disk.entries)
    assert raw.raft.membership == JOINT
    w.raws[4], w.disks[4] = raw, disk
    w.oracle.on_start(4, raw, disk)
    for e in (a, j, b):
        w.oracle.on_applied(1, _noop(e), 1, w.disks[1])
    with _fires("leader completeness"):
        w.lead(4, 2)
