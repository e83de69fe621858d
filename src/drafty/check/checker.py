"""Checking a whole history: split it per key, search each key, explain the verdict.

Theory of operation
-------------------
Operations on different keys are independent (linearizability is
compositional), so :func:`check_history` validates the events
(:mod:`drafty.check.history`), compiles each operation into a model step
(:mod:`drafty.check.models`, dropping those that constrain nothing), splits
them per key and runs the search (:mod:`drafty.check.search`) on each key
alone. The history is linearizable iff every key is.

A violation ends the check, so the order keys are searched in matters: one
failing key may be found in milliseconds while another key (failing or not)
needs an exhaustive search of millions of configurations. Keys are searched
smallest first, in rounds of iterative deepening: in round ``r`` each key
still undecided gets a search of at most ``FIRST_ROUND * GROWTH**r``
backtracks, started afresh (so memory is held for one key at a time); a key
that finishes is decided, and the first violating key ends the check. The
work spent on the easy keys is thus bounded by a constant factor of the work
of the cheapest violation, and re-running a key costs at most a
``GROWTH / (GROWTH - 1)`` factor over a single run.

Two optional budgets bound the whole check; when one runs out before every
key is decided and no violation was found, the verdict is
:attr:`Verdict.UNKNOWN`, and the explanation names the budget:

- ``time_budget_s``, a deadline in seconds of wall time;
- ``max_states``, a cap on the search states: the configurations the search
  caches (each pushed on its stack once), summed over all keys and all rounds
  (a key's states are counted again in each round it is searched afresh).
  It is deterministic: with ``max_states`` and no ``time_budget_s`` no decision
  reads the clock, so the verdict and the explanation (everything in
  :class:`CheckResult` but ``elapsed_s``) are a pure function of the input,
  the same on every run and machine, as a deterministic simulator needs. It
  also bounds memory, because the search holds at most ``max_states`` states
  at once (one key's cache, freed before the next key). A state costs its
  cache entry: the set slot, a 2-tuple, the bitset of linearized operations
  (4 bytes per 30 operations of the key) and, for ``kv``, the new value
  string. Measured as peak RSS growth on searches of 1 to 4 million states:
  about 130 bytes a state on a register, 250 to 300 on the 200-operation
  append keys of ``kv/c50-bad``; so ``max_states=1_000_000`` is about
  130 MB (register) to 300 MB (kv), and ``STATE_BYTES`` is the upper figure.
  Keys of thousands of operations or long values cost more per state.

For a violation the explanation names the failing key and shows where the
search got stuck: the longest linearizable prefix it found (its last
operations), the key's value after it, the operation whose response came
before it could be placed, the operations concurrent with that one (placed or
not), and every unplaced operation called before that response, each with why
it cannot go next.

Invariants
----------
- Pure: no I/O; the clock is read only to enforce the time budget and report
  the time taken (``elapsed_s``).
- ``CheckResult.states <= max_states``.
- ``CheckResult.key`` is set exactly for a violation.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .history import History, HistoryError, Operation, parse_history, show_value
from .models import (
    CAS,
    INITIAL_STATE,
    NOTEQ,
    READ,
    Step,
    apply_step,
    compile_op,
    model_name,
)
from .search import Outcome, Timing, search

FIRST_ROUND: Final = 1 << 16
"""Backtracks each undecided key may spend in the first round."""
GROWTH: Final = 8
"""How much the per-key allowance grows from one round to the next."""
SHOW_PREFIX: Final = 8
"""Operations of the longest linearizable prefix shown in an explanation."""
SHOW_CANDIDATES: Final = 12
"""Unplaced concurrent operations shown in an explanation."""
STATE_BYTES: Final = 300
"""Approximate peak memory per search state, for sizing ``max_states`` (see above)."""


class Verdict(enum.Enum):
    """The answer: linearizable, not, or undecided within the budget."""

    OK = "ok"
    VIOLATION = "violation"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on a history, with a human-readable ``explanation``.

    ``key`` is the failing key (only for a violation); ``ops`` and ``keys``
    count the history's operations and distinct keys; ``elapsed_s`` is the
    time the check took (the one field that depends on the clock);
    ``states`` counts the search states spent (what ``max_states`` caps).
    """

    verdict: Verdict
    model: str
    explanation: str
    key: str | None
    ops: int
    keys: int
    elapsed_s: float
    states: int

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


