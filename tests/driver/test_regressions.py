"""Regression tests for the exactly-once defects of the asyncio driver (issue 8).

Each drives real :class:`~drafty.driver.RaftNode` instances (loopback TCP, real
files) through the public API, so it failed on the driver that numbered its
requests from 1 in every process life and matched replies by number alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from drafty.core import Role
from drafty.driver import OutcomeUnknown, RaftNode
from drafty.examples.counter import Counter, local_settings

from ..e2e.conftest import _free_base
from ..e2e.test_library import _submit_retrying


async def _leader(nodes: list[RaftNode], seconds: float = 10.0) -> RaftNode:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        for n in nodes:
            st = n.status()
            if st.leader == st.id:
                return n
        await asyncio.sleep(0.05)
    raise AssertionError("no leader elected")


OLD = 300
"""Uncommittable requests of the first life: their numbers cover the new life's first ones."""


def test_a_restarted_node_never_takes_an_old_lifes_reply(tmp_path: Path) -> None:
    """Defect 1: the leader's ``+100`` requests cannot commit while its followers
    are down; the leader restarts, the followers come back, the old entries
    commit. The restarted node's request ``+1`` must be answered with a total
    that includes it (1 + 100 per old entry applied first), never with the
    reply of an old ``+100`` that happened to carry the same request number."""

    async def scenario() -> None:
        settings = local_settings(tmp_path, _free_base(4))
        nodes = [RaftNode(s, Counter()) for s in settings]
        for n in nodes:
            await n.start()
        leader = await _leader(nodes)
        k = nodes.index(leader)
        for n in nodes:
            if n is not leader:
                await n.stop()
        old = await asyncio.gather(
            *(leader.submit(b"100", timeout=0.5) for _ in range(OLD)), return_exceptions=True
        )
        assert all(isinstance(r, OutcomeUnknown) for r in old)
        await leader.stop()
        restarted = [RaftNode(s, Counter()) for s in settings]
        # Only the old leader and one follower: the follower's shorter log
        # cannot win, so the old leader leads again and its old entries commit.
        await restarted[k].start()
        await restarted[(k + 1) % 3].start()
        while restarted[k].status().role is not Role.LEADER:
            await asyncio.sleep(0.001)
        # At once, while the old entries are still on their way to commit.
        total = await _submit_retrying(restarted[k], b"1")
        await restarted[(k + 2) % 3].start()
        assert isinstance(total, int) and total % 100 == 1, f"+1 was answered {total!r}"
        for n in restarted:
            await n.stop()

    asyncio.run(scenario())
