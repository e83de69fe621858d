"""``drafty torture``: its pure pieces, and two short real runs.

The pure pieces (how replies become history events, the nemesis schedule, the
iptables rules of a partition, the namespace plan, the report's verdict) are
tested without root. The real runs start ``drafty serve`` processes: one in
network namespaces with partitions (root and ``ip netns`` needed; CI has
both, so there it must exercise partitions), one on loopback with kill and
pause only (the fallback).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from drafty.check import Verdict, check_history, load_history
from drafty.cli import build_parser
from drafty.torture import faults, netns, report
from drafty.torture.faults import NETWORK_KINDS, Step, resolve, schedule
from drafty.torture.history import Outcome, Recorder, Value, classify, command
from drafty.torture.probe import ProbeResult, summarize
from drafty.torture.resp import Conn, Reply, ReplyError
from drafty.torture.runner import Options, run

# -- replies -> history events ----------------------------------------------------------


@pytest.mark.parametrize(
    ("f", "value", "reply", "expected"),
    [
        ("read", None, b"17", Outcome("ok", 17)),
        ("read", None, None, Outcome("ok", None)),
        ("write", 5, "OK", Outcome("ok", 5)),
        ("cas", [1, 2], 1, Outcome("ok", [1, 2])),
        ("cas", [1, 2], 0, Outcome("fail", [1, 2])),  # an observation: no error field
        ("write", 5, ReplyError("TRYAGAIN no leader"), Outcome("fail", 5, "TRYAGAIN no leader")),
        ("read", None, ReplyError("TRYAGAIN x"), Outcome("fail", None, "TRYAGAIN x")),
        ("cas", [1, 2], ReplyError("UNCERTAIN lost"), Outcome("info", [1, 2], "UNCERTAIN lost")),
        ("write", 5, TimeoutError(), Outcome("info", 5, "timeout")),
    ],
)
def test_replies_map_to_outcomes_as_the_service_promises(
    f: str, value: Any, reply: Any, expected: Outcome
) -> None:
    assert classify(f, value, reply) == expected


def test_a_lost_connection_is_unknown_and_error_replies_are_bugs() -> None:
    lost = classify("write", 3, ConnectionError("reset"))
    assert lost.type == "info" and lost.unexpected is None
    cases: list[tuple[str, Value, Reply]] = [
        ("write", 3, ReplyError("ERR internal error")),
        ("cas", [1, 2], ReplyError("SESSIONEXPIRED x")),
        ("write", 3, "QUEUED"),
        ("cas", [1, 2], 7),
        ("read", None, b"not a number"),
    ]
    for f, value, reply in cases:
        got = classify(f, value, reply)
        assert got.type == "info", (f, reply)  # unknown effect keeps the history sound
        assert got.unexpected, (f, reply)


def test_commands() -> None:
    assert command("read", "r0", None) == ("GET", "r0")
    assert command("write", "r0", 9) == ("SET", "r0", "9")
    assert command("cas", "r0", [9, 10]) == ("CAS", "r0", "9", "10")


def test_recorded_history_is_the_shared_format_and_checks(tmp_path: Path) -> None:
    rec = Recorder()
    p = rec.new_process()
    rec.invoke(p, "write", "r0", 1, node=1)
    rec.complete(p, "write", "r0", classify("write", 1, "OK"), node=1)
    rec.invoke(p, "cas", "r0", [2, 3], node=1)
    rec.complete(p, "cas", "r0", classify("cas", [2, 3], 0), node=1)
    rec.invoke(p, "write", "r0", 4, node=2)
    rec.complete(p, "write", "r0", classify("write", 4, ReplyError("TRYAGAIN x")), node=2)
    rec.invoke(p, "write", "r0", 5, node=2)
    rec.complete(p, "write", "r0", classify("write", 5, TimeoutError()), node=2)
    q = rec.new_process()
    assert q != p
    rec.invoke(q, "read", "r0", None, node=3)
    rec.complete(q, "read", "r0", classify("read", None, b"1"), node=3)
    with pytest.raises(RuntimeError):
        rec.complete(q, "read", "r0", classify("read", None, b"1"), node=3)
    assert [e["index"] for e in rec.events] == list(range(10))
    assert rec.events[1] == {**rec.events[1], "type": "ok", "value": 1, "node": 1}
    assert "error" not in rec.events[3] and rec.events[5]["error"] == "TRYAGAIN x"
    assert rec.counts() == {
        "cas": {"fail (cas mismatch)": 1},
        "read": {"ok": 1},
        "write": {"fail (no effect)": 1, "info": 1, "ok": 1},
    }
    path = tmp_path / "h.jsonl"
    rec.write_jsonl(path)
    assert check_history(load_history(path)).verdict is Verdict.OK
    bad = [*rec.events[:-1], {**rec.events[-1], "value": 4}]  # read a write that never was
    assert check_history(bad, "register").verdict is Verdict.VIOLATION


def test_resp_client_reads_every_reply_kind() -> None:
    canned = b"+OK\r\n-TRYAGAIN no leader\r\n:1\r\n$3\r\n123\r\n$-1\r\n*2\r\n:2\r\n$1\r\nx\r\n"

    async def go() -> list[Any]:
        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n")
            w.write(canned)
            await w.drain()
            await r.read()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = await Conn.open(("127.0.0.1", port), 1.0)
        got = [await conn.call("X", timeout=1.0) for _ in range(6)]
        with pytest.raises(TimeoutError):
            await conn.call("X", timeout=0.05)
        assert conn.closed
        server.close()
        return got

    got = asyncio.run(go())
    assert got == ["OK", ReplyError("TRYAGAIN no leader"), 1, b"123", None, [2, b"x"]]
    assert got[1].code == "TRYAGAIN"


# -- the nemesis --------------------------------------------------------------------------


def test_schedule_is_deterministic_and_cycles_through_every_kind() -> None:
    a = list(islice(schedule(7, faults.ALL_KINDS, (2, 10), (1, 2)), 24))
    assert a == list(islice(schedule(7, faults.ALL_KINDS, (2, 10), (1, 2)), 24))
    assert a != list(islice(schedule(8, faults.ALL_KINDS, (2, 10), (1, 2)), 24))
    for r in range(4):
        assert sorted(s.kind for s in a[6 * r : 6 * r + 6]) == sorted(faults.ALL_KINDS)
    assert all(2 <= s.hold_s <= 10 and 1 <= s.quiet_s <= 2 for s in a)
    long = list(islice(schedule(7, faults.ALL_KINDS, (2, 10), (1, 2), 30.0), 12))
    assert all((s.hold_s == 30.0) == (s.kind in NETWORK_KINDS) for s in long)
    only = list(islice(schedule(1, ("kill",), (2, 3), (1, 1)), 3))
    assert [s.kind for s in only] == ["kill"] * 3
    assert list(schedule(1, (), (2, 3), (1, 1))) == []


def test_parse_options() -> None:
    assert faults.parse_kinds("all") == faults.ALL_KINDS
    assert faults.parse_kinds("kill, pause,kill") == ("kill", "pause")
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.parse_kinds("kill,flood")
    assert faults.parse_range("2..10") == (2.0, 10.0)
    assert faults.parse_range("30") == (30.0, 30.0)
    for bad in ("10..2", "x", "-1..2"):
        with pytest.raises(ValueError):
            faults.parse_range(bad)


def _step(kind: str, seed: int, prefer_leader: bool = True) -> Step:
    return Step(kind, 1.0, 1.0, seed, prefer_leader)


def _sides(drops: frozenset[tuple[int, int]], nodes: list[int]) -> list[set[int]]:
    """Groups of nodes that reach each other both ways (for a symmetric cut)."""
    groups: list[set[int]] = []
    for i in nodes:
        for g in groups:
            if all((i, j) not in drops and (j, i) not in drops for j in g):
                g.add(i)
                break
        else:
            groups.append({i})
    return groups


@pytest.mark.parametrize("n", [3, 5])
def test_partition_halves_splits_majority_from_minority(n: int) -> None:
    ids = list(range(1, n + 1))
    sizes = set()
    for seed in range(40):
        f = resolve(_step("partition-halves", seed), ids, leader=1)
        groups = sorted(_sides(f.drops, ids), key=len)
        assert len(groups) == 2 and sum(map(len, groups)) == n
        assert len(groups[0]) <= (n - 1) // 2 < len(groups[1])
        assert f.drops == faults.cut(sorted(groups[0]), sorted(groups[1]))
        sizes.add(len(groups[0]))
    assert sizes == set(range(1, (n - 1) // 2 + 1))


def test_isolate_leader_and_bridge_and_one_way() -> None:
    ids = [1, 2, 3, 4, 5]
    f = resolve(_step("isolate-leader", 3), ids, leader=4)
    assert f.drops == faults.cut([4], [1, 2, 3, 5])
    assert resolve(_step("isolate-leader", 3), ids, leader=None).drops  # someone is isolated
    for seed in range(20):
        b = resolve(_step("bridge", seed), ids, leader=1)
        touched = {i for d in b.drops for i in d}
        (middle,) = set(ids) - touched
        assert all((middle, j) not in b.drops and (j, middle) not in b.drops for j in ids)
        assert sorted(
            map(
                len,
                _sides(
                    b.drops - {d for d in b.drops if middle in d}, [i for i in ids if i != middle]
                ),
            )
        ) == [2, 2]
        assert len(b.drops) == 8  # 2 x 2 pairs, both directions
    three = resolve(_step("bridge", 5), [1, 2, 3], leader=1)
    assert len(three.drops) == 2  # 1 | 1 | 1
    w = resolve(_step("one-way", 9), ids, leader=1)
    senders = {s for s, _ in w.drops}
    assert all((r, s) not in w.drops for s, r in w.drops)  # only one direction
    assert w.drops == faults.one_way(sorted(senders), sorted(set(ids) - senders))


def test_kill_and_pause_prefer_the_leader_when_asked() -> None:
    ids = [1, 2, 3]
    assert resolve(_step("kill", 1, prefer_leader=True), ids, leader=2).victim == 2
    assert resolve(_step("pause", 1, prefer_leader=True), ids, leader=3).victim == 3
    victims = {resolve(_step("kill", s, prefer_leader=False), ids, 2).victim for s in range(30)}
    assert victims == {1, 2, 3}
    picks = [s.prefer_leader for s in islice(schedule(3, ("kill",), (1, 1), (1, 1)), 200)]
    assert 0.55 < sum(picks) / len(picks) < 0.85  # the leader with higher probability


def test_partition_rules_drop_silently_at_the_receiver() -> None:
    address = {1: "10.213.0.11", 2: "10.213.0.12", 3: "10.213.0.13"}
    rules = faults.input_rules(faults.cut([1], [2, 3]), address)
    assert rules == {
        1: ["-A INPUT -s 10.213.0.12/32 -j DROP", "-A INPUT -s 10.213.0.13/32 -j DROP"],
        2: ["-A INPUT -s 10.213.0.11/32 -j DROP"],
        3: ["-A INPUT -s 10.213.0.11/32 -j DROP"],
    }
    one = faults.input_rules(faults.one_way([3], [1, 2]), address)
    assert one == {
        1: ["-A INPUT -s 10.213.0.13/32 -j DROP"],
        2: ["-A INPUT -s 10.213.0.13/32 -j DROP"],
        3: [],
    }
    assert faults.input_rules(frozenset(), address) == {1: [], 2: [], 3: []}
    script = faults.restore_script(rules[2])
    assert script.splitlines() == [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        "-A INPUT -s 10.213.0.11/32 -j DROP",
        "COMMIT",
    ]
    assert "REJECT" not in script  # silent loss, never a reset


# -- the network plan ---------------------------------------------------------------------


def test_namespace_plan_is_unique_per_run_and_leaves_the_root_namespace_alone() -> None:
    n = netns.names(4242, [1, 2, 3])
    assert n.hub == "drftt4242-hub" and n.nodes[3] == "drftt4242-n3"
    assert set(n.all()).isdisjoint(netns.names(4243, [1, 2, 3]).all())
    cmds = netns.setup_commands(n)
    for cmd in cmds:
        assert cmd[0] == "ip"
        # Every link command names its namespace; nothing is created in the root one.
        assert cmd[1:3] == ["netns", "add"] or cmd[1] == "-n", cmd
    veths = [c for c in cmds if "veth" in c]
    assert len(veths) == 3 and all(c[2] == n.hub and c[-2] == "netns" for c in veths)
    assert ["ip", "-n", n.hub, "addr", "add", "10.213.0.1/24", "dev", "br0"] in cmds
    assert ["ip", "-n", n.nodes[2], "addr", "add", "10.213.0.12/24", "dev", "eth0"] in cmds


def test_stale_namespaces_are_those_of_dead_runs() -> None:
    listing = "drftt11-hub (id: 3)\ndrftt11-n1 (id: 0)\ndrftt22-n1\nother-ns\ndrftt-x\n"
    assert netns.stale_names(listing, {11: False, 22: True}) == ["drftt11-hub", "drftt11-n1"]
    assert netns.stale_names(listing, {}) == ["drftt11-hub", "drftt11-n1", "drftt22-n1"]


# -- time to serve and the verdict --------------------------------------------------------


def test_time_to_serve_summary_and_failures() -> None:
    got = {1: ProbeResult(120.0, 3), 2: ProbeResult(2500.0, 40), 3: ProbeResult(None, 99, "t")}
    s = summarize(got, {1: 2000.0, 2: 2000.0, 3: 2000.0})
    assert s["ms"] == {"1": 120.0, "2": 2500.0, "3": None}
    assert s["over_bound"] == [2, 3] and not s["ok"] and s["max_ms"] is None
    assert s["p50_ms"] == 1310.0
    rep: dict[str, Any] = {
        "faults": [{"n": 1, "kind": "bridge", "serve": s}],
        "verdict": {"linearizable": True},
        "final_reads": {f"r{k}": {i: 1 for i in (1, 2, 3)} for k in range(2)},
        "unexpected": ["node 2: write: error reply -ERR boom"],
    }
    reasons = report.failures(rep, nodes=3, keys=2)
    assert any("node 2 took 2500 ms" in r for r in reasons)
    assert any("node 3 did not serve at all" in r for r in reasons)
    assert any("-ERR boom" in r for r in reasons)
    fine = summarize({i: ProbeResult(10.0, 1) for i in (1, 2, 3)}, dict.fromkeys((1, 2, 3), 2e3))
    rep.update(faults=[{"n": 1, "kind": "kill", "serve": fine}], unexpected=[])
    assert report.failures(rep, nodes=3, keys=2) == []
    rep["verdict"] = {"linearizable": False, "verdict": "VIOLATION", "explanation": "x"}
    assert report.failures(rep, nodes=3, keys=2) == ["history VIOLATION: x"]


def test_cli_registers_torture() -> None:
    args = build_parser().parse_args(
        [
            "torture",
            "--nodes",
            "5",
            "--nemesis",
            "kill,bridge",
            "--fault-seconds",
            "1..3",
            "--no-netns",
            "--serve-bound-ms",
            "1500",
        ]
    )
    assert args.nodes == 5 and args.nemesis == ("kill", "bridge")
    assert args.fault_seconds == (1.0, 3.0) and args.no_netns and args.serve_bound_ms == 1500
    with pytest.raises(SystemExit):
        build_parser().parse_args(["torture", "--nemesis", "flood"])


# -- real runs ----------------------------------------------------------------------------


def _netns_unavailable() -> str | None:
    """Why this machine cannot run the namespace torture (None if it can)."""
    if os.geteuid() != 0:
        return "not root: network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    try:
        net = netns.setup(os.getpid(), [1])
    except netns.NetnsUnavailable as e:
        return f"network namespaces unavailable: {e}"
    net.teardown()
    return None


def test_short_run_with_partitions(tmp_path: Path) -> None:
    why = _netns_unavailable()
    if why is not None:
        if os.environ.get("DRAFTY_REQUIRE_NETNS"):  # CI: a partition test must run
            pytest.fail(f"DRAFTY_REQUIRE_NETNS is set but {why}")
        pytest.skip(why)
    opts = Options(
        nodes=3,
        seconds=14,
        seed=3,
        clients=6,
        directory=tmp_path,
        kinds=("partition-halves", "isolate-leader", "bridge", "one-way", "kill"),
        fault_seconds=(3.5, 5.0),  # long enough for TCP's retransmission backoff to show
        quiet_seconds=(1.0, 1.5),
        serve_limit_s=6.0,
        check_seconds=30,
        snapshot_entries=500,
    )
    status, rep = run(opts)
    assert rep["network"]["mode"] == "netns", rep["network"]
    assert rep["partitions_ran"], "no partition ran"
    assert (tmp_path / "history.jsonl").stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["passed"] == rep["passed"]
    assert rep["verdict"]["linearizable"], _explain(rep, tmp_path)
    assert not rep["unexpected"] and not rep["node_exits"], _explain(rep, tmp_path)
    assert rep["reasons"] == [], _explain(rep, tmp_path)  # every node's time to serve too
    assert status == 0
    assert not [n for n in netns_list() if n.startswith(f"drftt{os.getpid()}-")]


def netns_list() -> list[str]:
    got = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split(" ", 1)[0] for line in got.stdout.splitlines()]


def _explain(rep: dict[str, Any], directory: Path) -> str:
    """The run's failures and the end of every node's log (for a failing assertion)."""
    tails = "".join(
        f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        for log in sorted(directory.glob("node-*.log"))
    )
    return "\n".join(rep.get("reasons", [])) + tails


def test_short_run_without_namespaces_never_claims_a_partition(tmp_path: Path) -> None:
    opts = Options(
        nodes=3,
        seconds=6,
        seed=1,
        clients=4,
        directory=tmp_path,
        kinds=("partition-halves", "kill", "pause"),
        fault_seconds=(1.0, 2.0),
        quiet_seconds=(1.0, 1.0),
        serve_limit_s=6.0,
        use_netns=False,
        check_seconds=30,
    )
    status, rep = run(opts)
    assert rep["network"]["mode"] == "loopback" and "--no-netns" in rep["network"]["reason"]
    assert rep["kinds_skipped"] == ["partition-halves"]
    assert not rep["partitions_ran"]
    assert {f["kind"] for f in rep["faults"]} <= {"kill", "pause"} and rep["faults"]
    assert "NO partition tests ran" in report.summary(rep)
    assert rep["verdict"]["linearizable"], _explain(rep, tmp_path)
    assert status == 0, _explain(rep, tmp_path)


def test_a_run_needs_a_fresh_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "node-1").mkdir()
    status, rep = run(Options(directory=tmp_path, use_netns=False))
    assert status == 2 and not rep["passed"]
    assert "not empty" in capsys.readouterr().err
