"""The peer set changes at run time (membership changes): ``PeerTransport.set_peers``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from drafty.core import Heartbeat, Message
from drafty.transport.address import Address
from drafty.transport.tcp import PeerTransport

WAIT_S = 5.0


def _free_addr() -> Address:
    s = socket.create_server(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return ("127.0.0.1", port)


async def _until(cond: Callable[[], bool], poke: Callable[[], None] = lambda: None) -> None:
    """Wait (bounded) for ``cond``; ``poke`` runs on every round (e.g. to resend)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        poke()
        await asyncio.sleep(0.02)


def _beat(src: int, dst: int, n: int) -> Heartbeat:
    return Heartbeat(src, dst, 1, n)


def test_a_peer_added_at_run_time_gets_a_link_both_ways() -> None:
    async def scenario() -> None:
        got_a: list[Message] = []
        got_b: list[Message] = []
        addr_a, addr_b = _free_addr(), _free_addr()
        a = PeerTransport(1, "c", {}, got_a.extend)
        b = PeerTransport(2, "c", {1: addr_a}, got_b.extend)
        await a.start(addr_a)
        await b.start(addr_b)
        try:
            # Node 2 is no peer of node 1 yet: its hello is refused.
            await _until(lambda: a.stats["hello_from_unknown_peer"] >= 1)
            a.send([_beat(1, 2, 1)])
            assert a.stats["dropped_unknown_peer"] == 1 and not got_a

            a.set_peers({2: addr_b})
            assert a.peers == {2: addr_b}
            await _until(lambda: bool(got_b), lambda: a.send([_beat(1, 2, 2)]))
            assert all(m == _beat(1, 2, 2) for m in got_b)
            # Node 2 reconnects (backoff) and is now accepted.
            await _until(lambda: bool(got_a), lambda: b.send([_beat(2, 1, 3)]))
            assert all(m == _beat(2, 1, 3) for m in got_a)
            assert a.stats["dropped_unknown_peer"] == 1
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_a_removed_peer_gets_nothing_and_is_not_heard() -> None:
    async def scenario() -> None:
        got_a: list[Message] = []
        got_b: list[Message] = []
        addr_a, addr_b = _free_addr(), _free_addr()
        a = PeerTransport(1, "c", {2: addr_b}, got_a.extend)
        b = PeerTransport(2, "c", {1: addr_a}, got_b.extend)
        await a.start(addr_a)
        await b.start(addr_b)
        try:
            await _until(lambda: bool(got_b), lambda: a.send([_beat(1, 2, 1)]))
            await _until(lambda: bool(got_a), lambda: b.send([_beat(2, 1, 1)]))
            assert 2 in a._inbound_from and 1 in b._inbound_from
            failures_before = b.stats["send_failures"]
            refused_before = a.stats["hello_from_unknown_peer"]

            a.set_peers({})
            assert a.peers == {} and not a.connected(2)
            assert 2 not in a._inbound_from  # closed at once
            # Node 2 sees its connection closed, and its next hello is refused.
            await _until(lambda: b.stats["send_failures"] > failures_before)
            await _until(lambda: a.stats["hello_from_unknown_peer"] > refused_before)
            # Node 1's link to node 2 is gone: node 2 sees that connection end.
            await _until(lambda: 1 not in b._inbound_from)

            heard, delivered = len(got_a), len(got_b)
            a.send([_beat(1, 2, 2), _beat(1, 2, 3)])
            assert a.stats["dropped_unknown_peer"] == 2
            # Node 2 keeps sending and reconnecting; nothing of it gets through.
            refused = a.stats["hello_from_unknown_peer"]
            await _until(
                lambda: a.stats["hello_from_unknown_peer"] >= refused + 2,
                lambda: b.send([_beat(2, 1, 9)]),
            )
            assert len(got_a) == heard and len(got_b) == delivered
            assert 2 not in a._inbound_from
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_a_moved_peer_is_reached_at_its_new_address() -> None:
    async def scenario() -> None:
        got_old: list[Message] = []
        got_new: list[Message] = []
        addr_a, addr_old, addr_new = _free_addr(), _free_addr(), _free_addr()
        a = PeerTransport(1, "c", {2: addr_old}, lambda ms: None)
        old = PeerTransport(2, "c", {1: addr_a}, got_old.extend)
        new = PeerTransport(2, "c", {1: addr_a}, got_new.extend)
        await a.start(addr_a)
        await old.start(addr_old)
        await new.start(addr_new)
        try:
            await _until(lambda: bool(got_old), lambda: a.send([_beat(1, 2, 1)]))
            old_link = a._links[2]

            a.set_peers({2: addr_new})
            assert a._links[2] is not old_link and a._links[2].addr == addr_new
            await _until(lambda: bool(got_new), lambda: a.send([_beat(1, 2, 2)]))
            assert all(m == _beat(1, 2, 2) for m in got_new)
            # The old link is stopped: nothing sent after the move went there.
            assert _beat(1, 2, 2) not in got_old
            assert old_link.task is not None
            await _until(old_link.task.done)
            assert old_link.task.cancelled() and not a._stopped
        finally:
            await a.close()
            await old.close()
            await new.close()

    asyncio.run(scenario())


def test_a_stopped_links_queue_is_dropped_and_counted() -> None:
    """Nothing listens at the peer's address, so what is sent to it stays queued."""

    async def scenario() -> None:
        dead = _free_addr()
        a = PeerTransport(1, "c", {2: dead, 3: dead}, lambda ms: None)
        await a.start(_free_addr())
        try:
            a.send([_beat(1, 2, 1), _beat(1, 2, 2), _beat(1, 3, 1)])
            tasks = [a._links[2].task, a._links[3].task]
            a.set_peers({2: _free_addr()})  # 2 moves, 3 is removed
            assert a.stats["dropped_peer_changed"] == 3
            assert not a._links[2].queue and 3 not in a._links
            await _until(lambda: all(t is not None and t.done() for t in tasks))
            a.send([_beat(1, 3, 2)])
            assert a.stats["dropped_unknown_peer"] == 1
        finally:
            await a.close()
        assert all(lk.task is not None and lk.task.done() for lk in a._links.values())

    asyncio.run(scenario())


def test_close_reaps_a_stopped_link_that_has_not_finished() -> None:
    async def scenario() -> None:
        a = PeerTransport(1, "c", {2: _free_addr()}, lambda ms: None)
        await a.start(_free_addr())
        task = a._links[2].task
        assert task is not None
        a.set_peers({})
        assert a._stopped == {task} and not task.done()  # cancelled, not yet run
        await a.close()
        assert task.cancelled() and not a._stopped

    asyncio.run(scenario())


def test_own_id_is_never_a_peer() -> None:
    t = PeerTransport(1, "c", {2: ("127.0.0.1", 1)}, lambda ms: None)
    with pytest.raises(ValueError, match="own peer"):
        t.set_peers({1: ("127.0.0.1", 2), 2: ("127.0.0.1", 1)})
    assert t.peers == {2: ("127.0.0.1", 1)}
    t.set_peers({3: ("127.0.0.1", 3)})  # before start: only replaces the set
    assert t.peers == {3: ("127.0.0.1", 3)} and not t._links

    async def started() -> None:
        await t.start(_free_addr())
        try:
            link = t._links[3]
            with pytest.raises(ValueError, match="own peer"):
                t.set_peers({1: ("127.0.0.1", 2)})
            assert t.peers == {3: ("127.0.0.1", 3)} and t._links == {3: link}
        finally:
            await t.close()

    asyncio.run(started())
