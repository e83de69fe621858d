"""A replicated counter: the smallest useful user of :class:`drafty.driver.RaftNode`.

Run three of them in one process and add to the counter through any node::

    python -m drafty.examples.counter

Every command is a signed decimal integer to add; ``apply`` returns the new
total, which is what :meth:`RaftNode.submit` hands back to the caller. A
command that is not an integer is answered with an error value rather than
an exception, so every replica treats it the same way.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from ..driver import NodeSettings, RaftNode


class Counter:
    """An integer that commands add to (the StateMachine protocol)."""

    def __init__(self) -> None:
        self.value = 0

    def apply(self, command: bytes) -> int | str:
        try:
            delta = int(command)
        except ValueError:
            return f"error: {command!r} is not an integer"
        self.value += delta
        return self.value

    def snapshot(self) -> bytes:
        return str(self.value).encode()

    def restore(self, data: bytes) -> None:
        self.value = int(data)


def local_settings(directory: Path, base_port: int, n: int = 3) -> list[NodeSettings]:
    """Settings for ``n`` nodes on loopback, with data under ``directory``."""
    peers = {i: ("127.0.0.1", base_port + i) for i in range(1, n + 1)}
    return [
        NodeSettings(id=i, cluster="counter", peers=peers, data_dir=directory / f"node-{i}")
        for i in peers
    ]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        nodes = [
            RaftNode(s, Counter())
            for s in local_settings(Path(tmp), random.randrange(10000, 32000))
        ]
        for node in nodes:
            await node.start()
        await asyncio.sleep(1.5)  # let them elect a leader
        for k, node in enumerate(nodes * 2):
            total = await node.submit(str(k + 1).encode())
            print(f"added {k + 1} through node {node.id}: total {total}")
        for node in nodes:
            await node.stop()


if __name__ == "__main__":
    asyncio.run(main())
