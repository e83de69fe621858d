"""``drafty serve --join``: a new node that adds itself to a running cluster.

Theory of operation
-------------------
A node started with ``--join HOST:PORT`` (the client address of any member)
needs no cluster.toml:

1. **Settings.** A brand-new data directory asks the member for
   ``RAFT MEMBER JOININFO``: the cluster's settings (name, tick, snapshot
   and read settings, as cluster.toml text) and its address book. The node
   starts with no membership (``NodeSettings.join``: it never campaigns)
   and learns the book at once, so it accepts the leader's connection the
   moment the leader reaches out. The settings are kept in the data
   directory (``joined.toml``), so a restart needs no member to answer.
2. **Added as a learner.** It sends ``RAFT MEMBER ADD id peer client``
   (drafty's client follows ``-TRYAGAIN`` to the leader). A member that
   already lists it with the same addresses (a restart, a retried join) is
   success. The leader replicates the log to it, or streams a snapshot when
   the log it needs was compacted.
3. **Promoted once caught up.** Unless told to stay a learner, it asks for
   ``RAFT MEMBER PROMOTE id`` until the leader accepts (the leader refuses
   while the learner trails by more than ``promote_max_lag_entries``), and
   stops once it is a voter. A node already a voter or learner after a
   restart skips what is done.

Every step retries on its own until it succeeds or the node stops; each
refusal the cluster gives is logged with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..client import AsyncClient
from ..driver import RaftNode
from ..node.members import AddressError, MemberAddress, from_rows
from ..transport.address import format_address
from .calls import CommandError
from .config import ClusterConfig, ClusterConfigError, NodeEntry, from_dict, load, render

log = logging.getLogger("drafty.join")

JOINED_NAME = "joined.toml"
"""The cluster settings a joined node keeps in its data directory."""
RETRY_S = 0.5
"""Pause between attempts of a join step the cluster refused for now."""


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """What ``drafty serve --join`` was given."""

    seed: str
    """Client address (host:port) of any member."""
    id: int
    peer: tuple[str, int]
    client: tuple[str, int]
    data_dir: Path
    learner: bool = False
    """Stay a learner (never ask for promotion)."""

    @property
    def address(self) -> MemberAddress:
        return MemberAddress(format_address(self.peer), format_address(self.client))


async def settings_for(req: JoinRequest) -> tuple[ClusterConfig, dict[int, MemberAddress]]:
    """The cluster's settings for this node, and the members' addresses known now.

    From ``joined.toml`` when the data directory has joined before, else from
    the seed member (``RAFT MEMBER JOININFO``). Raises ClusterConfigError
    when neither answers."""
    kept = req.data_dir / JOINED_NAME
    if kept.exists():
        return load(kept), {}
    try:
        async with AsyncClient([req.seed], timeout=2.0, deadline=30.0) as c:
            reply = await c.execute("RAFT", "MEMBER", "JOININFO")
    except Exception as e:
        raise ClusterConfigError(
            f"--join {req.seed}: cannot get the cluster's settings: {e}"
        ) from None
    try:
        text, rows = reply
        raw = tomllib.loads(text.decode() if isinstance(text, bytes) else text)
        base = from_dict(raw, f"settings from {req.seed}")
        book = from_rows([[r[0], _text(r[1]), _text(r[2])] for r in rows])
    except (ValueError, TypeError, IndexError, AddressError, tomllib.TOMLDecodeError) as e:
        raise ClusterConfigError(f"--join {req.seed}: malformed join information: {e}") from None
    if req.id in book and book[req.id] != req.address:
        raise ClusterConfigError(
            f"--join {req.seed}: node {req.id} is already a member at peer "
            f"{book[req.id].peer}, client {book[req.id].client}: pick another --id, or "
            f"remove node {req.id} first (drafty member remove {req.id})"
        )
    nodes = {req.id: NodeEntry(req.id, req.peer, req.client)}
    config = ClusterConfig(base.name, nodes, base.tick_ms, base.snapshot, base.reads)
    return config, book


def keep_settings(req: JoinRequest, config: ClusterConfig) -> None:
    """Remember the settings in the data directory (once it exists)."""
    kept = req.data_dir / JOINED_NAME
    if not kept.exists():
        tmp = kept.with_suffix(".tmp")
        tmp.write_text(render(config))
        tmp.replace(kept)


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def join_cluster(req: JoinRequest, node: RaftNode) -> None:
    """Add this node as a learner, then (unless told not to) get it promoted."""
    while not _member(node, req.id):
        if await _ask(node, req, "ADD", str(req.id), req.address.peer, req.address.client):
            break
        await asyncio.sleep(RETRY_S)
    log.info("node %d: added to the cluster as a learner", req.id)
    if req.learner:
        return
    while not node.status().membership.is_voter(req.id):
        if req.id in node.status().membership.learners and await _ask(
            node, req, "PROMOTE", str(req.id)
        ):
            break
        await asyncio.sleep(RETRY_S)
    log.info("node %d: promoted to voter", req.id)


def _member(node: RaftNode, me: int) -> bool:
    return me in node.status().membership.members


async def _ask(node: RaftNode, req: JoinRequest, *argv: str) -> bool:
    """One ``RAFT MEMBER ...`` at the cluster; whether it succeeded."""
    servers = [req.seed] + [
        a.client for i, a in node.addresses().items() if a.client and i != req.id
    ]
    try:
        async with AsyncClient(servers, timeout=2.0, deadline=10.0) as c:
            await c.execute("RAFT", "MEMBER", *argv)
        return True
    except CommandError as e:
        if "already a member (with these addresses)" in str(e):
            return True
        log.info("node %d: RAFT MEMBER %s refused for now: %s", req.id, argv[0], e)
    except Exception as e:  # unreachable members, no leader yet: retry
        log.info("node %d: RAFT MEMBER %s: %s; retrying", req.id, argv[0], e)
    return False
