"""Unit tests of the oracle: each invariant fires on a hand-made violation."""

from __future__ import annotations

import random

import pytest

from drafty.core import (
    Config,
    Entry,
    HardState,
    RawNode,
    Ready,
    Role,
    SoftState,
    VoteResponse,
)
from drafty.node import Applied, DiskWrite, Refused, Reply, Verdict
from drafty.node.dedupe import Admission
from drafty.node.envelope import Envelope, Kind, pack
from drafty.service.kv import encode_command
from drafty.sim import Oracle, SimDisk, Violation

VOTERS = (1, 2, 3)


def _e(index: int, term: int, data: str = "") -> Entry:
    return Entry(index, term, data=(data or f"{term}/{index}").encode())


def _rd(
    entries: tuple[Entry, ...] = (),
    hs: HardState | None = None,
    role: Role | None = None,
    node: int = 1,
) -> Ready:
    soft = None if role is None else SoftState(role, node if role is Role.LEADER else 0)
    return Ready(1, soft, hs, entries, (), (), ())


def _noop(e: Entry) -> Applied:
    """An applied entry that carries no request (the log checks do not look further)."""
    return Applied(e, None, Verdict.MALFORMED, None, None)


def _raw(node: int, disk: SimDisk) -> RawNode:
    return RawNode(
        Config(node, VOTERS), random.Random(0), hard_state=disk.hard_state, entries=disk.entries
    )


class World:
    """Three started nodes with durable disks, and an oracle watching them."""

    def __init__(self) -> None:
        self.oracle = Oracle()
        self.disks = {i: SimDisk() for i in VOTERS}
        self.raws = {i: _raw(i, self.disks[i]) for i in VOTERS}
        for i in VOTERS:
            self.oracle.on_start(i, self.raws[i], self.disks[i])

    def store(self, node: int, *entries: Entry, hs: HardState | None = None) -> None:
        """Node ``node`` appends and syncs ``entries`` (and a hard state)."""
        rd = _rd(entries, hs)
        self.oracle.on_ready(node, rd)
        self.disks[node].write(DiskWrite(1, rd.entries, rd.hard_state))
        self.disks[node].complete_sync(self.disks[node].written)
        self.oracle.on_durable(node, self.disks[node])

    def lead(self, node: int, term: int) -> None:
        r = self.raws[node].raft
        r.role, r.term, r.leader = Role.LEADER, term, node
        self.oracle.after_event(node, self.raws[node])


def _fires(invariant: str) -> pytest.RaisesExc[Violation]:
    return pytest.raises(Violation, match=f"^{invariant}")


def test_a_clean_history_passes() -> None:
    w = World()
    w.lead(1, 1)
    for i in VOTERS:
        w.store(i, _e(1, 1), _e(2, 1), hs=HardState(1, 1, 0))
    for i in VOTERS:
        w.oracle.on_applied(i, _noop(_e(1, 1)), 1, w.disks[i])
        w.oracle.on_applied(i, _noop(_e(2, 1)), 1, w.disks[i])
    assert w.oracle.commit_index() == 2 and w.oracle.stats.elections == 1


def test_two_leaders_in_one_term() -> None:
    w = World()
    w.lead(1, 2)
    w.lead(1, 2)  # the same leader seen again is fine
    with _fires("election safety"):
        w.lead(2, 2)


def test_log_matching() -> None:
    w = World()
    w.store(1, _e(1, 1, "a"), _e(2, 1, "b"))
    w.store(2, _e(1, 1, "a"), _e(2, 1, "b"))
    with _fires("log matching"):
        w.store(3, _e(1, 1, "other"))


def test_log_matching_looks_at_the_whole_prefix() -> None:
    w = World()
    w.store(1, _e(1, 1, "a"), _e(2, 2, "b"))
    w.store(2, _e(1, 2, "x"))  # another (index, term): no conflict yet
    with _fires("log matching"):  # same entry at 2, different prefix
        w.store(2, _e(2, 2, "b"))


def test_leader_append_only() -> None:
    w = World()
    w.oracle.on_ready(1, _rd((_e(1, 2), _e(2, 2)), HardState(2, 1, 0), Role.LEADER))
    w.oracle.on_ready(1, _rd((_e(3, 2),)))
    with _fires("leader append-only"):
        w.oracle.on_ready(1, _rd((_e(3, 2, "again"),)))


def test_follower_may_overwrite() -> None:
    w = World()
    w.oracle.on_ready(1, _rd((_e(1, 1), _e(2, 1))))
    w.oracle.on_ready(1, _rd((_e(2, 2),), HardState(2, 0, 0)))


