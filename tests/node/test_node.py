"""The pure node layer (drafty.node.Node) driven by hand: outcomes, identity, clocks.

A :class:`Cluster` of Nodes shares an in-memory network; every write is
synced at once (the durability bookkeeping has its own tests in the
simulator's replica tests). Messages can be held, duplicated or dropped by
the test to recreate each defect of issue 8 exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import msgpack
import pytest

from drafty.core import (
    Config,
    Entry,
    HardState,
    InstallSnapshot,
    Message,
    Propose,
    RawNode,
    Role,
    SnapshotMeta,
)
from drafty.node import (
    Instant,
    Node,
    NodeOptions,
    OutcomeUnknown,
    Refused,
    Reply,
    SessionExpired,
    StateMachineError,
)

T0 = 1_800_000_000_000


class Counter:
    """Adds each command's integer; records every application."""

    def __init__(self) -> None:
        self.value = 0
        self.applied: list[int] = []

    def apply(self, command: bytes) -> int:
        if command == b"boom":
            raise RuntimeError("boom")
        self.value += int(command)
        self.applied.append(int(command))
        return self.value

    def snapshot(self) -> bytes:
        return str(self.value).encode()

    def restore(self, data: bytes) -> None:
        self.value = int(data)


@dataclass
class Member:
    node: Node
    machine: Counter
    entries: list[Entry] = field(default_factory=list)
    hard_state: HardState = field(default_factory=HardState)
    skew_ms: int = 0


