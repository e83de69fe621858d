"""Test-only buggy cores and drivers: known Raft bugs the oracle must catch.

Each bug is planted by a node factory (a RawNode whose Raft is swapped for a
buggy subclass) or by a driver flag of :class:`drafty.sim.SimConfig`; nothing
here touches the real core, and every plant lives only in the runs that ask
for it (:data:`BUGS` maps a name to the SimConfig fields that plant it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from drafty.core import NONE, Config, Entry, HardState, RawNode, VoteRequest, VoteResponse
from drafty.core.quorum import committed_index
from drafty.core.raft import Raft
from drafty.sim.replica import NodeFactory


class CommitByCountingRaft(Raft):
    """Commits whatever a majority stores, even entries of older terms (paper figure 8)."""

    def _maybe_commit(self) -> bool:
        match = {p: pr.match for p, pr in self.progress.items()}
        match[self.id] = self.log.persisted
        index = committed_index(self.voters, match)
        if index > self.log.committed:
            return self.log.commit_to(index)
        return False


class DoubleVoteRaft(Raft):
    """Grants its vote to any up-to-date candidate, ignoring the vote it already cast."""

    def _handle_vote_request(self, m: VoteRequest) -> None:
        if m.pre or self.leader != NONE or not self.log.is_up_to_date(m.last_index, m.last_term):
            super()._handle_vote_request(m)
            return
        self.vote = m.src
        self.election_elapsed = 0
        self._send(VoteResponse(self.id, m.src, self.term, True))


def factory_for(raft_class: type[Raft]) -> NodeFactory:
    """A node factory whose RawNodes run ``raft_class`` instead of Raft."""

    def make(
        config: Config, rng: random.Random, hard_state: HardState, entries: Sequence[Entry]
    ) -> RawNode:
        raw = RawNode(config, rng, hard_state=hard_state, entries=entries)
        raw.raft.__class__ = raft_class
        return raw

    return make


BUGS: dict[str, dict[str, object]] = {
    "commit-by-counting": {"node_factory": factory_for(CommitByCountingRaft)},
    "double-vote": {"node_factory": factory_for(DoubleVoteRaft)},
    "forget-vote": {"forget_vote_on_restart": True},
    "ack-before-fsync": {"ack_before_fsync": True},
}
"""Planted bugs by name, as SimConfig fields (used by tests and the regression list)."""
