"""`drafty bench-snapshots` runs end to end on a small state (the real figures
come from the long run documented in the README)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import _free_base


def test_the_snapshot_benchmark_reports_every_phase(tmp_path: Path) -> None:
    port = _free_base(3)
    out = subprocess.run(
        [sys.executable, "-m", "drafty", "bench-snapshots", "--keys", "3000", "--batch", "500",
         "--minutes", "0", "--port", str(port), "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "load: 3,000 keys of 100 bytes" in text
    assert (
        len(re.findall(r"node \d: saved [\d.]+ MiB in \d+ ms; longest event-loop stall", text)) == 3
    )
    assert re.search(r"restart: node \d serving [\d.]+ s after process start", text)
    assert re.search(r"catch-up: an empty node \d installed the snapshot .* \(3000 keys\)", text)
    assert text.count("RSS") == 6
