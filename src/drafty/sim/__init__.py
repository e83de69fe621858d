"""drafty.sim: drive the pure core in memory, deterministically.

- :class:`MemoryCluster`: nodes, disks and a hand-driven network, used by the
  scripted protocol tests and the demo.
- :func:`run_seed` / :class:`Simulation`: the fault simulator. N whole nodes
  (core, node layer, key-value store and service front) on virtual time with
  a lossy, partitionable network, disks that lose unsynced writes, skewed and
  jumping clocks, crashes, pauses, membership changes (nodes added, removed,
  replaced), clients running the native client's retry
  rules and recording a history, and an :class:`Oracle` checking Raft's
  safety invariants and every client outcome after every event; the history
  is then judged by the linearizability checker. Run it from the command
  line with ``drafty sim`` or ``python -m drafty.sim``.
"""

from .cluster import MemoryCluster, MemoryDisk, SimNode
from .disk import SimDisk
from .history import History, HistoryEvent
from .mirror import Violation
from .network import Network, NetworkParams
from .oracle import Oracle
from .replica import LayerFactory, NodeFactory, Replica, default_node_factory
from .report import SimResult, run_seed
from .runner import Simulation
from .scenario import ALL_FAULTS, Scenario, SimConfig, parse_faults
from .workload import Operation

__all__ = [
    "ALL_FAULTS",
    "History",
    "HistoryEvent",
    "LayerFactory",
    "MemoryCluster",
    "MemoryDisk",
    "Network",
    "NetworkParams",
    "NodeFactory",
    "Operation",
    "Oracle",
    "Replica",
    "Scenario",
    "SimConfig",
    "SimDisk",
    "SimNode",
    "SimResult",
    "Simulation",
    "Violation",
    "default_node_factory",
    "parse_faults",
    "run_seed",
]
