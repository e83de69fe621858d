"""What a simulation run is made of: its settings, and the per-seed scenario.

Theory of operation
-------------------
:class:`SimConfig` is what the caller chooses (seed, cluster size, length,
fault kinds, hooks for buggy cores and a custom state machine model).
:class:`Scenario` is everything else, drawn from the run's single
``random.Random`` before anything happens, in a fixed order: PreVote,
CheckQuorum and proposal forwarding on or off, heartbeat period, inflight
window, message byte budget, network rates, disk latency, client count,
nemesis tempo, how often new leaders are hunted; then the node layer's
settings (session ttl, clock interval and lead), whether one node's wall
clock is skewed (and by how much), and how lossy the clients' links are.
A forced value (``config_overrides``, ``clients``, ``hunt``) still consumes
its draw, so forcing one choice leaves the others
of a seed unchanged.

Choices added later come from generators of their own, seeded from the seed
and a name (leases, transfers, membership changes), so that a seed that
does not use them runs exactly as it did before they existed: a share of
seeds runs the membership nemesis (:mod:`drafty.sim.members`), with a
per-seed bound on how far behind a learner may be promoted.

Invariants: :class:`Scenario.choose` draws the same number of values for
every configuration; :meth:`Scenario.config` always yields a valid Config.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ..core import Config, NodeId
from ..node import Node, NodeOptions, TransferLimits
from .nemesis import FAULT_KINDS
from .network import NetworkParams
from .replica import LayerFactory, NodeFactory, default_node_factory

ALL_FAULTS: frozenset[str] = frozenset(FAULT_KINDS)
_T = TypeVar("_T")


def parse_faults(text: str) -> frozenset[str]:
    """``all``, ``none`` or a comma list of :data:`FAULT_KINDS`."""
    text = text.strip()
    if text == "all":
        return ALL_FAULTS
    if text in ("none", ""):
        return frozenset()
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(kinds - ALL_FAULTS)
    if unknown:
        raise ValueError(f"unknown fault kind {', '.join(unknown)}; use {', '.join(FAULT_KINDS)}")
    return kinds


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One run. Everything not set here is drawn from the seed (:class:`Scenario`)."""

    seed: int = 0
    nodes: int = 5
    steps: int = 300
    faults: frozenset[str] = ALL_FAULTS
    tick_ms: int = 10
    election_ticks: int = 10
    clients: int | None = None
    hunt: float | None = None
    """Probability that a new leader is hunted (crashed or isolated at once); None: per seed."""
    snapshot_entries: int | None = None
    """Snapshot every this many applied entries (0: never); None: per seed."""
    config_overrides: Mapping[str, object] = field(default_factory=dict)
    """Config fields forced for every node (else drawn per seed)."""
    transfers: float | None = None
    """Probability per nemesis action of a leadership transfer; None: per seed."""
    members: bool | None = None
    """Run the membership nemesis (add, remove, replace nodes); None: per seed."""
    clock_rates: Mapping[int, float] = field(default_factory=dict)
    """Test-only: node -> how fast its clock runs (else drawn per seed); a
    rate past the lease's drift bound shows what the bound protects."""
    node_factory: NodeFactory = default_node_factory
    layer_factory: LayerFactory = Node
    """Builds each node layer (tests plant node-layer bugs here)."""
    check_linearizable: bool = True
    """Run the linearizability checker over the history at the end."""
    torn_records: bool = False
    """Torn crashes may split a Ready's writes (entries kept, hard state lost)."""
    liveness_timeouts: int = 10
    storm_events: int = 5000
    """Events per node in one step beyond which the run stops as a message storm
    (a runaway: bursts of a few thousand happen, and settle, in healthy runs)."""
    trace_len: int = 40
    verbose: int = 0
    # Test-only planted driver bugs (the oracle must catch them):
    ack_before_fsync: bool = False
    forget_vote_on_restart: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    """The per-seed random choices of a run."""

    prevote: bool
    check_quorum: bool
    forward_proposals: bool
    heartbeat_ticks: int
    max_inflight: int
    max_msg_bytes: int
    network: NetworkParams
    sync_ms: int
    clients: int
    nemesis_gap: tuple[int, int]
    hunt: float
    max_faulty: int
    """Most nodes down or paused at once (a minority in most seeds)."""
    options: NodeOptions
    skewed: NodeId
    """The one node whose wall clock is off (0: none); only its clock jumps."""
    skew_ms: int
    client_drop: float
    """Probability that a client's request or a reply to it is lost."""
    lease_reads: bool = False
    """Leaders answer reads from their lease (needs CheckQuorum)."""
    transfer_rate: float = 0.0
    """Probability per nemesis action that the leader hands over (own generator)."""
    clock_rates: tuple[float, ...] = ()
    """Per node (node i at ``[i - 1]``), how fast its clock runs; within the
    lease's drift bound unless ``SimConfig.clock_rates`` plants otherwise."""
    members: bool = False
    """The membership nemesis runs (own generator; see the module docstring)."""
    promote_lag: int = 1000
    """``Config.promote_max_lag_entries`` (small when ``members``, so that
    promotions are refused until the learner caught up)."""

    @classmethod
    def choose(cls, rng: random.Random, cfg: SimConfig) -> Scenario:
        net = NetworkParams.choose(rng) if "network" in cfg.faults else NetworkParams.calm()
        gap_lo = rng.choice((20, 50, 100, 200, 400))
        sc = cls(
            prevote=rng.random() < 0.7,
            check_quorum=rng.random() < 0.7,
            forward_proposals=rng.random() < 0.3,
            heartbeat_ticks=rng.choice((1, 2, 3)),
            max_inflight=rng.choice((1, 4, 256)),
            max_msg_bytes=rng.choice((150, 1024, 1 << 20)),
            network=net,
            sync_ms=rng.choice((1, 3, 10)),
            clients=_pick(rng.randint(2, 8), cfg.clients),
            nemesis_gap=(gap_lo, gap_lo * rng.choice((2, 5))),
            hunt=_pick(rng.choice((0.0, 0.3, 0.8)), cfg.hunt),
            max_faulty=cfg.nodes if rng.random() < 0.25 else (cfg.nodes - 1) // 2,
            options=NodeOptions(
                request_timeout_ms=5 * cfg.election_ticks * cfg.tick_ms,
                session_ttl_ms=rng.choice((150, 400, 2000, 600_000)),
                clock_interval_ms=rng.choice((20, 50, 200)),
                max_clock_lead_ms=rng.choice((0, 50, 300)),
            ),
            skewed=rng.choice((0, rng.randint(1, cfg.nodes))),
            skew_ms=rng.choice((-600_000, -5_000, 200, 5_000, 600_000)),
            client_drop=rng.choice((0.0, 0.0, 0.02, 0.1)) if "network" in cfg.faults else 0.0,
        )
        # Drawn last, so the draws above stay what they were before snapshots.
        sc = replace(sc, options=_snapshot_options(rng, cfg, sc.options))
        # Leases come from their own generator, so that every seed without
        # them runs exactly as before leases existed (regression seeds stay).
        lrng = random.Random(f"lease-{cfg.seed}")
        lease = lrng.random() < 0.4 and sc.check_quorum
        lease = lease and cfg.election_ticks - 3 > sc.heartbeat_ticks
        lease = bool(cfg.config_overrides.get("lease_reads", lease))
        # Natural drift, well inside the default bound (2 / (election - 1)).
        rates = tuple(1 + lrng.uniform(-0.04, 0.04) if lease else 1.0 for _ in range(cfg.nodes))
        rates = tuple(cfg.clock_rates.get(i + 1, r) for i, r in enumerate(rates))
        options = replace(sc.options, tick_ms=cfg.tick_ms)
        trng = random.Random(f"transfers-{cfg.seed}")
        transfers = trng.choice((0.0, 0.0, 0.1, 0.3))
        transfers = transfers if cfg.transfers is None else cfg.transfers
        quorum = sc.check_quorum or lease  # leases need CheckQuorum
        mrng = random.Random(f"members-{cfg.seed}")
        members = _pick(mrng.random() < 0.35, cfg.members)
        lag = mrng.choice((0, 3, 20, 200)) if members else 1000
        return replace(sc, lease_reads=lease, clock_rates=rates, options=options,
                       check_quorum=quorum, transfer_rate=transfers, members=members,
                       promote_lag=lag)  # fmt: skip

    def config(self, node: NodeId, cfg: SimConfig, *, joiner: bool = False) -> Config:
        """Node ``node``'s Config: a founder's, or (``joiner``) one that joins
        the running cluster knowing no membership."""
        fields: dict[str, object] = {
            "election_ticks": cfg.election_ticks,
            "heartbeat_ticks": self.heartbeat_ticks,
            "max_inflight": self.max_inflight,
            "max_msg_bytes": self.max_msg_bytes,
            "prevote": self.prevote,
            "check_quorum": self.check_quorum,
            "forward_proposals": self.forward_proposals,
            "lease_reads": self.lease_reads,
            "promote_max_lag_entries": self.promote_lag,
        }
        fields.update(cfg.config_overrides)
        voters = () if joiner else tuple(range(1, cfg.nodes + 1))
        return Config(node, voters, **fields)  # type: ignore[arg-type]


def _snapshot_options(rng: random.Random, cfg: SimConfig, base: NodeOptions) -> NodeOptions:
    """Small snapshot thresholds, so that snapshots, compaction and transfers
    happen many times per run (0: this seed takes no snapshots)."""
    entries = _pick(rng.choice((0, 8, 20, 50)), cfg.snapshot_entries)
    timeout = cfg.election_ticks * cfg.tick_ms
    return replace(
        base,
        snapshot_entries=entries,
        snapshot_bytes=rng.choice((0, 0, 1500)) if entries else 0,
        snapshot_keep_entries=rng.choice((0, 3, 10, 30)),
        snapshot_retry_ms=timeout,
        transfer=TransferLimits(
            chunk_bytes=rng.choice((64, 512, 4096)),
            window_chunks=rng.choice((1, 2, 4)),
            ack_timeout_ms=timeout,
            max_resends=rng.choice((1, 3)),
            receive_idle_ms=5 * timeout,
        ),
    )


def _pick(drawn: _T, forced: _T | None) -> _T:
    """The forced value if any; the draw is made anyway so other draws stay put."""
    return drawn if forced is None else forced
