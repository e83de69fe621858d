"""Runs every scripted protocol test in testdata/ (see datadriven.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .datadriven import run_file
from .harness import Interaction

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))


def test_scripts_exist() -> None:
    assert len(SCRIPTS) >= 7


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script(path: Path, request: pytest.FixtureRequest) -> None:
    rewrite = bool(request.config.getoption("--rewrite"))
    failures = run_file(path, Interaction().run, rewrite)
    assert not failures, "\n\n".join(failures)