@dataclass(frozen=True, slots=True)
class _Partition:
    key: str
    ops: tuple[Operation, ...]
    steps: tuple[Step, ...]


def check_history(
    events: Sequence[Mapping[str, Any]] | History,
    model: str | None = None,
    time_budget_s: float | None = None,
    max_states: int | None = None,
) -> CheckResult:
    """Check ``events`` (dicts as parsed from the JSON lines, or a parsed
    :class:`History`) for linearizability under ``model`` (``register``,
    ``kv`` or ``kv-append``; None to infer it from the operation names).

    ``time_budget_s`` (seconds) and ``max_states`` (search states, over the
    whole check) bound the work; past either, the verdict is
    :attr:`Verdict.UNKNOWN` (see the module docstring). ``max_states`` is
    deterministic and bounds memory too: at most about ``STATE_BYTES`` (300)
    bytes a state (130 on a register), so ``max_states=1_000_000`` is about
    300 MB at most. The shared histories need at most 170,000 states each.

    Raises :class:`HistoryError` for a malformed history and
    :class:`ValueError` for ``max_states < 1``.
    """
    if max_states is not None and max_states < 1:
        raise ValueError(f"max_states must be >= 1, not {max_states}")
    start = time.monotonic()
    if isinstance(events, History):
        history = events
        if model is not None and _canonical(model) != history.model:
            raise HistoryError(None, f"history is {history.model}, not {model}")
    else:
        history = parse_history(events, model)
    deadline = None if time_budget_s is None else start + time_budget_s
    initial = INITIAL_STATE[history.model]
    parts = _partitions(history)
    total_keys = len({op.key for op in history.ops})

    states = 0

    def result(verdict: Verdict, explanation: str, key: str | None = None) -> CheckResult:
        elapsed = time.monotonic() - start
        n = len(history.ops)
        return CheckResult(verdict, history.model, explanation, key, n, total_keys, elapsed, states)

    undecided = sorted(parts, key=lambda p: (len(p.steps), p.key))
    allowance = FIRST_ROUND
    last: dict[str, Outcome] = {}
    while undecided:
        still: list[_Partition] = []
        for i, part in enumerate(undecided):
            timings = [
                Timing(op.call_at, op.ret_at, step)
                for op, step in zip(part.ops, part.steps, strict=True)
            ]
            room = None if max_states is None else max_states - states
            outcome = search(timings, initial, deadline, allowance, room)
            states += outcome.explored
            if outcome.linearizable is False:
                return result(
                    Verdict.VIOLATION,
                    _explain_violation(history, part, outcome),
                    part.key,
                )
            if outcome.linearizable is None:
                last[part.key] = outcome
                still.append(part)
                if max_states is not None and states >= max_states:
                    budget = f"state budget of {max_states} states"
                elif deadline is not None and time.monotonic() > deadline:
                    budget = f"time budget of {time_budget_s} s"
                else:
                    continue
                rest = still + undecided[i + 1 :]
                return result(
                    Verdict.UNKNOWN,
                    _explain_unknown(rest, last, len(parts), budget, states),
                )
        undecided = still
        allowance *= GROWTH
    return result(
        Verdict.OK,
        f"linearizable: {len(history.ops)} operations on {total_keys} "
        f"key{'s' if total_keys != 1 else ''} ({history.model} model)",
    )


def _canonical(model: str) -> str:
    try:
        return model_name(model)
    except ValueError as e:
        raise HistoryError(None, str(e)) from None


