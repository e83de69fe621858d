"""The search against a brute-force oracle on random small histories, and its edges."""

from __future__ import annotations

import random
from collections.abc import Hashable

import pytest

from drafty.check import Verdict, check_history
from drafty.check.models import APPEND, READ, WRITE, Step, apply_step
from drafty.check.search import Timing, search

from .helpers import brute_force, random_history


@pytest.mark.parametrize("model", ["register", "kv"])
def test_agrees_with_brute_force(model: str) -> None:
    rng = random.Random(f"drafty-check-{model}")
    seen = {True: 0, False: 0}
    for trial in range(1500):
        events = random_history(rng, model, rng.randrange(1, 9))
        want = brute_force(events, model)
        got = check_history(events, model=model)
        assert (got.verdict is Verdict.OK) == want, (trial, events, got.explanation)
        seen[want] += 1
    # Both answers are well represented, or the comparison proves little.
    assert min(seen.values()) > 200, seen


def test_search_success_returns_a_legal_order() -> None:
    ops = [
        Timing(0, 3, Step(WRITE, 1)),
        Timing(1, 2, Step(READ, None)),
        Timing(4, 5, Step(READ, 1)),
    ]
    out = search(ops, None)
    assert out.linearizable is True and out.stuck is None
    assert out.order == (1, 0, 2)
    state: Hashable = None
    for o in out.order:
        legal, state = apply_step(ops[o].step, state)
        assert legal
    assert state == out.state == 1
    assert search(ops, 0).linearizable is False  # the read of null can't happen from 0


def test_search_rejects_a_return_before_its_call() -> None:
    with pytest.raises(ValueError):
        search([Timing(3, 2, Step(WRITE, 1))], None)


def test_search_reports_the_deepest_dead_end() -> None:
    ops = [
        Timing(0, 1, Step(WRITE, 1)),
        Timing(2, 3, Step(READ, 1)),
        Timing(4, 5, Step(READ, 2)),
    ]
    out = search(ops, None)
    assert out.linearizable is False
    assert out.order == (0, 1) and out.state == 1 and out.stuck == 2


def test_search_gives_up_after_its_allowance() -> None:
    n = 10
    ops = [Timing(p, n + p, Step(APPEND, f"{p},")) for p in range(n)]
    ops.append(Timing(3 * n, 3 * n + 1, Step(READ, "never")))
    out = search(ops, "", max_backtracks=5000)
    assert out.linearizable is None
    assert out.explored > 0
