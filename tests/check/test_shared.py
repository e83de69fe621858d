"""The known-answer histories in ../shared/histories: every published verdict, the
whole set's time, and planted faults the checker must catch."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from drafty.check import Verdict, check_file, check_history, load_history

from .helpers import SHARED

EXPECTED_FILE = SHARED / "expected.json"
pytestmark = pytest.mark.skipif(
    not EXPECTED_FILE.is_file(),
    reason=f"shared histories not found at {SHARED.resolve()} (<repo root>/../shared)",
)


def _expected() -> dict[str, dict[str, Any]]:
    if not EXPECTED_FILE.is_file():
        return {}
    data: dict[str, dict[str, Any]] = json.loads(EXPECTED_FILE.read_text())
    return data


EXPECTED = _expected()


def _events(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SHARED / name).read_text().splitlines() if line]


def test_the_set_is_complete() -> None:
    assert len(EXPECTED) == 108
    assert sum(name.startswith("register/") for name in EXPECTED) == 102


GENEROUS_STATES = 1_000_000
"""A state budget enough for every shared file (the most any needs is about 170,000)."""


@pytest.mark.parametrize("max_states", [None, GENEROUS_STATES])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_verdict(name: str, max_states: int | None) -> None:
    want = EXPECTED[name]
    res = check_file(SHARED / name, max_states=max_states)
    assert max_states is None or res.states <= max_states
    assert res.model == ("kv" if want["model"] == "kv-append" else want["model"])
    assert res.verdict is (Verdict.OK if want["linearizable"] else Verdict.VIOLATION), (
        res.explanation
    )
    assert res.ops <= want["ops"] <= 2 * res.ops  # ``ops`` in expected.json counts events
    assert (res.key is None) == want["linearizable"]


def test_whole_set_time() -> None:
    """All 108 files, timed (printed, not asserted: wall-clock asserts are flaky)."""
    start = time.perf_counter()
    wrong = []
    for name, want in sorted(EXPECTED.items()):
        res = check_file(SHARED / name, model=want["model"])
        if (res.verdict is Verdict.OK) != want["linearizable"]:
            wrong.append(name)
    total = time.perf_counter() - start
    start = time.perf_counter()
    hard = check_file(SHARED / "kv" / "c50-bad.jsonl")
    hard_s = time.perf_counter() - start
    print(f"\n108 shared histories checked in {total:.2f} s; kv/c50-bad.jsonl in {hard_s:.3f} s")
    assert not wrong
    assert hard.verdict is Verdict.VIOLATION


def test_history_objects_and_models_agree() -> None:
    h = load_history(SHARED / "register" / "etcd_002.jsonl")
    assert h.model == "register"
    assert check_history(h).verdict is Verdict.OK
    assert check_history(h, model="register").verdict is Verdict.OK


# --- proof that it bites: plant faults in linearizable histories --------------------


def test_planted_impossible_read_in_register_history() -> None:
    events = _events("register/etcd_002.jsonl")
    assert check_history(events).verdict is Verdict.OK
    read = next(
        i for i, e in enumerate(events) if e["type"] == "ok" and e["f"] == "read" and i > 20
    )
    events[read]["value"] = 999  # never written
    res = check_history(events)
    assert res.verdict is Verdict.VIOLATION
    assert res.key == "r"
    assert "-> 999" in res.explanation


def test_planted_read_from_the_future_in_kv_history() -> None:
    """A get that sees an append invoked only after the get returned."""
    events = _events("kv/c10-ok.jsonl")
    assert check_history(events).verdict is Verdict.OK
    get = next(
        i
        for i, e in enumerate(events)
        if e["type"] == "ok" and e["f"] == "get" and e["value"] and i > 100
    )
    key = events[get]["key"]
    later = next(
        e
        for e in events[get + 1 :]
        if e["type"] == "invoke" and e["f"] == "append" and e["key"] == key
    )
    events[get]["value"] += later["value"]
    res = check_history(events)
    assert res.verdict is Verdict.VIOLATION
    assert res.key == key


def test_planted_lost_write_in_etcd_history() -> None:
    """A write that completed before a read began must be visible to that read."""
    events = _events("register/etcd_005.jsonl")
    assert check_history(events).verdict is Verdict.OK
    # Append, after everything, a write of 7 and then a read of the value before it.
    final = len(events)
    events += [
        {"process": 900, "type": "invoke", "f": "write", "key": "r", "value": 7, "index": final},
        {"process": 900, "type": "ok", "f": "write", "key": "r", "value": 7, "index": final + 1},
        {"process": 901, "type": "invoke", "f": "read", "key": "r", "value": None},
        {"process": 901, "type": "ok", "f": "read", "key": "r", "value": 8},
    ]
    assert check_history(events).verdict is Verdict.VIOLATION
    events[-1]["value"] = 7
    assert check_history(events).verdict is Verdict.OK
