"""Histories: JSON-lines events validated and paired into operations.

Theory of operation
-------------------
A history is a list of events in real-time order (the format of
/work/shared/histories/README.md)::

    {"process": 3, "type": "invoke", "f": "cas", "key": "r", "value": [1, 4], "index": 17}
    {"process": 3, "type": "ok",     "f": "cas", "key": "r", "value": [1, 4], "index": 18}

:func:`parse_lines` decodes the text (one JSON object per line; blank lines
are skipped) and :func:`parse_history` checks every event and pairs each
``invoke`` with the next completion (``ok``, ``fail`` or ``info``) of the same
process, giving one :class:`Operation` per invoke. An invoke still
outstanding at the end counts as ``info``. The model is given, or inferred
from the ``f`` names (read/write/cas: register; get/put/append: kv).

Events are checked strictly; anything off raises :class:`HistoryError` with
the line number (the 1-based position in the event list when the events did
not come from a file) and the reason: not a JSON object, a missing or
ill-typed field, an unknown ``type`` or ``f``, a completion without an
outstanding invoke of its process, a completion whose ``f``, ``key`` or
written value differs from its invoke (a ``fail`` or ``info`` may give
``null`` instead, as the etcd histories do), a process invoking while it has
an operation outstanding, or mixed models. The invoke of a read carries no
information (its value is type-checked and ignored); its ``ok`` carries what
was read.

Operations remember where they happened in two ways: ``call_at``/``ret_at``
are positions in the event list (the real-time order the search uses;
``ret_at`` is None for an unknown outcome, i.e. a return at infinity), and
``call_index``/``ret_index`` are the events' ``index`` fields (their
positions when absent), which is what reports show.

Invariants
----------
- ``History.ops`` is ordered by ``call_at``; ``ret_at`` is after ``call_at``.
- ``status == "info"`` exactly when ``ret_at`` is None.
- Values are hashable: cas ``[from, to]`` becomes a tuple.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .models import KV, MODEL_FUNCTIONS, READ_FUNCTIONS, REGISTER, model_name

COMPLETIONS = frozenset({"ok", "fail", "info"})
EVENT_TYPES = COMPLETIONS | {"invoke"}


class HistoryError(ValueError):
    """A malformed history: ``line`` (1-based, None if not tied to a line) and ``reason``."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Operation:
    """One invoke and its completion.

    ``value`` is the invoke's value (a ``(from, to)`` tuple for cas, None for
    reads); ``output`` is what an ok read returned (None otherwise);
    ``status`` is ``ok``, ``fail`` or ``info``; ``error`` whether a ``fail``
    carried an ``error`` field.
    """

    id: int
    process: int
    f: str
    key: str
    value: Hashable
    output: Hashable
    status: str
    error: bool
    call_at: int
    ret_at: int | None
    call_index: int
    ret_index: int | None
    call_line: int
    ret_line: int | None

    def describe(self) -> str:
        """``process 3 cas [1, 4] -> ok (events 17..18)``: one line for reports."""
        if self.f in READ_FUNCTIONS:
            shown = show_value(self.output) if self.status == "ok" else "?"
            what = f"{self.f} {self.key!r} -> {shown}"
        else:
            what = f"{self.f} {self.key!r} {show_value(self.value)}"
        status = "fail (error)" if self.error else self.status
        if self.ret_index is None:
            span = f"{self.call_index}.. (no return)"
        else:
            span = f"{self.call_index}..{self.ret_index}"
        return f"process {self.process} {what}: {status} (events {span})"


@dataclass(frozen=True, slots=True)
class History:
    """A validated history: its ``model``, ``ops`` in call order, and ``events`` count."""

    model: str
    ops: tuple[Operation, ...]
    events: int


def show_value(value: object, limit: int = 100) -> str:
    """A value as JSON (tuples as lists), cut to ``limit`` characters."""
    if isinstance(value, tuple):
        value = list(value)
    text = json.dumps(value)
    if len(text) > limit:
        text = f"{text[: limit - 12]}...{text[-8:]} ({len(text)} chars)"
    return text


