"""Membership changes at the node layer, and the address book that travels with them.

Theory of operation
-------------------
The core knows members only by id. To reach a member added at run time,
every node needs its addresses, and a node that joins needs everyone's. So
the node layer keeps an :class:`AddressBook` (id -> :class:`MemberAddress`)
and ships it *inside the configuration entries*: the context of a
membership change (:attr:`drafty.core.ConfChange.context`) is the book of
every member of the membership it sets (:func:`encode_book`). A node updates
its book from every configuration entry it persists (so it can reach a new
member from the moment the entry is in its log, as the core does), from a
snapshot it restores (the snapshot's head holds the book,
:mod:`drafty.node.snapshot`), and, at start, from the seed addresses it was
given (cluster.toml) and the configuration entries still in its log.

The book only grows or changes an id's address, never forgets one: an entry
that was written and later truncated leaves its addresses behind, which is
harmless (an address is only used to reach a member the core names). A
member removed for good keeps its line; :meth:`AddressBook.prune` drops the
ids that are no longer members when a snapshot is taken.

Invariants
----------
- At most :data:`MAX_BOOK_ENTRIES` ids; every address is a non-empty string
  of at most :data:`MAX_ADDRESS_CHARS` characters.
- ``version`` grows by one whenever the book changes (drivers compare it to
  know when to reconnect).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from ..core import (
    DraftyError,
    Entry,
    EntryKind,
    LeadershipTransferring,
    NodeId,
    NotLeader,
    RawNode,
    Role,
)
from ..core.membership import (
    MAX_CONTEXT_BYTES,
    ConfChange,
    ConfChangeBusy,
    ConfChangeError,
    MembershipDecodeError,
    decode,
    decode_context,
    plan,
)
from .actions import NodeOptions
from .api import OutcomeUnknown, Refused
from .clock import Instant
from .requests import Reply, Waiting

MAX_BOOK_ENTRIES = 256
"""Most members an address book holds."""
MAX_ADDRESS_CHARS = 255
"""Longest address (``host:port``) accepted."""


class AddressError(DraftyError):
    """An address book or a member's address is malformed."""


@dataclass(frozen=True, slots=True)
class MemberAddress:
    """How to reach one member: its peer (Raft) address and its client
    (service) address, empty when the application serves no clients."""

    peer: str
    client: str = ""

    def __post_init__(self) -> None:
        for name in ("peer", "client"):
            v = getattr(self, name)
            if not isinstance(v, str) or len(v) > MAX_ADDRESS_CHARS or not (v or name == "client"):
                raise AddressError(f"{name} address must be a string of at most "
                                   f"{MAX_ADDRESS_CHARS} characters (peer: not empty)")  # fmt: skip


class AddressBook:
    """id -> :class:`MemberAddress`; see the module docstring."""

    def __init__(self, entries: Mapping[NodeId, MemberAddress] | None = None) -> None:
        self._book: dict[NodeId, MemberAddress] = {}
        self.version = 0
        if entries:
            self.update(entries)

    def __len__(self) -> int:
        return len(self._book)

    def __contains__(self, node: object) -> bool:
        return node in self._book

    def get(self, node: NodeId) -> MemberAddress | None:
        return self._book.get(node)

    def items(self) -> list[tuple[NodeId, MemberAddress]]:
        return sorted(self._book.items())

    def update(self, entries: Mapping[NodeId, MemberAddress]) -> bool:
        """Take these lines (new ids, or new addresses of known ones); whether
        anything changed. Raises :class:`AddressError` past the size bound."""
        changed = {k: v for k, v in entries.items() if self._book.get(k) != v}
        if not changed:
            return False
        if len(self._book.keys() | changed.keys()) > MAX_BOOK_ENTRIES:
            raise AddressError(f"an address book holds at most {MAX_BOOK_ENTRIES} members")
        self._book.update(changed)
        self.version += 1
        return True

    def prune(self, keep: Iterable[NodeId]) -> None:
        """Forget every id not in ``keep`` (members removed for good)."""
        wanted = set(keep)
        gone = [k for k in self._book if k not in wanted]
        for k in gone:
            del self._book[k]
        if gone:
            self.version += 1

    def subset(self, ids: Iterable[NodeId]) -> dict[NodeId, MemberAddress]:
        return {i: a for i in ids if (a := self._book.get(i)) is not None}

    def rows(self) -> list[list[object]]:
        """The book as ``[[id, peer, client], ...]`` (for a snapshot head)."""
        return [[i, a.peer, a.client] for i, a in self.items()]


def from_rows(rows: object) -> dict[NodeId, MemberAddress]:
    """The lines of :meth:`AddressBook.rows`; :class:`AddressError` if malformed."""
    if type(rows) is not list or len(rows) > MAX_BOOK_ENTRIES:
        raise AddressError("address rows must be a list of at most MAX_BOOK_ENTRIES")
    out: dict[NodeId, MemberAddress] = {}
    for row in rows:
        if type(row) is not list or len(row) != 3:
            raise AddressError("an address row is [id, peer, client]")
        node, peer, client = row
        if type(node) is not int or node < 1:
            raise AddressError(f"address row id must be a positive integer, got {node!r}")
        out[node] = MemberAddress(peer, client)
    return out


