"""drafty.sim: drive the pure core in memory, deterministically.

- :class:`MemoryCluster`: nodes, disks and a hand-driven network, used by the
  scripted protocol tests and the demo.
- :func:`run_seed` / :class:`Simulation`: the fault simulator. N nodes on
  virtual time with a lossy, partitionable network, disks that lose unsynced
  writes, crashes, pauses, clients recording a history, and an
  :class:`Oracle` checking Raft's safety invariants after every event.
  Plug in your own state machine with a :class:`Model` (see
  :mod:`drafty.sim.kv`); run it from the command line with ``drafty sim`` or
  ``python -m drafty.sim``.
"""

from .cluster import MemoryCluster, MemoryDisk, SimNode
from .disk import SimDisk
from .history import History, HistoryEvent
from .kv import KvModel, KvStateMachine, Model, Operation, StateMachine
from .network import Network, NetworkParams
from .oracle import Oracle, Violation
from .replica import NodeFactory, Replica, default_node_factory
from .report import SimResult, run_seed
from .runner import Simulation
from .scenario import ALL_FAULTS, Scenario, SimConfig, parse_faults

__all__ = [
    "ALL_FAULTS",
    "History",
    "HistoryEvent",
    "KvModel",
    "KvStateMachine",
    "MemoryCluster",
    "MemoryDisk",
    "Model",
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
    "StateMachine",
    "Violation",
    "default_node_factory",
    "parse_faults",
    "run_seed",
]