def test_apply_order_and_durability() -> None:
    w = World()
    w.store(1, _e(1, 1), _e(2, 1))
    with _fires("apply order"):
        w.oracle.on_applied(1, _noop(_e(2, 1)), 1, w.disks[1])
    w = World()
    w.oracle.on_ready(1, _rd((_e(1, 1),)))  # written, never synced
    with _fires("applied before durable"):
        w.oracle.on_applied(1, _noop(_e(1, 1)), 1, w.disks[1])


def test_applying_an_entry_not_in_the_log() -> None:
    w = World()
    w.store(1, _e(1, 1))
    with _fires("apply order"):
        w.oracle.on_applied(1, _noop(_e(1, 1, "different")), 1, w.disks[1])


def test_state_machine_safety() -> None:
    w = World()
    w.store(1, _e(1, 2, "a"))
    w.store(3, _e(1, 2, "a"))
    w.store(2, _e(1, 1, "b"))
    w.oracle.on_applied(1, _noop(_e(1, 2, "a")), 2, w.disks[1])
    with _fires("state machine safety"):
        w.oracle.on_applied(2, _noop(_e(1, 1, "b")), 2, w.disks[2])


def test_term_and_vote_never_go_back() -> None:
    w = World()
    w.oracle.on_ready(1, _rd(hs=HardState(3, 2, 0)))
    with _fires("term monotonic"):
        w.oracle.on_ready(1, _rd(hs=HardState(2, 2, 0)))
    with _fires("vote monotonic"):
        w.oracle.on_ready(1, _rd(hs=HardState(3, 3, 0)))
    w.oracle.on_ready(1, _rd(hs=HardState(4, 0, 0)))  # a new term resets the vote


def test_durable_hard_state_is_monotonic_across_restarts() -> None:
    w = World()
    w.store(1, hs=HardState(3, 2, 0))
    w.oracle.on_crash(1, w.disks[1])
    forgot = RawNode(Config(1, VOTERS), random.Random(0), hard_state=HardState(3, 0, 0))
    with _fires("vote monotonic"):
        w.oracle.on_start(1, forgot, w.disks[1])


def test_promises_must_survive_a_crash() -> None:
    w = World()
    w.oracle.on_ready(1, _rd(hs=HardState(3, 2, 0)))
    w.oracle.on_send(VoteResponse(1, 2, 3, True))  # left before the hard state was synced
    w.disks[1].crash()
    w.oracle.on_crash(1, w.disks[1])
    with _fires("promise durable"):
        w.oracle.on_start(1, _raw(1, w.disks[1]), w.disks[1])


def test_pre_votes_promise_nothing() -> None:
    w = World()
    w.oracle.on_send(VoteResponse(1, 2, 3, True, pre=True))
    w.oracle.on_crash(1, w.disks[1])
    w.oracle.on_start(1, _raw(1, w.disks[1]), w.disks[1])


def test_commit_safety_catches_an_unprotected_commit() -> None:
    """Figure 8: index 1 of term 1 committed while node 3 holds a term-2 entry there."""
    w = World()
    w.store(1, _e(1, 1, "a"), hs=HardState(3, 1, 0))
    w.store(2, _e(1, 1, "a"), hs=HardState(3, 1, 0))
    w.store(3, _e(1, 2, "b"), hs=HardState(2, 3, 0))
    with _fires("commit safety"):
        w.oracle.on_applied(1, _noop(_e(1, 1, "a")), 3, w.disks[1])


def test_commit_safety_accepts_a_lagging_node() -> None:
    w = World()
    w.store(1, _e(1, 1), _e(2, 1))
    w.store(2, _e(1, 1), _e(2, 1))
    w.store(3, _e(1, 1))
    w.oracle.on_applied(1, _noop(_e(1, 1)), 1, w.disks[1])
    w.oracle.on_applied(1, _noop(_e(2, 1)), 1, w.disks[1])


def test_leader_completeness() -> None:
    w = World()
    w.store(1, _e(1, 1))
    w.store(2, _e(1, 1))
    w.oracle.on_applied(1, _noop(_e(1, 1)), 1, w.disks[1])
    with _fires("leader completeness"):
        w.lead(3, 2)


def test_leader_completeness_skips_entries_committed_in_later_terms() -> None:
    w = World()
    w.store(1, _e(1, 1))
    w.store(2, _e(1, 1))
    w.oracle.on_applied(1, _noop(_e(1, 1)), 5, w.disks[1])  # first seen applied in term 5
    w.lead(3, 2)  # a late leader of term 2 need not hold it (commit safety still would)


# -- the node layer's outcomes -------------------------------------------------------


