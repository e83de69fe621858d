"""``drafty check``: exit codes 0 / 1 / 2 and what it prints, run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drafty.cli import main

from .helpers import kv, reg


def _write(tmp_path: Path, events: list[dict[str, Any]], name: str = "h.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def test_linearizable_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, reg("0 inv write 1", "0 ok write 1", "1 inv read", "1 ok read 1"))
    assert main(["check", path]) == 0
    out = capsys.readouterr().out
    assert "linearizable (register model; 2 operations, 1 key;" in out
    assert "NOT" not in out


def test_violation_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = kv('0 inv put a "x"', '0 ok put a "x"', "1 inv get a", '1 ok get a "y"')
    path = _write(tmp_path, events)
    assert main(["check", path, "--model", "kv"]) == 1
    out = capsys.readouterr().out
    assert "NOT linearizable (kv model; 2 operations, 1 key;" in out
    assert "key 'a'" in out and "process 1 get 'a' -> \"y\"" in out


def test_model_option_must_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, kv('0 inv put a "x"', '0 ok put a "x"'))
    assert main(["check", path, "--model", "register"]) == 2
    err = capsys.readouterr().err
    assert "malformed history: line 1: unknown f 'put' for the register model" in err
    assert main(["check", path, "--model", "kv-append"]) == 0


def test_malformed_exits_2_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(reg("0 inv write 1")[0]) + "\nnot json\n")
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert "malformed history: line 2: not JSON" in captured.err
    assert captured.out == ""


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_undecided_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 11
    rows = [f'{p} inv append k "{p},"' for p in range(n)]
    rows += [f'{p} ok append k "{p},"' for p in range(n)]
    path = _write(tmp_path, kv(*rows, "99 inv get k", '99 ok get k "-1"'))
    assert main(["check", path, "--budget", "0.05"]) == 2
    out = capsys.readouterr().out
    assert "undecided" in out and "budget" in out and "'k'" in out


def test_negative_budget_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, reg("0 inv read", "0 ok read null"))
    assert main(["check", path, "--budget", "-1"]) == 2
    assert "--budget" in capsys.readouterr().err


def test_state_budget_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 8
    rows = [f'{p} inv append k "{p},"' for p in range(n)]
    rows += [f'{p} ok append k "{p},"' for p in range(n)]
    path = _write(tmp_path, kv(*rows, "99 inv get k", '99 ok get k "-1"'))
    assert main(["check", path, "--max-states", "1000"]) == 2
    out = capsys.readouterr().out
    assert "undecided (kv model; 9 operations, 1 key;" in out
    assert "the state budget of 1000 states ran out" in out and "'k'" in out
    assert main(["check", path, "--max-states", "1000000"]) == 1
    assert "NOT linearizable" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["0", "-5"])
def test_max_states_must_be_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    path = _write(tmp_path, reg("0 inv read", "0 ok read null"))
    assert main(["check", path, "--max-states", bad]) == 2
    assert "--max-states must be >= 1" in capsys.readouterr().err


def test_max_states_must_be_an_integer(tmp_path: Path) -> None:
    path = _write(tmp_path, reg("0 inv read", "0 ok read null"))
    with pytest.raises(SystemExit) as exit_:
        main(["check", path, "--max-states", "1e6"])
    assert exit_.value.code == 2
