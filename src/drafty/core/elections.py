"""Elections: campaigns, votes, the leader's lease on votes, leadership transfer.

Theory of operation
-------------------
A campaign (:meth:`Elections.campaign`) starts with a PreVote round when
``prevote`` is on: the node asks for votes in the term it *would* move to,
changing nobody's term (dissertation §9.6); only a majority of yeses makes it
a candidate, which bumps its term, votes for itself and asks again. Its own
vote counts only once its term and vote are durable
(:meth:`Elections.vote_durable`): a term is never led before it is stored. A
vote is granted to a candidate whose log is at least as up to date (paper
§5.4.1), at most once per term. A vote request of an older term is answered with a
refusal carrying ours (figure 2), so a candidate behind in term catches up
even when the nodes ahead of it never ask it for votes (their membership is
older than its own).

*Split votes.* Two candidates that time out within one message delay of each
other each vote for themselves and refuse the other: with two voters (or
four, split two and two) nobody wins, and the random timeouts must part them.
When a delay is a sizeable part of the timeout's random range they often do
not, round after round. So a candidate that refused, in the term it
campaigns in, a rival whose log is more up to date than its own, or as up to
date with a lower id, *yields* (:meth:`Elections._note_rival`): its next
election timeout in that term is one election timeout longer, and the rival,
which does not yield, times out first and gets its vote in the next term.
This only spaces campaigns out; which vote is granted is unchanged.

A node that cannot campaign (a learner, a removed or joining node) whose
leader has been silent for an election timeout forgets it
(:meth:`Elections._timed_out`): it would otherwise forward requests to
that leader for ever, and a leader that removed it drops them.

A voter that heard from a leader within the minimum election timeout ignores
vote requests (§4.2.3, *the lease on votes*): a node that was cut off cannot
depose a working leader. With lease reads a restarted node keeps ignoring
them for its first election timeout, since it may have answered a leader's
round just before it went down.

Leadership transfer (§3.10, :meth:`Elections.transfer_leadership`): the
leader stops taking proposals, brings the target's log up to its own, then
sends it :class:`~drafty.core.messages.TimeoutNow`. The target campaigns at
once, without PreVote, and its vote requests say so (``transfer``): voters
grant them even inside their lease on votes, because the leader itself asked
for the handover. The leader gives up after an election timeout and takes
proposals again. Once it has sent TimeoutNow it no longer answers reads from
its read lease: the target may win before the old leader hears of it.

Invariants
----------
- At most one vote per term (``vote`` is persisted before the grant leaves).
- A candidate's own vote is in ``votes`` only once it is durable.
- A transfer is in progress only on a leader, for at most ``election_ticks``
  ticks, and only towards a voter other than itself.
"""

from __future__ import annotations

from collections import Counter

from .config import Config
from .errors import NotLeader, TransferError
from .log import RaftLog
from .membership import Membership, MembershipLog
from .messages import Message, TimeoutNow, VoteRequest, VoteResponse
from .progress import Progress
from .quorum import VoteResult
from .readonly import ReadQueue
from .types import NONE, HardState, NodeId, Role


