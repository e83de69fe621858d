"""CI sweeps of the simulator, and replay of every seed that ever found a bug.

``test_ci_sweep`` runs 900 seeds with every fault enabled (500 with 5 nodes,
250 with 3, 150 with 7) in well under a minute on one core; any violation
fails it with the seed's full report. Seeds listed in regression_seeds.txt as
``known=`` (open core bugs) are skipped here and tracked there instead.

The longer sweep, before a release or after touching the core (about 7
minutes per 10,000 seeds on one core; run one per core in parallel)::

    python -m drafty.sim --seeds 1..10000
    python -m drafty.sim --seeds 1..10000 --nodes 3
    python -m drafty.sim --seeds 1..5000 --nodes 7

Every seed that finds a bug goes into regression_seeds.txt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drafty.sim import SimConfig, SimResult, parse_faults, run_seed
from drafty.sim.cli import parse_overrides

from .planted import BUGS

REGRESSIONS = Path(__file__).with_name("regression_seeds.txt")
SWEEPS = [(5, range(1, 501)), (3, range(1, 251)), (7, range(1, 151))]


@dataclass(frozen=True)
class Regression:
    line: int
    seed: int
    settings: dict[str, object] = field(default_factory=dict)
    expect: str | None = None
    known: str | None = None
    comment: str = ""

    def config(self) -> SimConfig:
        return SimConfig(seed=self.seed, **self.settings)  # type: ignore[arg-type]

    def nodes(self) -> int:
        n = self.settings.get("nodes", 5)
        assert isinstance(n, int)
        return n


def parse_regressions(text: str) -> list[Regression]:
    out: list[Regression] = []
    for k, raw in enumerate(text.splitlines(), 1):
        body, _, comment = raw.partition("#")
        words = body.split()
        if not words:
            continue
        settings: dict[str, object] = {}
        raft: list[str] = []
        expect = known = None
        for w in words[1:]:
            key, _, value = w.partition("=")
            if key in ("nodes", "steps", "clients"):
                settings[key] = int(value)
            elif key == "hunt":
                settings[key] = float(value)
            elif key == "faults":
                settings[key] = parse_faults(value)
            elif key in ("torn_records", "members"):
                settings[key] = value in ("1", "on", "true")
            elif key.startswith("raft."):
                raft.append(f"{key[5:]}={value}")
            elif key == "bug":
                settings.update(BUGS[value])
            elif key == "expect":
                expect = value.replace("-", " ")
            elif key == "known":
                known = value.replace("-", " ")
            else:
                raise ValueError(f"{REGRESSIONS.name}:{k}: unknown setting {w!r}")
        if raft:
            settings["config_overrides"] = parse_overrides(raft)
        out.append(Regression(k, int(words[0]), settings, expect, known, comment.strip()))
    return out


ENTRIES = parse_regressions(REGRESSIONS.read_text())


def _report(res: SimResult) -> str:
    return "\n".join(res.lines())


def test_regression_file_parses() -> None:
    assert len(ENTRIES) >= 8
    assert all(e.comment for e in ENTRIES), "every regression seed needs a comment"


def _params() -> list[object]:
    out: list[object] = []
    for e in ENTRIES:
        marks = []
        if e.known:
            marks.append(pytest.mark.xfail(strict=True, reason=f"BUG (open): {e.comment}"))
        out.append(pytest.param(e, id=f"line{e.line}-seed{e.seed}", marks=marks))
    return out


@pytest.mark.parametrize("entry", _params())
def test_regression_seed(entry: Regression) -> None:
    res = run_seed(entry.config())
    if entry.expect is not None:
        assert res.invariant == entry.expect, _report(res)
    elif entry.known is not None:
        assert res.ok or res.invariant != entry.known, _report(res)
    else:
        assert res.ok, _report(res)


def test_ci_sweep() -> None:
    known = {(e.nodes(), e.seed) for e in ENTRIES if e.known and len(e.settings) <= 1}
    failures: list[str] = []
    runs = 0
    for nodes, seeds in SWEEPS:
        for seed in seeds:
            if (nodes, seed) in known:
                continue
            runs += 1
            res = run_seed(SimConfig(seed=seed, nodes=nodes))
            if not res.ok:
                failures.append(_report(res))
    assert runs >= 500
    assert not failures, f"{len(failures)} seeds failed; first:\n" + failures[0]