def parse_lines(text: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The events of a JSON-lines text and the line number of each (blank lines skipped)."""
    events: list[dict[str, Any]] = []
    lines: list[int] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as e:
            raise HistoryError(n, f"not JSON: {e}") from None
        if not isinstance(event, dict):
            raise HistoryError(n, f"expected a JSON object, got {type(event).__name__}")
        events.append(event)
        lines.append(n)
    return events, lines


def infer_model(events: Sequence[Mapping[str, Any]], lines: Sequence[int] | None = None) -> str:
    """The model named by the events' ``f`` fields; HistoryError if unknown or mixed."""
    seen: dict[str, int] = {}
    for pos, event in enumerate(events):
        line = lines[pos] if lines is not None else pos + 1
        _require_object(event, line)
        f = _field(event, "f", str, line)
        models = [m for m, fs in MODEL_FUNCTIONS.items() if f in fs]
        if not models:
            raise HistoryError(line, f"unknown f {f!r} (expected read/write/cas or get/put/append)")
        seen.setdefault(models[0], line)
    if len(seen) > 1:
        raise HistoryError(
            max(seen.values()),
            f"mixes register operations (from line {seen[REGISTER]}) "
            f"and kv operations (from line {seen[KV]})",
        )
    return next(iter(seen), REGISTER)


def parse_history(
    events: Sequence[Mapping[str, Any]],
    model: str | None = None,
    lines: Sequence[int] | None = None,
) -> History:
    """Validate ``events`` and pair them into operations (see the module docstring).

    ``lines`` gives each event's line number for error messages (default:
    position + 1). ``model`` is ``register``, ``kv`` or ``kv-append``, or None
    to infer it.
    """
    if lines is not None and len(lines) != len(events):
        raise ValueError("lines must give one line number per event")
    if model is None:
        model = infer_model(events, lines)
    else:
        try:
            model = model_name(model)
        except ValueError as e:
            raise HistoryError(None, str(e)) from None
    functions = MODEL_FUNCTIONS[model]
    pending: dict[int, _Pending] = {}
    done: list[Operation] = []
    for pos, event in enumerate(events):
        line = lines[pos] if lines is not None else pos + 1
        _require_object(event, line)
        process = _field(event, "process", int, line)
        kind = _field(event, "type", str, line)
        if kind not in EVENT_TYPES:
            raise HistoryError(line, f"unknown type {kind!r} (expected invoke/ok/fail/info)")
        f = _field(event, "f", str, line)
        if f not in functions:
            raise HistoryError(line, f"unknown f {f!r} for the {model} model")
        key = _field(event, "key", str, line)
        if "value" not in event:
            raise HistoryError(line, "missing field 'value'")
        index = event.get("index", pos)
        if not _is_int(index):
            raise HistoryError(line, f"field 'index' must be an integer, got {index!r}")
        if "time" in event and not _is_int(event["time"]):
            raise HistoryError(line, f"field 'time' must be an integer, got {event['time']!r}")
        raw = event["value"]
        if kind == "invoke" or kind == "ok" or raw is not None:
            value = _value(model, f, raw, line)
        else:
            value = None  # a fail or info may leave its value out
        if kind == "invoke":
            if process in pending:
                raise HistoryError(
                    line,
                    f"process {process} invokes {f} while its {pending[process].f} "
                    f"from line {pending[process].line} is outstanding",
                )
            pending[process] = _Pending(process, f, key, value, pos, index, line)
            continue
        call = pending.pop(process, None)
        if call is None:
            raise HistoryError(line, f"{kind} of process {process} without a matching invoke")
        if call.f != f or call.key != key:
            raise HistoryError(
                line,
                f"{kind} {f} {key!r} completes process {process}'s invoke of "
                f"{call.f} {call.key!r} (line {call.line})",
            )
        output: Hashable = None
        if f in READ_FUNCTIONS:
            if kind == "ok":
                output = value
        elif value != call.value and not (value is None and kind != "ok"):
            raise HistoryError(
                line,
                f"{kind} value {show_value(value)} differs from the invoke's "
                f"{show_value(call.value)} (line {call.line})",
            )
        has_error = kind == "fail" and event.get("error") is not None
        ret_at = None if kind == "info" else pos
        ret_index = None if kind == "info" else index
        done.append(call.finish(kind, output, has_error, ret_at, ret_index, line))
    for call in pending.values():
        done.append(call.finish("info", None, False, None, None, None))
    done.sort(key=lambda op: op.call_at)
    ops = tuple(
        Operation(
            n,
            op.process,
            op.f,
            op.key,
            op.value,
            op.output,
            op.status,
            op.error,
            op.call_at,
            op.ret_at,
            op.call_index,
            op.ret_index,
            op.call_line,
            op.ret_line,
        )
        for n, op in enumerate(done)
    )
    return History(model, ops, len(events))


@dataclass(frozen=True, slots=True)
class _Pending:
    process: int
    f: str
    key: str
    value: Hashable
    at: int
    index: int
    line: int

    def finish(
        self,
        status: str,
        output: Hashable,
        error: bool,
        ret_at: int | None,
        ret_index: int | None,
        ret_line: int | None,
    ) -> Operation:
        value = None if self.f in READ_FUNCTIONS else self.value
        return Operation(
            -1,
            self.process,
            self.f,
            self.key,
            value,
            output,
            status,
            error,
            self.at,
            ret_at,
            self.index,
            ret_index,
            self.line,
            ret_line,
        )


def _require_object(event: object, line: int) -> None:
    if not isinstance(event, Mapping):
        raise HistoryError(line, f"expected a JSON object, got {type(event).__name__}")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _field(event: Mapping[str, Any], name: str, kind: type, line: int) -> Any:
    if name not in event:
        raise HistoryError(line, f"missing field {name!r}")
    x = event[name]
    if not isinstance(x, kind) or (kind is int and isinstance(x, bool)):
        raise HistoryError(line, f"field {name!r} must be {_KIND_NAMES[kind]}, got {x!r}")
    return x


_KIND_NAMES: dict[type, str] = {int: "an integer", str: "a string"}


def _value(model: str, f: str, raw: object, line: int) -> Hashable:
    """The event's value, type-checked for ``model`` and ``f`` (cas pairs as tuples)."""
    if model == KV:
        if f == "get":
            if raw is None or isinstance(raw, str):
                return raw
            raise HistoryError(line, f"get value must be a string or null, got {raw!r}")
        if isinstance(raw, str):
            return raw
        raise HistoryError(line, f"{f} value must be a string, got {raw!r}")
    if f == "cas":
        if isinstance(raw, list) and len(raw) == 2 and all(_is_scalar(x) for x in raw):
            return (raw[0], raw[1])
        raise HistoryError(line, f"cas value must be [from, to] of null/int/string, got {raw!r}")
    if _is_scalar(raw):
        assert raw is None or isinstance(raw, int | str)
        return raw
    raise HistoryError(line, f"{f} value must be null, an integer or a string, got {raw!r}")


def _is_scalar(x: object) -> bool:
    return x is None or isinstance(x, str) or _is_int(x)
