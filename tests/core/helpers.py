"""Small builders shared by the core unit tests.

Everything here drives the public core API (``RawNode``, ``Ready``) or the
in-memory cluster; the only private state read is ``raw.raft.log.entries``,
to compare whole logs in the paper's scenarios.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from drafty.core import Config, Entry, HardState, Message, RawNode, Ready, Role
from drafty.core.types import NodeId
from drafty.sim import MemoryCluster

IDS3: tuple[NodeId, ...] = (1, 2, 3)


def cfg(node: NodeId = 1, voters: tuple[NodeId, ...] = IDS3, **kw: object) -> Config:
    return Config(id=node, voters=voters, **kw)  # type: ignore[arg-type]


def log_of(terms: Sequence[int], start: int = 1) -> list[Entry]:
    """Entries whose terms are ``terms``, indexed from ``start``; data names the slot."""
    return [Entry(start + k, t, data=f"{t}/{start + k}".encode()) for k, t in enumerate(terms)]


def node(
    node_id: NodeId = 1,
    voters: tuple[NodeId, ...] = IDS3,
    *,
    hard_state: HardState | None = None,
    entries: Sequence[Entry] = (),
    applied: int = 0,
    seed: int = 0,
    **kw: object,
) -> RawNode:
    return RawNode(
        cfg(node_id, voters, **kw),
        random.Random(seed),
        hard_state=hard_state if hard_state is not None else HardState(),
        entries=entries,
        applied=applied,
    )


def drain(raw: RawNode) -> Ready:
    """Take one Ready and carry it out synchronously (advance, then persisted)."""
    rd = raw.ready()
    raw.advance(rd)
    raw.on_persisted(rd.number)
    return rd


def all_messages(rd: Ready) -> list[Message]:
    return [*rd.messages, *rd.messages_after_persist]


def terms_of(raw: RawNode) -> list[int]:
    return [e.term for e in raw.raft.log.entries]


def set_disk(
    c: MemoryCluster, node_id: NodeId, hard_state: HardState, entries: Sequence[Entry]
) -> None:
    """Give ``node_id`` a durable state and restart it from there."""
    disk = c.nodes[node_id].disk
    disk.hard_state = hard_state
    disk.entries = list(entries)
    c.restart(node_id, restarts=0)


def leaders(c: MemoryCluster) -> list[tuple[int, NodeId]]:
    """(term, id) of every live node that believes it leads."""
    out = []
    for i, n in c.nodes.items():
        st = n.raw.status()
        if n.up and st.role is Role.LEADER:
            out.append((st.term, i))
    return sorted(out)


def elect(c: MemoryCluster, leader: NodeId) -> None:
    c.nodes[leader].raw.campaign()
    c.stabilize()
    assert c.nodes[leader].raw.status().role is Role.LEADER
