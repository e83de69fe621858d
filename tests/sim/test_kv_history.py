"""Unit tests of the KV state machine, its model, and the history format."""

from __future__ import annotations

import json
import random
from pathlib import Path

from drafty.sim import History, KvModel, KvStateMachine


def test_kv_apply_semantics() -> None:
    sm = KvStateMachine()
    put = b'[1,1,"put","k","x 1 1 y"]'
    app = b'[1,2,"append","k","x 1 2 y"]'
    get = b'[2,1,"get","k",null]'
    assert sm.apply(1, get) is None
    assert sm.apply(2, put) == "x 1 1 y"
    assert sm.apply(3, app) == "x 1 2 y"
    assert sm.apply(4, get) == "x 1 1 yx 1 2 y"
    assert sm.apply(5, b"not json") is None and sm.apply(6, b"[1,2]") is None
    assert sm.applied == 6 and sm.last_put == {"k": 2}


def test_fingerprint_depends_on_state_only() -> None:
    a, b = KvStateMachine(), KvStateMachine()
    a.apply(1, b'[1,1,"put","k","v"]')
    b.apply(7, b'[3,9,"put","k","v"]')
    assert a.fingerprint() == b.fingerprint()
    b.apply(8, b'[3,10,"append","k","w"]')
    assert a.fingerprint() != b.fingerprint()


def test_model_generates_identifiable_unique_operations() -> None:
    model = KvModel()
    rng = random.Random(1)
    ops = [model.generate(rng, 2, r) for r in range(1, 200)]
    assert {op.f for op in ops} == {"get", "put", "append"}
    for r, op in enumerate(ops, 1):
        assert model.identify(op.data) == (2, r)
        assert op.write == (op.f != "get")
        assert (op.value is None) == (op.f == "get")
    assert model.identify(b"\x00\x01") is None


def test_check_final_finds_lost_acknowledged_writes() -> None:
    model = KvModel()
    sm = KvStateMachine()
    ops = [model.generate(random.Random(s), 1, s) for s in range(40)]
    app = next(op for op in ops if op.f == "append")
    put = next(op for op in ops if op.f == "put" and op.key == app.key)
    sm.apply(1, put.data)
    sm.apply(2, app.data)
    assert model.check_final(sm, [(1, put), (2, app)]) is None
    lost = KvStateMachine()
    lost.apply(1, put.data)
    lost.apply(2, b'[9,9,"get","0",null]')
    problem = model.check_final(lost, [(2, app)])
    assert problem is not None and "append" in problem
    # an append overwritten by a later put is not lost
    later = KvStateMachine()
    later.apply(1, app.data)
    later.apply(2, put.data)
    assert model.check_final(later, [(1, app)]) is None


def test_history_json_lines_format(tmp_path: Path) -> None:
    model = KvModel()
    h = History()
    op = model.generate(random.Random(4), 3, 1)
    h.invoke(3, op, 5)
    h.ok(3, op, "result", 7)
    h.invoke(4, op, 8)
    h.fail(4, op, "not leader", 8)
    h.invoke(5, op, 9)
    h.info(5, op, 20)
    path = tmp_path / "h.jsonl"
    h.write(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["type"] for r in rows] == ["invoke", "ok", "invoke", "fail", "invoke", "info"]
    assert [r["index"] for r in rows] == list(range(6))
    assert rows[0] == {
        "process": 3, "type": "invoke", "f": op.f, "key": op.key, "value": op.value,
        "index": 0, "time": 5_000_000,
    }  # fmt: skip
    assert list(rows[0]) == ["process", "type", "f", "key", "value", "index", "time"]
    assert rows[3]["error"] == "not leader" and "error" not in rows[5]
    expected_ok = "result" if op.f == "get" else op.value
    assert rows[1]["value"] == expected_ok
    assert h.counts == {"invoke": 3, "ok": 1, "fail": 1, "info": 1}
