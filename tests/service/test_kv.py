"""The KV state machine (drafty.service.kv) against Redis semantics."""

from __future__ import annotations

import re
import time
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drafty.service.kv import MAX_INT, MIN_INT, KVStore, check, encode_command, glob_match
from drafty.service.resp import OK, Error, Reply

NOT_INT = Error("ERR value is not an integer or out of range")


def run(store: KVStore, *args: bytes | str | int) -> Reply:
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return store.apply(encode_command(argv))


def store_with(**items: str) -> KVStore:
    s = KVStore()
    for k, v in items.items():
        assert run(s, "SET", k, v) == OK
    return s


def is_error(r: Reply, prefix: str = "ERR") -> bool:
    return isinstance(r, Error) and r.text.startswith(prefix)


# -- GET / SET ----------------------------------------------------------------


def test_get_set_basics() -> None:
    s = KVStore()
    assert run(s, "GET", "k") is None
    assert run(s, "SET", "k", "v") == OK
    assert run(s, "GET", "k") == b"v"
    assert run(s, "SET", "k", "") == OK
    assert run(s, "GET", "k") == b""
    assert run(s, "set", "k", "w") == OK  # command names are case-insensitive
    assert run(s, "gEt", "k") == b"w"


def test_set_binary_key_and_value() -> None:
    s = KVStore()
    assert run(s, "SET", b"\x00\r\n", b"\xff\x00") == OK
    assert run(s, "GET", b"\x00\r\n") == b"\xff\x00"


@pytest.mark.parametrize(
    ("exists", "opts", "reply", "after"),
    [
        (False, ["NX"], OK, b"new"),
        (True, ["NX"], None, b"old"),
        (False, ["XX"], None, None),
        (True, ["XX"], OK, b"new"),
        (False, ["GET"], None, b"new"),
        (True, ["GET"], b"old", b"new"),
        (False, ["NX", "GET"], None, b"new"),
        (True, ["NX", "GET"], b"old", b"old"),
        (False, ["XX", "GET"], None, None),
        (True, ["XX", "GET"], b"old", b"new"),
        (True, ["get", "xx"], b"old", b"new"),
        (True, ["nx"], None, b"old"),
    ],
)
def test_set_options(exists: bool, opts: list[str], reply: Reply, after: bytes | None) -> None:
    s = store_with(k="old") if exists else KVStore()
    assert run(s, "SET", "k", "new", *opts) == reply
    assert s.data.get(b"k") == after


@pytest.mark.parametrize("opts", [["NX", "XX"], ["XX", "NX", "GET"], ["FOO"], ["NX", "BAR"]])
def test_set_bad_options(opts: list[str]) -> None:
    s = store_with(k="old")
    assert run(s, "SET", "k", "new", *opts) == Error("ERR syntax error")
    assert s.data == {b"k": b"old"}


# -- DEL / EXISTS / GETDEL / DBSIZE --------------------------------------------


def test_del_multi() -> None:
    s = store_with(a="1", b="2", c="3")
    assert run(s, "DEL", "a", "b", "zz", "a") == 2
    assert s.data == {b"c": b"3"}
    assert run(s, "DEL", "missing") == 0
    assert run(s, "SET", "e", "") == OK
    assert run(s, "DEL", "e") == 1  # an empty value still exists


def test_exists_counts_duplicates() -> None:
    s = store_with(a="1", b="")
    assert run(s, "EXISTS", "a", "a", "b", "c") == 3
    assert run(s, "EXISTS", "c") == 0


def test_getdel() -> None:
    s = store_with(a="1")
    assert run(s, "GETDEL", "a") == b"1"
    assert run(s, "GETDEL", "a") is None
    assert s.data == {}


def test_dbsize() -> None:
    s = KVStore()
    assert run(s, "DBSIZE") == 0
    run(s, "MSET", "a", "1", "b", "2")
    assert run(s, "DBSIZE") == 2
    run(s, "DEL", "a")
    assert run(s, "DBSIZE") == 1


# -- counters -----------------------------------------------------------------


def test_incr_decr() -> None:
    s = KVStore()
    assert run(s, "INCR", "n") == 1
    assert run(s, "INCR", "n") == 2
    assert run(s, "DECR", "n") == 1
    assert run(s, "DECR", "m") == -1
    assert run(s, "INCRBY", "n", "10") == 11
    assert run(s, "INCRBY", "n", "-20") == -9
    assert run(s, "DECRBY", "n", "-9") == 0
    assert run(s, "DECRBY", "n", "5") == -5
    assert s.data[b"n"] == b"-5"
    assert run(s, "SET", "z", "0") == OK
    assert run(s, "INCR", "z") == 1


