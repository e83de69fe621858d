"""The ``RAFT`` administration commands of the Redis-protocol front door.

Theory of operation
-------------------
Operators (``redis-cli``, ``drafty member``, ``drafty transfer-leader``,
``drafty status``) reach the cluster through the same port as clients:

- ``RAFT LEADER``: ``[id, client address]`` of the leader this node knows,
  or nil;
- ``RAFT MEMBERS``: ``[[id, client address, role], ...]``, role ``voter``,
  ``learner``, ``incoming`` (a voter a joint change is adding) or
  ``outgoing`` (one it is removing);
- ``RAFT MEMBER LIST``: the same with peer addresses and, on the leader,
  each member's replication lag: ``[[id, role, peer, client, lag], ...]``
  (lag -1: not known here);
- ``RAFT MEMBER ADD id peer-address client-address [VOTER]``: add a node,
  as a learner unless ``VOTER``; ``RAFT MEMBER PROMOTE id``: make a learner
  a voter (refused until it has caught up); ``RAFT MEMBER REMOVE id``. Each
  answers ``OK`` once the change is in effect (a joint membership left);
- ``RAFT MEMBER JOININFO``: what a node needs to join: this cluster's
  settings as cluster.toml text and the address book
  ``[[id, peer, client], ...]``;
- ``RAFT STATUS``: this node's Raft state as a map (INFO shows the same);
- ``RAFT TRANSFER id``: hand leadership to voter ``id``, ``OK`` once it leads.

Errors tell the operator what to do: a follower answers ``-TRYAGAIN`` with
the leader's address (drafty's client follows it; redis-cli users ask the
leader); a change the cluster refuses (an id that exists, removing the last
voter, a change while one is in flight, promoting a learner that has not
caught up, transferring to a learner or an unknown id) is ``-ERR`` with the
reason; a change whose outcome is unknown is ``-UNCERTAIN``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..core import NONE, DraftyError, NodeId
from ..core.membership import ConfChange, Membership
from ..driver import RaftNode
from ..node.members import AddressError, MemberAddress
from ..transport.address import parse_address
from . import commands, kv
from .resp import OK, Error, Reply

Hint = Callable[[NodeId], str]


def role_of(m: Membership, node: NodeId) -> str:
    if node in m.learners:
        return "learner"
    if node in m.voters:
        return "voter" if not m.joint or node in m.outgoing else "incoming"
    return "outgoing" if node in m.outgoing else "none"


class RaftCommands:
    """``RAFT ...`` for one node (see the module docstring)."""

    def __init__(self, node: RaftNode, hint: Hint, cluster_toml: str = "") -> None:
        self.node = node
        self.hint = hint
        self.cluster_toml = cluster_toml
        """This cluster's settings, for RAFT MEMBER JOININFO (empty: not offered)."""

    def client_address(self, node: NodeId) -> str:
        a = self.node.addresses().get(node)
        return a.client if a is not None else ""

    def dispatch(self, argv: list[bytes]) -> Awaitable[Reply] | Reply:
        sub = argv[1].upper() if len(argv) >= 2 else b""
        if sub == b"TRANSFER" and len(argv) == 3:
            target = kv.parse_int(argv[2])
            if target is None or target < 1:
                return Error("ERR RAFT TRANSFER needs a node id (a positive integer)")
            return asyncio.ensure_future(self._transfer(target))
        if sub == b"MEMBER":
            return self._member(argv[2:])
        if len(argv) == 2 and sub == b"LEADER":
            leader = self.node.leader()
            return None if leader == NONE else [leader, self.client_address(leader)]
        if len(argv) == 2 and sub == b"MEMBERS":
            m = self.node.status().membership
            return [[i, self.client_address(i), role_of(m, i)] for i in sorted(m.members)]
        if len(argv) == 2 and sub == b"STATUS":
            return self.status()
        return Error("ERR usage: RAFT LEADER | MEMBERS | STATUS | TRANSFER id | MEMBER ...")

    def status(self) -> dict[str, Reply]:
        st = self.node.status()
        m = st.membership
        out: dict[str, Reply] = {
            "node_id": st.id,
            "role": st.role.value,
            "term": st.term,
            "leader": st.leader,
            "commit_index": st.commit,
            "applied_index": self.node.applied,
            "last_index": st.last_index,
            "peers": ",".join(str(p) for p in sorted(m.members) if p != st.id),
            "voters": ",".join(map(str, m.voters)),
            "learners": ",".join(map(str, m.learners)),
            "joint_outgoing": ",".join(map(str, m.outgoing)),
            "membership_index": st.membership_index,
            "membership_pending": int(not st.membership_committed),
            "removed": int(st.removed),
            "transfer_to": st.transferee,
        }
        lg = self.node.log_status()
        out.update(
            snapshot_index=lg.snapshot_index,
            snapshot_term=lg.snapshot_term,
            log_first_index=lg.first_index,
            log_entries=lg.entries,
            log_bytes=lg.bytes,
            snapshots_taken=st.counters.get("snapshots_taken", 0),
            snapshots_installed=st.counters.get("snapshots_installed", 0),
        )
        for p, f in sorted(st.followers.items()):
            out[f"follower_{p}"] = f"match={f.match},lag={st.last_index - f.match},state={f.state}"
        return out

    async def _transfer(self, target: NodeId) -> Reply:
        try:
            await self.node.transfer_leadership(target)
        except DraftyError as e:
            return commands.answer(None, e, self.hint)
        return OK

    # -- RAFT MEMBER ----------------------------------------------------------------

    def _member(self, args: list[bytes]) -> Awaitable[Reply] | Reply:
        verb = args[0].upper() if args else b""
        if verb == b"LIST" and len(args) == 1:
            return self._list()
        if verb == b"JOININFO" and len(args) == 1:
            if not self.cluster_toml:
                return Error("ERR this node does not offer join information")
            book: list[Reply] = [
                [i, a.peer, a.client] for i, a in sorted(self.node.addresses().items())
            ]
            return [self.cluster_toml, book]
        node = kv.parse_int(args[1]) if len(args) >= 2 else None
        if verb in (b"REMOVE", b"PROMOTE") and len(args) == 2:
            if node is None or node < 1:
                return Error(f"ERR RAFT MEMBER {verb.decode()} needs a node id")
            ids = (node,)
            change = ConfChange(remove=ids) if verb == b"REMOVE" else ConfChange(promote=ids)
            return asyncio.ensure_future(self._change(change, {}))
        if verb == b"ADD" and len(args) in (4, 5):
            if node is None or node < 1:
                return Error("ERR RAFT MEMBER ADD needs a node id (a positive integer)")
            voter = len(args) == 5
            if voter and args[4].upper() != b"VOTER":
                return Error("ERR RAFT MEMBER ADD id peer client [VOTER]")
            try:
                peer, client = args[2].decode(), args[3].decode()
                parse_address(peer)
                if client:
                    parse_address(client)
                addr = MemberAddress(peer, client)
            except (UnicodeDecodeError, ValueError, AddressError) as e:
                return Error(f"ERR RAFT MEMBER ADD: bad address: {e}")
            known = self.node.status().membership.members
            if node in known and self.node.addresses().get(node) == addr:
                return Error(f"ERR node {node} is already a member (with these addresses)")
            change = ConfChange(add_voters=(node,)) if voter else ConfChange(add_learners=(node,))
            return asyncio.ensure_future(self._change(change, {node: addr}))
        return Error(
            "ERR usage: RAFT MEMBER LIST | JOININFO | ADD id peer client [VOTER] | "
            "PROMOTE id | REMOVE id"
        )

    def _list(self) -> Reply:
        st = self.node.status()
        m = st.membership
        book = self.node.addresses()
        rows: list[Reply] = []
        for i in sorted(m.members):
            a = book.get(i)
            if i == st.id:
                lag = 0
            elif i in st.followers:
                lag = st.last_index - st.followers[i].match
            else:
                lag = -1
            rows.append([i, role_of(m, i), a.peer if a else "", a.client if a else "", lag])
        return rows

    async def _change(self, change: ConfChange, addrs: dict[NodeId, MemberAddress]) -> Reply:
        try:
            await self.node.change_membership(change, addresses=addrs)
        except DraftyError as e:
            return commands.answer(None, e, self.hint)
        return OK
