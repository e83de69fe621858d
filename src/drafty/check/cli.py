"""The ``check`` command, and the one place the checker reads a file.

Theory of operation
-------------------
:func:`add_subcommand` registers ``check`` on the ``drafty`` command's
subparsers. :func:`load_history` reads a JSON-lines file and hands its text to
the pure parser (:func:`drafty.check.history.parse_lines` and
:func:`~drafty.check.history.parse_history`); :func:`check_file` checks it.

Usage::

    drafty check h.jsonl                  # model inferred from the f names
    drafty check h.jsonl --model register --budget 30
    drafty check h.jsonl --max-states 1000000   # deterministic; about 300 MB at most

It prints the verdict with the model, the number of operations and keys and
the time taken, then the explanation for a violation or an undecided result.
The exit status is 0 when the history is linearizable, 1 when it is not, and
2 when the checker cannot decide within the budget (``--budget`` seconds or
``--max-states`` search states, see :mod:`drafty.check.checker`) or cannot
read the input (the message says which; a malformed history names its line).

Invariants: the handler never raises for a bad file or a bad history; it
reports on stderr and returns 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .checker import CheckResult, Verdict, check_history
from .history import History, HistoryError, parse_history, parse_lines


def load_history(path: str | Path, model: str | None = None) -> History:
    """Read and validate the JSON-lines history at ``path`` (HistoryError if malformed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise HistoryError(None, f"not UTF-8 text: {e}") from None
    events, lines = parse_lines(text)
    return parse_history(events, model, lines)


def check_file(
    path: str | Path,
    model: str | None = None,
    time_budget_s: float | None = None,
    max_states: int | None = None,
) -> CheckResult:
    """Check the history at ``path``; ``model`` None infers it from the operation names.

    The budgets are those of :func:`~drafty.check.checker.check_history`.
    """
    return check_history(
        load_history(path, model), time_budget_s=time_budget_s, max_states=max_states
    )


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check",
        help="check a client history (JSON lines) for linearizability",
        description="Check a client history for linearizability against a register or "
        "key-value model. Exit status: 0 linearizable, 1 not linearizable, "
        "2 undecided within the budget or malformed input.",
    )
    p.add_argument("history", metavar="HISTORY", help="the history file (JSON lines)")
    p.add_argument(
        "--model",
        choices=["register", "kv", "kv-append"],
        help="the data model (default: inferred from the operation names)",
    )
    p.add_argument(
        "--budget",
        type=float,
        metavar="SECONDS",
        help="give up (exit 2) after this many seconds (default: no limit)",
    )
    p.add_argument(
        "--max-states",
        type=int,
        metavar="N",
        help="give up (exit 2) after N search states, over all keys: deterministic, "
        "and bounds memory at roughly 300 bytes a state (default: no limit)",
    )
    p.set_defaults(func=main)


_HEADLINES = {
    Verdict.OK: "linearizable",
    Verdict.VIOLATION: "NOT linearizable",
    Verdict.UNKNOWN: "undecided",
}


def main(args: argparse.Namespace) -> int:
    path = str(args.history)
    if args.budget is not None and args.budget < 0:
        print("drafty check: --budget must be >= 0", file=sys.stderr)
        return 2
    if args.max_states is not None and args.max_states < 1:
        print("drafty check: --max-states must be >= 1", file=sys.stderr)
        return 2
    try:
        res = check_file(path, args.model, args.budget, args.max_states)
    except HistoryError as e:
        print(f"drafty check: {path}: malformed history: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"drafty check: cannot read {path}: {e.strerror or e}", file=sys.stderr)
        return 2
    keys = f"{res.keys} key{'s' if res.keys != 1 else ''}"
    print(
        f"{path}: {_HEADLINES[res.verdict]} ({res.model} model; {res.ops} operations, "
        f"{keys}; {res.elapsed_s:.2f} s)"
    )
    if res.verdict is not Verdict.OK:
        print(res.explanation)
    if res.verdict is Verdict.OK:
        return 0
    return 1 if res.verdict is Verdict.VIOLATION else 2
