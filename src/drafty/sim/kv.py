"""The replicated state machine under test, and the KV model the workload uses.

Theory of operation
-------------------
The simulator replicates any :class:`StateMachine`: every node owns one
instance, and every committed NORMAL entry is handed to :meth:`apply` in log
order, exactly once per node lifetime. State machines live in memory, so a
restarted node builds a fresh one and replays its log from index 1.

A :class:`Model` tells the workload how to talk to such a machine: how to
make an operation (:meth:`Model.generate`, whose ``data`` is what gets
proposed), how to recognise its own operations in the log
(:meth:`Model.identify`), and what must hold of the final state given the
writes clients saw acknowledged (:meth:`Model.check_final`). Library users
plug their own model and machine into the simulator the same way.

:class:`KvModel` is the built-in model: a string map with ``get`` (read
through the log), ``put`` and ``append``, in the ``kv`` vocabulary of the
histories format (/work/shared/histories/README.md). Operations travel as
compact JSON ``[client, request, f, key, value]``; values are unique tokens
``"x <client> <request> y"``, so appends can be traced in the final state.

Invariants
----------
- ``apply`` is deterministic: the same entries in the same order give the
  same results and the same :meth:`fingerprint` on every node.
- Data the model does not recognise (another user's bytes) is ignored and
  returns None; it never raises.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Protocol

JsonValue = str | int | None
"""What a history records as an operation's value (the kv model: str or null)."""


class StateMachine(Protocol):
    """What the simulator needs from a replicated state machine."""

    def apply(self, index: int, data: bytes) -> JsonValue:
        """Apply the entry at ``index``; return the operation's result."""
        ...

    def fingerprint(self) -> str:
        """A digest of the whole state, equal on nodes that applied equal logs."""
        ...


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation: history fields plus the bytes to propose."""

    client: int
    req: int
    f: str
    key: str
    value: JsonValue
    data: bytes
    write: bool
    """Whether it changes the state (reads are not checked for loss)."""


class Model(Protocol):
    """How a workload drives a state machine; see the module docstring."""

    name: str

    def new_state_machine(self) -> StateMachine: ...

    def generate(self, rng: random.Random, client: int, req: int) -> Operation: ...

    def identify(self, data: bytes) -> tuple[int, int] | None:
        """``(client, req)`` of an operation's proposal data, None if not one."""
        ...

    def check_final(self, sm: StateMachine, acked: list[tuple[int, Operation]]) -> str | None:
        """Why the final state lost an acknowledged write, or None if it did not.

        ``acked`` lists the writes clients saw ``ok``, with the index each was
        applied at.
        """
        ...


@dataclass(slots=True)
class KvStateMachine:
    """A string map applying ``get`` / ``put`` / ``append`` operations."""

    data: dict[str, str] = field(default_factory=dict)
    applied: int = 0
    last_put: dict[str, int] = field(default_factory=dict)
    """Index of the last put to each key (what overwrote earlier appends)."""

    def apply(self, index: int, data: bytes) -> JsonValue:
        self.applied = index
        op = _decode(data)
        if op is None:
            return None
        _, _, f, key, value = op
        if f == "get":
            return self.data.get(key)
        if not isinstance(value, str):
            return None
        if f == "put":
            self.data[key] = value
            self.last_put[key] = index
        elif f == "append":
            self.data[key] = self.data.get(key, "") + value
        else:
            return None
        return value

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=12)
        for k in sorted(self.data):
            h.update(k.encode() + b"\0" + self.data[k].encode() + b"\0")
        return h.hexdigest()


def _decode(data: bytes) -> tuple[int, int, str, str, JsonValue] | None:
    if not data.startswith(b"["):
        return None
    try:
        v = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        isinstance(v, list)
        and len(v) == 5
        and isinstance(v[0], int)
        and isinstance(v[1], int)
        and isinstance(v[2], str)
        and isinstance(v[3], str)
        and (v[4] is None or isinstance(v[4], str))
    ):
        return v[0], v[1], v[2], v[3], v[4]
    return None


@dataclass(slots=True)
class KvModel:
    """The ``kv`` model: a few keys, a mix of gets, puts and appends."""

    keys: int = 3
    weights: tuple[int, int, int] = (2, 1, 3)
    """Relative frequency of get, put, append."""
    name: str = "kv"

    def new_state_machine(self) -> StateMachine:
        return KvStateMachine()

    def generate(self, rng: random.Random, client: int, req: int) -> Operation:
        f = rng.choices(("get", "put", "append"), self.weights)[0]
        key = str(rng.randrange(self.keys))
        value: JsonValue = None if f == "get" else f"x {client} {req} y"
        data = json.dumps([client, req, f, key, value], separators=(",", ":")).encode()
        return Operation(client, req, f, key, value, data, f != "get")

    def identify(self, data: bytes) -> tuple[int, int] | None:
        op = _decode(data)
        return None if op is None else (op[0], op[1])

    def check_final(self, sm: StateMachine, acked: list[tuple[int, Operation]]) -> str | None:
        if not isinstance(sm, KvStateMachine):
            return None
        for index, op in acked:
            if not isinstance(op.value, str) or index > sm.applied:
                continue
            value = sm.data.get(op.key, "")
            last_put = sm.last_put.get(op.key, 0)
            if op.f == "put" and index == last_put and not value.startswith(op.value):
                return f"acknowledged put {op.value!r} (index {index}) to key {op.key!r} is lost"
            if op.f == "append" and index > last_put and op.value not in value:
                return f"acknowledged append {op.value!r} (index {index}) to key {op.key!r} is lost"
        return None