def _cmd(index: int, request: int, *, client: int = 0, seq: int = 0, value: str = "v",
         origin: int = 1, stamp: int = 0) -> tuple[Entry, Envelope]:  # fmt: skip
    command = encode_command([b"APPEND", b"k", value.encode()])
    env = Envelope(Kind.COMMAND, origin, 7, request, 1, stamp, client, seq, command)
    return Entry(index, 1, data=pack(env)), env


def _commit(w: World, *applied: tuple[Entry, Envelope, Verdict, object]) -> None:
    entries = [e for e, _, _, _ in applied]
    for i in VOTERS:
        w.store(i, *entries, hs=HardState(1, 1, 0))
    for e, env, verdict, result in applied:
        w.oracle.on_applied(1, Applied(e, env, verdict, Admission.ACCEPT, result), 1, w.disks[1])


def test_a_request_taking_effect_twice_is_caught() -> None:
    w = World()
    e1, env = _cmd(1, 5)
    e2, _ = _cmd(2, 5, value="w")
    with _fires("exactly once"):
        _commit(w, (e1, env, Verdict.EXECUTED, 1), (e2, env, Verdict.EXECUTED, 2))


def test_a_session_pair_running_twice_is_caught() -> None:
    w = World()
    e1, env1 = _cmd(1, 5, client=9, seq=1, value="a")
    e2, env2 = _cmd(2, 6, client=9, seq=1, value="b")
    with _fires("exactly once"):
        _commit(w, (e1, env1, Verdict.EXECUTED, 1), (e2, env2, Verdict.EXECUTED, 2))


def test_the_same_written_value_twice_is_caught() -> None:
    w = World()
    e1, env1 = _cmd(1, 5, value="x 1 1 y")
    e2, env2 = _cmd(2, 6, value="x 1 1 y")
    with _fires("exactly once"):
        _commit(w, (e1, env1, Verdict.EXECUTED, 7), (e2, env2, Verdict.EXECUTED, 14))


def test_a_duplicate_answered_from_its_session_is_fine() -> None:
    w = World()
    e1, env1 = _cmd(1, 5, client=9, seq=1)
    e2, env2 = _cmd(2, 6, client=9, seq=1)
    _commit(w, (e1, env1, Verdict.EXECUTED, 1), (e2, env2, Verdict.DUPLICATE, 1))


def test_replicas_must_agree_on_what_an_entry_did() -> None:
    w = World()
    e1, env = _cmd(1, 5)
    _commit(w, (e1, env, Verdict.EXECUTED, 1))
    with _fires("replica determinism"):
        w.oracle.on_applied(2, Applied(e1, env, Verdict.REJECTED, Admission.SEEN, None), 1,
                            w.disks[2])  # fmt: skip


def test_reply_routing() -> None:
    w = World()
    e1, env = _cmd(1, 5)
    w.oracle.on_propose(env, 0)
    _commit(w, (e1, env, Verdict.EXECUTED, 3))
    w.oracle.on_reply(1, 7, Reply(5, 3, None, 1))  # right request, right result
    with _fires("reply routing"):
        w.oracle.on_reply(1, 7, Reply(5, 4, None, 1))  # a result the entry did not produce
    with _fires("reply routing"):
        w.oracle.on_reply(1, 7, Reply(6, 3, None, 1))  # another request's entry
    with _fires("reply routing"):
        w.oracle.on_reply(1, 8, Reply(5, 3, None, 1))  # another life's entry


def test_refused_means_no_effect_before_or_after() -> None:
    w = World()
    e1, env = _cmd(1, 5)
    _commit(w, (e1, env, Verdict.EXECUTED, 3))
    with _fires("refused but applied"):
        w.oracle.on_reply(1, 7, Reply(5, None, Refused("no"), 0))
    w2 = World()
    w2.oracle.on_reply(1, 7, Reply(5, None, Refused("no"), 0))
    with _fires("refused but applied"):
        _commit(w2, (e1, env, Verdict.EXECUTED, 3))


def test_a_failed_write_must_never_take_effect() -> None:
    w = World()
    w.oracle.on_write_ended("x 1 1 y", "fail")
    e1, env = _cmd(1, 5, value="x 1 1 y")
    with _fires("refused but applied"):
        _commit(w, (e1, env, Verdict.EXECUTED, 7))


def test_log_clock_may_lead_true_time_only_by_the_lead() -> None:
    w = World()
    w.oracle.max_lead_ms = 100
    e1, env1 = _cmd(1, 5, stamp=10_000)
    e2, env2 = _cmd(2, 6, stamp=20_150, value="w")
    w.oracle.on_propose(env1, 10_000)
    w.oracle.on_propose(env2, 20_000)
    with _fires("log clock"):
        _commit(w, (e1, env1, Verdict.EXECUTED, 1), (e2, env2, Verdict.EXECUTED, 2))
