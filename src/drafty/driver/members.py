"""Membership on a running node: where it starts from, who it talks to, changing it.

Theory of operation
-------------------
*Where a node's membership starts.* cluster.toml seeds a brand-new cluster
only: the voters it lists when a data directory is created are recorded in
the directory (``seed_voters``, :mod:`drafty.storage.meta`), and a node
started to *join* records none. From then on the log and the snapshots hold
the membership (:mod:`drafty.core.reconfig`); :func:`seed_voters` picks the
recorded seed, so a later edit of cluster.toml cannot change a cluster's
voters behind Raft's back. :func:`check_recovered` refuses to start a node
its cluster removed (it would sit idle, and an operator who restarts it
most likely wants it back: the message says how) and logs where cluster.toml
and the recovered membership disagree (the log wins).

*Who it talks to.* The peer transport follows the node's address book
(:mod:`drafty.node.members`): :meth:`MemberOps._follow_book` runs after every
pass of the node, before its messages are sent, and hands the transport the
new peer set whenever the book changed, so a member added a moment ago is
reachable by the very messages that replicate its configuration entry.

*Changing it.* :meth:`MemberOps.change_membership` proposes a change and
waits until it is in effect: its configuration entry applied and, for a
change of voters, the joint membership left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from ..core import DraftyError, NodeId, Status
from ..core.membership import ConfChange, Membership
from ..node import Node, OutcomeUnknown, Refused
from ..node.members import MemberAddress
from ..transport.address import Address, format_address, parse_address
from ..transport.tcp import PeerTransport
from .settings import NodeSettings, now

log = logging.getLogger("drafty.driver")


class RemovedFromCluster(DraftyError):
    """This node's data directory says its cluster removed it: it must not rejoin
    with the old state (start it empty and add it again instead)."""


def seed_voters(settings: NodeSettings, recorded: tuple[NodeId, ...] | None) -> tuple[NodeId, ...]:
    """The voters the core starts from (``Config.voters``): what the data
    directory recorded, else (a directory from before seeds were recorded)
    cluster.toml's voters."""
    return recorded if recorded is not None else tuple(sorted(settings.peers))


def seed_book(settings: NodeSettings) -> dict[NodeId, MemberAddress]:
    """The address book cluster.toml gives (the log's addresses override it)."""
    return {
        i: MemberAddress(format_address(a), _client(settings, i)) for i, a in settings.peers.items()
    }


def _client(settings: NodeSettings, node: NodeId) -> str:
    addr = settings.clients.get(node)
    return format_address(addr) if addr is not None else ""


def check_recovered(settings: NodeSettings, st: Status) -> None:
    """Refuse a node its cluster removed; log where cluster.toml disagrees."""
    m = st.membership
    if not m.known:
        return  # joining: nothing recovered to compare with
    if st.removed:
        raise RemovedFromCluster(
            f"node {st.id} was removed from cluster {settings.cluster!r} (its log's "
            f"membership at index {st.membership_index}: {m.describe()}). To bring this "
            f"machine back, move its data directory {settings.data_dir} aside and start it "
            "empty with `drafty serve --join ...`, which adds it again"
        )
    toml = set(settings.peers)
    if not settings.join and toml != set(m.voters) | set(m.learners):
        log.warning(
            "node %d: cluster.toml lists nodes %s but the recovered membership is %s; "
            "the log is the source of truth (cluster.toml only seeds a new cluster): "
            "update cluster.toml to match, or change members with `drafty member`",
            st.id, sorted(toml), m.describe(),
        )  # fmt: skip


class MemberOps:
    """Membership methods of :class:`~drafty.driver.node.RaftNode` (a mixin)."""

    id: NodeId
    settings: NodeSettings
    _node: Node | None
    _transport: PeerTransport | None
    _book_version: int

    def _kick(self) -> None: ...

    _wait: Callable[[int], Awaitable[object]]
    status: Callable[[], Status]

    def addresses(self) -> dict[NodeId, MemberAddress]:
        """How to reach each member this node knows of (its address book)."""
        node = self._node
        return dict(node.addresses.items()) if node is not None else {}

    def learn_addresses(self, book: Mapping[NodeId, MemberAddress]) -> None:
        """Take addresses from outside the log (a joining node is told them by
        the member that added it, before the leader first reaches it)."""
        if self._node is not None:
            self._node.addresses.update(book)
            self._follow_book()

    def _follow_book(self) -> None:
        """Point the transport at the members of the address book, if it changed."""
        node, transport = self._node, self._transport
        if node is None or transport is None or node.addresses.version == self._book_version:
            return
        self._book_version = node.addresses.version
        peers: dict[NodeId, Address] = {}
        for i, a in node.addresses.items():
            if i == self.id:
                continue
            try:
                peers[i] = parse_address(a.peer)
            except ValueError:
                log.warning("node %d: member %d has an unusable address %r", self.id, i, a.peer)
        transport.set_peers(peers)

    async def change_membership(
        self,
        change: ConfChange,
        *,
        addresses: Mapping[NodeId, MemberAddress] | None = None,
        timeout: float | None = None,
    ) -> Membership:
        """Change the membership and wait until the change is in effect (joint
        membership left); the membership then.

        Raises :class:`Refused` off the leader (its ``leader`` names the
        leader), :class:`~drafty.core.membership.ConfChangeError` when the
        change is not allowed now (the message says why), and
        :class:`~drafty.node.OutcomeUnknown` when it did not finish in time."""
        node = self._node
        if node is None:
            raise Refused("node is not started")
        s = self.settings
        limit = s.request_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        rid = node.change_membership(
            change,
            now(),
            addresses=addresses,
            timeout_ms=max(1, int(limit * 1000)),
        )
        result = await self._wait(rid)
        assert isinstance(result, Membership)
        while result.joint and loop.time() < deadline:
            await asyncio.sleep(s.tick_ms / 1000)
            st = self.status()
            if st.membership_committed and not st.membership.joint:
                return st.membership
        if result.joint:
            raise OutcomeUnknown(
                f"the joint membership {result.describe()} was entered but not yet left "
                f"after {limit:.1f} s; it will be once a leader commits it"
            )
        return result
