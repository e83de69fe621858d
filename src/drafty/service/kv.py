"""The replicated key-value state machine: Redis string commands, deterministic.

Theory of operation
-------------------
Every command that reaches :meth:`KVStore.apply` came out of the Raft log, so
every replica runs the same commands in the same order; ``apply`` must
therefore be a pure function of the store's contents and the command: no
clocks, no randomness, no iteration order that could differ between
processes (dicts keep insertion order, which the log fixes). It never raises
on a bad command: the reply is an :class:`~drafty.service.resp.Error`, and the
store is unchanged.

Arity and syntax are checked twice: by :func:`check` on the node that takes
the request (so a malformed command is refused before it costs a log entry)
and again by ``apply`` (a log entry may come from a node running a different
version; the replicas must agree regardless).

Reads (GET, MGET, EXISTS, STRLEN, DBSIZE, SCAN) also go through the log for
now, which makes them linearizable at the price of a log entry each.

Invariants: keys and values are bytes; a key maps to at most one value; the
store changes only through ``apply`` and ``restore``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import msgpack

from .resp import OK, Error, Reply, Simple

MAX_INT: Final = (1 << 63) - 1
MIN_INT: Final = -(1 << 63)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Arity as Redis counts it (name included; negative: at least -arity)."""

    arity: int
    write: bool


SPECS: Final[dict[bytes, CommandSpec]] = {
    b"GET": CommandSpec(2, False),
    b"SET": CommandSpec(-3, True),
    b"DEL": CommandSpec(-2, True),
    b"EXISTS": CommandSpec(-2, False),
    b"INCR": CommandSpec(2, True),
    b"DECR": CommandSpec(2, True),
    b"INCRBY": CommandSpec(3, True),
    b"DECRBY": CommandSpec(3, True),
    b"APPEND": CommandSpec(3, True),
    b"STRLEN": CommandSpec(2, False),
    b"MGET": CommandSpec(-2, False),
    b"MSET": CommandSpec(-3, True),
    b"GETDEL": CommandSpec(2, True),
    b"CAS": CommandSpec(4, True),
    b"DBSIZE": CommandSpec(1, False),
    b"SCAN": CommandSpec(-2, False),
    b"KEYS": CommandSpec(2, False),
}


def wrong_arity(name: bytes) -> Error:
    return Error(f"ERR wrong number of arguments for '{name.decode(errors='replace').lower()}'")


def check(argv: list[bytes]) -> Error | None:
    """Refuse a command that cannot be valid, before it reaches the log."""
    name = argv[0].upper()
    spec = SPECS.get(name)
    if spec is None:
        return Error(f"ERR unknown command '{argv[0].decode(errors='replace')}'")
    n = len(argv)
    if (spec.arity > 0 and n != spec.arity) or (spec.arity < 0 and n < -spec.arity):
        return wrong_arity(name)
    if name == b"MSET" and n % 2 == 0:
        return wrong_arity(name)
    if name == b"SET":
        return _set_options(argv[3:])[1]
    if name in (b"INCRBY", b"DECRBY"):
        return None if parse_int(argv[2]) is not None else NOT_INT
    if name == b"SCAN":
        return _scan_args(argv)[2]
    return None


NOT_INT: Final = Error("ERR value is not an integer or out of range")
SYNTAX: Final = Error("ERR syntax error")


_INTEGER = re.compile(rb"0|-?[1-9][0-9]{0,18}")


def parse_int(raw: bytes) -> int | None:
    """The value of a Redis integer argument (strict: no sign '+', spaces,
    leading zeros, underscores or '-0'), or None."""
    if _INTEGER.fullmatch(raw) is None:
        return None
    v = int(raw)
    return v if MIN_INT <= v <= MAX_INT else None


def _set_options(opts: list[bytes]) -> tuple[tuple[bool, bool, bool], Error | None]:
    nx = xx = get = False
    for o in opts:
        u = o.upper()
        if u == b"NX":
            nx = True
        elif u == b"XX":
            xx = True
        elif u == b"GET":
            get = True
        else:
            return (nx, xx, get), SYNTAX
    if nx and xx:
        return (nx, xx, get), SYNTAX
    return (nx, xx, get), None


