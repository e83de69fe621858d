"""The two data models a history can be checked against: a register and a string map.

Theory of operation
-------------------
A model says which operation names (``f``) a history may use, which values
they carry, what the state of one key starts as, and how each completed or
unknown-outcome operation acts on that state. The search
(:mod:`drafty.check.search`) never calls back into this module: every
operation is compiled once, by :func:`compile_op`, into a :class:`Step`, a
``(kind, a, b)`` triple that the search's inner loop interprets inline.

``register`` (the etcd histories): ``read`` (ok: the value read, ``null`` for
nothing written yet), ``write`` (the value), ``cas`` (``[from, to]``). The
initial state is ``None``. A ``cas`` that completes ``fail`` without an
``error`` is an observation that the register did not hold ``from``
(:data:`NOTEQ`); a ``cas`` of unknown outcome swaps only if the register held
``from`` when it took effect (:data:`MAYCAS`).

``kv`` (alias ``kv-append``, as expected.json names it): ``get`` (ok: the
string read; ``null`` and ``""`` both mean missing), ``put`` and ``append``
(a suffix; a missing key is ``""``). The initial state is ``""``, so a get of
a missing key is a :data:`READ` of ``""``.

Operations that constrain nothing are dropped here (:func:`compile_op`
returns ``None``): any ``fail`` other than the observing cas (it certainly had
no effect), a read of unknown outcome (it saw nothing anyone knows), and an
unknown-outcome cas whose ``from`` equals its ``to``.

Invariants
----------
- States are hashable and compare equal exactly when the models' states are
  equal (register values are restricted to ``null``, integers and strings, so
  ``True == 1`` and ``1.0 == 1`` cannot alias).
- A step of an unknown-outcome operation (``info``) is always legal, so it may
  take effect at any point after its call, or be placed after every completed
  operation, which is the same as never taking effect.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

READ: Final = 0
"""Legal iff the state equals ``a``; the state is unchanged."""
WRITE: Final = 1
"""Always legal; the state becomes ``a``."""
CAS: Final = 2
"""Legal iff the state equals ``a``; the state becomes ``b``."""
NOTEQ: Final = 3
"""Legal iff the state differs from ``a`` (a cas observed to fail); unchanged."""
APPEND: Final = 4
"""Always legal; the state becomes ``state + a`` (strings)."""
MAYCAS: Final = 5
"""Always legal (a cas of unknown outcome): ``b`` if the state equals ``a``, else unchanged."""

REGISTER: Final = "register"
KV: Final = "kv"
MODEL_ALIASES: Final[dict[str, str]] = {"register": REGISTER, "kv": KV, "kv-append": KV}
MODEL_FUNCTIONS: Final[dict[str, frozenset[str]]] = {
    REGISTER: frozenset({"read", "write", "cas"}),
    KV: frozenset({"get", "put", "append"}),
}
READ_FUNCTIONS: Final = frozenset({"read", "get"})
INITIAL_STATE: Final[dict[str, Hashable]] = {REGISTER: None, KV: ""}


@dataclass(frozen=True, slots=True)
class Step:
    """One operation compiled for the search: ``kind`` (:data:`READ`...) and its operands."""

    kind: int
    a: Hashable
    b: Hashable = None


def model_name(name: str) -> str:
    """The canonical model name for ``name`` (``kv-append`` is ``kv``); ValueError if unknown."""
    canonical = MODEL_ALIASES.get(name)
    if canonical is None:
        raise ValueError(f"unknown model {name!r} (expected one of {', '.join(MODEL_ALIASES)})")
    return canonical


def compile_op(
    model: str, f: str, status: str, value: Hashable, output: Hashable, has_error: bool
) -> Step | None:
    """The step of one operation, or None when it constrains nothing and is dropped.

    ``status`` is ``ok``, ``fail`` or ``info``; ``value`` the invoke's value (a
    ``(from, to)`` tuple for cas); ``output`` what an ok read returned.
    """
    if status == "fail":
        if f == "cas" and not has_error:
            assert isinstance(value, tuple)
            return Step(NOTEQ, value[0])
        return None
    if f in READ_FUNCTIONS:
        if status != "ok":
            return None
        if model == KV and output is None:
            return Step(READ, "")
        return Step(READ, output)
    if f in ("write", "put"):
        return Step(WRITE, value)
    if f == "append":
        return Step(APPEND, value)
    assert f == "cas" and isinstance(value, tuple)
    if status == "ok":
        return Step(CAS, value[0], value[1])
    if value[0] == value[1]:
        return None
    return Step(MAYCAS, value[0], value[1])


def apply_step(step: Step, state: Hashable) -> tuple[bool, Hashable]:
    """``(legal, next state)``: the reference semantics the search inlines."""
    kind = step.kind
    if kind == READ:
        return state == step.a, state
    if kind == WRITE:
        return True, step.a
    if kind == CAS:
        return state == step.a, step.b
    if kind == NOTEQ:
        return state != step.a, state
    if kind == APPEND:
        assert isinstance(state, str) and isinstance(step.a, str)
        return True, state + step.a
    return True, step.b if state == step.a else state
