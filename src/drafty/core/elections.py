"""Elections: campaigns, votes, the leader's lease on votes, leadership transfer.

Theory of operation
-------------------
A campaign (:meth:`Elections.campaign`) starts with a PreVote round when
``prevote`` is on: the node asks for votes in the term it *would* move to,
changing nobody's term (dissertation §9.6); only a majority of yeses makes it
a candidate, which bumps its term, votes for itself and asks again. A vote
is granted to a candidate whose log is at least as up to date (paper §5.4.1),
at most once per term.

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
from .types import NONE, NodeId, Role


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
    ticks: int
    quiet_ticks: int
    reads: ReadQueue
    counters: Counter[str]
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
        """Vote for ourselves and ask every peer (a pre-vote asks for term + 1)."""
        self.votes[self.id] = True
        if self._tally():
            return  # a single voter decides at once
        pre = self.role is Role.PRE_CANDIDATE
        term = self.term + 1 if pre else self.term
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for p in self.peers:
            if self.membership.is_voter(p):
                self._send(VoteRequest(self.id, p, term, last_index, last_term, pre, transfer))

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
