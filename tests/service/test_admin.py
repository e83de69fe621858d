"""RAFT administration commands: argument checking and replies, on a stand-in node."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from drafty.core import Role
from drafty.core.membership import ConfChange, ConfChangeError, Membership
from drafty.core.rawnode import Status
from drafty.node import Refused
from drafty.node.members import MemberAddress
from drafty.service.admin import RaftCommands, role_of
from drafty.service.resp import OK, Error

BOOK = {i: MemberAddress(f"h:{7000 + i}", f"h:{6000 + i}") for i in (1, 2, 3)}


class StandIn:
    """What RaftCommands asks of a RaftNode, recording membership changes."""

    def __init__(self, error: Exception | None = None) -> None:
        self.membership = Membership.of([1, 2, 3])
        self.changes: list[tuple[ConfChange, dict[int, MemberAddress]]] = []
        self.error = error

    def status(self) -> Status:
        return Status(1, Role.LEADER, 2, 1, 1, 9, 9, 9, 9, membership=self.membership)

    def addresses(self) -> dict[int, MemberAddress]:
        return dict(BOOK)

    def leader(self) -> int:
        return 1

    async def change_membership(self, change: ConfChange, *, addresses: Any) -> Membership:
        self.changes.append((change, addresses))
        if self.error is not None:
            raise self.error
        return self.membership


def run(node: StandIn, *argv: str) -> Any:
    cmds = RaftCommands(node, lambda leader: f" (leader is node {leader})", "cluster = 'x'")  # type: ignore[arg-type]

    async def go() -> Any:
        got = cmds.dispatch([b"RAFT", *(a.encode() for a in argv)])
        return await got if asyncio.isfuture(got) else got

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["MEMBER"], "usage: RAFT MEMBER"),
        (["MEMBER", "REMOVE", "x"], "needs a node id"),
        (["MEMBER", "PROMOTE", "0"], "needs a node id"),
        (["MEMBER", "ADD", "-1", "h:1", "h:2"], "needs a node id"),
        (["MEMBER", "ADD", "4", "nohost", "h:2"], "bad address"),
        (["MEMBER", "ADD", "4", "h:1", "h:99999"], "bad address"),
        (["MEMBER", "ADD", "4", "h:1", "h:2", "BOSS"], "[VOTER]"),
        (["MEMBER", "ADD", "2", "h:7002", "h:6002"], "already a member (with these addresses)"),
        (["TRANSFER", "x"], "needs a node id"),
        (["NONSENSE"], "usage: RAFT"),
    ],
)
def test_bad_arguments_are_errors_and_change_nothing(argv: list[str], message: str) -> None:
    node = StandIn()
    got = run(node, *argv)
    assert isinstance(got, Error) and message in got.text, got
    assert node.changes == []


def test_add_passes_the_new_members_addresses_and_answers_ok() -> None:
    node = StandIn()
    assert run(node, "MEMBER", "ADD", "4", "h:7004", "h:6004") == OK
    assert run(node, "MEMBER", "ADD", "5", "h:7005", "h:6005", "voter") == OK
    assert run(node, "MEMBER", "PROMOTE", "4") == OK
    assert run(node, "MEMBER", "REMOVE", "3") == OK
    assert node.changes == [
        (ConfChange(add_learners=(4,)), {4: MemberAddress("h:7004", "h:6004")}),
        (ConfChange(add_voters=(5,)), {5: MemberAddress("h:7005", "h:6005")}),
        (ConfChange(promote=(4,)), {}),
        (ConfChange(remove=(3,)), {}),
    ]


def test_refusals_become_errors_that_say_what_to_do() -> None:
    got = run(StandIn(Refused("this node does not lead", 2)), "MEMBER", "REMOVE", "3")
    assert isinstance(got, Error) and got.text.startswith("TRYAGAIN") and "node 2" in got.text
    got = run(StandIn(ConfChangeError("node 9 is not a member")), "MEMBER", "REMOVE", "9")
    assert isinstance(got, Error) and got.text == "ERR node 9 is not a member"


def test_lists_show_roles_addresses_and_join_information() -> None:
    node = StandIn()
    node.membership = Membership.of([1, 2, 4], learners=[5], outgoing=[1, 2, 3])
    assert run(node, "MEMBERS") == [
        [1, "h:6001", "voter"], [2, "h:6002", "voter"], [3, "h:6003", "outgoing"],
        [4, "", "incoming"], [5, "", "learner"],
    ]  # fmt: skip
    rows = run(node, "MEMBER", "LIST")
    assert rows[0] == [1, "voter", "h:7001", "h:6001", 0] and rows[3][1:] == [
        "incoming",
        "",
        "",
        -1,
    ]
    toml, book = run(node, "MEMBER", "JOININFO")
    assert toml == "cluster = 'x'" and book[0] == [1, "h:7001", "h:6001"]
    assert role_of(Membership.of([1]), 7) == "none"
