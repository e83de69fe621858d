"""The replicated-state-machine API with a user's own state machine (a counter)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drafty.driver import OutcomeUnknown, RaftNode, Refused
from drafty.examples.counter import Counter, local_settings

from .conftest import _free_base as free_base


def _free_base() -> int:
    return free_base(4)  # local_settings uses base+1 .. base+3


async def _submit_retrying(node: RaftNode, command: bytes, seconds: float = 10.0) -> object:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            return await node.submit(command, timeout=2.0)
        except Refused:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


def test_counter_replicates_through_any_node_and_survives_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = local_settings(tmp_path, _free_base())
        machines = [Counter() for _ in settings]
        nodes = [RaftNode(s, m) for s, m in zip(settings, machines, strict=True)]
        for n in nodes:
            await n.start()
        totals = []
        for k, n in enumerate(nodes * 2):
            totals.append(await _submit_retrying(n, str(k + 1).encode()))
        assert totals == [1, 3, 6, 10, 15, 21]
        assert await _submit_retrying(nodes[0], b"not a number") == (
            "error: b'not a number' is not an integer"
        )
        await asyncio.sleep(0.3)
        assert [m.value for m in machines] == [21, 21, 21]
        # A node restarted from its data directory replays the log.
        await nodes[2].stop()
        again = Counter()
        nodes[2] = RaftNode(settings[2], again)
        await nodes[2].start()
        assert await _submit_retrying(nodes[2], b"100") == 121
        await asyncio.sleep(0.3)
        assert again.value == 121
        for n in nodes:
            await n.stop()
        with pytest.raises(Refused):
            await nodes[0].submit(b"1")

    asyncio.run(scenario())


def test_submit_without_quorum_is_not_acknowledged(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = local_settings(tmp_path, _free_base())
        nodes = [RaftNode(s, Counter()) for s in settings]
        for n in nodes:
            await n.start()
        await _submit_retrying(nodes[0], b"1")
        await nodes[1].stop()
        await nodes[2].stop()
        with pytest.raises((OutcomeUnknown, Refused)):
            await nodes[0].submit(b"1", timeout=1.0)
        await nodes[0].stop()

    asyncio.run(scenario())
