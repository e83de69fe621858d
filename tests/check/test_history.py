"""Malformed histories raise HistoryError with the line and the reason; pairing rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drafty.check import HistoryError, check_file, check_history, load_history, parse_history

from .helpers import kv, reg

GOOD = reg("0 inv write 1", "0 ok write 1", "1 inv read", "1 ok read 1")


def _error(events: list[Any], model: str | None = None) -> HistoryError:
    with pytest.raises(HistoryError) as info:
        check_history(events, model=model)
    return info.value


def _with(n: int, **changes: Any) -> list[dict[str, Any]]:
    """GOOD with event ``n`` changed (a value of ... removes the field)."""
    events = [dict(e) for e in GOOD]
    for name, value in changes.items():
        if value is ...:
            del events[n][name]
        else:
            events[n][name] = value
    return events


@pytest.mark.parametrize(
    ("n", "changes", "reason"),
    [
        (1, {"process": ...}, "missing field 'process'"),
        (2, {"type": ...}, "missing field 'type'"),
        (0, {"f": ...}, "missing field 'f'"),
        (3, {"key": ...}, "missing field 'key'"),
        (3, {"value": ...}, "missing field 'value'"),
        (1, {"process": "0"}, "field 'process' must be an integer"),
        (1, {"process": True}, "field 'process' must be an integer"),
        (2, {"key": 7}, "field 'key' must be a string"),
        (2, {"index": "2"}, "field 'index' must be an integer"),
        (2, {"time": 1.5}, "field 'time' must be an integer"),
        (2, {"type": "done"}, "unknown type 'done'"),
        (2, {"f": "get"}, "unknown f 'get' for the register model"),
        (0, {"value": 1.5}, "write value must be null, an integer or a string"),
        (0, {"value": True}, "write value must be null, an integer or a string"),
        (3, {"value": [1]}, "read value must be"),
        (1, {"value": 2}, "ok value 2 differs from the invoke's 1"),
        (3, {"f": "write"}, "completes process 1's invoke of read"),
    ],
)
def test_bad_field(n: int, changes: dict[str, Any], reason: str) -> None:
    e = _error(_with(n, **changes), model="register")
    assert e.line == n + 1
    assert reason in e.reason, e.reason
    assert str(e).startswith(f"line {n + 1}: ")


def test_event_not_an_object() -> None:
    e = _error([GOOD[0], ["not", "an", "object"]])
    assert e.line == 2 and "JSON object" in e.reason


def test_completion_without_invoke() -> None:
    e = _error(reg("0 inv write 1", "0 ok write 1", "0 ok write 1"))
    assert e.line == 3 and "without a matching invoke" in e.reason


def test_two_outstanding_operations() -> None:
    e = _error(reg("0 inv write 1", "1 inv read", "0 inv read"))
    assert e.line == 3 and "process 0" in e.reason and "line 1" in e.reason


def test_completion_for_another_key() -> None:
    events = kv('0 inv put a "x"', '0 ok put b "x"')
    e = _error(events)
    assert e.line == 2 and "'a'" in e.reason


def test_bad_cas_values() -> None:
    for value in (1, [1], [1, 2, 3], [1, [2]], None):
        events = reg("0 inv cas [1, 2]")
        events[0]["value"] = value
        e = _error(events)
        assert e.line == 1 and "cas value must be [from, to]" in e.reason


def test_bad_kv_values() -> None:
    assert "put value must be a string" in _error(kv("0 inv put a 1")).reason
    assert "append value must be a string" in _error(kv("0 inv append a null")).reason
    assert "get value must be a string or null" in _error(kv("0 inv get a", "0 ok get a 3")).reason


def test_models_given_and_inferred() -> None:
    e = _error(kv("0 inv get a"), model="register")
    assert e.line == 1 and "unknown f 'get' for the register model" in e.reason
    e = _error(reg("0 inv frobnicate"))
    assert e.line == 1 and "unknown f 'frobnicate'" in e.reason
    mixed = [*reg("0 inv write 1", "0 ok write 1"), *kv("1 inv get a")]
    e = _error(mixed)
    assert e.line == 3 and "mixes register operations" in e.reason
    e = _error(GOOD, model="set")
    assert e.line is None and "unknown model 'set'" in e.reason


def test_pairing() -> None:
    events = [
        *reg("0 inv write 1", "1 inv cas [1, 2]", "0 ok write 1", "1 fail cas [1, 2] !err"),
        *reg("2 inv read", "3 inv write 4", "3 info write 4"),
    ]
    h = parse_history(events)
    assert h.model == "register" and h.events == 7
    assert [(op.process, op.f, op.status) for op in h.ops] == [
        (0, "write", "ok"),
        (1, "cas", "fail"),
        (2, "read", "info"),
        (3, "write", "info"),
    ]
    assert h.ops[1].error and h.ops[1].value == (1, 2)
    assert h.ops[2].ret_at is None and h.ops[2].ret_index is None
    assert h.ops[0].call_index == 0 and h.ops[0].ret_index == 2


def test_file_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    lines = [json.dumps(e) for e in GOOD]
    path.write_text(lines[0] + "\n\n" + lines[1] + "\n{oops\n")
    with pytest.raises(HistoryError) as info:
        load_history(path)
    assert info.value.line == 4 and "not JSON" in info.value.reason
    path.write_text(lines[0] + "\n\n" + lines[1] + "\n" + lines[1] + "\n")
    with pytest.raises(HistoryError) as info:
        check_file(path)
    assert info.value.line == 4 and "without a matching invoke" in info.value.reason
    path.write_text("\n".join(lines) + "\n")
    assert check_file(path).ok


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(HistoryError, match="UTF-8"):
        load_history(path)