class Cluster:
    def __init__(self, n: int = 3, options: NodeOptions | None = None) -> None:
        self.ids = tuple(range(1, n + 1))
        self.options = options or NodeOptions()
        self.ms = 0
        self.lives = 0
        self.members: dict[int, Member] = {}
        self.inbox: list[Message] = []
        self.replies: dict[int, list[Reply]] = {i: [] for i in self.ids}
        self.hold: set[int] = set()
        """Nodes whose outgoing messages are dropped."""
        for i in self.ids:
            self.start(i)

    def now(self, i: int) -> Instant:
        skew = self.members[i].skew_ms if i in self.members else 0
        return Instant(self.ms, T0 + self.ms + skew)

    def start(self, i: int, incarnation: int | None = None) -> Member:
        old = self.members.get(i)
        self.lives += 1
        raw = RawNode(
            Config(i, self.ids, forward_proposals=True, prevote=False, check_quorum=False),
            random.Random(self.lives),
            hard_state=old.hard_state if old else HardState(),
            entries=list(old.entries) if old else [],
        )
        machine = Counter()
        node = Node(
            raw, machine, incarnation=incarnation or self.lives, now=self.now(i),
            options=self.options,
        )  # fmt: skip
        m = Member(node, machine, list(old.entries) if old else [],
                   old.hard_state if old else HardState(), old.skew_ms if old else 0)  # fmt: skip
        self.members[i] = m
        return m

    def node(self, i: int) -> Node:
        return self.members[i].node

    def pump(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            busy = False
            for i, m in self.members.items():
                a = m.node.take()
                for w in a.writes:
                    if w.entries:
                        del m.entries[w.entries[0].index - 1 :]
                        m.entries.extend(w.entries)
                    if w.hard_state is not None:
                        m.hard_state = w.hard_state
                if a.sync:
                    m.node.synced(a.sync)
                    busy = True
                if i not in self.hold:
                    self.inbox.extend(a.messages)
                self.replies[i].extend(a.replies)
                busy = busy or bool(a)
            msgs, self.inbox = self.inbox, []
            for msg in msgs:
                self.node(msg.dst).receive([msg], self.now(msg.dst))
            if not busy and not msgs:
                return
        raise AssertionError("did not settle")

    def elect(self, i: int) -> None:
        self.node(i).raw.campaign()
        self.pump()
        assert self.node(i).raw.raft.role is Role.LEADER

    def tick(self, ms: int) -> None:
        self.ms += ms
        for i in self.ids:
            self.node(i).tick(self.now(i))
        self.pump()

    def outcome(self, i: int, rid: int) -> Reply:
        found = [r for r in self.replies[i] if r.request == rid]
        assert len(found) == 1, f"request {rid} on node {i} got {found}"
        return found[0]

    def submit(self, i: int, command: bytes, **kw: int) -> int:
        return self.node(i).submit(command, self.now(i), **kw)


def test_a_command_applies_on_every_node_and_answers_its_caller() -> None:
    c = Cluster()
    c.elect(1)
    rid = c.submit(2, b"5")  # through a follower: forwarded
    c.pump()
    assert c.outcome(2, rid) == Reply(rid, 5, None, c.outcome(2, rid).index)
    assert [m.machine.value for m in c.members.values()] == [5, 5, 5]


def test_a_duplicated_forwarded_proposal_applies_once() -> None:
    """Issue 8, defect 4: a duplicated Propose was appended and applied twice."""
    c = Cluster()
    c.elect(1)
    c.hold.add(2)
    rid = c.submit(2, b"7")
    a = c.node(2).take()
    props = [m for m in a.messages if isinstance(m, Propose)]
    assert len(props) == 1
    c.hold.clear()
    for _ in range(2):  # the network delivers it twice
        c.node(1).receive(props, c.now(1))
    c.pump()
    assert c.outcome(2, rid).value == 7
    assert [m.machine.applied for m in c.members.values()] == [[7], [7], [7]]
    logged = [e for e in c.members[1].entries if e.data and b"7" in e.data]
    assert len(logged) == 2  # both copies are in the log; only one took effect


def test_an_entry_of_an_earlier_life_never_answers_a_new_request() -> None:
    """Issue 8, defect 1, at the node layer: a new life's request 1 is not the old one's."""
    c = Cluster()
    c.elect(1)
    c.hold.add(1)  # the leader's appends never reach the followers
    old = c.submit(1, b"100")
    c.pump()
    c.hold.clear()
    assert c.node(1).pending == 1
    c.start(1)  # the leader restarts; its old entry is in its log
    c.elect(1)  # and it leads again, so the old entry commits with the new no-op...
    new = c.submit(1, b"1")  # ...while a new request with the same number waits
    assert new == old == 1
    c.pump()
    assert c.outcome(1, new).value == 101
    assert c.members[1].machine.applied == [100, 1]


def test_requests_of_an_earlier_term_are_refused_once_a_later_term_applies() -> None:
    c = Cluster()
    c.elect(1)
    c.hold.add(2)  # node 2's forwarded proposal is lost
    rid = c.submit(2, b"3")
    c.pump()
    c.hold.clear()
    assert not c.replies[2]
    c.elect(3)  # a new term: its no-op applies on node 2
    r = c.outcome(2, rid)
    assert isinstance(r.error, Refused) and "leadership changed" in str(r.error)
    assert [m.machine.value for m in c.members.values()] == [0, 0, 0]


def test_a_leaders_entry_replaced_by_a_new_leader_is_refused() -> None:
    c = Cluster()
    c.elect(1)
    c.hold.add(1)
    rid = c.submit(1, b"4")
    c.pump()
    c.hold.clear()
    c.elect(2)  # node 2 never saw the entry: its no-op takes the index
    r = c.outcome(1, rid)
    assert isinstance(r.error, Refused)
    assert c.members[1].machine.value == 0


def test_no_leader_is_refused_at_once_and_a_deadline_is_unknown() -> None:
    c = Cluster(options=NodeOptions(request_timeout_ms=100))
    rid = c.submit(1, b"1")
    c.pump()
    assert isinstance(c.outcome(1, rid).error, Refused)
    c.elect(1)
    c.hold.add(1)
    rid = c.submit(1, b"1")
    c.tick(150)
    r = c.outcome(1, rid)
    assert isinstance(r.error, OutcomeUnknown)


def test_sessions_open_through_the_log_and_answer_retries_once() -> None:
    c = Cluster()
    c.elect(1)
    rid = c.node(2).open_session(c.now(2))
    c.pump()
    sid = c.outcome(2, rid).value
    assert isinstance(sid, int) and sid > 0
    first = c.submit(2, b"10", client=sid, seq=1)
    again = c.submit(3, b"10", client=sid, seq=1)  # a retry through another node
    c.pump()
    assert c.outcome(2, first).value == 10 and c.outcome(3, again).value == 10
    stale = c.submit(1, b"10", client=sid, seq=0 + 1)
    nxt = c.submit(1, b"1", client=sid, seq=2)
    c.pump()
    assert c.outcome(1, stale).value == 10 and c.outcome(1, nxt).value == 11
    late = c.submit(1, b"10", client=sid, seq=1)  # older than the session's last
    c.pump()
    r = c.outcome(1, late)
    assert isinstance(r.error, OutcomeUnknown)  # issue 8, defect 5: not "certainly no effect"
    unknown = c.submit(1, b"10", client=sid + 1000, seq=1)
    c.pump()
    assert isinstance(c.outcome(1, unknown).error, SessionExpired)
    assert [m.machine.applied for m in c.members.values()] == [[10, 1]] * 3


def test_a_fast_follower_clock_does_not_expire_sessions() -> None:
    """Issue 8, defect 3: one node ten minutes ahead expired every session."""
    c = Cluster(options=NodeOptions(session_ttl_ms=60_000, clock_interval_ms=10))
    c.members[3].skew_ms = 10 * 60_000
    c.elect(1)
    c.tick(20)  # log time starts: the leader stamps a clock entry
    rid = c.node(2).open_session(c.now(2))
    c.pump()
    sid = c.outcome(2, rid).value
    for _ in range(5):  # the fast node forwards commands; the leader keeps stamping
        c.submit(3, b"1")
        c.tick(20)
    ok = c.submit(2, b"1", client=sid, seq=1)
    c.pump()
    assert c.outcome(2, ok).value == 6
    assert c.node(1).sessions.now < T0 + c.ms + 1000


def test_a_fast_leader_moves_log_time_at_most_the_lead_past_the_others() -> None:
    lead = 200
    c = Cluster(options=NodeOptions(clock_interval_ms=10, max_clock_lead_ms=lead))
    c.elect(1)
    c.submit(1, b"1")  # node 1 stamps honestly
    c.tick(20)
    c.members[3].skew_ms = 10 * 60_000
    c.elect(3)  # the fast node leads now
    for _ in range(5):
        c.submit(3, b"1")
        c.tick(20)
    times = {m.node.sessions.now for m in c.members.values()}
    assert len(times) == 1
    assert times.pop() <= T0 + c.ms + lead


def test_a_state_machine_error_is_an_error_reply_and_counts_as_applied() -> None:
    c = Cluster()
    c.elect(1)
    rid = c.submit(1, b"boom")
    c.pump()
    assert isinstance(c.outcome(1, rid).error, StateMachineError)


def test_stop_and_fail_answer_waiting_callers_and_silence_the_node() -> None:
    c = Cluster()
    c.elect(1)
    c.hold.add(1)
    rid = c.submit(1, b"1")
    c.pump()
    c.node(1).fail(OSError("disk gone"))
    a = c.node(1).take()
    assert [r.request for r in a.replies] == [rid]
    assert isinstance(a.replies[0].error, OutcomeUnknown)
    c.node(1).tick(c.now(1))
    for _ in range(20):  # issue 8, defect 5: a failed node keeps heartbeating
        c.node(1).tick(c.now(1))
    assert not c.node(1).take()
    late = c.submit(1, b"1")
    assert isinstance(c.node(1).take().replies[0].error, Refused) and late > rid
    c.node(2).stop()
    assert not c.node(2).take().messages


def test_waiting_requests_are_bounded() -> None:
    c = Cluster(options=NodeOptions(max_pending=2))
    c.elect(1)
    c.hold.add(1)
    rids = [c.submit(1, b"1") for _ in range(3)]
    a = c.node(1).take()
    refused = [r.request for r in a.replies if isinstance(r.error, Refused)]
    assert refused == [rids[2]]


def test_bad_arguments_are_local_misuse() -> None:
    c = Cluster()
    with pytest.raises(ValueError):
        c.submit(1, b"1", client=5)  # a session without a sequence number
    with pytest.raises(ValueError):
        NodeOptions(max_pending=0)
    with pytest.raises(ValueError):
        Node(c.node(1).raw, Counter(), incarnation=0, now=c.now(1))
    with pytest.raises(ValueError):
        c.node(1).synced(99)


def test_malformed_entries_are_skipped_identically() -> None:
    c = Cluster()
    c.elect(1)
    c.node(1).raw.propose(msgpack.packb(["not", "an", "envelope"]))
    ok = c.submit(1, b"2")
    c.pump()
    assert c.outcome(1, ok).value == 2
    assert [m.machine.value for m in c.members.values()] == [2, 2, 2]


def test_a_snapshot_message_without_its_bytes_is_dropped_and_counted() -> None:
    """Until snapshot transfer lands, nothing may make a follower restore state it
    does not hold: a (forged or stray) InstallSnapshot never reaches the core."""
    c = Cluster()
    c.elect(1)
    meta = SnapshotMeta(50, 1, (1, 2, 3))
    c.node(2).receive([InstallSnapshot(1, 2, 1, meta)], c.now(2))
    assert c.node(2).raw.raft.log.offset == 0
    assert c.node(2).status().counters["snapshot_without_data"] == 1