def _partitions(history: History) -> list[_Partition]:
    ops: dict[str, list[Operation]] = {}
    steps: dict[str, list[Step]] = {}
    for op in history.ops:
        step = compile_op(history.model, op.f, op.status, op.value, op.output, op.error)
        if step is None:
            continue
        ops.setdefault(op.key, []).append(op)
        steps.setdefault(op.key, []).append(step)
    return [_Partition(key, tuple(ops[key]), tuple(steps[key])) for key in ops]


def _explain_violation(history: History, part: _Partition, outcome: Outcome) -> str:
    n = len(part.ops)
    placed = set(outcome.order)
    lines = [
        f"not linearizable: key {part.key!r} has no linearization "
        f"({n} operations on this key; {len(history.ops)} in the history)",
        f"longest linearizable prefix found: {len(outcome.order)} of {n} operations"
        + (", ending with:" if outcome.order else ""),
    ]
    shown = outcome.order[-SHOW_PREFIX:]
    if len(outcome.order) > len(shown):
        lines.append(f"  ... {len(outcome.order) - len(shown)} earlier")
    lines.extend(f"  {part.ops[o].describe()}" for o in shown)
    lines.append(f"value of {part.key!r} after it: {show_value(outcome.state)}")
    assert outcome.stuck is not None  # a failed search always meets a return
    stuck = part.ops[outcome.stuck]
    assert stuck.ret_at is not None
    lines.append(
        f"stuck at: {stuck.describe()}; it returned at event {stuck.ret_index} "
        "but cannot take effect after that prefix"
    )
    position = {o: i for i, o in enumerate(outcome.order, 1)}
    overlapping = [
        o
        for o, op in enumerate(part.ops)
        if o != outcome.stuck and op.call_at < stuck.ret_at and _after(op.ret_at, stuck.call_at)
    ]
    if overlapping:
        lines.append("operations concurrent with it:")
        for o in overlapping[:SHOW_CANDIDATES]:
            where = f"placed {position[o]} in the prefix" if o in placed else "not placed"
            lines.append(f"  {part.ops[o].describe()}: {where}")
        if len(overlapping) > SHOW_CANDIDATES:
            lines.append(f"  ... and {len(overlapping) - SHOW_CANDIDATES} more")
    candidates = [o for o in range(n) if o not in placed and part.ops[o].call_at < stuck.ret_at]
    lines.append(f"operations not placed that were called before event {stuck.ret_index}:")
    for o in candidates[:SHOW_CANDIDATES]:
        lines.append(f"  {part.ops[o].describe()}: {_why(part.steps[o], outcome.state)}")
    if len(candidates) > SHOW_CANDIDATES:
        lines.append(f"  ... and {len(candidates) - SHOW_CANDIDATES} more")
    return "\n".join(lines)


def _after(ret_at: int | None, at: int) -> bool:
    """Whether a return (None: never) comes after position ``at``."""
    return ret_at is None or ret_at > at


def _why(step: Step, state: Hashable) -> str:
    legal, _ = apply_step(step, state)
    if legal:
        return "could go next, but no order of the rest works after it"
    value = show_value(state)
    if step.kind == READ:
        return f"read {show_value(step.a)} but the value is {value}"
    if step.kind == CAS:
        return f"cas expects {show_value(step.a)} but the value is {value}"
    assert step.kind == NOTEQ
    return f"cas failed, so the value was not {show_value(step.a)}, but it is"


def _explain_unknown(
    rest: list[_Partition],
    last: dict[str, Outcome],
    partitions: int,
    budget: str,
    states: int,
) -> str:
    names = ", ".join(f"{p.key!r} ({len(p.steps)} ops)" for p in rest[:10])
    if len(rest) > 10:
        names += f", ... {len(rest) - 10} more"
    lines = [
        f"undecided: the {budget} ran out with {len(rest)} of {partitions} keys undecided: {names}",
        f"no violation found in the keys decided so far ({states} search states spent)",
    ]
    for p in rest:
        outcome = last.get(p.key)
        if outcome is not None:
            lines.append(
                f"key {p.key!r}: {outcome.explored} configurations explored, longest "
                f"linearizable prefix {len(outcome.order)} of {len(p.steps)} operations"
            )
    return "\n".join(lines)
