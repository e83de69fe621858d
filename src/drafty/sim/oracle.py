"""The safety oracle: Raft's invariants, checked incrementally after every event.

Theory of operation
-------------------
The oracle watches what every node does (each Ready it hands out, each entry
it applies, each completed sync, each restart) and raises :class:`Violation`
the moment one of these stops holding:

- **election safety**: at most one leader per term, ever (``leaders`` maps
  term -> the node seen leading it);
- **log matching**: two logs holding an entry with the same index and term are
  identical up to it. Every node's log is mirrored from its Readies with a
  hash chain (digest of the whole prefix up to each index); one global map
  ``(index, term) -> chain digest`` then checks the property per new entry;
- **leader append-only**: a leader never overwrites or removes entries in
  its term;
- **leader completeness**: a node becoming leader of term T holds every entry
  committed in an earlier term. "Committed" means applied by some node; the
  term it was committed in is at most the term of the first node seen to apply
  it (that node learnt the commit in its term or earlier), so entries whose
  observed commit term is below T are checked, which is sound;
- **commit safety** (latent leader completeness): a node lacking the newest
  committed entry never has a log at least as up-to-date as a majority's
  of every half of its own membership (else it could win an election
  without it). In correct Raft the majority that stored the entry refuses
  such a node; checked at every new commit, election and crash, it catches
  an unsafe commit before any leader uses it. Memberships follow each log's
  configuration entries (:mod:`drafty.sim.configs`, which also checks that
  each core uses the membership its log sets, and membership replies);
- **state machine safety**: an index is applied with the same entry (and the
  same prefix) on every node;
- **apply order**: each node applies indexes 1, 2, 3... exactly once per
  lifetime, only entries of its own log, and only entries already durable on
  its own disk (``applied <= persisted``);
- **hard state monotonic**: within a lifetime and on disk, across restarts:
  the term never decreases and the vote never changes within a term; a
  restarted node starts from no less than its durable term and vote;
- **promises are durable**: a node that granted a vote or acknowledged an
  append (as sent on the wire, ``messages_after_persist``) still holds that
  vote and those entries when it restarts, unless its durable term moved on;
- **acknowledged writes**: a write a client saw ``ok`` at index i is the entry
  every node applies at i;

and, for the node layer and its clients (:mod:`drafty.node`), judging
outcomes rather than logs:

- **replica determinism**: every node applying index i reaches the same
  verdict (executed, rejected, answered from a session...) and result;
- **exactly once**: a request identity ``(origin, incarnation, request)``,
  a session pair ``(session, seq)`` and a written value (every client write
  carries a unique token) each take effect at most once in the committed log;
- **reply routing**: a node answers request r with a value only from an
  entry that carries r's identity and r's command, and only with the result
  that entry's application produced;
- **refused means no effect**: a request answered ``Refused`` by a node, and a
  write a client saw ``fail``, never take effect, before or after;
- **acknowledged writes present**: a write a client saw ``ok`` took effect
  exactly once (checked when the run ends);
- **log clock**: log time never runs more than ``max_lead_ms`` ahead of the
  true time at which its stamps were taken (beyond the offset of the very
  first stamp, which sets the epoch): the one skewed clock a run may have
  cannot drive it. Leaders extrapolate with their monotonic clocks, so a
  clock that runs fast (``clock_drift``, a rate error) may move it ahead by
  that fraction of the time since the first stamp, no more.

Every check costs O(entries touched) so it can run after every event.

Invariants (of the oracle itself)
---------------------------------
- ``committed`` is the chain digest of the applied prefix, one per index, and
  grows by one index at a time.
- ``views[n]`` mirrors node n's in-memory log exactly (entries from Readies,
  or its durable log at restart), with its compacted prefix (behind a
  snapshot) filled in from ``committed_entries``: a snapshot only ever covers
  committed entries, which are the same on every node.
"""

from __future__ import annotations

from ..core import (
    NONE,
    AppendResponse,
    Entry,
    HardState,
    Message,
    NodeId,
    RawNode,
    Ready,
    Role,
    VoteResponse,
    describe,
)
from ..core.membership import Membership
from ..node import Applied, Reply, Verdict
from ..node.envelope import Envelope
from ..service.kv import decode_command
from .configs import Configs, check_protected
from .disk import SimDisk
from .mirror import EMPTY_DIGEST, NodeView, OracleStats, Promise, Violation, chain

Identity = tuple[int, int, int]
"""A request's identity: (origin, incarnation, request)."""

