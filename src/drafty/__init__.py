"""drafty: a Raft consensus library and a replicated key-value service.

The layers, from the bottom up (imports only point down):

- :mod:`drafty.core`: the Raft protocol, pure and deterministic (no I/O).
- :mod:`drafty.sim`: an in-memory cluster that drives the core, for tests,
  the demo and (later) the fault simulator.
"""

__version__ = "0.1.0"
