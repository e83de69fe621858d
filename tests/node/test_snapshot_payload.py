"""Node snapshots (drafty.node.snapshot): exactly-once state survives them."""

from __future__ import annotations

import random

import msgpack
import pytest

from drafty.core import Config, RawNode
from drafty.node import Node, StateMachineError
from drafty.node.dedupe import DuplicateFilter
from drafty.node.sessions import SessionTable
from drafty.node.snapshot import SnapshotError, decode, encode
from drafty.service.kv import KVStore, encode_command
from drafty.service.resp import OK, Error, Simple

from .test_node import Cluster, Counter


def test_sessions_filter_and_log_time_round_trip_with_the_kv_stores_replies() -> None:
    kv = KVStore()
    kv.data = {b"k": b"v"}
    sessions = SessionTable(ttl_ms=1000)
    sessions.advance_clock(5000)
    for client, reply in [(3, OK), (4, Error("ERR no")), (5, [b"a", None, 7]), (6, None)]:
        sessions.open(client)
        s = sessions.get(client)
        assert s is not None
        sessions.record(s, 1, reply)
    sessions.open(7)  # opened, nothing applied yet
    s8 = sessions.get(7)
    assert s8 is not None
    sessions.open(8)
    s = sessions.get(8)
    assert s is not None
    sessions.record(s, 2, StateMachineError("boom"))
    dedupe = DuplicateFilter()
    dedupe.admit(4, 4, 1, 10, 7)
    payload = encode(kv, sessions, dedupe)

    kv2, sessions2, dedupe2 = KVStore(), SessionTable(ttl_ms=1000), DuplicateFilter()
    decode(payload, kv2, sessions2, dedupe2)
    assert kv2.data == {b"k": b"v"} and sessions2.now == 5000
    got = {c: (s.seq, s.reply) for c, s in sessions2.items()}
    assert got[3] == (1, Simple("OK")) and got[4] == (1, Error("ERR no"))
    assert got[5] == (1, [b"a", None, 7]) and got[6] == (1, None) and got[7] == (0, None)
    assert got[8][0] == 2 and isinstance(got[8][1], StateMachineError)
    assert [c for c, _ in sessions2.items()] == [3, 4, 5, 6, 7, 8]  # LRU order kept
    assert dedupe2.export() == (4, {1: (10, 7)})


def test_a_result_the_snapshot_cannot_encode_is_refused_at_snapshot_time() -> None:
    sessions = SessionTable()
    sessions.open(1)
    s = sessions.get(1)
    assert s is not None
    sessions.record(s, 1, object())
    with pytest.raises(SnapshotError, match="encode_result"):
        encode(Counter(), sessions, DuplicateFilter())


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xc1", msgpack.packb([9, b"", 0, [], 0, []]), msgpack.packb([1, b"", -1, [], 0, []]),
     msgpack.packb([1, "str", 0, [], 0, []]), msgpack.packb([1, b"0", 0, [[1, 2]], 0, []]),
     msgpack.packb([1, b"0", 0, [[1, 1, 0, [5, b""]]], 0, []]),
     msgpack.packb([1, b"0", 0, [], 0, [[1, 2]]])],
)  # fmt: skip
def test_malformed_payloads_are_refused_whole(payload: bytes) -> None:
    machine = Counter()
    with pytest.raises(SnapshotError):
        decode(payload, machine, SessionTable(), DuplicateFilter())
    assert machine.value == 0


def test_a_node_restored_from_a_snapshot_answers_a_retry_from_its_session() -> None:
    """Exactly-once across a snapshot: the retried pair is not run again there."""
    c = Cluster()
    c.elect(1)
    rid = c.node(2).open_session(c.now(2))
    c.pump()
    sid = c.outcome(2, rid).value
    first = c.submit(2, b"5", client=sid, seq=1)
    c.pump()
    assert c.outcome(2, first).value == 5
    meta, payload = c.node(3).capture()
    old = c.members[3]
    raw = RawNode(
        Config(3, c.ids, forward_proposals=True, prevote=False, check_quorum=False),
        random.Random(99), hard_state=old.hard_state,
        entries=[e for e in old.entries if e.index > meta.index], offset=meta.index,
        offset_term=meta.term, applied=meta.index, snapshot=meta,
    )  # fmt: skip
    machine = Counter()
    old.node = Node(raw, machine, incarnation=99, now=c.now(3), snapshot=payload)
    old.machine = machine
    assert machine.value == 5 and old.node.sessions.get(sid) is not None
    again = c.submit(1, b"5", client=sid, seq=1)  # the retry, applied on every node
    c.pump()
    assert c.outcome(1, again).value == 5
    assert [m.machine.value for m in c.members.values()] == [5, 5, 5]
    nxt = c.submit(3, b"1", client=sid, seq=2)
    c.pump()
    assert c.outcome(3, nxt).value == 6


def test_the_kv_command_encoding_is_what_snapshots_carry() -> None:
    kv = KVStore()
    kv.apply(encode_command([b"SET", b"a", b"1"]))
    other = KVStore()
    other.restore(kv.snapshot())
    assert other.data == {b"a": b"1"}
