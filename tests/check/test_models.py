"""Hand-written histories for both models: what must pass, what must fail, and why."""

from __future__ import annotations

from typing import Any

import pytest

from drafty.check import Verdict, check_history

from .helpers import kv, reg

OK, BAD = Verdict.OK, Verdict.VIOLATION


def verdict(events: list[dict[str, Any]], model: str | None = None) -> Verdict:
    return check_history(events, model=model).verdict


W1 = ("0 inv write 1", "0 ok write 1")

# --- register ------------------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    res = check_history([], model="register")
    assert res.verdict is OK and res.ops == 0 and res.keys == 0
    assert verdict([]) is OK


def test_register_initial_value_is_null() -> None:
    assert verdict(reg("0 inv read", "0 ok read null")) is OK
    assert verdict(reg("0 inv read", "0 ok read 0")) is BAD


def test_register_sequential_reads() -> None:
    assert verdict(reg(*W1, "1 inv read", "1 ok read 1")) is OK
    assert verdict(reg(*W1, "1 inv read", "1 ok read 2")) is BAD
    assert verdict(reg(*W1, "1 inv read", "1 ok read null")) is BAD


def test_register_concurrent_read_sees_old_or_new() -> None:
    for seen in ("null", "1"):
        events = reg("0 inv write 1", "1 inv read", f"1 ok read {seen}", "0 ok write 1")
        assert verdict(events) is OK, seen
    events = reg("0 inv write 1", "1 inv read", "1 ok read 2", "0 ok write 1")
    assert verdict(events) is BAD


def test_register_reads_cannot_go_back_in_time() -> None:
    # Two concurrent writes; once a read has seen 2 after both completed, a later read
    # cannot see 1.
    events = reg(
        "0 inv write 1",
        "1 inv write 2",
        "0 ok write 1",
        "1 ok write 2",
        "2 inv read",
        "2 ok read 2",
        "2 inv read",
        "2 ok read 1",
    )
    assert verdict(events) is BAD
    events[-1]["value"] = 2
    assert verdict(events) is OK


def test_register_concurrent_reads_order_the_writes() -> None:
    # Reads during two concurrent writes: 1 then 2 then 1 is impossible.
    events = reg(
        "0 inv write 1",
        "1 inv write 2",
        "2 inv read",
        "2 ok read 1",
        "2 inv read",
        "2 ok read 2",
        "2 inv read",
        "2 ok read 1",
        "0 ok write 1",
        "1 ok write 2",
    )
    assert verdict(events) is BAD
    events[7]["value"] = 2
    assert verdict(events) is OK


def test_register_cas() -> None:
    cas = ("1 inv cas [1, 2]", "1 ok cas [1, 2]", "1 inv read")
    assert verdict(reg(*W1, *cas, "1 ok read 2")) is OK
    assert verdict(reg(*W1, *cas, "1 ok read 1")) is BAD
    assert verdict(reg(*W1, "1 inv cas [3, 2]", "1 ok cas [3, 2]")) is BAD


def test_failed_cas_is_an_observation() -> None:
    # The register held 1, so a cas from 1 cannot have failed its comparison...
    assert verdict(reg(*W1, "1 inv cas [1, 2]", "1 fail cas [1, 2]")) is BAD
    # ...a cas from 3 can...
    assert verdict(reg(*W1, "1 inv cas [3, 2]", "1 fail cas [3, 2]")) is OK
    # ...and it had no effect.
    events = reg(*W1, "1 inv cas [3, 2]", "1 fail cas [3, 2]", "2 inv read", "2 ok read 2")
    assert verdict(events) is BAD
    # With a concurrent write of 5 it may have compared against 5.
    events = reg(*W1, "2 inv write 5", "1 inv cas [1, 2]", "1 fail cas [1, 2]", "2 ok write 5")
    assert verdict(events) is OK


def test_fail_with_error_is_dropped() -> None:
    # A cas that failed with an error says nothing about the register...
    assert verdict(reg(*W1, "1 inv cas [1, 2]", "1 fail cas [1, 2] !err")) is OK
    # ...and a write that failed with an error did not happen.
    events = reg(*W1, "1 inv write 7", "1 fail write 7 !err", "2 inv read", "2 ok read 7")
    assert verdict(events) is BAD
    events[-1]["value"] = 1
    assert verdict(events) is OK


