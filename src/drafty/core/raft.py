"""The Raft state machine of one node: roles, terms, elections, replication.

Theory of operation
-------------------
A node is always in exactly one :class:`Role`. The role decides what a tick
means and how a message is handled; everything else is shared:

- FOLLOWER: counts ticks since it last heard from a leader; past its
  randomised election timeout it starts a campaign (a node that cannot
  campaign forgets that leader instead). Stores appended entries.
- PRE_CANDIDATE (with ``prevote``): asks the voters whether they *would* vote
  for it in the next term, changing nobody's term (dissertation §9.6). Only on
  a majority of yeses does it become a candidate. A node cut off from the
  cluster therefore never inflates the term and never disrupts a healthy
  leader when it comes back.
- CANDIDATE: has bumped its term and voted for itself; wins on a majority of
  votes (paper §5.2), its own counted once durable (a single voter never
  leads a term a crash could take back), becomes a follower on losing or on
  hearing of a leader.
- LEADER: appends a no-op entry on election (§5.4.2, so entries of earlier
  terms get committed), replicates to each follower through its
  :class:`~drafty.core.progress.Progress`, sends heartbeats, and commits
  by majority match, counting only entries of its own term (§5.4.2, figure 8).
  With ``check_quorum`` it steps down when a majority has been silent for an
  election timeout.

Snapshots (dissertation §5): a follower whose next entry was compacted away
gets an :class:`InstallSnapshot`; its progress sits in SNAPSHOT until it
answers or the transfer is reported failed. A follower replaces its log with
a snapshot ahead of its commit index, else answers where it is. One whose
log was lost (a heartbeat's commit runs past it) says so, and is probed anew.

Every incoming message first goes through the term check in :meth:`step`:
a higher term turns the node into a follower of that term (except for the
PreVote round and votes ignored under a leader's lease), a lower term marks the
message stale (answered when that helps the sender catch up, else dropped).

The core never raises on remote input: a message that is stale, from an
unknown peer, or internally impossible is dropped and counted in
:attr:`Raft.counters` under a reason name.

Output is data: messages go to :attr:`Raft.msgs` (may be sent at once) or
:attr:`Raft.msgs_after_persist` (only after this node's state is durable);
see :mod:`drafty.core.ready` for the full ordering contract.

Invariants
----------
- ``term`` and ``vote`` never go back; ``vote`` is reset only on a new term.
- At most one vote is granted per term (``vote`` is persisted before the
  grant leaves the node).
- ``leader == id`` iff ``role is LEADER``.
- A leader's log only grows during its term (leader append-only).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

from .config import Config
from .elections import Elections
from .errors import LeadershipTransferring, NotLeader
from .log import RaftLog
from .membership import Membership, MembershipLog
from .messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from .progress import Progress, ProgressState
from .readonly import ReadIndex, ReadQueue
from .reconfig import Reconfiguration
from .snapshots import Snapshots
from .types import NONE, Entry, EntryKind, HardState, NodeId, Role, SnapshotMeta
from .validate import drop_reason

# Messages that promise nothing about this node's durable state may leave before
# their Ready is persisted: a leader appends in parallel with its own disk write
# (dissertation §10.2.1), counting itself towards commit only once durable.
_IMMEDIATE = (AppendEntries, Heartbeat, Propose, InstallSnapshot, ReadIndexRequest,
              ReadIndexResponse, TimeoutNow)  # fmt: skip


class Raft(Elections, Reconfiguration, ReadIndex, Snapshots):
    """One node's protocol state. Driven through :class:`drafty.core.RawNode`."""

    def __init__(
        self,
        config: Config,
        rng: random.Random,
        hard: HardState,
        log: RaftLog,
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        self.cfg = config
        self.id: NodeId = config.id
        self.membership = Membership.of(config.voters)
        """Who votes and who only listens; every quorum is decided by it."""
        self.peers: tuple[NodeId, ...] = tuple(v for v in config.voters if v != config.id)
        self.rng = rng
        self.log = log
        self.term = hard.term
        """Current term; never decreases."""
        self.vote: NodeId = hard.vote
        """Who this node voted for in ``term`` (NONE: nobody yet)."""
        self.role = Role.FOLLOWER
        self.leader: NodeId = NONE
        self.election_elapsed = 0
        """Ticks since the last sign of a leader (or, on a leader, since the last quorum check)."""
        self.heartbeat_elapsed = 0
        self.ticks = 0
        """Ticks since this node started (leases count in them)."""
        self.quiet_ticks = config.election_ticks if config.lease_reads and hard.term else 0
        """With leases, a node that may have answered a leader's round before a
        restart ignores vote requests until it has ticked this many times."""
        self.yield_to: NodeId = NONE
        """A rival of this term's split vote that campaigns first (see Elections._note_rival)."""
        self.timeout = self._random_timeout()
        """This round's election timeout, in ``[election_ticks, 2 * election_ticks)``
        (one election timeout more while yielding to a rival)."""
        self.votes: dict[NodeId, bool] = {}
        self.transferee: NodeId = NONE
        self.transfer_elapsed = 0
        self.settled_change = -1
        self.progress: dict[NodeId, Progress] = {}
        self.msgs: list[Message] = []
        self.msgs_after_persist: list[Message] = []
        self.counters: Counter[str] = Counter()
        """Dropped or refused input by reason, and notable events, for metrics."""
        self._broadcast_pending = False
        self.reads = ReadQueue(self.id, config.max_pending_reads, config.lease_reads)
        self.read_states = []
        self.forwarded = {}
        if snapshot is None and log.offset:
            snapshot = SnapshotMeta(log.offset, log.offset_term, config.voters)
        # cluster.toml (config.voters) only seeds a new cluster: a snapshot's
        # membership, then the configuration entries in the log, override it.
        if snapshot is not None:
            self._members_restored(snapshot)
        else:
            self.members = MembershipLog(self.membership)
            self._scan_config(1)
        self.snapshot: SnapshotMeta | None = snapshot
        """The newest snapshot this node holds (what a leader sends); its index
        is at least the log's ``offset``."""
        self.pending_snapshot: SnapshotMeta | None = None
        """A snapshot received from the leader, for the next Ready to hand out."""

    # -- helpers ---------------------------------------------------------

    def _random_timeout(self) -> int:
        e = self.cfg.election_ticks
        return e + self.rng.randrange(e) + (e if self.yield_to != NONE else 0)

    def _send(self, m: Message) -> None:
        if isinstance(m, _IMMEDIATE) or (isinstance(m, (VoteRequest, VoteResponse)) and m.pre):
            self.msgs.append(m)
        else:
            self.msgs_after_persist.append(m)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NONE
            self.yield_to = NONE
        self.leader = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.timeout = self._random_timeout()
        self.votes = {}
        self.progress = {}
        self.transferee, self.transfer_elapsed = NONE, 0
        self._broadcast_pending = False
        self._drop_reads()

    # -- role transitions ------------------------------------------------

    def become_follower(self, term: int, leader: NodeId) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def become_pre_candidate(self) -> None:
        # Term and vote stay as they are: a pre-vote changes no durable state.
        self._reset(self.term)
        self.role = Role.PRE_CANDIDATE

    def become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        self._reset(self.term)
        self.settled_change = -1  # a new leader acts on the committed membership anew
        self.role = Role.LEADER
        self.leader = self.id
        nxt = self.log.last_index() + 1
        self.progress = {p: Progress(nxt, self.cfg.max_inflight) for p in self.peers}
        self.counters["elections_won"] += 1
        self._append_local([Entry(nxt, self.term, EntryKind.NOOP)])

    # -- inputs ----------------------------------------------------------

    def tick(self) -> None:
        self.ticks += 1
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self.election_elapsed += 1
            if self.election_elapsed >= self.timeout:
                self._timed_out()

    def _tick_leader(self) -> None:
        self._transfer_tick()
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_ticks:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                active = [p for p, pr in self.progress.items() if pr.recent_active]
                active.append(self.id)
                if not self.membership.has_quorum(active):
                    self.counters["check_quorum_step_downs"] += 1
                    self.become_follower(self.term, NONE)
                    return
                for pr in self.progress.values():
                    pr.recent_active = False
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._heartbeat_all(self._heartbeat_round())

    def _heartbeat_all(self, round_: int) -> None:
        for p, pr in self.progress.items():
            pr.heartbeat_answered = False
            commit = min(pr.match, self.log.committed)
            self._send(Heartbeat(self.id, p, self.term, commit, round_))

    def propose(self, data: Iterable[bytes]) -> int | None:
        """Append client data; see :meth:`drafty.core.RawNode.propose`."""
        batch = tuple(data)
        if self.role is not Role.LEADER:
            # A node outside its own membership (a joiner that knows none yet, a
            # removed node) does not forward: the leader drops what non-members
            # send, so the request would hang; the caller is pointed at the leader.
            if (
                self.cfg.forward_proposals
                and self.leader != NONE
                and self.membership.includes(self.id)
            ):
                self._send(Propose(self.id, self.leader, self.term, batch))
                return None
            raise NotLeader(self.leader)
        if self.transferee != NONE:
            raise LeadershipTransferring(self.transferee)
        self._append_data(batch)
        return self.log.last_index()

    def _append_data(self, batch: tuple[bytes, ...]) -> None:
        """Append client data as entries of our term (leader only)."""
        first = self.log.last_index() + 1
        self._append_local(
            [Entry(first + k, self.term, EntryKind.NORMAL, d) for k, d in enumerate(batch)]
        )

    def _append_local(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        if any(e.kind is EntryKind.CONFIG for e in entries):
            self._scan_config(entries[0].index)
        self._broadcast_pending = True
        if not self.peers:
            self._maybe_commit()

    def persisted_to(self, index: int, term: int, cap: int) -> None:
        """The driver made entries up to ``(index, term)`` durable on this node.

        ``cap``: no index at or past ``cap + 1`` counts, because a Ready still in
        flight may have rewritten the log from there on.
        """
        log = self.log
        if index > log.persisted and log.matches(index, term):
            log.persisted = max(log.persisted, min(index, log.stable, cap))
            if self.role is Role.LEADER and self._maybe_commit():
                self._broadcast_pending = True

    # -- message handling ------------------------------------------------

    def step(self, m: Message) -> None:
        """Handle one message from a peer; bad input is dropped and counted."""
        reason = drop_reason(m, self.id)
        if reason is not None:
            self.counters[reason] += 1
            return
        if m.term > self.term:
            if isinstance(m, VoteRequest) and self._in_lease() and not m.transfer:
                self.counters["vote_ignored_in_lease"] += 1
                return
            if isinstance(m, VoteRequest) and m.pre:
                pass  # a pre-vote never changes our term
            elif isinstance(m, VoteResponse) and m.pre and m.granted:
                pass  # granted pre-votes carry the term we would campaign in
            elif isinstance(m, VoteRequest):
                # Figure 2 resets the election timer only when a vote is
                # granted: a stale candidate must not keep the node that could
                # win from ever timing out, so the timer survives this step.
                elapsed, timeout = self.election_elapsed, self.timeout
                self.become_follower(m.term, NONE)
                self.election_elapsed, self.timeout = elapsed, timeout
            else:
                leader = m.src if isinstance(m, (AppendEntries, Heartbeat)) else NONE
                self.become_follower(m.term, leader)
        elif m.term < self.term:
            self._step_stale(m)
            return
        if isinstance(m, VoteRequest):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _step_stale(self, m: Message) -> None:
        if isinstance(m, (AppendEntries, Heartbeat)):
            # A deposed leader that never hears a higher term would keep
            # disrupting (with PreVote, nobody else raises the term for it):
            # tell it our term so it steps down.
            self._send(AppendResponse(self.id, m.src, self.term, False, 0))
        elif isinstance(m, VoteRequest):
            # Tell a candidate behind in term ours (figure 2), pre-vote or not: the
            # nodes ahead may never ask it (see Elections, module docstring).
            self._send(VoteResponse(self.id, m.src, self.term, False, pre=m.pre))
        self.counters["stale_term"] += 1

    def _step_candidate(self, m: Message) -> None:
        if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)):
            # A leader of our own term exists: we lost this election.
            self.become_follower(self.term, m.src)
            self._step_follower(m)
        elif isinstance(m, VoteResponse):
            if m.pre != (self.role is Role.PRE_CANDIDATE):
                self.counters["stale_vote_response"] += 1
                return
            if not self.membership.is_voter(m.src):
                self.counters["not_a_member"] += 1
                return
            self.votes.setdefault(m.src, m.granted)
            self._tally()
        else:
            self.counters["unexpected_message"] += 1

    def _step_follower(self, m: Message) -> None:
        if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)) and self.leader not in (
            NONE,
            m.src,
        ):
            # Two leaders in one term would break election safety: refuse.
            self.counters["second_leader_in_term"] += 1
            return
        if isinstance(m, AppendEntries):
            self.leader = m.src
            self.election_elapsed = 0
            self._handle_append(m)
        elif isinstance(m, Heartbeat):
            self.leader = m.src
            self.election_elapsed = 0
            last = self.log.last_index()
            if m.commit > last:
                # The leader's match for us (which bounds this commit) is past
                # our log: we lost entries we acknowledged. Say so, or the
                # leader never sends them again.
                self.counters["log_lost"] += 1
                self._send(AppendResponse(self.id, m.src, self.term, False, last, lost=True))
            self.log.commit_to(m.commit)
            self._send(HeartbeatResponse(self.id, m.src, self.term, m.round))
        elif isinstance(m, InstallSnapshot):
            self.leader = m.src
            self.election_elapsed = 0
            self._handle_snapshot(m)
        elif isinstance(m, ReadIndexResponse):
            self._read_answered(m)
        elif isinstance(m, ReadIndexRequest):  # we do not lead: refuse it
            self._send(ReadIndexResponse(self.id, m.src, self.term, m.ctx, 0))
        elif isinstance(m, TimeoutNow):
            self._timeout_now(m)
        else:
            self.counters["unexpected_message"] += 1

    def _handle_append(self, m: AppendEntries) -> None:
        log = self.log
        prev_index, prev_term, entries = m.prev_index, m.prev_term, m.entries
        if prev_index < log.committed:
            # The committed prefix is the same everywhere (state machine
            # safety), so skip the part of the message we already hold.
            skip = log.committed - prev_index
            if skip <= len(entries) and entries[skip - 1].term != log.term(log.committed):
                self.counters["conflicts_with_committed"] += 1
                return
            prev_index = log.committed
            prev_term = log.term(prev_index) or 0
            entries = entries[skip:]
        if log.matches(prev_index, prev_term):
            if not log.append_after(prev_index, entries):
                self.counters["conflicts_with_committed"] += 1
                return
            if entries and (
                self.members.last_change_index > prev_index
                or any(e.kind is EntryKind.CONFIG for e in entries)
            ):
                self._scan_config(prev_index + 1)
            last_new = prev_index + len(entries)
            log.commit_to(min(m.commit, last_new))
            self._send(AppendResponse(self.id, m.src, self.term, True, last_new))
            return
        if prev_index > log.last_index():
            hint_term, hint_index = 0, log.last_index() + 1
        else:
            hint_term = log.term(prev_index) or 0
            hint_index = log.first_index_of_term(prev_index)
        self.counters["appends_rejected"] += 1
        self._send(
            AppendResponse(self.id, m.src, self.term, False, prev_index, hint_term, hint_index)
        )

    def _step_leader(self, m: Message) -> None:
        if (
            isinstance(m, (AppendResponse, HeartbeatResponse, Propose, ReadIndexRequest))
            and m.src not in self.progress
        ):
            self.counters["not_a_member"] += 1  # removed, or a stranger
            return
        if isinstance(m, AppendResponse):
            self._handle_append_response(m)
        elif isinstance(m, HeartbeatResponse):
            pr = self.progress[m.src]
            pr.recent_active = True
            if m.round:
                self._read_acked(m.src, m.round)
            if pr.heartbeat_answered:
                # A duplicate or late answer: resending once per heartbeat
                # round is enough, and a burst of answers must not multiply it.
                return
            pr.heartbeat_answered = True
            pr.probe_sent = False
            if (
                pr.match < self.log.last_index()
                and not self._send_append(m.src, pr)
                and pr.state is ProgressState.REPLICATE
            ):
                self._send_tail_probe(m.src, pr)
        elif isinstance(m, Propose):
            if self.transferee != NONE:  # handing over: the follower's request times out
                self.counters["proposals_dropped_in_transfer"] += 1
                return
            self._append_data(m.data)
            self.counters["proposals_forwarded_in"] += 1
        elif isinstance(m, ReadIndexRequest):
            self._record_read(m.ctx, m.src)
        elif isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)):
            # Two leaders in one term would break election safety: refuse.
            self.counters["second_leader_in_term"] += 1
        else:
            self.counters["unexpected_message"] += 1

    def _handle_append_response(self, m: AppendResponse) -> None:
        pr = self.progress[m.src]
        if m.index > self.log.last_index():
            self.counters["impossible_match"] += 1
            return
        pr.recent_active = True
        if not m.success and m.lost:
            if m.index < pr.match:
                self.counters["follower_log_lost"] += 1
                pr.forget_match(m.index)  # the heartbeat answer beside it sends the probe
            return
        if not m.success:
            if m.index == 0 and m.conflict_index == 0:
                return  # our own term was stale-checked elsewhere; nothing to retry
            hint = m.conflict_index
            if m.conflict_term:
                last = self.log.last_index_of_term(m.conflict_term, m.index)
                if last:
                    hint = last + 1
            if pr.maybe_decrease(m.index, max(hint, 1)):
                self._send_append(m.src, pr)
            return
        if m.index > self.log.last_index():
            self.counters["impossible_match"] += 1
            return
        if pr.maybe_update(m.index):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_probe()  # installed: find where its log continues
            if self._maybe_commit():
                self._broadcast_pending = True
            self._transfer_progress(m.src)
        while self._send_append(m.src, pr):
            pass

    # -- replication -----------------------------------------------------

    def _send_append(self, to: NodeId, pr: Progress, send_if_empty: bool = False) -> bool:
        """Send the next entries to ``to`` if its progress allows; True if sent."""
        if pr.is_paused():
            return False
        log = self.log
        last = log.last_index()
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None:
            self._send_snapshot(to, pr)
            return False
        entries: list[Entry] = []
        if pr.next <= last:
            entries = log.slice(pr.next, last, self.cfg.max_msg_bytes)
        elif pr.state is ProgressState.REPLICATE and not send_if_empty:
            return False
        self._send(
            AppendEntries(self.id, to, self.term, prev, prev_term, tuple(entries), log.committed)
        )
        pr.sent(prev + len(entries), len(entries))
        return bool(entries)

    def _send_tail_probe(self, to: NodeId, pr: Progress) -> None:
        """An empty append at ``next - 1``, sent even when the window is full.

        A follower in REPLICATE whose appends or acks were lost would wait for
        a new proposal (or forever, with a full window): this makes it ack
        (freeing the window) or reject (back to PROBE). If ``next - 1`` was
        compacted meanwhile, probe from its match instead (the snapshot).
        """
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        if prev_term is not None:
            self._send(
                AppendEntries(self.id, to, self.term, prev, prev_term, (), self.log.committed)
            )
        else:
            self.counters["tail_probe_compacted"] += 1
            pr.become_probe()
            self._send_append(to, pr)

    def flush(self) -> None:
        """Send what the proposals and commits since the last flush call for.

        Deferring this to Ready time batches every proposal made in between
        into one AppendEntries per follower.
        """
        if self.role is Role.LEADER:
            self._members_committed()  # may leave a joint membership, or step down
        round_ = self.reads.next_round(self.ticks) if self.role is Role.LEADER else 0
        if round_:
            self._heartbeat_all(round_)
        if not self._broadcast_pending:
            return
        self._broadcast_pending = False
        for p, pr in self.progress.items():
            sent = self._send_append(p, pr, send_if_empty=True)
            while sent and pr.state is ProgressState.REPLICATE:
                sent = self._send_append(p, pr)

    def _maybe_commit(self) -> bool:
        """Commit the majority match index if it is of our term (figure 8)."""
        match = {p: pr.match for p, pr in self.progress.items()}
        match[self.id] = self.log.persisted
        index = self.membership.committed_index(match)
        if index > self.log.committed and self.log.term(index) == self.term:
            self.log.commit_to(index)
            self._reads_committed()
            return True
        return False