def test_incr_overflow_leaves_value() -> None:
    s = store_with(big=str(MAX_INT), small=str(MIN_INT))
    err = Error("ERR increment or decrement would overflow")
    assert run(s, "INCR", "big") == err
    assert run(s, "INCRBY", "big", "1") == err
    assert run(s, "DECR", "small") == err
    assert run(s, "DECRBY", "small", "1") == err
    assert run(s, "INCRBY", "small", str(MIN_INT)) == err
    assert s.data == {b"big": str(MAX_INT).encode(), b"small": str(MIN_INT).encode()}
    assert run(s, "INCRBY", "big", str(MIN_INT)) == -1
    assert run(s, "DECR", "big") == -2


def test_decrby_min_int_refused() -> None:
    s = store_with(n="0")
    r = run(s, "DECRBY", "n", str(MIN_INT))
    assert is_error(r)
    assert s.data[b"n"] == b"0"
    assert run(s, "INCRBY", "n", str(MIN_INT)) == MIN_INT


@pytest.mark.parametrize(
    "value",
    ["1.5", " 1", "1 ", "01", "+1", "", "abc", "1e3", "0x10", "--1", "-", "9223372036854775808",
     "-9223372036854775809", "\u0661", "1\n", "\t1", "00"],
)  # fmt: skip
def test_incr_non_integer_values(value: str) -> None:
    s = store_with(k=value)
    assert run(s, "INCR", "k") == NOT_INT
    assert run(s, "DECRBY", "k", "1") == NOT_INT
    assert s.data[b"k"] == value.encode()
    assert run(s, "INCRBY", "n", value) == NOT_INT
    assert run(s, "DECRBY", "n", value) == NOT_INT
    assert b"n" not in s.data


@pytest.mark.parametrize("value", ["1_0", "-0", "-01", "1_000"])
def test_incr_python_only_integer_spellings(value: str) -> None:
    s = store_with(k=value)
    assert run(s, "INCR", "k") == NOT_INT
    assert run(s, "INCRBY", "n", value) == NOT_INT


def test_incrby_bad_increment_refused_by_check() -> None:
    assert check([b"INCRBY", b"k", b"x"]) == NOT_INT
    assert check([b"DECRBY", b"k", b"1.0"]) == NOT_INT
    assert check([b"INCRBY", b"k", b"5"]) is None


# -- strings ------------------------------------------------------------------


def test_append_strlen() -> None:
    s = KVStore()
    assert run(s, "STRLEN", "k") == 0
    assert run(s, "APPEND", "k", "ab") == 2
    assert run(s, "APPEND", "k", "") == 2
    assert run(s, "APPEND", "k", "cde") == 5
    assert run(s, "GET", "k") == b"abcde"
    assert run(s, "STRLEN", "k") == 5
    assert run(s, "APPEND", "e", "") == 0
    assert b"e" in s.data  # Redis creates the key even for an empty append


def test_mget_mset() -> None:
    s = KVStore()
    assert run(s, "MSET", "a", "1", "b", "2", "a", "3") == OK
    assert run(s, "MGET", "a", "b", "c", "a") == [b"3", b"2", None, b"3"]


@pytest.mark.parametrize("argv", [["MSET", "a"], ["MSET", "a", "1", "b"], ["MSET"]])
def test_mset_odd_args(argv: list[str]) -> None:
    s = store_with(x="1")
    r = run(s, *argv)
    assert r == Error("ERR wrong number of arguments for 'mset'")
    assert s.data == {b"x": b"1"}


def test_cas() -> None:
    s = store_with(k="a")
    assert run(s, "CAS", "k", "b", "c") == 0
    assert s.data[b"k"] == b"a"
    assert run(s, "CAS", "k", "a", "c") == 1
    assert s.data[b"k"] == b"c"
    assert run(s, "CAS", "missing", "", "x") == 0
    assert b"missing" not in s.data


# -- errors -------------------------------------------------------------------


def test_unknown_command() -> None:
    s = KVStore()
    r = run(s, "FLUSHALL")
    assert is_error(r, "ERR unknown command")
    assert run(s, "PING") == Error("ERR unknown command 'PING'")


