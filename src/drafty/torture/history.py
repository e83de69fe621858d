"""Recording a client history, and what each reply means for it.

Theory of operation
-------------------
The clients do register operations (``read``/``write``/``cas``) on a few keys
and the history is written in the shared JSON-lines format
(/work/shared/histories/README.md), which :mod:`drafty.check` judges.

:func:`classify` is the single, pure place where a reply (or the exception
that stood in for one) becomes an event type, exactly as the service promises
(:mod:`drafty.service.commands`):

- ``-TRYAGAIN ...``: the command certainly had no effect -> ``fail`` with an
  ``error`` field (the checker ignores it);
- a ``CAS`` answered ``0`` -> ``fail`` *without* an error: an observation
  that the register did not hold ``from``;
- ``-UNCERTAIN ...``, a timeout, or a connection lost after the command was
  sent -> ``info`` (it may or may not have happened); the client then
  continues under a new process number;
- any other error reply (``-ERR ...``) or a reply of the wrong shape is a bug
  in the service: the operation is recorded as ``info`` (its effect is not
  known, so the history stays sound) and the outcome carries ``unexpected``
  so the run reports it and fails.

:class:`Recorder` appends events in real-time order (the clients all run on
one event loop, so the order of the calls is the order things happened),
numbers them (``index``) and stamps them (``time``, nanoseconds since the
recorder was made), and enforces one outstanding operation per process.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .resp import Reply, ReplyError

Value = int | None | list[int | None]
"""Register values: integers (each write's is distinct); cas carries ``[from, to]``."""


@dataclass(frozen=True)
class Outcome:
    """How an operation completes: ``type`` is ``ok``, ``fail`` or ``info``."""

    type: str
    value: Value
    """The completion's value: what was read for a read, the invoke's value otherwise."""
    error: str | None = None
    """Why it failed or is unknown (a ``fail`` with an error is ignored by the checker)."""
    unexpected: str | None = None
    """Set when the reply shows a bug in the service: the run fails."""


def command(f: str, key: str, value: Value) -> tuple[str | int, ...]:
    """The Redis command for a register operation."""
    if f == "read":
        return ("GET", key)
    if f == "write":
        return ("SET", key, str(value))
    if f == "cas" and isinstance(value, list) and len(value) == 2:
        return ("CAS", key, str(value[0]), str(value[1]))
    raise ValueError(f"no command for {f} {value!r}")


def classify(f: str, value: Value, reply: Reply | BaseException) -> Outcome:
    """The outcome of operation ``f`` (invoked with ``value``) given its reply."""
    if isinstance(reply, TimeoutError):
        return Outcome("info", value, "timeout")
    if isinstance(reply, BaseException):
        return Outcome("info", value, f"no reply: {reply}")
    if isinstance(reply, ReplyError):
        if reply.code == "TRYAGAIN":
            return Outcome("fail", value, reply.text)
        if reply.code == "UNCERTAIN":
            return Outcome("info", value, reply.text)
        return Outcome("info", value, reply.text, unexpected=f"{f}: error reply -{reply.text}")
    if f == "read":
        if reply is None:
            return Outcome("ok", None)
        if isinstance(reply, bytes) and reply.isascii() and reply.lstrip(b"-").isdigit():
            return Outcome("ok", int(reply))
    elif f == "write":
        if reply == "OK":
            return Outcome("ok", value)
    elif f == "cas":
        if reply == 1:
            return Outcome("ok", value)
        if reply == 0:
            return Outcome("fail", value)
    shown = reply if not isinstance(reply, bytes) else reply[:80]
    return Outcome("info", value, "bad reply", unexpected=f"{f}: unexpected reply {shown!r}")


class Recorder:
    """The history of a run, in real-time order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._t0 = time.monotonic_ns()
        self._open: dict[int, tuple[str, str]] = {}
        self._next_process = 0

    def new_process(self) -> int:
        """A process number never used before."""
        self._next_process += 1
        return self._next_process

    def invoke(self, process: int, f: str, key: str, value: Value, node: int) -> None:
        if process in self._open:
            raise RuntimeError(f"process {process} already has an operation outstanding")
        self._open[process] = (f, key)
        self._add(process, "invoke", f, key, None if f == "read" else value, node=node)

    def complete(self, process: int, f: str, key: str, outcome: Outcome, node: int) -> None:
        if self._open.pop(process, None) != (f, key):
            raise RuntimeError(f"process {process} completes {f} {key} it did not invoke")
        extra: dict[str, Any] = {"node": node}
        if outcome.error is not None:
            extra["error"] = outcome.error
        self._add(process, outcome.type, f, key, outcome.value, **extra)

    def _add(self, process: int, kind: str, f: str, key: str, value: Value, **extra: Any) -> None:
        self.events.append(
            {
                "process": process,
                "type": kind,
                "f": f,
                "key": key,
                "value": value,
                "index": len(self.events),
                "time": time.monotonic_ns() - self._t0,
                **extra,
            }
        )

    def outstanding(self) -> int:
        return len(self._open)

    def counts(self) -> dict[str, dict[str, int]]:
        """Completed operations by ``f`` and outcome (``fail`` split by whether it has an error)."""
        c: Counter[tuple[str, str]] = Counter()
        for e in self.events:
            if e["type"] == "invoke":
                continue
            kind = e["type"]
            if kind == "fail":
                kind = "fail (no effect)" if "error" in e else "fail (cas mismatch)"
            c[e["f"], kind] += 1
        out: dict[str, dict[str, int]] = {}
        for (f, kind), n in sorted(c.items()):
            out.setdefault(f, {})[kind] = n
        return out

    def write_jsonl(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as out:
            for e in self.events:
                out.write(json.dumps(e, separators=(",", ":")) + "\n")