def test_info_write_may_take_effect_late() -> None:
    # Unknown outcome at 1; the value shows up only much later, after other reads.
    events = reg(
        "0 inv write 1",
        "0 info write 1",
        "1 inv read",
        "1 ok read null",
        "1 inv read",
        "1 ok read null",
        "2 inv write 3",
        "2 ok write 3",
        "1 inv read",
        "1 ok read 1",
    )
    assert verdict(events) is OK


def test_info_write_may_never_take_effect() -> None:
    events = reg("0 inv write 1", "0 info write 1", "1 inv read", "1 ok read null")
    assert verdict(events) is OK
    # ...and without completion at all, the same.
    assert verdict(reg("0 inv write 1", "1 inv read", "1 ok read null")) is OK


def test_info_write_cannot_take_effect_before_its_invoke() -> None:
    events = reg("1 inv read", "1 ok read 1", "0 inv write 1", "0 info write 1")
    assert verdict(events) is BAD


def test_info_write_takes_effect_once() -> None:
    # Seen, overwritten, then seen again: it cannot have happened twice.
    events = reg(
        "0 inv write 1",
        "0 info write 1",
        "1 inv read",
        "1 ok read 1",
        "2 inv write 2",
        "2 ok write 2",
        "1 inv read",
        "1 ok read 1",
    )
    assert verdict(events) is BAD


def test_invoke_without_completion_is_info() -> None:
    # An outstanding write may take effect late...
    events = reg("0 inv write 1", "1 inv read", "1 ok read null", "1 inv read", "1 ok read 1")
    assert verdict(events) is OK
    # ...an outstanding read constrains nothing.
    assert verdict(reg(*W1, "1 inv read")) is OK


def test_info_cas_may_or_may_not_apply() -> None:
    base = (*W1, "1 inv cas [1, 2]", "1 info cas [1, 2]", "2 inv read")
    assert verdict(reg(*base, "2 ok read 2")) is OK
    assert verdict(reg(*base, "2 ok read 1")) is OK
    assert verdict(reg(*base, "2 ok read 3")) is BAD
    # It can only apply while the register holds 1.
    events = reg(
        "1 inv cas [1, 2]", "1 info cas [1, 2]", "0 inv write 3", "0 ok write 3", "2 inv read"
    )
    assert verdict([*events, *reg("2 ok read 2")]) is BAD


def test_register_string_values() -> None:
    assert verdict(reg('0 inv write "a"', '0 ok write "a"', "1 inv read", '1 ok read "a"')) is OK
    assert verdict(reg("0 inv write 1", "0 ok write 1", "1 inv read", '1 ok read "1"')) is BAD


# --- kv ------------------------------------------------------------------------


def test_kv_missing_key_reads_null_or_empty() -> None:
    assert verdict(kv("0 inv get a", "0 ok get a null")) is OK
    assert verdict(kv("0 inv get a", '0 ok get a ""')) is OK
    assert verdict(kv("0 inv get a", '0 ok get a "x"')) is BAD


def test_kv_put_get_append() -> None:
    events = kv(
        '0 inv put a "x"',
        '0 ok put a "x"',
        '0 inv append a "y"',
        '0 ok append a "y"',
        "1 inv get a",
        '1 ok get a "xy"',
        '1 inv append b "z"',
        '1 ok append b "z"',
        "1 inv get b",
        '1 ok get b "z"',
    )
    assert verdict(events) is OK
    assert check_history(events).model == "kv"
    events[5]["value"] = "yx"
    assert verdict(events) is BAD


def test_kv_concurrent_appends_in_either_order_but_one_order() -> None:
    base = ('0 inv append a "x"', '1 inv append a "y"', '0 ok append a "x"', '1 ok append a "y"')
    for seen in ("xy", "yx"):
        assert verdict(kv(*base, "2 inv get a", f'2 ok get a "{seen}"')) is OK
    events = kv(*base, "2 inv get a", '2 ok get a "xy"', "2 inv get a", '2 ok get a "yx"')
    assert verdict(events) is BAD
    assert verdict(kv(*base, "2 inv get a", '2 ok get a "xx"')) is BAD


def test_kv_info_append_late_or_never() -> None:
    late = kv(
        '0 inv append a "x"',
        '0 info append a "x"',
        "1 inv get a",
        '1 ok get a ""',
        "1 inv get a",
        '1 ok get a "x"',
    )
    assert verdict(late) is OK
    never = kv('0 inv append a "x"', '0 info append a "x"', "1 inv get a", "1 ok get a null")
    assert verdict(never) is OK


