"""Building small histories by hand, and a brute-force linearizability oracle.

:func:`reg` and :func:`kv` build events from one-line rows such as
``"3 inv cas [1, 4]"`` or ``"2 ok get a \"xy\""`` (``inv`` is ``invoke``; a
row ending in ``!err`` gets an ``error`` field), numbering them. :func:`brute_force` decides
linearizability by trying every order (tiny histories only), with its own
model semantics, independent of drafty.check.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared" / "histories"

ERR = " !err"
"""Suffix of a row whose event carries an ``error`` field."""


def reg(*rows: str) -> list[dict[str, Any]]:
    """Register events from rows ``"PROCESS TYPE F [VALUE-JSON]"`` (key ``r``)."""
    return _rows(rows, has_key=False)


def kv(*rows: str) -> list[dict[str, Any]]:
    """Key-value events from rows ``"PROCESS TYPE F KEY [VALUE-JSON]"``."""
    return _rows(rows, has_key=True)


def _rows(rows: tuple[str, ...], has_key: bool) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for n, row in enumerate(rows):
        error = row.endswith(ERR)
        if error:
            row = row[: -len(ERR)]
        parts = row.split(" ", 4 if has_key else 3)
        process, kind, f = parts[:3]
        key = parts[3] if has_key else "r"
        rest = parts[4 if has_key else 3 :]
        value = json.loads(rest[0]) if rest else None
        event: dict[str, Any] = {
            "process": int(process),
            "type": {"inv": "invoke"}.get(kind, kind),
            "f": f,
            "key": key,
            "value": value,
            "index": n,
        }
        if error:
            event["error"] = "refused"
        events.append(event)
    return events


@dataclass
class BruteOp:
    f: str
    key: str
    value: Any  # input: written value, [from, to], or None
    output: Any  # what a read returned
    status: str  # ok, fail (no error: an observing cas), info
    call: int
    ret: float  # inf for info


def pair(events: list[dict[str, Any]]) -> list[BruteOp]:
    """Operations of a well-formed history; fails with an error are left out."""
    pending: dict[int, tuple[int, dict[str, Any]]] = {}
    ops: list[BruteOp] = []
    for pos, e in enumerate(events):
        if e["type"] == "invoke":
            pending[e["process"]] = (pos, e)
            continue
        call, inv = pending.pop(e["process"])
        if e["type"] == "fail" and (e.get("error") is not None or e["f"] != "cas"):
            continue
        ret = float("inf") if e["type"] == "info" else float(pos)
        out = e["value"] if e["f"] in ("read", "get") else None
        ops.append(BruteOp(e["f"], e["key"], inv["value"], out, e["type"], call, ret))
    for call, inv in pending.values():
        ops.append(BruteOp(inv["f"], inv["key"], inv["value"], None, "info", call, float("inf")))
    return ops


def _step(op: BruteOp, state: dict[str, Any], model: str) -> dict[str, Any] | None:
    cur = state.get(op.key, None if model == "register" else "")
    new = dict(state)
    if op.f == "read":
        return state if op.status == "info" or cur == op.output else None
    if op.f == "get":
        seen = "" if op.output is None else op.output
        return state if op.status == "info" or cur == seen else None
    if op.f in ("write", "put"):
        new[op.key] = op.value
        return new
    if op.f == "append":
        new[op.key] = cur + op.value
        return new
    frm, to = op.value
    if op.status == "fail":
        return state if cur != frm else None
    if cur == frm:
        new[op.key] = to
        return new
    return None if op.status == "ok" else state


def brute_force(events: list[dict[str, Any]], model: str) -> bool:
    """True iff some order of the operations explains the history (exponential)."""
    ops = pair(events)
    n = len(ops)

    def go(placed: frozenset[int], state: dict[str, Any]) -> bool:
        if all(i in placed or ops[i].status == "info" for i in range(n)):
            return True
        for i in range(n):
            if i in placed:
                continue
            # i may go next only if nothing unplaced returned before i's call
            if any(j not in placed and ops[j].ret < ops[i].call for j in range(n)):
                continue
            nxt = _step(ops[i], state, model)
            if nxt is not None and go(placed | {i}, nxt):
                return True
        return False

    return go(frozenset(), {})


def random_history(rng: random.Random, model: str, n: int) -> list[dict[str, Any]]:
    """``n`` operations with random overlapping intervals, executed at random points in
    them, some results then corrupted, some outcomes unknown or failed."""
    keys = ["a", "b"] if model == "kv" else ["r"]
    times = rng.sample(range(4 * n), 2 * n)
    intervals = [tuple(sorted(times[2 * i : 2 * i + 2])) for i in range(n)]
    points = [rng.uniform(c + 0.1, r - 0.1) for c, r in intervals]
    state: dict[str, Any] = {}
    Result = tuple[str, str, Any, str, Any, dict[str, Any]]
    results: list[Result] = [("", "", None, "", None, {})] * n
    ops: list[tuple[str, str, Any]] = []
    for _ in range(n):
        key = rng.choice(keys)
        if model == "register":
            f = rng.choice(["read", "write", "cas", "cas"])
            value: Any = (
                None
                if f == "read"
                else rng.randrange(3)
                if f == "write"
                else [rng.randrange(3), rng.randrange(3)]
            )
        else:
            f = rng.choice(["get", "put", "append", "append"])
            value = None if f == "get" else rng.choice(["x", "y", "z"])
        ops.append((f, key, value))
    order = sorted(range(n), key=lambda i: points[i])
    for i in order:
        f, key, value = ops[i]
        cur = state.get(key, None if model == "register" else "")
        status, out = "ok", value
        extra: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.12:
            status = "info"  # may or may not happen
            if rng.random() < 0.5:
                results[i] = (f, key, value, status, None, extra)
                continue
        elif roll < 0.18 and f != "cas":
            results[i] = (f, key, value, "fail", value, {"error": "timeout"})
            continue
        if f in ("read", "get"):
            out = cur
            if status == "info":
                out = None
        elif f in ("write", "put"):
            state[key] = value
        elif f == "append":
            state[key] = cur + value
        elif cur == value[0]:
            state[key] = value[1]
        elif status == "ok":
            status = "fail"
        results[i] = (f, key, value, status, out, extra)
    # corrupt some reads
    for i in range(n):
        f, key, value, status, out, extra = results[i]
        if f in ("read", "get") and status == "ok" and rng.random() < 0.3:
            wrong: list[Any] = [None, 0, 1, 2] if model == "register" else ["", "x", "xy"]
            out = rng.choice(wrong)
            results[i] = (f, key, value, status, out, extra)
        elif f == "cas" and status in ("ok", "fail") and rng.random() < 0.15:
            status = "fail" if status == "ok" else "ok"
            results[i] = (f, key, value, status, out, extra)
    events: list[tuple[int, dict[str, Any]]] = []
    for i, ((c, r), (f, key, value, status, out, extra)) in enumerate(
        zip(intervals, results, strict=True)
    ):
        inv_value = None if f in ("read", "get") else value
        events.append((c, {"process": i, "type": "invoke", "f": f, "key": key, "value": inv_value}))
        if status == "info" and rng.random() < 0.5:
            continue  # never completed
        done = {"process": i, "type": status, "f": f, "key": key, "value": out, **extra}
        events.append((r, done))
    events.sort(key=lambda te: te[0])
    out_events = []
    for n_, (_, e) in enumerate(events):
        e["index"] = n_
        out_events.append(e)
    return out_events
