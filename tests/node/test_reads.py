"""Reads without the log (drafty.node.reads) on a one-node cluster."""

from __future__ import annotations

import random

import pytest

from drafty.core import Config, CoreMisuse, RawNode
from drafty.node import Instant, Node, NodeOptions, Refused
from drafty.service.kv import KVStore, encode_command

T0 = 1_800_000_000_000


def pump(node: Node) -> list[object]:
    out: list[object] = []
    while True:
        a = node.take()
        if not a:
            return out
        out += list(a.replies)
        if a.sync:
            node.synced(a.sync)


def test_a_read_is_answered_from_the_state_and_adds_nothing_to_the_log() -> None:
    kv = KVStore()
    raw = RawNode(Config(1, (1,)), random.Random(1))
    node = Node(raw, kv, incarnation=1, now=Instant(0, T0))
    raw.campaign()
    pump(node)
    node.submit(encode_command([b"SET", b"k", b"v"]), Instant(1, T0))
    pump(node)
    last = raw.raft.log.last_index()
    rid = node.read(encode_command([b"GET", b"k"]), Instant(2, T0))
    (reply,) = pump(node)
    assert reply.request == rid and reply.value == b"v" and reply.read_at == node.applied  # type: ignore[attr-defined]
    assert raw.raft.log.last_index() == last  # no entry
    rid = node.read(encode_command([b"SET", b"k", b"w"]), Instant(3, T0))
    (reply,) = pump(node)
    assert b"read-only" in reply.value.text.encode() and kv.data[b"k"] == b"v"  # type: ignore[attr-defined]


def test_a_read_with_no_leader_or_past_its_deadline_is_refused() -> None:
    raw = RawNode(Config(1, (1, 2, 3)), random.Random(1))
    node = Node(raw, KVStore(), incarnation=1, now=Instant(0, T0))
    node.read(encode_command([b"GET", b"k"]), Instant(0, T0))
    (reply,) = pump(node)
    assert isinstance(reply.error, Refused)  # type: ignore[attr-defined]
    raw.raft.leader = 2  # a follower that knows a leader: the read goes there
    node.read(encode_command([b"GET", b"k"]), Instant(0, T0), timeout_ms=50)
    assert pump(node) == []
    node.tick(Instant(60, T0))
    (reply,) = pump(node)
    assert isinstance(reply.error, Refused) and "deadline" in str(reply.error)  # type: ignore[attr-defined]
    assert node.pending == 0


def test_a_state_machine_without_query_cannot_read() -> None:
    class Plain:
        def apply(self, command: bytes) -> None: ...
        def snapshot(self) -> bytes:
            return b""

        def restore(self, data: bytes) -> None: ...

    node = Node(RawNode(Config(1, (1,)), random.Random(1)), Plain(), incarnation=1,
                now=Instant(0, T0), options=NodeOptions())  # fmt: skip
    with pytest.raises(CoreMisuse):
        node.read(b"x", Instant(0, T0))