def test_kv_fail_with_error_is_dropped() -> None:
    events = kv('0 inv put a "x"', '0 fail put a "x" !err', "1 inv get a", '1 ok get a ""')
    assert verdict(events) is OK
    events[-1]["value"] = "x"
    assert verdict(events) is BAD


def test_kv_info_event_may_leave_the_value_out() -> None:
    events = kv('0 inv append a "x"', "0 info append a", "1 inv get a", '1 ok get a "x"')
    assert verdict(events) is OK


def test_keys_are_independent() -> None:
    # Each key alone is fine; values never leak from one key to another.
    events = kv(
        '0 inv put a "1"',
        '1 inv put b "2"',
        "2 inv get a",
        '2 ok get a "1"',
        '0 ok put a "1"',
        "2 inv get b",
        '2 ok get b ""',
        '1 ok put b "2"',
    )
    res = check_history(events)
    assert res.verdict is OK and res.keys == 2 and res.ops == 4
    events = kv('0 inv put a "1"', '0 ok put a "1"', "1 inv get b", '1 ok get b "1"')
    assert verdict(events) is BAD


def test_model_aliases() -> None:
    events = kv('0 inv put a "x"', '0 ok put a "x"')
    for name in ("kv", "kv-append", None):
        assert check_history(events, model=name).model == "kv"


# --- the explanation -----------------------------------------------------------


def test_violation_names_the_key_and_the_ops() -> None:
    events = kv(
        '0 inv put a "1"',
        '0 ok put a "1"',
        '5 inv append b "x"',
        '6 inv append b "y"',
        '5 ok append b "x"',
        "7 inv get b",
        '7 ok get b "y"',  # "x" was appended before the get began
        '6 ok append b "y"',
    )
    res = check_history(events)
    assert res.verdict is BAD
    assert res.key == "b"
    text = res.explanation
    assert "key 'b'" in text
    assert "process 7 get 'b' -> \"y\"" in text
    assert "events 5..6" in text  # the get's invoke and return indexes
    assert "process 6 append 'b' \"y\"" in text  # concurrent, not yet placed
    assert 'read "y" but the value is' in text


def test_violation_reports_the_smallest_failing_key() -> None:
    rows = ['0 inv put big "1"', '0 ok put big "1"'] * 1
    rows += [f'{p} inv put big "{p}"' for p in range(1, 6)]
    rows += [f'{p} ok put big "{p}"' for p in range(1, 6)]
    rows += ["9 inv get big", '9 ok get big "nope"']
    rows += ["9 inv get small", '9 ok get small "nope"']
    res = check_history(kv(*rows))
    assert res.verdict is BAD
    assert res.key == "small"


def _hard_key(key: str, n: int = 11) -> list[str]:
    """``n`` concurrent appends, then a get nobody wrote: every order must be tried."""
    rows = [f'{p} inv append {key} "{p},"' for p in range(n)]
    rows += [f'{p} ok append {key} "{p},"' for p in range(n)]
    return [*rows, f"99 inv get {key}", f'99 ok get {key} "-1"']


def test_a_hard_small_key_does_not_hide_an_easy_violation() -> None:
    """Keys are searched smallest first but with growing allowances, so a larger key that
    fails at once is found while a smaller one would need an exhaustive search."""
    rows = _hard_key("hard")
    for i in range(30):
        rows += [f'{100 + i} inv put easy "{i}"', f'{100 + i} ok put easy "{i}"']
    rows += ["200 inv get easy", '200 ok get easy "5"']
    res = check_history(kv(*rows), time_budget_s=60)  # the budget only guards a regression
    assert res.verdict is BAD
    assert res.key == "easy"


@pytest.mark.parametrize("model", ["register", "kv", "kv-append"])
def test_unknown_with_a_tiny_budget(model: str) -> None:
    """Many concurrent writes and a read nobody wrote: an exhaustive search."""
    n = 11
    if model == "register":
        rows = [f"{p} inv cas [{p}, {p + 1}]" for p in range(n)]
        rows += [f"{p} info cas [{p}, {p + 1}]" for p in range(n)]
        rows += [f"{p} inv write {p}" for p in range(n, 2 * n)]
        rows += [f"{p} ok write {p}" for p in range(n, 2 * n)]
        rows += ["99 inv read", "99 ok read -1"]
        events = reg(*rows)
    else:
        events = kv(*_hard_key("k", n))
    res = check_history(events, model=model, time_budget_s=0.05)
    assert res.verdict is Verdict.UNKNOWN
    assert res.key is None
    assert "budget" in res.explanation and "'" in res.explanation
