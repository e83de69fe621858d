"""Client histories: invoke / ok / fail / info events, written as JSON lines.

Theory of operation
-------------------
The workload reports every operation's call and completion here, with the
virtual time they happened at. :class:`History` numbers the events in order
(``index``) and serialises them in the format of
/work/shared/histories/README.md, so drafty's linearizability checker reads
simulator histories exactly as it reads those recorded from real processes::

    {"process": 3, "type": "invoke", "f": "append", "key": "1", "value": "x 3 7 y",
     "index": 17, "time": 52000000}

``time`` is virtual nanoseconds, so two runs of a seed write identical files.

Invariants
----------
- Events are recorded in non-decreasing virtual time; ``index`` is the
  position in the file.
- A process has at most one operation outstanding; ``info`` ends a process
  (the workload continues under a new process number).
- ``fail`` is used only when the operation certainly had no effect, and then
  carries an ``error``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..check import check_history

JsonValue = str | int | None
CHECK_MAX_STATES = 1_000_000
"""Most search states the checker may spend on one run's history before
"unknown" (about 300 MB at most; counted, not timed, so a seed's verdict
never depends on the machine)."""


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    process: int
    type: str
    """``invoke``, ``ok``, ``fail`` or ``info``."""
    f: str
    key: str
    value: JsonValue
    index: int
    time_ns: int
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "key": self.key,
            "value": self.value,
        }
        if self.error is not None:
            d["error"] = self.error
        d["index"] = self.index
        d["time"] = self.time_ns
        return d


@dataclass(slots=True)
class History:
    """The ordered record of one run's client events."""

    events: list[HistoryEvent] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def _add(
        self,
        process: int,
        kind: str,
        f: str,
        key: str,
        value: JsonValue,
        time_ms: int,
        error: str | None = None,
    ) -> None:
        self.counts[kind] += 1
        ev = HistoryEvent(
            process, kind, f, key, value, len(self.events), time_ms * 1_000_000, error
        )
        self.events.append(ev)

    def invoke(self, process: int, f: str, key: str, value: JsonValue, time_ms: int) -> None:
        self._add(process, "invoke", f, key, value, time_ms)

    def complete(
        self,
        process: int,
        kind: str,
        f: str,
        key: str,
        value: JsonValue,
        time_ms: int,
        error: str | None = None,
    ) -> None:
        """An ``ok`` (``value`` is what a ``get`` read), ``fail`` (with ``error``) or ``info``."""
        assert kind in ("ok", "fail", "info")
        self._add(process, kind, f, key, value, time_ms, error)

    def dicts(self) -> list[dict[str, object]]:
        """The events as the checker reads them (the JSON objects of the file)."""
        return [e.to_dict() for e in self.events]

    def judge(self) -> tuple[str, str]:
        """The linearizability checker's verdict (``ok``, ``violation`` or
        ``unknown``) on this history, with its explanation."""
        result = check_history(self.dicts(), model="kv", max_states=CHECK_MAX_STATES)
        return result.verdict.name.lower(), result.explanation

    def to_jsonl(self) -> str:
        return "".join(e.to_json() + "\n" for e in self.events)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_jsonl(), encoding="utf-8")
