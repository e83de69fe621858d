"""drafty.sim: drive the pure core in memory, deterministically.

- :class:`MemoryCluster`: nodes, disks and a hand-driven network, used by the
  scripted protocol tests and the demo.
"""

from .cluster import MemoryCluster, MemoryDisk, SimNode

__all__ = ["MemoryCluster", "MemoryDisk", "SimNode"]
