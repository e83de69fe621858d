"""drafty.torture: real ``drafty serve`` processes on a real, partitioned network.

Theory of operation
-------------------
``drafty torture`` (:mod:`.cli`) runs one fault test end to end
(:mod:`.runner`): a private network of one Linux network namespace per node
behind a bridge (:mod:`.netns`; loopback with process faults only when that
is impossible), the node processes (:mod:`.cluster`), concurrent clients on
a few registers over plain RESP (:mod:`.workload`, :mod:`.resp`) recording a
history (:mod:`.history`), a seeded nemesis of partitions, one-way loss,
kills and pauses (:mod:`.faults`), the time each node takes to serve a write
after every heal (:mod:`.probe`), and at the end the linearizability
checker's verdict and a report (:mod:`.report`).

Usage::

    from drafty.torture.runner import Options, run
    status, report = run(Options(seconds=30, seed=3))
"""

from .runner import Options, run

__all__ = ["Options", "run"]
