"""Real processes killed with SIGKILL at random moments lose nothing they reported durable.

A child process appends batches (entries + hard state), syncs, and prints each
batch's last index once ``sync()`` returned; now and then it saves a snapshot
and compacts. The parent kills it at a random moment, reopens the directory
and checks that every batch reported durable is there with the right term and
data, that no entry holds data that was never written, and that the hard state
covers what was reported. Segments are small so kills also land in rolls and
compactions.

CI runs 20 kills. For a long soak::

    DRAFTY_KILL_ITERATIONS=2000 .venv/bin/pytest tests/storage/test_kill.py -q
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from drafty.storage import NodeStorage

CHILD = r"""
import random, sys
from pathlib import Path
from drafty.core.types import Entry, EntryKind, HardState
from drafty.storage import NodeStorage, SnapshotMeta

def payload(i, t):
    return (b"%d/%d/" % (i, t)) * 3

directory, term = Path(sys.argv[1]), int(sys.argv[2])
st = NodeStorage.open(directory, cluster_id="kill", node_id=1, segment_size=16 * 1024)
log = st.log
rng = random.Random(term)
print("ready", flush=True)
batches = 0
while True:
    first = log.last_index + 1
    n = rng.choice((1, 2, 7, 40))
    last = first + n - 1
    entries = [Entry(i, term, EntryKind.NORMAL, payload(i, term)) for i in range(first, last + 1)]
    log.append(entries, HardState(term, 1, last))
    log.sync()
    print("durable", last, term, flush=True)
    batches += 1
    if batches % 50 == 0 and last > 200:
        st.save_snapshot(SnapshotMeta(last - 100, log.term(last - 100), (1,)), b"snap")
        log.compact(last - 100)
"""


def payload(i: int, t: int) -> bytes:
    return (b"%d/%d/" % (i, t)) * 3


def run_child(directory: Path, term: int, rng: random.Random) -> list[tuple[int, int]]:
    """Start a child, kill -9 it at a random moment; return the (index, term) it reported."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(term)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    assert line == "ready\n", line + proc.stderr.read()
    time.sleep(rng.uniform(0.0, 0.15))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rest = proc.stdout.read()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, err
    reports = []
    for row in rest.split("\n")[:-1]:  # a last line without "\n" was cut by the kill
        word, index, t = row.split()
        assert word == "durable"
        reports.append((int(index), int(t)))
    return reports


def test_sigkill_never_loses_a_durable_batch(tmp_path: Path) -> None:
    iterations = int(os.environ.get("DRAFTY_KILL_ITERATIONS", "20"))
    rng = random.Random(4)
    reported: dict[int, int] = {}
    highest = 0
    for term in range(1, iterations + 1):
        for index, t in run_child(tmp_path, term, rng):
            reported[index] = t
            highest = max(highest, index)
        with NodeStorage.open(tmp_path, cluster_id="kill", node_id=1) as st:
            log = st.log
            assert log.last_index >= highest, f"kill {term}: lost durable batch(es)"
            assert log.hard_state.commit >= highest
            for index, t in reported.items():
                if index > log.base_index:
                    assert log.term(index) == t, f"kill {term}: entry {index}"
            for e in log.entries(log.first_index, log.last_index):
                assert e.data == payload(e.index, e.term), f"kill {term}: invented {e}"
            if log.base_index:
                assert st.snapshot is not None and st.snapshot.meta.index >= log.base_index
        # indexes below the compaction point are no longer checkable
        reported = {i: t for i, t in reported.items() if i > log.base_index}
    assert highest > 0