def _scan_args(argv: list[bytes]) -> tuple[int, tuple[bytes | None, int], Error | None]:
    cursor = parse_int(argv[1])
    if cursor is None or cursor < 0:
        return 0, (None, 10), Error("ERR invalid cursor")
    pattern: bytes | None = None
    count = 10
    rest = argv[2:]
    if len(rest) % 2:
        return 0, (None, 10), SYNTAX
    for k in range(0, len(rest), 2):
        opt, val = rest[k].upper(), rest[k + 1]
        if opt == b"MATCH":
            pattern = val
        elif opt == b"COUNT":
            c = parse_int(val)
            if c is None or c < 1:
                return 0, (None, 10), SYNTAX
            count = c
        else:
            return 0, (None, 10), SYNTAX
    return cursor, (pattern, count), None


def glob_match(pattern: bytes, key: bytes) -> bool:
    """Redis glob matching (``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``, ``\\x``).

    The semantics follow Redis's ``stringmatchlen``, including its corner
    cases (a reversed range ``[z-a]`` is swapped, ``[^]`` matches any byte, an
    unterminated class runs to the end of the pattern). A ``*`` backtracks
    only to the most recent star, so the cost is at most
    ``len(pattern) * len(key)`` steps: no pattern can stall a replica.
    """
    n, m = len(pattern), len(key)
    pi = ki = 0
    star_p, star_k = -1, 0
    while ki < m:
        if pi < n:
            c = pattern[pi]
            if c == 0x2A:  # '*'
                while pi < n and pattern[pi] == 0x2A:
                    pi += 1
                if pi == n:
                    return True
                star_p, star_k = pi, ki
                continue
            ok, nxt = _match_one(pattern, pi, key[ki])
            if ok:
                pi, ki = nxt, ki + 1
                continue
        if star_p < 0:
            return False
        star_k += 1
        pi, ki = star_p, star_k
    while pi < n and pattern[pi] == 0x2A:
        pi += 1
    return pi == n


def _match_one(pattern: bytes, i: int, ch: int) -> tuple[bool, int]:
    """Whether the pattern item at ``i`` matches byte ``ch``; and the next item."""
    n = len(pattern)
    c = pattern[i]
    if c == 0x3F:  # '?'
        return True, i + 1
    if c == 0x5C and i + 1 < n:  # '\\' escapes the next byte
        return pattern[i + 1] == ch, i + 2
    if c != 0x5B:  # not '['
        return c == ch, i + 1
    i += 1
    negate = i < n and pattern[i] == 0x5E  # '^'
    if negate:
        i += 1
    match = False
    while True:
        if i >= n:  # unterminated class: it runs to the end of the pattern
            break
        if pattern[i] == 0x5C and n - i >= 2:
            i += 1
            match = match or pattern[i] == ch
        elif pattern[i] == 0x5D:  # ']'
            i += 1
            break
        elif n - i >= 3 and pattern[i + 1] == 0x2D:  # a range 'a-z'
            lo, hi = sorted((pattern[i], pattern[i + 2]))
            match = match or lo <= ch <= hi
            i += 2
        else:
            match = match or pattern[i] == ch
        i += 1
    return match != negate, i


SNAPSHOT_BATCH: Final = 4096
"""Keys per msgpack object in a snapshot (one serialising step; the GIL is
free between steps, so the event loop runs while a view is written)."""

_ABSENT: Final = object()


class _View:
    """A copy-on-write image of a KVStore's dict (see :meth:`KVStore.snapshot_view`).

    Taking it lists the keys (one C-level copy of the key pointers, not of the
    dict) and starts the store recording, before its first change to a key,
    that key's value at view time in ``before``. ``chunks`` reads the live
    value of each listed key first and ``before`` second: whichever order the
    loop's change and the read interleave in, the view-time value wins.
    """

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.data = store.data
        self.keys = list(self.data)
        self.before: dict[bytes, bytes | None] = {}
        store._recording = self.before

    def chunks(self) -> Iterator[bytes]:
        keys, data, before, absent = self.keys, self.data, self.before, _ABSENT
        for i in range(0, len(keys), SNAPSHOT_BATCH):
            flat: list[bytes] = []
            for k in keys[i : i + SNAPSHOT_BATCH]:
                v: object = data.get(k)
                b = before.get(k, absent)
                if b is not absent:
                    v = b
                assert isinstance(v, bytes), "a key listed in a view has a value at view time"
                flat += (k, v)
            yield msgpack.packb(flat, use_bin_type=True)

    def close(self) -> None:
        if self.store._recording is self.before:
            self.store._recording = None
        self.before = {}


