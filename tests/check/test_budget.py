"""The state budget (``max_states``): deterministic, exact, counted over keys and rounds.

Nothing here asserts on time: the state budget exists so that verdicts do not
depend on it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from drafty.check import CheckResult, Verdict, check_file, check_history
from drafty.check.checker import FIRST_ROUND, GROWTH
from drafty.check.models import APPEND, INITIAL_STATE, READ, Step
from drafty.check.search import Timing, search

from .helpers import REPO, SHARED, kv

C50_BAD = SHARED / "kv" / "c50-bad.jsonl"
C50_BAD_STATES = 12539
"""States the uncapped check of kv/c50-bad spends before it finds the violation."""
needs_shared = pytest.mark.skipif(not C50_BAD.is_file(), reason=f"{C50_BAD} not found")


def _hard(n: int) -> list[dict[str, Any]]:
    """An easy key ``a``, then ``n`` concurrent appends to ``k`` and an impossible get:
    the violation on ``k`` takes an exhaustive search of the appends' orders."""
    rows = [f'{p} inv append k "{p},"' for p in range(n)]
    rows += [f'{p} ok append k "{p},"' for p in range(n)]
    return kv('50 inv put a "x"', '50 ok put a "x"', *rows, "99 inv get k", '99 ok get k "-1"')


def _clockless(res: CheckResult) -> CheckResult:
    """The result without its one clock-dependent field."""
    return dataclasses.replace(res, elapsed_s=0.0)


def test_the_state_budget_is_deterministic() -> None:
    events = _hard(8)  # a second round of the growing allowance is needed
    first = check_history(events, max_states=100_000)
    second = check_history(events, max_states=100_000)
    assert first.verdict is Verdict.UNKNOWN
    assert _clockless(first) == _clockless(second)
    assert first.states == 100_000


def test_the_state_budget_ignores_hash_seeds() -> None:
    """Other processes with other string-hash seeds reach the very same result."""
    events = _hard(7)
    code = (
        "import json, sys\n"
        "from drafty.check import check_history\n"
        "r = check_history(json.load(sys.stdin), max_states=5000)\n"
        "print(json.dumps([r.verdict.value, r.explanation, r.key, r.states]))\n"
    )
    here = check_history(events, max_states=5000)
    assert here.verdict is Verdict.UNKNOWN
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(events),
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=REPO,
        ).stdout
        assert json.loads(out) == [here.verdict.value, here.explanation, here.key, here.states]


def test_a_tiny_state_budget_gives_unknown_naming_it() -> None:
    res = check_history(_hard(7), max_states=100)
    assert res.verdict is Verdict.UNKNOWN
    assert res.key is None
    assert res.states == 100
    assert "the state budget of 100 states ran out with 1 of 2 keys undecided: 'k'" in (
        res.explanation
    )
    assert "100 search states spent" in res.explanation


def test_the_state_budget_is_exact() -> None:
    """Exactly the states the uncapped check spends are enough; one fewer is not."""
    events = _hard(7)
    free = check_history(events)
    assert free.verdict is Verdict.VIOLATION and free.key == "k"
    enough = check_history(events, max_states=free.states)
    assert _clockless(enough) == _clockless(free)
    short = check_history(events, max_states=free.states - 1)
    assert short.verdict is Verdict.UNKNOWN
    assert short.states == free.states - 1


def test_states_are_counted_over_keys_and_rounds() -> None:
    events = _hard(8)
    free = check_history(events)
    assert free.verdict is Verdict.VIOLATION
    ops = [Timing(p, 8 + p, Step(APPEND, f"{p},")) for p in range(8)]  # key k alone
    ops.append(Timing(16, 17, Step(READ, "-1")))
    round0 = search(ops, INITIAL_STATE["kv"], max_backtracks=FIRST_ROUND)
    round1 = search(ops, INITIAL_STATE["kv"], max_backtracks=FIRST_ROUND * GROWTH)
    assert round0.linearizable is None and round1.linearizable is False
    # Key a takes one state; k is searched afresh in round 1 and counted again.
    assert free.states == 1 + round0.explored + round1.explored


def test_the_time_budget_and_the_state_budget_together() -> None:
    res = check_history(_hard(8), time_budget_s=3600, max_states=1000)
    assert res.verdict is Verdict.UNKNOWN
    assert "state budget of 1000 states" in res.explanation
    assert "time budget" not in res.explanation


@pytest.mark.parametrize("bad", [0, -1])
def test_the_state_budget_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="max_states"):
        check_history(_hard(2), max_states=bad)


def test_search_state_cap_is_exact() -> None:
    ops = [Timing(p, 10 + p, Step(APPEND, f"{p},")) for p in range(10)]
    ops.append(Timing(30, 31, Step(READ, "never")))
    for cap in (0, 1, 77, 4096):
        out = search(ops, "", max_states=cap)
        assert out.linearizable is None
        assert out.explored == cap
    with pytest.raises(ValueError):
        search(ops, "", max_states=-1)


@needs_shared
def test_hard_shared_history_twice_with_a_small_state_budget() -> None:
    first = check_file(C50_BAD, max_states=5000)
    second = check_file(C50_BAD, max_states=5000)
    assert first.verdict is Verdict.UNKNOWN
    assert "state budget of 5000 states" in first.explanation
    assert _clockless(first) == _clockless(second)


@needs_shared
def test_hard_shared_history_needs_its_states() -> None:
    free = check_file(C50_BAD)
    assert free.verdict is Verdict.VIOLATION
    assert free.states == C50_BAD_STATES
    assert check_file(C50_BAD, max_states=C50_BAD_STATES).verdict is Verdict.VIOLATION
    short = check_file(C50_BAD, max_states=C50_BAD_STATES - 1)
    assert short.verdict is Verdict.UNKNOWN
    assert "state budget" in short.explanation
