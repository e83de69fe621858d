"""`drafty bench-reads` runs end to end with tiny settings (the real figures come
from a run with the defaults, documented with the benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import _free_base

PHASES = [
    ("SET", "readindex", "SET"),
    ("GET linearizable (ReadIndex)", "readindex", "GET"),
    ("GET stale (READONLY)", "readindex", "GET"),
    ("GET linearizable (lease)", "lease", "GET"),
    ("SET (lease cluster)", "lease", "SET"),
]


def test_the_read_benchmark_runs_every_phase_without_errors_or_log_growth(tmp_path: Path) -> None:
    report = tmp_path / "readbench.json"
    out = subprocess.run(
        [sys.executable, "-m", "drafty", "bench-reads", "--seconds", "1.5", "--clients", "6",
         "--keys", "200", "--loaders", "1", "--port", str(_free_base(6)),
         "--dir", str(tmp_path / "data"), "--json", str(report)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "log entries added during reads: 0" in out.stdout
    assert "linearizable GET (ReadIndex) / SET = " in out.stdout
    data = json.loads(report.read_text())
    assert data["ok"] is True and data["failure"] == ""
    assert data["settings"]["clients"] == 6 and data["settings"]["loaders"] == 1
    phases = data["phases"]
    assert [(p["phase"], p["cluster"], p["op"]) for p in phases] == PHASES
    for p in phases:
        assert p["ops"] > 0 and p["ops_per_s"] > 0, p
        assert p["errors"] == 0 and p["errors_by_kind"] == {}, p
        assert 0 < p["p50_ms"] <= p["p99_ms"] <= p["p999_ms"], p
        if p["op"] == "GET":
            assert p["log_entries_added"] == 0, p
        else:  # every SET is one entry (give or take the leader's CLOCK entries)
            assert p["log_entries_added"] >= p["ops"], p
    counters = {p["phase"]: p["read_counters"] for p in phases}
    assert sum(counters["GET stale (READONLY)"]["reads_stale"].values()) == phases[2]["ops"]
    assert sum(counters["GET linearizable (ReadIndex)"]["reads_round_confirmed"].values()) > 0
    assert sum(counters["GET linearizable (lease)"]["reads_lease_answered"].values()) > 0
    summary = data["summary"]
    assert summary["log_entries_added_during_reads"] == 0 and summary["errors"] == 0
    assert summary["readindex_get_over_set"] > 0 and summary["lease_get_over_set"] > 0
