"""drafty.check: a linearizability checker for client histories.

Theory of operation
-------------------
A history (JSON lines, the format of /work/shared/histories/README.md) is
validated and paired into operations (:mod:`.history`), each compiled into a
step of its data model, ``register`` or ``kv`` (:mod:`.models`), split per
key, and each key searched for a linearization with the Wing-Gong-Lowe
algorithm (:mod:`.search`); :mod:`.checker` orders the keys so a violation is
found early and explains the verdict; :mod:`.cli` is ``drafty check``.

Usage::

    from drafty.check import check_file, check_history, Verdict
    res = check_history(events, model="kv", time_budget_s=10)
    res = check_history(events, max_states=1_000_000)  # deterministic, ~300 MB at most
    if res.verdict is Verdict.VIOLATION:
        print(res.key, res.explanation)

Invariants: everything but :func:`load_history` / :func:`check_file` is pure
(no I/O); a malformed history raises :class:`HistoryError` with its line.
"""

from .checker import CheckResult, Verdict, check_history
from .cli import check_file, load_history
from .history import History, HistoryError, Operation, parse_history, parse_lines
from .models import model_name

__all__ = [
    "CheckResult",
    "History",
    "HistoryError",
    "Operation",
    "Verdict",
    "check_file",
    "check_history",
    "load_history",
    "model_name",
    "parse_history",
    "parse_lines",
]
