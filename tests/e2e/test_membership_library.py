"""Membership changes on real nodes (RaftNode over TCP, a user's counter): a
node joins empty, is promoted, the leader is removed, and the data directory
remembers where its membership came from."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from drafty.core.membership import ConfChange, ConfChangeError, Membership
from drafty.driver import RaftNode, Refused
from drafty.driver.members import RemovedFromCluster
from drafty.examples.counter import Counter, local_settings
from drafty.node.members import MemberAddress
from drafty.transport.address import format_address

from .conftest import _free_base as free_base
from .test_library import _submit_retrying


async def _leader(nodes: list[RaftNode], seconds: float = 10.0) -> RaftNode:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        for n in nodes:
            if n.leader() == n.id and n.status().role.value == "leader":
                return n
        await asyncio.sleep(0.05)
    raise AssertionError("no leader")


async def _change(nodes: list[RaftNode], change: ConfChange, **kw: object) -> Membership:
    """Ask whichever node leads, retrying while a change is in progress."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        leader = await _leader(nodes)
        try:
            return await leader.change_membership(change, **kw)  # type: ignore[arg-type]
        except (Refused, ConfChangeError) as e:
            if loop.time() > deadline or "already" in str(e):
                raise
            await asyncio.sleep(0.1)


def test_a_node_joins_is_promoted_and_the_removed_leader_steps_aside(tmp_path: Path) -> None:
    async def scenario() -> None:
        base = free_base(5)
        settings = local_settings(tmp_path, base)
        nodes = [RaftNode(s, Counter()) for s in settings]
        for n in nodes:
            await n.start()
        assert await _submit_retrying(nodes[0], b"5") == 5

        # Node 4 starts empty, knowing only its own address, and joins.
        addr4 = ("127.0.0.1", base + 4)
        s4 = dataclasses.replace(
            settings[0], id=4, peers={4: addr4}, data_dir=tmp_path / "node-4", join=True
        )
        joiner = RaftNode(s4, Counter())
        await joiner.start()
        assert not joiner.status().membership.known
        leader = await _leader(nodes)
        joiner.learn_addresses(leader.addresses())  # what `--join` is told by its seed
        m = await _change(nodes, ConfChange(add_learners=(4,)),
                          addresses={4: MemberAddress(format_address(addr4))})  # fmt: skip
        assert m == Membership.of([1, 2, 3], learners=[4])
        # Every member knows how to reach the new one, and it catches up.
        for n in nodes:
            assert n.addresses()[4].peer == format_address(addr4)
        m = await _change([*nodes, joiner], ConfChange(promote=(4,)))
        assert m == Membership.of([1, 2, 3, 4])
        assert await _submit_retrying(joiner, b"10") == 15  # forwarded through node 4

        # Remove whichever node leads: it keeps leading until the removal
        # commits, then steps down, and the others go on without it.
        everyone = [*nodes, joiner]
        old = await _leader(everyone)
        m = await _change(everyone, ConfChange(remove=(old.id,)))
        assert old.id not in m.members
        rest = [n for n in everyone if n is not old]
        assert await _submit_retrying(rest[0], b"1") == 16
        await asyncio.sleep(0.3)
        assert old.status().removed and old.status().role.value != "leader"
        with pytest.raises(ConfChangeError, match="already a member"):
            await (await _leader(rest)).change_membership(ConfChange(add_voters=(4,)))
        for n in everyone:
            await n.stop()

        # The joiner restarts from its directory (seed: none) with its log's
        # membership; the removed node refuses to start.
        again = RaftNode(s4, Counter())
        await again.start()
        assert again.status().membership.is_voter(4)
        await again.stop()
        gone = RaftNode(settings[old.id - 1], Counter())
        with pytest.raises(RemovedFromCluster, match="--join"):
            await gone.start()

    asyncio.run(scenario())