class KVStore:
    """A dict of bytes to bytes driven by Redis string commands.

    Snapshots do not stall the event loop (the
    :class:`~drafty.node.api.StreamingStateMachine` contract): a view lists
    the keys and records old values copy-on-write while it is open. Snapshot
    bytes are a sequence of msgpack arrays ``[key, value, key, value, ...]``
    of at most :data:`SNAPSHOT_BATCH` pairs each.
    """

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._recording: dict[bytes, bytes | None] | None = None
        """While a snapshot view is open: key -> its value when the view was taken."""

    def __len__(self) -> int:
        """Keys held (for logs and INFO)."""
        return len(self.data)

    # -- the StateMachine protocol ------------------------------------------

    def apply(self, command: bytes) -> Reply:
        """Run one logged command (msgpack array of byte strings)."""
        argv = decode_command(command)
        if argv is None:
            return Error("ERR malformed command in log")
        return self.execute(argv)

    def query(self, command: bytes) -> Reply:
        """Run a read-only command against the current state (reads that skip
        the log, drafty.node.reads); a write command is refused."""
        argv = decode_command(command)
        if argv is None:
            return Error("ERR malformed command")
        spec = SPECS.get(argv[0].upper())
        if spec is None or spec.write:
            return Error("ERR only read-only commands can be queried")
        return self.execute(argv)

    def snapshot(self) -> bytes:
        return b"".join(self._whole_view_chunks())

    def _whole_view_chunks(self) -> Iterator[bytes]:
        items = list(self.data.items())
        for i in range(0, len(items), SNAPSHOT_BATCH):
            flat = [x for kv in items[i : i + SNAPSHOT_BATCH] for x in kv]
            yield msgpack.packb(flat, use_bin_type=True)

    def snapshot_view(self) -> _View:
        if self._recording is not None:
            raise RuntimeError("a snapshot view is already open")
        return _View(self)

    @staticmethod
    def encode_result(reply: Reply) -> bytes:
        """A reply as bytes, for the session table in snapshots."""
        packed: bytes = msgpack.packb(reply, use_bin_type=True, default=_reply_ext)
        return packed

    @staticmethod
    def decode_result(data: bytes) -> Reply:
        reply: Reply = msgpack.unpackb(data, raw=False, ext_hook=_reply_from_ext)
        return reply

    def restore(self, data: bytes) -> None:
        self.restore_view(memoryview(data))

    def restore_view(self, data: memoryview) -> None:
        """Load snapshot bytes; raises ValueError (and keeps the old state) if malformed."""
        unpacker = msgpack.Unpacker(raw=True, use_list=True, max_buffer_size=max(len(data), 1))
        unpacker.feed(data)
        fresh: dict[bytes, bytes] = {}
        try:
            for flat in unpacker:
                if type(flat) is not list or len(flat) % 2:
                    raise ValueError("snapshot batch is not a flat key/value array")
                it = iter(flat)
                fresh.update(zip(it, it, strict=True))
        except msgpack.UnpackException as e:
            raise ValueError(f"snapshot bytes are not msgpack: {e}") from None
        if not all(type(k) is bytes and type(v) is bytes for k, v in fresh.items()):
            raise ValueError("snapshot keys and values must be bytes")
        self._recording = None  # an open view keeps the old dict, which no longer changes
        self.data = fresh

    def _put(self, key: bytes, value: bytes) -> None:
        rec = self._recording
        if rec is not None and key not in rec:
            rec[key] = self.data.get(key)
        self.data[key] = value

    def _pop(self, key: bytes) -> bytes | None:
        rec = self._recording
        if rec is not None and key not in rec:
            rec[key] = self.data.get(key)
        return self.data.pop(key, None)

    # -- commands -------------------------------------------------------------

    def execute(self, argv: list[bytes]) -> Reply:
        bad = check(argv)
        if bad is not None:
            return bad
        name = argv[0].upper()
        handler = getattr(self, "_cmd_" + name.decode().lower())
        reply: Reply = handler(argv)
        return reply

    def _cmd_get(self, argv: list[bytes]) -> Reply:
        return self.data.get(argv[1])

    def _cmd_set(self, argv: list[bytes]) -> Reply:
        (nx, xx, get), _ = _set_options(argv[3:])
        key = argv[1]
        old = self.data.get(key)
        if (nx and old is not None) or (xx and old is None):
            return old if get else None
        self._put(key, argv[2])
        return old if get else OK

    def _cmd_del(self, argv: list[bytes]) -> Reply:
        n = 0
        for k in argv[1:]:
            if self._pop(k) is not None:
                n += 1
        return n

    def _cmd_exists(self, argv: list[bytes]) -> Reply:
        return sum(1 for k in argv[1:] if k in self.data)

    def _incr(self, key: bytes, by: int) -> Reply:
        raw = self.data.get(key, b"0")
        cur = parse_int(raw)
        if cur is None:
            return NOT_INT
        new = cur + by
        if not MIN_INT <= new <= MAX_INT:
            return Error("ERR increment or decrement would overflow")
        self._put(key, str(new).encode())
        return new

    def _cmd_incr(self, argv: list[bytes]) -> Reply:
        return self._incr(argv[1], 1)

    def _cmd_decr(self, argv: list[bytes]) -> Reply:
        return self._incr(argv[1], -1)

    def _cmd_incrby(self, argv: list[bytes]) -> Reply:
        by = parse_int(argv[2])
        return NOT_INT if by is None else self._incr(argv[1], by)

    def _cmd_decrby(self, argv: list[bytes]) -> Reply:
        by = parse_int(argv[2])
        if by is None:
            return NOT_INT
        if by == MIN_INT:
            return Error("ERR decrement would overflow")
        return self._incr(argv[1], -by)

    def _cmd_append(self, argv: list[bytes]) -> Reply:
        value = self.data.get(argv[1], b"") + argv[2]
        self._put(argv[1], value)
        return len(value)

    def _cmd_strlen(self, argv: list[bytes]) -> Reply:
        return len(self.data.get(argv[1], b""))

    def _cmd_mget(self, argv: list[bytes]) -> Reply:
        values: list[Reply] = [self.data.get(k) for k in argv[1:]]
        return values

    def _cmd_mset(self, argv: list[bytes]) -> Reply:
        for k in range(1, len(argv), 2):
            self._put(argv[k], argv[k + 1])
        return OK

    def _cmd_getdel(self, argv: list[bytes]) -> Reply:
        return self._pop(argv[1])

    def _cmd_cas(self, argv: list[bytes]) -> Reply:
        """CAS key expected new: 1 if the key held ``expected`` and now holds ``new``."""
        if self.data.get(argv[1]) != argv[2]:
            return 0
        self._put(argv[1], argv[3])
        return 1

    def _cmd_dbsize(self, argv: list[bytes]) -> Reply:
        return len(self.data)

    def _cmd_keys(self, argv: list[bytes]) -> Reply:
        keys: list[Reply] = [k for k in self.data if glob_match(argv[1], k)]
        return keys

    def _cmd_scan(self, argv: list[bytes]) -> Reply:
        """SCAN cursor [MATCH p] [COUNT n]: the cursor is a position in key order.

        Keys are visited in sorted order: a full scan of a store that does not
        change meanwhile returns every key exactly once. Keys added or removed
        during a scan shift the positions of others, which may then be missed
        or repeated (Redis promises more; a key-ordered cursor will fix this).
        Each call sorts the keys, so SCAN costs O(n log n) on the store.
        """
        cursor, (pattern, count), _ = _scan_args(argv)
        keys = sorted(self.data)
        page = keys[cursor : cursor + count]
        nxt = cursor + count if cursor + count < len(keys) else 0
        matched: list[Reply] = [k for k in page if pattern is None or glob_match(pattern, k)]
        return [str(nxt).encode(), matched]


def encode_command(argv: list[bytes]) -> bytes:
    """The log form of a command: what :meth:`KVStore.apply` takes."""
    packed: bytes = msgpack.packb(argv, use_bin_type=True)
    return packed


def decode_command(command: bytes) -> list[bytes] | None:
    """The argv of a logged command, or None if it is not one."""
    try:
        argv = msgpack.unpackb(command, raw=True)
    except Exception:
        return None
    if type(argv) is not list or not argv or not all(type(a) is bytes for a in argv):
        return None
    return argv


_SIMPLE, _ERROR = 1, 2


def _reply_ext(v: object) -> msgpack.ExtType:
    if isinstance(v, Simple):
        return msgpack.ExtType(_SIMPLE, v.text.encode())
    if isinstance(v, Error):
        return msgpack.ExtType(_ERROR, v.text.encode())
    raise TypeError(f"not a reply: {type(v).__name__}")


def _reply_from_ext(code: int, data: bytes) -> object:
    if code == _SIMPLE:
        return Simple(data.decode())
    if code == _ERROR:
        return Error(data.decode())
    raise ValueError(f"unknown reply type {code}")