def encode_book(entries: Mapping[NodeId, MemberAddress]) -> bytes:
    """A configuration entry's context: the members' addresses, as JSON."""
    body = {str(i): [a.peer, a.client] for i, a in sorted(entries.items())}
    data = json.dumps({"addresses": body}, separators=(",", ":")).encode()
    if len(data) > MAX_CONTEXT_BYTES:
        raise AddressError("the members' addresses do not fit in one configuration entry")
    return data


def decode_book(context: bytes) -> dict[NodeId, MemberAddress]:
    """The addresses in a configuration entry's context (empty context: none).

    The context came from the log, so a malformed one raises
    :class:`AddressError` for the caller to count, never to crash on."""
    if not context:
        return {}
    try:
        body = json.loads(context)
        table = body["addresses"]
        if not isinstance(table, dict) or len(table) > MAX_BOOK_ENTRIES:
            raise AddressError("addresses must be an object of bounded size")
        out: dict[NodeId, MemberAddress] = {}
        for key, value in table.items():
            node = int(key)
            if node < 1 or not isinstance(value, list) or len(value) != 2:
                raise AddressError(f"bad address line for {key!r}")
            out[node] = MemberAddress(value[0], value[1])
        return out
    except (ValueError, KeyError, TypeError) as e:
        raise AddressError(f"configuration context is not an address book: {e}") from None


class MemberChanges:
    """Membership requests of :class:`~drafty.node.node.Node` (a mixin).

    A change is a request like a command: :meth:`change_membership` numbers
    it and proposes the configuration entry (its context: the addresses of
    every member it leaves in place, :func:`encode_book`); its reply comes
    when that entry applies, with the :class:`~drafty.core.membership.Membership`
    it set as the value. A change of voters sets a joint membership, which
    the leader leaves with a further entry on its own: callers that need the
    change finished watch :attr:`~drafty.core.Status.membership`. A request
    that cannot be proposed is answered at once: :class:`Refused` when this
    node does not lead (retry at the leader) or the change cannot be made
    *yet* (:class:`~drafty.core.membership.ConfChangeBusy`: another in
    progress, a new leader's first commit, a learner still catching up:
    retry shortly), the core's :class:`~drafty.core.membership.ConfChangeError`
    when the change itself is not allowed (it says why).
    """

    raw: RawNode
    addresses: AddressBook
    waiting: Waiting
    options: NodeOptions
    _changes: set[int]

    _admit: Callable[[Instant], tuple[int, bool]]

    def change_membership(
        self,
        change: ConfChange,
        now: Instant,
        *,
        addresses: Mapping[NodeId, MemberAddress] | None = None,
        timeout_ms: int | None = None,
    ) -> int:
        """Propose ``change`` (``addresses``: how to reach the members it adds);
        its request number."""
        rid, admitted = self._admit(now)
        if not admitted:
            return rid
        r = self.raw.raft
        term = r.term
        error: DraftyError | None = None
        try:
            if r.role is not Role.LEADER:  # judged by the leader, not by our view
                raise NotLeader(r.leader)
            target = plan(r.membership, change)
            book = self.addresses.subset(target.members)
            book.update({i: a for i, a in (addresses or {}).items() if i in target.members})
            context = encode_book(book) if book else b""
            index = self.raw.propose_conf_change(replace(change, context=context))
        except NotLeader as e:
            error = Refused("this node does not lead; ask the leader", e.leader)
        except LeadershipTransferring as e:
            error = Refused(f"{e}; try again shortly", e.leader)
        except AddressError as e:
            error = ConfChangeError(str(e))
        except ConfChangeBusy as e:
            error = Refused(f"{e}; try again shortly", r.id)
        except ConfChangeError as e:
            error = e
        if error is not None:
            self.waiting.replies.append(Reply(rid, error=error))
            return rid
        limit = self.options.request_timeout_ms if timeout_ms is None else timeout_ms
        self.waiting.add(rid, term, now.mono_ms + limit, index)
        self._changes = {c for c in self._changes if c in self.waiting}
        self._changes.add(rid)
        return rid

    def _learn_addresses(self, entries: Iterable[Entry]) -> None:
        """Take the addresses of the configuration entries among ``entries``."""
        for e in entries:
            if e.kind is EntryKind.CONFIG:
                try:
                    self.addresses.update(decode_book(decode_context(e.data)))
                except (MembershipDecodeError, AddressError):
                    self.raw.raft.counters["bad_config_context"] += 1

    def _config_applied(self, e: Entry, rid: int) -> bool:
        """Configuration entry ``e`` applied where request ``rid`` was appended:
        answer it if ``e`` is that request's entry (same term, so same entry)."""
        if rid not in self._changes or self.waiting.term_of(rid) != e.term:
            return False
        self._changes.discard(rid)
        try:
            self.waiting.answer(rid, decode(e.data), index=e.index)
        except MembershipDecodeError:  # we wrote it: cannot happen, but never lie
            self.waiting.answer(rid, error=OutcomeUnknown("configuration entry unreadable"))
        return True
