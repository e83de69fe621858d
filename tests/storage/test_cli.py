"""Operator commands: ``inspect`` reports without changing anything; ``bench`` runs."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from drafty.core.types import HardState
from drafty.storage import NodeStorage, SnapshotMeta
from drafty.storage.cli import add_subcommands, main

from .helpers import make_entries


def fingerprint(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def node_dir(d: Path) -> Path:
    with NodeStorage.open(d, cluster_id="k", node_id=3, segment_size=1024) as st:
        for i in range(1, 101, 10):
            st.log.append(make_entries(i, 10, size=20), HardState(5, 2, i))
        st.save_snapshot(SnapshotMeta(30, 1, (1, 2, 3)), b"snap")
        st.log.compact(30)
    return d


def test_inspect_healthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = node_dir(tmp_path / "n")
    before = fingerprint(d)
    assert main(["inspect", str(d)]) == 0
    out = capsys.readouterr().out
    assert "meta: cluster 'k', node 3" in out
    assert "hard state: term 5, vote 2, commit 91" in out
    assert "entries 31..100 (compacted through 30, term 1)" in out
    assert "snap-0000000000000030-0000000000000001.snap  index 30 term 1 voters [1, 2, 3]" in out
    assert "problems: none" in out and "verdict: would open" in out
    for seg in sorted((d / "wal").glob("wal-*.log")):
        assert seg.name in out
    assert fingerprint(d) == before


def test_inspect_torn_and_corrupt_never_modifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = node_dir(tmp_path / "n")
    segs = sorted((d / "wal").glob("wal-*.log"))
    with segs[-1].open("ab") as f:
        f.write(b"\x00" * 100)
    before = fingerprint(d)
    assert main(["inspect", str(d)]) == 0
    out = capsys.readouterr().out
    assert f"torn: {segs[-1].name} at offset" in out and "zero-filled tail" in out
    assert "(open truncates it)" in out
    assert fingerprint(d) == before

    data = bytearray(segs[0].read_bytes())
    data[100] ^= 0xFF
    segs[0].write_bytes(data)
    before = fingerprint(d)
    assert main(["inspect", str(d)]) == 1
    out = capsys.readouterr().out
    assert f"CORRUPT: {segs[0].name} at offset" in out and "REFUSE" in out
    assert fingerprint(d) == before


def test_inspect_reports_damaged_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = node_dir(tmp_path / "n")
    snap = next((d / "snap").glob("*.snap"))
    snap.write_bytes(snap.read_bytes()[:-1])
    assert main(["inspect", str(d)]) == 1  # the log is compacted past every valid snapshot
    out = capsys.readouterr().out
    assert "DAMAGED" in out and f"damaged snapshot (not used): {snap.name}" in out
    assert "compacted through index 30 but the newest valid snapshot covers only 0" in out


def test_inspect_missing_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "nope")]) == 2


def test_add_subcommands_wires_storage_inspect(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="drafty")
    add_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["storage", "inspect", str(tmp_path)])
    assert args.func(args) == 0 or args.func(args) in (1, 2)
    args = parser.parse_args(["storage", "bench", "--seconds", "0.1"])
    assert callable(args.func) and args.seconds == 0.1


def test_module_entry_point_inspect(tmp_path: Path) -> None:
    d = node_dir(tmp_path / "n")
    proc = subprocess.run(
        [sys.executable, "-m", "drafty.storage", "inspect", str(d)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verdict: would open" in proc.stdout


def test_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "bench",
        "--dir",
        str(tmp_path),
        "--seconds",
        "0.02",
        "--reopen-entries",
        "5000",
        "--reopen-batches",
        "256,1",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for n in (1, 16, 256, 4096):
        assert any(line.split()[:1] == [str(n)] for line in lines), n
    assert "reopen 5,000 entries written 256 per record" in out
    assert list(tmp_path.iterdir()) == []  # scratch space removed
