"""KVStore snapshots: copy-on-write views, streamed bytes, strict restore."""

from __future__ import annotations

import threading

import msgpack
import pytest

from drafty.node import StreamingStateMachine
from drafty.service.kv import SNAPSHOT_BATCH, KVStore, encode_command


def store(n: int) -> KVStore:
    kv = KVStore()
    for i in range(n):
        kv.apply(encode_command([b"SET", b"k%d" % i, b"v%d" % i]))
    return kv


def restored(data: bytes) -> dict[bytes, bytes]:
    fresh = KVStore()
    fresh.restore(data)
    return fresh.data


def test_it_is_a_streaming_state_machine() -> None:
    assert isinstance(KVStore(), StreamingStateMachine)


def test_a_view_is_the_state_when_it_was_taken_whatever_happens_after() -> None:
    kv = store(3 * SNAPSHOT_BATCH + 5)
    before = dict(kv.data)
    view = kv.snapshot_view()
    kv.apply(encode_command([b"SET", b"k1", b"changed"]))
    kv.apply(encode_command([b"DEL", b"k2"]))
    kv.apply(encode_command([b"SET", b"new", b"key"]))
    kv.apply(encode_command([b"APPEND", b"k3", b"+"]))
    kv.apply(encode_command([b"INCR", b"counter"]))
    kv.apply(encode_command([b"GETDEL", b"k4"]))
    kv.apply(encode_command([b"SET", b"k4", b"back"]))
    pieces = list(view.chunks())
    view.close()
    assert len(pieces) == 4  # one msgpack array per SNAPSHOT_BATCH keys
    assert restored(b"".join(pieces)) == before
    assert kv.data[b"k1"] == b"changed" and b"k2" not in kv.data
    assert kv._recording is None  # closed: no more copy-on-write cost


def test_a_view_serialised_in_another_thread_while_writes_go_on() -> None:
    kv = store(20_000)
    before = dict(kv.data)
    view = kv.snapshot_view()
    out: list[bytes] = []
    t = threading.Thread(target=lambda: out.extend(view.chunks()))
    t.start()
    for i in range(20_000):
        kv.apply(encode_command([b"SET", b"k%d" % i, b"x"]))
        if i % 3 == 0:
            kv.apply(encode_command([b"DEL", b"k%d" % (i + 1)]))
    t.join()
    view.close()
    assert restored(b"".join(out)) == before


def test_the_whole_snapshot_equals_a_view_and_round_trips() -> None:
    kv = store(100)
    view = kv.snapshot_view()
    assert b"".join(view.chunks()) == kv.snapshot()
    view.close()
    assert restored(kv.snapshot()) == kv.data
    assert restored(KVStore().snapshot()) == {}


def test_one_view_at_a_time() -> None:
    kv = store(2)
    kv.snapshot_view()
    with pytest.raises(RuntimeError):
        kv.snapshot_view()


def test_a_restore_while_a_view_is_open_keeps_the_view_intact() -> None:
    kv = store(10)
    before = dict(kv.data)
    view = kv.snapshot_view()
    kv.restore(store(3).snapshot())
    kv.apply(encode_command([b"SET", b"k1", b"after restore"]))
    assert restored(b"".join(view.chunks())) == before
    view.close()


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # not msgpack
        msgpack.packb([b"k"]),  # odd
        msgpack.packb({"a": 1}),  # not an array
        msgpack.packb([b"k", 1]),  # value not bytes
    ],
)
def test_a_malformed_snapshot_is_refused_and_the_state_kept(data: bytes) -> None:
    kv = store(3)
    before = dict(kv.data)
    with pytest.raises(ValueError):
        kv.restore(data)
    assert kv.data == before
