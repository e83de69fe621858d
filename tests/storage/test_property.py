"""Random append / replace-suffix / compact / hard state / sync / reopen / crash sequences
checked against an in-memory model (hypothesis stateful testing).

A crash drops what was never fsynced (files cut back to their size at their last
fsync, plus a random torn part of the unsynced tail). The recovered log must then
equal the model as it was after some write between the last sync and the crash:
nothing synced is lost, nothing is invented, and a batch of entries + hard state
may be cut only between its two records.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from drafty.core.types import HardState
from drafty.storage import WriteAheadLog

from .helpers import FakeDisk, LogImage, Model, image, make_entries


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="drafty-prop-"))
        self.disk = FakeDisk(real=False)
        self._patch = self.disk.installed()
        self._patch.__enter__()
        self.warnings = _Count()
        logging.getLogger("drafty.storage").addHandler(self.warnings)
        self.log = WriteAheadLog.open(self.dir, segment_size=1024)
        self.model = Model()
        self.pending: list[tuple[int, LogImage]] = [(0, self.model.image())]
        """(write sequence, image) of every state a crash may recover, oldest first."""
        self.term = 1
        self.vote = 1

    def teardown(self) -> None:
        self.log.close(sync=False)
        self._patch.__exit__(None, None, None)
        logging.getLogger("drafty.storage").removeHandler(self.warnings)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _floor(self) -> int:
        """Lowest index a new entry may take: above compaction and commit."""
        return max(self.model.base, self.model.hs.commit) + 1

    def _reopen(self) -> None:
        self.warnings.count = 0
        self.log = WriteAheadLog.open(self.dir, segment_size=1024)
        assert self.warnings.count <= 1
        event(f"reopened with {len(self.log.segments)} segment(s), {self.warnings.count} warning")

    def _wrote(self, seq: int) -> None:
        """Record the state after write ``seq``; forget states a segment roll made durable."""
        self.pending.append((seq, self.model.image()))
        synced = self.log.synced_seq
        floor = max(i for i, (s, _) in enumerate(self.pending) if s <= synced)
        del self.pending[:floor]

    @rule(vote=st.integers(0, 3))
    def new_term(self, vote: int) -> None:
        self.term += 1
        self.vote = vote

    @rule(data=st.data(), n=st.integers(0, 6), size=st.integers(0, 200), with_hs=st.booleans())
    def append(self, data: st.DataObject, n: int, size: int, with_hs: bool) -> None:
        m = self.model
        first = data.draw(st.integers(self._floor(), m.last + 1), label="first")
        entries = make_entries(first, n, self.term, size)
        hs = None
        if with_hs:
            new_last = first + n - 1 if n else m.last
            commit = data.draw(st.integers(m.hs.commit, new_last), label="commit")
            hs = HardState(self.term, self.vote, commit)
        seq = self.log.append(entries, hs)
        m.append(entries)
        if hs is not None:
            self.pending.append((seq, m.image()))  # the batch may be torn between its records
            m.hs = hs
        self._wrote(seq)

    @rule(data=st.data())
    def set_hard_state(self, data: st.DataObject) -> None:
        m = self.model
        hs = HardState(self.term, self.vote, data.draw(st.integers(m.hs.commit, m.last)))
        seq = self.log.set_hard_state(hs)
        m.hs = hs
        self._wrote(seq)

    @rule(data=st.data())
    def truncate_suffix(self, data: st.DataObject) -> None:
        m = self.model
        index = data.draw(st.integers(self._floor(), m.last + 1))
        seq = self.log.truncate_suffix(index)
        m.truncate(index)
        self._wrote(seq)

    @precondition(lambda self: self.model.last > self.model.base)
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        m = self.model
        index = data.draw(st.integers(m.base + 1, m.last))
        seq = self.log.compact(index)
        m.compact(index)
        self._wrote(seq)

    @rule(data=st.data())
    def install_snapshot(self, data: st.DataObject) -> None:
        m = self.model
        index = data.draw(st.integers(max(m.base + 1, m.hs.commit), m.last + 3))
        term = data.draw(st.integers(1, self.term))
        seq = self.log.compact(index, term)
        m.compact(index, term)
        self._wrote(seq)

    @rule()
    def sync(self) -> None:
        assert self.log.sync() == self.log.written_seq
        self.pending = [(0, self.model.image())]

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self._reopen()
        assert image(self.log) == self.model.image()
        self.pending = [(0, self.model.image())]

    @rule(seed=st.integers(0, 2**32), torn=st.booleans())
    def crash(self, seed: int, torn: bool) -> None:
        self.log.close(sync=False)
        self.disk.crash(self.dir, random.Random(seed) if torn else None)
        self._reopen()
        got = image(self.log)
        possible = [img for _, img in self.pending]
        assert got in possible, "recovered a state that was never written or lost a synced one"
        if not torn:
            assert got == possible[0]  # exactly the synced state
        m = self.model
        m.base, m.base_term, entries, m.hs = got
        m.entries = list(entries)
        self.pending = [(0, got)]

    @invariant()
    def matches_model(self) -> None:
        m = self.model
        assert (self.log.base_index, self.log.last_index) == (m.base, m.last)
        assert self.log.term(m.base) == m.base_term
        assert image(self.log) == m.image()


LogMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogMachine = LogMachine.TestCase