class Elections:
    """Election and transfer methods of :class:`~drafty.core.raft.Raft` (a
    mixin); it relies on the attributes Raft sets up (declared below)."""

    id: NodeId
    cfg: Config
    term: int
    vote: NodeId
    role: Role
    leader: NodeId
    membership: Membership
    members: MembershipLog
    peers: tuple[NodeId, ...]
    log: RaftLog
    progress: dict[NodeId, Progress]
    votes: dict[NodeId, bool]
    election_elapsed: int
    timeout: int
    ticks: int
    quiet_ticks: int
    reads: ReadQueue
    counters: Counter[str]
    yield_to: NodeId
    """The rival of this term's split vote that campaigns first (NONE: none)."""
    transferee: NodeId
    """The voter leadership is being handed to (NONE: no transfer)."""
    transfer_elapsed: int
    """Ticks since the transfer began."""

    def _send(self, m: Message) -> None: ...
    def become_follower(self, term: int, leader: NodeId) -> None: ...
    def become_pre_candidate(self) -> None: ...
    def become_candidate(self) -> None: ...
    def become_leader(self) -> None: ...
    def _send_append(self, to: NodeId, pr: Progress, send_if_empty: bool = False) -> bool:
        raise NotImplementedError  # Raft's

    # -- campaigning ---------------------------------------------------------------

    def campaign(self, *, transfer: bool = False) -> None:
        """Start an election now (a PreVote round first when enabled, unless
        the leader handed over to us: ``transfer``)."""
        if self.role is Role.LEADER or not self._may_campaign():
            return  # learners and removed nodes never campaign (but see _may_campaign)
        # A node its own pending entry removed always asks first: it must not
        # raise the voters' terms unless it can win (its removal may well have
        # committed without it hearing).
        pre = self.cfg.prevote or not self.membership.is_voter(self.id)
        if pre and not transfer:
            self.become_pre_candidate()
        else:
            self.become_candidate()
        self._start_round(transfer)

    def _may_campaign(self) -> bool:
        """Voters campaign. So does a node that the last configuration entry in
        its log removed from the voters, as long as that entry is uncommitted:
        its log may be the only one that can win (a leader that appended the
        entry removing it, then lost leadership before anyone else stored it:
        the others, still joint, need its vote and it refuses theirs). It
        counts votes by that entry's membership, which any node holding the
        entry uses too, runs a PreVote round first even without ``prevote``,
        and steps down once the entry commits."""
        if self.membership.is_voter(self.id):
            return True
        ms = self.members
        if not ms.changes or ms.last_change_index <= self.log.committed:
            return False
        before = ms.changes[-2][1] if len(ms.changes) > 1 else ms.base
        return before.is_voter(self.id)

    def _start_round(self, transfer: bool = False) -> None:
        """Ask every voter peer (a pre-vote asks for term + 1). A pre-candidate
        counts its own pre-vote at once (a single voter decides there and
        then); a candidate its own vote once that is durable (:meth:`vote_durable`)."""
        pre = self.role is Role.PRE_CANDIDATE
        if pre:
            self.votes[self.id] = True
            if self._tally():
                return
        term = self.term + 1 if pre else self.term
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for p in self.peers:
            if self.membership.is_voter(p):
                self._send(VoteRequest(self.id, p, term, last_index, last_term, pre, transfer))

    def vote_durable(self, hard: HardState) -> None:
        """The driver made ``hard`` durable (:meth:`RawNode.on_persisted`): a
        candidate whose own vote it holds counts it now. Counting it before
        would let a single voter lead, and send entries of, a term its disk may
        still lose: after a crash before the fsync it would lead that term
        again with other entries (seed 3591, 3 nodes, a leader left alone with
        a learner). Other voters answer only once the vote is durable anyway."""
        if (
            self.role is Role.CANDIDATE
            and (hard.term, hard.vote) == (self.term, self.id)
            and self.id not in self.votes
        ):
            self.votes[self.id] = True
            self._tally()

    def _tally(self) -> bool:
        """Act on the votes so far; True if the election was decided."""
        result = self.membership.vote_result(self.votes)
        if result is VoteResult.WON:
            if self.role is Role.PRE_CANDIDATE:
                self.become_candidate()
                self._start_round()
            else:
                self.become_leader()
            return True
        if result is VoteResult.LOST:
            self.become_follower(self.term, NONE)
            return True
        return False

    # -- voting ----------------------------------------------------------------------

    def _in_lease(self) -> bool:
        """Whether to ignore a higher-term vote request because a leader is alive.

        A leader counts as alive to itself only with CheckQuorum, which makes
        it step down once it loses its majority.
        """
        if self.ticks < self.quiet_ticks:
            return True  # we may have answered a leader's round just before a restart
        if self.leader == NONE:
            return False
        if self.role is Role.LEADER:
            return self.cfg.check_quorum
        lease = self.cfg.check_quorum or self.cfg.prevote
        return lease and self.election_elapsed < self.cfg.election_ticks

    def _handle_vote_request(self, m: VoteRequest) -> None:
        can_vote = (
            self.vote == m.src
            or (self.vote == NONE and self.leader == NONE)
            or (m.pre and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_index, m.last_term):
            if m.pre:
                self._send(VoteResponse(self.id, m.src, m.term, True, pre=True))
            else:
                self.vote = m.src
                self.election_elapsed = 0
                self._send(VoteResponse(self.id, m.src, self.term, True))
        else:
            self._send(VoteResponse(self.id, m.src, self.term, False, pre=m.pre))
            if not m.pre and self.vote == self.id and self.role is not Role.LEADER:
                self._note_rival(m)

    def _note_rival(self, m: VoteRequest) -> None:
        """We refused ``m`` because we campaign in its term too (a split vote):
        yield if the rival should go first (see "Split votes" above). A rival
        whose log is more up to date can win our vote, while we cannot win its;
        between equal logs the lower id goes first, so that exactly one yields."""
        theirs = (m.last_term, m.last_index)
        ours = (self.log.last_term(), self.log.last_index())
        if self.yield_to != NONE or theirs < ours or (theirs == ours and m.src > self.id):
            return
        self.yield_to = m.src
        self.counters["split_vote_yields"] += 1
        if self.role is not Role.CANDIDATE:
            self.timeout += self.cfg.election_ticks  # lost already: the timer runs
        # (a candidate's next timer, drawn once it loses, is the longer one)

    def _timed_out(self) -> None:
        """The election timer of a non-leader ran out: campaign, or, on a node
        that cannot, forget a leader that went silent (see the module
        docstring) and end a campaign it may no longer make."""
        if self._may_campaign():
            self.campaign()
        elif self.leader != NONE or self.role is not Role.FOLLOWER:
            self.counters["leader_lost"] += 1
            self.become_follower(self.term, NONE)

    # -- leadership transfer -----------------------------------------------------------

    def transfer_leadership(self, target: NodeId) -> None:
        """Hand leadership to voter ``target`` (see the module docstring).

        Raises :class:`NotLeader` on a non-leader and :class:`TransferError`
        for a target that is not another voter; asking again for the target
        of the transfer in progress changes nothing."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if target == self.id:
            raise TransferError(f"node {target} already leads")
        if target not in self.progress or not self.membership.is_voter(target):
            raise TransferError(f"node {target} is not a voter of this cluster")
        if self.transferee == target:
            return
        self.transferee, self.transfer_elapsed = target, 0
        self.counters["transfers_started"] += 1
        pr = self.progress[target]
        if pr.match == self.log.last_index():
            self._send_timeout_now()
        else:
            self._send_append(target, pr)

    def _transfer_progress(self, peer: NodeId) -> None:
        """``peer``'s match moved: if it is the transfer's target and caught up, hand over."""
        if peer == self.transferee and self.progress[peer].match == self.log.last_index():
            self._send_timeout_now()

    def _send_timeout_now(self) -> None:
        self.reads.lease_from = None  # the target may win before we hear of it
        self._send(TimeoutNow(self.id, self.transferee, self.term))

    def _transfer_tick(self) -> None:
        """A leader's tick: give a transfer up after an election timeout."""
        if self.transferee == NONE:
            return
        self.transfer_elapsed += 1
        if self.transfer_elapsed >= self.cfg.election_ticks:
            self.counters["transfers_abandoned"] += 1
            self.transferee, self.transfer_elapsed = NONE, 0

    def _timeout_now(self, m: TimeoutNow) -> None:
        """Our leader handed leadership to us: campaign at once."""
        if m.src != self.leader or not self.membership.is_voter(self.id):
            self.counters["unexpected_message"] += 1
            return
        self.counters["transfers_received"] += 1
        self.campaign(transfer=True)