@pytest.mark.parametrize(
    "argv",
    [["GET"], ["GET", "a", "b"], ["SET", "k"], ["DEL"], ["EXISTS"], ["INCR"], ["INCR", "a", "b"],
     ["DECR"], ["INCRBY", "k"], ["DECRBY", "k", "1", "2"], ["APPEND", "k"], ["STRLEN"],
     ["MGET"], ["GETDEL"], ["CAS", "k", "a"], ["CAS", "k", "a", "b", "c"], ["DBSIZE", "x"],
     ["SCAN"], ["KEYS"], ["KEYS", "a", "b"]],
)  # fmt: skip
def test_wrong_arity(argv: list[str]) -> None:
    s = store_with(k="1")
    before = dict(s.data)
    r = run(s, *argv)
    assert r == Error(f"ERR wrong number of arguments for '{argv[0].lower()}'")
    assert s.data == before


MALFORMED: list[bytes] = [
    b"",
    b"\xc1",  # never used in msgpack
    b"\x93\xa3GET",  # truncated
    encode_command([b"GET", b"k"]) + b"\x00",  # trailing data
    msgpack.packb(5),
    msgpack.packb(None),
    msgpack.packb(b"SET"),
    msgpack.packb({b"SET": b"k"}),
    msgpack.packb([]),
    msgpack.packb([b"SET", b"k", 5]),
    msgpack.packb([b"SET", b"k", None]),
    msgpack.packb([b"SET", b"k", True]),
    msgpack.packb([b"SET", b"k", [b"v"]]),
    msgpack.packb([[b"SET"], b"k", b"v"]),
    msgpack.packb([b"SET", b"k", 1.5]),
    msgpack.packb([msgpack.ExtType(1, b"x")]),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_apply_malformed_log_data(data: bytes) -> None:
    s = store_with(k="v")
    snap = s.snapshot()
    r = s.apply(data)
    assert isinstance(r, Error)
    assert s.snapshot() == snap


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_apply_random_bytes_never_raises(data: bytes) -> None:
    s = store_with(k="v")
    r = s.apply(data)
    if isinstance(r, Error):
        assert s.data == {b"k": b"v"}


# -- SCAN / KEYS --------------------------------------------------------------


def scan_all(s: KVStore, *opts: str) -> tuple[list[bytes], int]:
    seen: list[bytes] = []
    cursor = b"0"
    calls = 0
    while True:
        r = run(s, "SCAN", cursor, *opts)
        assert isinstance(r, list) and len(r) == 2
        nxt, page = r[0], r[1]
        assert isinstance(nxt, bytes) and isinstance(page, list)
        cursor = nxt
        seen += [k for k in page if isinstance(k, bytes)]
        calls += 1
        if cursor == b"0":
            return seen, calls
        assert calls < 1000


@pytest.mark.parametrize("count", [1, 3, 7, 10, 50, 1000])
def test_scan_covers_all_keys_exactly_once(count: int) -> None:
    s = KVStore()
    keys = [b"key:%03d" % i for i in range(53)]
    for k in reversed(keys):
        run(s, "SET", k, "v")
    seen, calls = scan_all(s, "COUNT", str(count))
    assert sorted(seen) == keys
    assert len(seen) == len(set(seen))
    assert calls == max(1, -(-len(keys) // count))


def test_scan_default_count_and_empty_store() -> None:
    assert run(KVStore(), "SCAN", "0") == [b"0", []]
    s = KVStore()
    for i in range(25):
        run(s, "SET", f"k{i:02d}", "v")
    r = run(s, "SCAN", "0")
    assert isinstance(r, list) and r[0] == b"10" and len(r[1]) == 10  # type: ignore[arg-type]
    seen, _ = scan_all(s)
    assert len(seen) == 25


def test_scan_match() -> None:
    s = KVStore()
    for i in range(30):
        run(s, "SET", f"{'user' if i % 3 else 'item'}:{i}", "v")
    seen, _ = scan_all(s, "MATCH", "user:*", "COUNT", "4")
    assert sorted(seen) == sorted(k for k in s.data if k.startswith(b"user:"))
    seen, _ = scan_all(s, "count", "4", "match", "item:?")
    assert sorted(seen) == [b"item:0", b"item:3", b"item:6", b"item:9"]


def test_scan_past_end_and_bad_args() -> None:
    s = store_with(a="1")
    assert run(s, "SCAN", "100") == [b"0", []]
    assert run(s, "SCAN", "x") == Error("ERR invalid cursor")
    assert run(s, "SCAN", "-1") == Error("ERR invalid cursor")
    for opts in (["COUNT"], ["COUNT", "0"], ["COUNT", "x"], ["FOO", "1"], ["MATCH"]):
        assert run(s, "SCAN", "0", *opts) == Error("ERR syntax error"), opts


def test_keys() -> None:
    s = KVStore()
    for k in ["hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo", "h?llo", "x"]:
        run(s, "SET", k, "v")

    def keys(p: str) -> set[bytes]:
        r = run(s, "KEYS", p)
        assert isinstance(r, list)
        return {k for k in r if isinstance(k, bytes)}

    assert keys("*") == set(s.data)
    assert keys("h?llo") == {b"hello", b"hallo", b"hxllo", b"h*llo", b"h?llo"}
    assert keys("h*llo") == set(s.data) - {b"x"}
    assert keys("h[ae]llo") == {b"hello", b"hallo"}
    assert keys("h[^e]llo") == {b"hallo", b"hxllo", b"h*llo", b"h?llo"}
    assert keys("h[a-e]llo") == {b"hello", b"hallo"}
    assert keys(r"h\*llo") == {b"h*llo"}
    assert keys(r"h\?llo") == {b"h?llo"}
    assert keys(r"h\ello") == {b"hello"}
    assert keys("nomatch") == set()
    assert keys("x") == {b"x"}
    assert keys("") == set()


@pytest.mark.parametrize(
    ("pattern", "key", "match"),
    [
        (b"*", b"", True),
        (b"?", b"", False),
        (b"a*", b"a\nb", True),
        (b"a?b", b"a\nb", True),
        (b"a.c", b"abc", False),  # regex metacharacters are literal
        (b"a+", b"aa", False),
        (b"(a)", b"(a)", True),
        (b"[^a]", b"a", False),
        (b"[^a]", b"b", True),
        (b"[^a]", b"bb", False),
        (b"[^ab]*", b"cde", True),
        (b"[abc]", b"b", True),
        (b"\\[a]", b"[a]", True),
        (b"\\[a]", b"a", False),
        (b"a\\\\b", b"a\\b", True),
        (b"\xff*", b"\xff\x00", True),
    ],
)
def test_glob_match(pattern: bytes, key: bytes, match: bool) -> None:
    assert glob_match(pattern, key) is match


@pytest.mark.parametrize(
    ("pattern", "key", "match"),
    [(b"[^]", b"x", True), (b"[\\]]", b"]", True), (b"\\a[]", b"a", False),
     (b"\\a[z-a]", b"am", True)],
)  # fmt: skip
def test_glob_class_bodies_never_raise(pattern: bytes, key: bytes, match: bool) -> None:
    s = store_with()
    s.data[key] = b"v"
    r = s.apply(encode_command([b"KEYS", pattern]))
    assert r == ([key] if match else [])


@pytest.mark.parametrize(
    ("pattern", "key", "match"),
    [(b"[!a]", b"b", False), (b"[!a]", b"a", True), (b"[z-a]", b"m", True)],
)
def test_glob_classes_as_redis(pattern: bytes, key: bytes, match: bool) -> None:
    assert glob_match(pattern, key) is match


def test_glob_no_catastrophic_backtracking() -> None:
    pattern = b"\\a" + b"*a" * 8 + b"b"
    t = time.perf_counter()
    assert not glob_match(pattern, b"a" * 40)  # ~0.6 s today; a linear matcher takes us
    assert time.perf_counter() - t < 0.1


# -- snapshots and determinism --------------------------------------------------


def test_snapshot_restore_round_trip() -> None:
    s = KVStore()
    for k, v in [(b"b", b"2"), (b"a", b""), (b"\x00\xff", b"\r\n"), (b"z" * 1000, b"y" * 5000)]:
        run(s, "SET", k, v)
    snap = s.snapshot()
    t = store_with(other="x")
    t.restore(snap)
    assert t.data == s.data
    assert list(t.data) == list(s.data)  # insertion order too: KEYS answers alike
    assert run(t, "KEYS", "*") == run(s, "KEYS", "*")
    assert t.snapshot() == snap
    empty = KVStore()
    t.restore(empty.snapshot())
    assert t.data == {}


KEYS = st.sampled_from([b"a", b"b", b"c", b"n"])
VALS = st.sampled_from([b"", b"1", b"-5", b"x", b"9223372036854775807", b"01"])
commands = st.one_of(
    st.tuples(st.just(b"SET"), KEYS, VALS).map(list),
    st.tuples(st.just(b"SET"), KEYS, VALS, st.sampled_from([b"NX", b"XX", b"GET"])).map(list),
    st.tuples(st.sampled_from([b"GET", b"INCR", b"DECR", b"GETDEL", b"STRLEN"]), KEYS).map(list),
    st.tuples(st.sampled_from([b"INCRBY", b"DECRBY", b"APPEND"]), KEYS, VALS).map(list),
    st.tuples(st.just(b"CAS"), KEYS, VALS, VALS).map(list),
    st.lists(KEYS, min_size=1, max_size=3).map(lambda ks: [b"DEL", *ks]),
    st.lists(KEYS, min_size=1, max_size=3).map(lambda ks: [b"MGET", *ks]),
    st.lists(st.tuples(KEYS, VALS), min_size=1, max_size=2).map(
        lambda kv: [b"MSET", *[x for p in kv for x in p]]
    ),
    st.sampled_from([[b"DBSIZE"], [b"KEYS", b"*"], [b"SCAN", b"0", b"COUNT", b"2"]]),
)


def _model(data: dict[bytes, bytes], argv: list[bytes]) -> Any:
    """An independent model of the commands above, for cross-checking."""
    name, args = argv[0], argv[1:]

    def parse(v: bytes) -> int | None:
        if re.fullmatch(rb"-?[1-9][0-9]*|0", v) is None:
            return None
        n = int(v)
        return n if MIN_INT <= n <= MAX_INT else None

    if name == b"SET":
        old = data.get(args[0])
        opt = args[2] if len(args) > 2 else b""
        if (opt == b"NX" and old is not None) or (opt == b"XX" and old is None):
            return None
        data[args[0]] = args[1]
        return old if opt == b"GET" else OK
    if name in (b"INCR", b"DECR", b"INCRBY", b"DECRBY"):
        by = {b"INCR": 1, b"DECR": -1}.get(name)
        if by is None:
            p = parse(args[1])
            if p is None:
                return NOT_INT
            by = p if name == b"INCRBY" else -p
        cur = parse(data.get(args[0], b"0"))
        if cur is None:
            return NOT_INT
        if not MIN_INT <= cur + by <= MAX_INT:
            return Error("ERR increment or decrement would overflow")
        data[args[0]] = b"%d" % (cur + by)
        return cur + by
    if name == b"GET":
        return data.get(args[0])
    if name == b"GETDEL":
        return data.pop(args[0], None)
    if name == b"STRLEN":
        return len(data.get(args[0], b""))
    if name == b"APPEND":
        data[args[0]] = data.get(args[0], b"") + args[1]
        return len(data[args[0]])
    if name == b"CAS":
        if data.get(args[0]) != args[1]:
            return 0
        data[args[0]] = args[2]
        return 1
    if name == b"DEL":
        return sum(1 for k in args if data.pop(k, None) is not None)
    if name == b"MGET":
        return [data.get(k) for k in args]
    if name == b"MSET":
        for i in range(0, len(args), 2):
            data[args[i]] = args[i + 1]
        return OK
    if name == b"DBSIZE":
        return len(data)
    if name == b"KEYS":
        return list(data)
    return [b"2" if len(data) > 2 else b"0", sorted(data)[:2]]


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=40), st.integers(0, 40))
def test_determinism_and_model(cmds: list[list[bytes]], cut: int) -> None:
    a, b = KVStore(), KVStore()
    model: dict[bytes, bytes] = {}
    replies = []
    for argv in cmds:
        ra = a.apply(encode_command(argv))
        assert b.apply(encode_command(argv)) == ra
        assert ra == _model(model, argv), argv
        replies.append(ra)
    assert a.snapshot() == b.snapshot()
    assert a.data == model
    # a replica restored from a snapshot mid-way ends equal too
    c = KVStore()
    for argv in cmds[:cut]:
        c.apply(encode_command(argv))
    d = KVStore()
    d.restore(c.snapshot())
    for k, argv in enumerate(cmds[cut:], start=min(cut, len(cmds))):
        assert d.apply(encode_command(argv)) == replies[k]
    assert d.snapshot() == a.snapshot()