_TAKES_EFFECT = (Verdict.EXECUTED, Verdict.OPENED, Verdict.CLOCK)
_ANSWERS = (Verdict.EXECUTED, Verdict.DUPLICATE, Verdict.OPENED)


class Oracle:
    """Checks the invariants in the module docstring; raises :class:`Violation`."""

    def __init__(self, max_lead_ms: int = 0, clock_drift: float = 0.0) -> None:
        self.max_lead_ms = max_lead_ms
        self.clock_drift = clock_drift
        """How much faster than true time the fastest clock runs (0.04: 4%)."""
        self.first_stamped: int | None = None
        self.outcomes: list[tuple[Verdict, object, object]] = []
        """Per committed index: (verdict, admission, result) of its first application."""
        self.identity_at: list[Identity | None] = []
        self.command_at: list[bytes] = []
        self.executed: dict[Identity, int] = {}
        self.pairs: dict[tuple[int, int], int] = {}
        self.tokens: dict[str, int] = {}
        """Written value -> the index where the write carrying it took effect."""
        self.refused: set[Identity] = set()
        self.failed_tokens: set[str] = set()
        self.acked_tokens: set[str] = set()
        self.submitted: dict[Identity, bytes] = {}
        self.stamped_at: dict[Identity, int] = {}
        """True wall time (ms) at which each stamped proposal was stamped."""
        self.epoch_offset: int | None = None
        self.log_time = 0
        self.leaders: dict[int, NodeId] = {}
        self.by_index_term: dict[tuple[int, int], bytes] = {}
        self.committed: list[bytes] = []
        """Chain digest of the applied prefix at index i, at ``committed[i - 1]``."""
        self.committed_entries: list[Entry] = []
        """The committed entries (a node's compacted prefix is mirrored from here)."""
        self.commit_term: list[int] = []
        """Upper bound on the term index i was committed in, at ``[i - 1]``."""
        self.first_applier: list[NodeId] = []
        self.acked: dict[int, bytes] = {}
        self.durable: dict[NodeId, HardState] = {}
        self.views: dict[NodeId, NodeView] = {}
        self.promises: dict[NodeId, Promise] = {}
        self.stats = OracleStats()
        self.configs = Configs(self.stats)
        self.seeds: dict[NodeId, Membership] = {}
        """Each node's membership before any configuration entry (its Config's voters)."""

    # -- log mirror and log matching ---------------------------------------

    def _extend(
        self, node: NodeId, view: NodeView, entries: tuple[Entry, ...] | list[Entry]
    ) -> None:
        first = entries[0].index
        if first > len(view.log) + 1:
            raise Violation(
                "log shape", f"node {node} got entry {first} after {len(view.log)}", node
            )
        del view.log[first - 1 :]
        del view.digests[first - 1 :]
        self.configs.extend(node, view, entries)
        prev = view.digests[-1] if view.digests else EMPTY_DIGEST
        table = self.by_index_term
        for e in entries:
            if e.index != len(view.log) + 1:
                raise Violation("log shape", f"node {node}: entry {e.index} out of place", node)
            d = chain(prev, e)
            key = (e.index, e.term)
            seen = table.setdefault(key, d)
            if seen != d:
                raise Violation(
                    "log matching",
                    f"node {node} holds {describe.entry(e)} but another log holding "
                    f"term {e.term} at index {e.index} differs at or before it",
                    node,
                )
            view.log.append(e)
            view.digests.append(d)
            prev = d

    # -- hooks -------------------------------------------------------------

    def on_start(self, node: NodeId, raw: RawNode, disk: SimDisk) -> None:
        """A node (re)started from ``disk``: term and vote must not go back."""
        r = raw.raft
        self.seeds[node] = Membership.of(r.cfg.voters)
        now = HardState(r.term, r.vote, r.log.committed)
        old = self.durable.get(node)
        if old is not None:
            _monotonic(node, old, now, "restart")
        self._check_promises(node, now, disk)
        view = self._durable_view(node, disk, now, r.log.applied + 1)
        if r.log.entries != view.log[disk.base_index :]:
            raise Violation("restart", f"node {node} did not recover its durable log", node)

    def on_send(self, m: Message) -> None:
        """A message left its node: remember votes granted and appends acknowledged."""
        if isinstance(m, VoteResponse):
            if m.granted and not m.pre:
                p = self.promises.setdefault(m.src, Promise())
                if m.term >= p.vote_term:
                    p.vote_term, p.vote = m.term, m.dst
        elif isinstance(m, AppendResponse) and m.success and m.index > 0:
            p = self.promises.setdefault(m.src, Promise())
            if (m.term, m.index) > (p.ack_term, p.ack_index):
                view = self.views.get(m.src)
                if view is not None and m.index <= len(view.log):
                    p.ack_term, p.ack_index = m.term, m.index
                    p.ack_entry_term = view.log[m.index - 1].term

    def _check_promises(self, node: NodeId, hs: HardState, disk: SimDisk) -> None:
        p = self.promises.get(node)
        if p is None:
            return
        if p.vote_term > hs.term or (p.vote_term == hs.term and hs.vote != p.vote):
            raise Violation(
                "promise durable",
                f"node {node} granted its vote in term {p.vote_term} to {p.vote} but restarted "
                f"with term {hs.term} vote {hs.vote}",
                node,
            )
        if p.ack_term > hs.term:
            raise Violation(
                "promise durable",
                f"node {node} acknowledged appends in term {p.ack_term} but restarted in "
                f"term {hs.term}",
                node,
            )
        if p.ack_term == hs.term and p.ack_index > disk.base_index:
            e = disk.entry(p.ack_index)
            if e is None or e.term != p.ack_entry_term:
                raise Violation(
                    "promise durable",
                    f"node {node} acknowledged index {p.ack_index} (term {p.ack_entry_term}) "
                    f"in term {p.ack_term} but restarted holding {_maybe(e)} there",
                    node,
                )

    def on_crash(self, node: NodeId, disk: SimDisk) -> None:
        """A node went down: from now on its log is its durable log."""
        self._durable_view(node, disk, disk.hard_state, 0)
        self._check_protected()

    def _durable_view(self, node: NodeId, disk: SimDisk, hs: HardState, nxt: int) -> NodeView:
        """Mirror a log read from ``disk``: its compacted prefix is the committed one."""
        view = NodeView(hard_state=hs, next_apply=nxt)
        self.configs.seeded(view, self.seeds.get(node, Membership(())))
        self._reset(view, disk.base_index)
        self.views[node] = view
        if disk.entries:
            self._extend(node, view, disk.entries)
        return view

    def _reset(self, view: NodeView, index: int) -> None:
        """``view``'s log becomes the committed prefix through ``index`` (a snapshot's)."""
        if index > len(self.committed):
            raise Violation("snapshot", f"a snapshot through {index}, beyond every applied index")
        view.log[:] = self.committed_entries[:index]
        view.digests[:] = self.committed[:index]
        self.configs.reset(view, index)

    def _check_protected(self) -> None:
        check_protected(self.views, self.committed)

    def on_durable(self, node: NodeId, disk: SimDisk) -> None:
        """The disk's durable part changed (a sync completed, a torn crash)."""
        new = disk.hard_state
        old = self.durable.get(node)
        if old is not None and old != new:
            _monotonic(node, old, new, "durable hard state")
        self.durable[node] = new
        n = disk.last_index
        if new.commit > n:
            raise Violation(
                "durable state", f"node {node}: commit {new.commit} beyond durable log {n}", node
            )

    def on_ready(self, node: NodeId, rd: Ready) -> None:
        view = self.views[node]
        hs = rd.hard_state
        if rd.snapshot is not None:
            self._reset(view, rd.snapshot.index)
            view.next_apply = rd.snapshot.index + 1
            self.stats.installs += 1
        if rd.entries:
            was_leader = view.role is Role.LEADER
            still = rd.soft_state is None or rd.soft_state.role is Role.LEADER
            same_term = hs is None or hs.term == view.hard_state.term
            first = rd.entries[0].index
            if was_leader and still and same_term and first <= len(view.log):
                raise Violation(
                    "leader append-only",
                    f"leader {node} of term {view.hard_state.term} overwrites its log "
                    f"from index {first} (last {len(view.log)})",
                    node,
                )
            self._extend(node, view, rd.entries)
        if hs is not None:
            _monotonic(node, view.hard_state, hs, "hard state")
            if hs.commit < view.hard_state.commit:
                raise Violation(
                    "hard state",
                    f"node {node} commit went back {view.hard_state.commit} -> {hs.commit}",
                    node,
                )
            view.hard_state = hs
        if rd.soft_state is not None:
            view.role = rd.soft_state.role

    def on_applied(self, node: NodeId, applied: Applied, term: int, disk: SimDisk) -> None:
        e = applied.entry
        view = self.views[node]
        i = e.index
        if i != view.next_apply:
            raise Violation(
                "apply order", f"node {node} applied {i}, expected {view.next_apply}", node
            )
        view.next_apply = i + 1
        if i > len(view.log) or view.log[i - 1] != e:
            raise Violation(
                "apply order", f"node {node} applied {describe.entry(e)}, not in its log", node
            )
        if disk.entry(i) != e:
            raise Violation(
                "applied before durable",
                f"node {node} applied {describe.entry(e)} but its disk holds "
                f"{_maybe(disk.entry(i))} at {i}",
                node,
            )
        d = view.digests[i - 1]
        k = len(self.committed)
        if i <= k:
            if self.committed[i - 1] != d:
                raise Violation(
                    "state machine safety",
                    f"node {node} applied {describe.entry(e)} at index {i}, but node "
                    f"{self.first_applier[i - 1]} applied a different entry (or prefix) there",
                    node,
                )
            if term < self.commit_term[i - 1]:
                self.commit_term[i - 1] = term
            first = self.outcomes[i - 1]
            if first != (applied.verdict, applied.admission, applied.result):
                raise Violation(
                    "replica determinism",
                    f"node {node} applied index {i} with outcome {_outcome(applied)}, node "
                    f"{self.first_applier[i - 1]} with {first[0].value}/{first[1]}/{first[2]!r}",
                    node,
                )
        elif i == k + 1:
            self.committed.append(d)
            self.committed_entries.append(e)
            self.commit_term.append(term)
            self.first_applier.append(node)
            self.configs.on_committed(node, e, self.leaders)
            self._check_protected()
            self._first_application(node, applied)
        else:
            raise Violation("apply order", f"node {node} applied {i} before anyone applied {k + 1}")
        ack = self.acked.get(i)
        if ack is not None and ack != d:
            raise Violation("acknowledged write lost", f"node {node} applied another entry at {i}")

    def after_event(self, node: NodeId, raw: RawNode) -> None:
        """Role checks once a node has handled an event and drained its Readies."""
        r = raw.raft
        self.configs.check_agrees(node, self.views[node], r.membership)
        if r.role is not Role.LEADER:
            return
        term = r.term
        seen = self.leaders.get(term)
        if seen == node:
            return
        if seen is not None:
            raise Violation(
                "election safety", f"term {term} has two leaders: {seen} and {node}", node
            )
        self.leaders[term] = node
        self.stats.elections += 1
        self.stats.max_term = max(self.stats.max_term, term)
        self._check_completeness(node, term)
        self._check_protected()

    def _check_completeness(self, node: NodeId, term: int) -> None:
        view = self.views[node]
        ct = self.commit_term
        i = len(ct)
        while i > 0 and ct[i - 1] >= term:
            i -= 1
        if i == 0:
            return
        if i > len(view.log) or view.digests[i - 1] != self.committed[i - 1]:
            raise Violation(
                "leader completeness",
                f"node {node} became leader of term {term} without committed entry {i} "
                f"(its log: last {len(view.log)}, at {i}: "
                f"{_maybe(view.log[i - 1] if i <= len(view.log) else None)})",
                node,
            )

    # -- the node layer and its clients -----------------------------------------

    def on_propose(self, env: Envelope, true_wall_ms: int) -> None:
        """A node proposed ``env`` (its true wall time is the simulation's clock)."""
        ident = (env.origin, env.incarnation, env.request)
        self.submitted[ident] = env.command
        if env.time_ms:
            self.stamped_at[ident] = true_wall_ms

    def _first_application(self, node: NodeId, applied: Applied) -> None:
        """Index ``i`` is committed: judge what taking effect it did."""
        i = applied.entry.index
        env = applied.envelope
        self.outcomes.append((applied.verdict, applied.admission, applied.result))
        ident = None if env is None else (env.origin, env.incarnation, env.request)
        self.identity_at.append(ident)
        self.command_at.append(b"" if env is None else env.command)
        if env is None or ident is None or applied.verdict not in _TAKES_EFFECT:
            return
        was = self.executed.setdefault(ident, i)
        if was != i:
            raise Violation(
                "exactly once", f"request {ident} took effect at {was} and again at {i}", node
            )
        if ident in self.refused:
            raise Violation(
                "refused but applied", f"request {ident} was answered Refused, took effect at {i}"
            )
        if env.client:
            pair = (env.client, env.seq)
            was = self.pairs.setdefault(pair, i)
            if was != i:
                raise Violation(
                    "exactly once", f"session pair {pair} ran at {was} and again at {i}", node
                )
        if applied.verdict is Verdict.EXECUTED:
            self._check_token(i, env.command, node)
        if env.time_ms:
            self._check_clock(ident, env.time_ms, i)

    def _check_token(self, i: int, command: bytes, node: NodeId) -> None:
        argv = decode_command(command)
        if argv is None or len(argv) != 3 or argv[0] not in (b"SET", b"APPEND"):
            return
        token = argv[2].decode(errors="replace")
        was = self.tokens.setdefault(token, i)
        if was != i:
            raise Violation(
                "exactly once",
                f"the write of {token!r} took effect at {was} and again at {i}",
                node,
            )
        if token in self.failed_tokens:
            raise Violation(
                "refused but applied", f"the write of {token!r} failed for its client but "
                f"took effect at {i}"
            )  # fmt: skip

    def _check_clock(self, ident: Identity, stamp: int, i: int) -> None:
        true = self.stamped_at.get(ident)
        if true is None:
            return
        offset = stamp - true
        if self.epoch_offset is None:
            self.epoch_offset = max(0, offset)
        if self.first_stamped is None:
            self.first_stamped = true
        self.log_time = max(self.log_time, stamp)
        drift = (
            int(self.clock_drift * max(0, true - self.first_stamped)) + 1 if self.clock_drift else 0
        )
        allowed = self.epoch_offset + self.max_lead_ms + drift
        if offset > allowed:
            raise Violation(
                "log clock",
                f"entry {i} moved log time {offset} ms past the true time of its stamp "
                f"(allowed {allowed} ms: the first stamp's offset plus the lead and drift)",
            )

    def on_reply(self, node: NodeId, incarnation: int, reply: Reply) -> None:
        """Node ``node`` (life ``incarnation``) answered a request."""
        ident = (node, incarnation, reply.request)
        if reply.read_at:
            if reply.read_at > len(self.outcomes):
                raise Violation(
                    "reply routing", f"node {node} served a read at {reply.read_at}, which "
                    "nobody applied", node,
                )  # fmt: skip
            return  # a read's value is judged by the linearizability checker
        if reply.error is None:
            i = reply.index
            if not 1 <= i <= len(self.outcomes):
                raise Violation(
                    "reply routing", f"node {node} answered request {ident} from index {i}, "
                    "which is not committed", node,
                )  # fmt: skip
            verdict, _, result = self.outcomes[i - 1]
            if self.identity_at[i - 1] != ident or verdict not in _ANSWERS:
                raise Violation(
                    "reply routing",
                    f"node {node} answered request {ident} from entry {i}, which carries "
                    f"request {self.identity_at[i - 1]} ({verdict.value})",
                    node,
                )
            if self.submitted.get(ident) != self.command_at[i - 1]:
                raise Violation(
                    "reply routing",
                    f"node {node} answered request {ident} from entry {i}, whose command is "
                    "another request's",
                    node,
                )
            if reply.value != result:
                raise Violation(
                    "reply routing",
                    f"node {node} answered request {ident} with {reply.value!r}; entry {i} "
                    f"produced {result!r}",
                    node,
                )
        elif type(reply.error).__name__ == "Refused":
            if ident in self.executed:
                raise Violation(
                    "refused but applied",
                    f"node {node} answered Refused to request {ident}, which took effect at "
                    f"{self.executed[ident]}",
                    node,
                )
            self.refused.add(ident)

    def on_member_reply(self, node: NodeId, reply: Reply) -> None:
        """Node ``node`` answered a membership change request."""
        self.configs.check_reply(node, reply, self.committed_entries)

    def on_write_ended(self, token: str, outcome: str) -> None:
        """A client's write of ``token`` ended ``ok``, ``fail`` or ``info``."""
        if outcome == "ok":
            self.acked_tokens.add(token)
            i = self.tokens.get(token)
            if i is None:
                raise Violation("acknowledged write lost", f"write of {token!r} acknowledged "
                                "but no committed entry carries it")  # fmt: skip
            self.acked[i] = self.committed[i - 1]
        elif outcome == "fail":
            if token in self.tokens:
                raise Violation(
                    "refused but applied",
                    f"the write of {token!r} failed for its client but took effect at "
                    f"{self.tokens[token]}",
                )
            self.failed_tokens.add(token)

    def commit_index(self) -> int:
        return len(self.committed)


def _outcome(a: Applied) -> str:
    return f"{a.verdict.value}/{a.admission}/{a.result!r}"


def _maybe(e: Entry | None) -> str:
    return "nothing" if e is None else describe.entry(e)


def _monotonic(node: NodeId, old: HardState, new: HardState, what: str) -> None:
    if new.term < old.term:
        raise Violation(
            "term monotonic", f"{what} of node {node}: term {old.term} -> {new.term}", node
        )
    if new.term == old.term and old.vote != NONE and new.vote != old.vote:
        raise Violation(
            "vote monotonic",
            f"{what} of node {node}: vote in term {new.term} changed {old.vote} -> {new.vote}",
            node,
        )
