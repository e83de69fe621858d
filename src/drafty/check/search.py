"""The Wing-Gong-Lowe search for a linearization of one key's operations.

Theory of operation
-------------------
This is the algorithm of Lowe's "Testing for linearizability" (2017), as the
porcupine checker implements it. The operations' calls and returns form a
list in real-time order, kept as doubly linked lists of index arrays (node 0
is the head, node ``m + 1`` the tail). The search walks the list from the
head:

- at a **call**, it tries to linearize that operation now: if the model step
  is legal and the configuration ``(set of linearized operations, state)``
  has never been reached before, it *lifts* the operation (unlinks its call
  and its return), pushes ``(call node, previous state)`` on an explicit
  stack and restarts from the head; otherwise it moves to the next entry;
- at a **return**, that operation should have been linearized before its
  response and was not: it backtracks, popping the last linearized
  operation, *unlifting* it (relinking in the reverse order) and continuing
  after its call.

The search succeeds when the walk reaches the tail: no return is left, so
every completed operation is linearized and only unknown-outcome calls
remain; placing those last is the same as their never taking effect. It fails
when a return is reached with an empty stack. The cache (a set of
``(bitset, state)``, Python ints as bitsets) guarantees no configuration is
explored twice, so the search is exhaustive but finite; every cached
configuration is either on the current path or known to lead nowhere (the
bitset grows along a path, so a configuration never recurs on one).

An unknown-outcome operation has no return node (its return is at infinity),
so it can be linearized anywhere after its call, or never.

**Reads first.** A read-only operation (a read, or a cas observed to fail)
whose call precedes every remaining return and which is legal in the current
state can be linearized first without loss: in any linearization of the rest
it can be moved to the front, since it changes no state and nothing remaining
had to precede it. So at each new configuration the search first looks for
such a read and, if there is one, lifts it as a *forced* step, with no
alternatives: when the search backtracks into it, it backtracks straight on
past it; and if that configuration is already cached, the current one is a
known dead end. This prunes the interleavings of reads with writes, which
dominate histories with many concurrent clients. To keep the walks short the
entries are threaded on two lists: the reads list (read-only calls and all
returns), walked by the look for a legal read, and the writes list (the other
calls and all returns), walked by the ordinary search. Returns are on both,
so either walk stops at the first remaining return.

The inner loop interprets the compiled :class:`~drafty.check.models.Step`
kinds inline, from per-node arrays held in locals, and allocates only the
cache key. The wall-clock budget and the backtrack allowance are checked every
few thousand backtracks; the state cap (``max_states``) exactly, at each new
configuration, by a countdown.

**Budgets and determinism.** Without a ``deadline`` the clock is never read,
so the outcome is a pure function of the arguments: the backtrack allowance
and the state cap count the search's own steps. The state cap also bounds
memory, since the cache (the bulk of it) holds one entry per configuration.

For reports, the search keeps the deepest dead end it met: the longest
linearizable prefix found, the state after it and the operation whose return
stopped it.

Invariants
----------
- A lifted operation's call and return are off both lists; the stack holds
  exactly the lifted operations, in linearization order (forced ones as
  negative node numbers).
- ``linearized`` is the OR of the bits of the operations on the stack and
  ``state`` the model state after applying them in stack order.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .models import APPEND, CAS, NOTEQ, READ, WRITE, Step

_BUDGET_EVERY = 4096
"""Backtracks between two looks at the clock."""
_READ_ONLY = frozenset({READ, NOTEQ})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the search found for one key.

    ``linearizable`` is None when a budget ran out. ``order`` is a
    linearization (on success) or the longest linearizable prefix met (on
    failure or when giving up), as indexes into the operations searched;
    ``state`` is the model state after it; ``stuck`` is the operation whose
    return could not be reached at that point (None on success); ``explored``
    counts the configurations cached (the search states, never more than
    ``max_states``).
    """

    linearizable: bool | None
    order: tuple[int, ...]
    state: Hashable
    stuck: int | None
    explored: int


@dataclass(frozen=True, slots=True)
class Timing:
    """One operation for the search: positions of its call and return (None: never returns)."""

    call_at: int
    ret_at: int | None
    step: Step


def _links(nodes: list[int], size: int) -> tuple[list[int], list[int]]:
    """``nxt``/``prv`` arrays threading ``nodes`` (head first, tail last) in that order."""
    nxt = [0] * size
    prv = [0] * size
    for a, b in pairwise(nodes):
        nxt[a] = b
        prv[b] = a
    nxt[nodes[-1]] = nodes[-1]
    return nxt, prv


def search(
    ops: Sequence[Timing],
    initial: Hashable,
    deadline: float | None = None,
    max_backtracks: int | None = None,
    max_states: int | None = None,
) -> Outcome:
    """Find a linearization of ``ops`` starting from ``initial`` (see the module docstring).

    The search gives up, answering ``linearizable=None``, after the
    :func:`time.monotonic` instant ``deadline``, after about
    ``max_backtracks`` backtracks (counted in steps of a few thousand), or
    when it needs a configuration beyond the first ``max_states`` (so
    ``explored <= max_states``).
    """
    if max_states is not None and max_states < 0:
        raise ValueError(f"max_states must be >= 0, not {max_states}")
    n = len(ops)
    entries: list[tuple[int, int, int]] = []  # (position, 0 call / 1 return, op)
    for o, t in enumerate(ops):
        entries.append((t.call_at, 0, o))
        if t.ret_at is not None:
            if t.ret_at <= t.call_at:
                raise ValueError(f"operation {o} returns at {t.ret_at} before its call")
            entries.append((t.ret_at, 1, o))
    entries.sort()
    m = len(entries)
    tail = m + 1
    size = m + 2
    opof = [0] * size
    # mate[node]: for a call, its return node, or -1 for no return; 0 for returns.
    mate = [0] * size
    kinds = [-1] * size
    arg_a: list[Any] = [None] * size  # Any: the loop adds strings for APPEND
    arg_b: list[Any] = [None] * size
    bit = [0] * size
    call_node = [0] * n
    reads_list = [0]
    writes_list = [0]
    for node, (_, is_ret, o) in enumerate(entries, 1):
        opof[node] = o
        if is_ret:
            mate[call_node[o]] = node
            reads_list.append(node)
            writes_list.append(node)
            continue
        call_node[o] = node
        mate[node] = -1
        step = ops[o].step
        kinds[node] = step.kind
        arg_a[node] = step.a
        arg_b[node] = step.b
        bit[node] = 1 << o
        (reads_list if step.kind in _READ_ONLY else writes_list).append(node)
    reads_list.append(tail)
    writes_list.append(tail)
    rnxt, rprv = _links(reads_list, size)
    wnxt, wprv = _links(writes_list, size)

    cache: set[tuple[int, Hashable]] = set()
    cache_add = cache.add
    stack_nodes: list[int] = []
    stack_states: list[Hashable] = []
    push_node = stack_nodes.append
    push_state = stack_states.append
    pop_node = stack_nodes.pop
    pop_state = stack_states.pop
    clock = time.monotonic
    countdown = _BUDGET_EVERY
    spent = 0
    # Configurations still allowed; counting down from -1 it never reaches 0.
    room = -1 if max_states is None else max_states

    best_depth = -1
    best_order: list[int] = []
    best_state: Hashable = initial
    best_stuck: int | None = None

    linearized = 0
    state: Any = initial
    e = 0
    fresh = True
    while True:
        if fresh:
            # A new configuration: a legal read-only candidate goes first, alone.
            fresh = False
            x = rnxt[0]
            while mate[x]:
                if kinds[x] == READ:
                    if state == arg_a[x]:
                        break
                elif state != arg_a[x]:  # NOTEQ
                    break
                x = rnxt[x]
            if mate[x]:
                config = (linearized | bit[x], state)
                if config in cache:
                    while mate[x]:
                        x = rnxt[x]
                    e = x  # the first return: this configuration is a known dead end
                else:
                    if not room:
                        break  # out of states
                    room -= 1
                    cache_add(config)
                    push_node(-x)
                    push_state(state)
                    linearized |= bit[x]
                    p = rprv[x]
                    q = rnxt[x]
                    rnxt[p] = q
                    rprv[q] = p
                    r = mate[x]
                    if r > 0:
                        p = rprv[r]
                        q = rnxt[r]
                        rnxt[p] = q
                        rprv[q] = p
                        p = wprv[r]
                        q = wnxt[r]
                        wnxt[p] = q
                        wprv[q] = p
                    fresh = True
                    continue
            else:
                e = wnxt[0]
        if e == tail:
            order = tuple(opof[abs(x)] for x in stack_nodes)
            return Outcome(True, order, state, None, len(cache))
        r = mate[e]
        if r:
            k = kinds[e]
            if k == APPEND:
                new_state = state + arg_a[e]
            elif k == WRITE:
                new_state = arg_a[e]
            elif k == CAS:
                if state != arg_a[e]:
                    e = wnxt[e]
                    continue
                new_state = arg_b[e]
            else:  # MAYCAS (the reads are on the other list)
                new_state = arg_b[e] if state == arg_a[e] else state
            new_linearized = linearized | bit[e]
            config = (new_linearized, new_state)
            if config in cache:
                e = wnxt[e]
                continue
            if not room:
                break  # out of states
            room -= 1
            cache_add(config)
            push_node(e)
            push_state(state)
            state = new_state
            linearized = new_linearized
            p = wprv[e]
            q = wnxt[e]
            wnxt[p] = q
            wprv[q] = p
            if r > 0:
                p = rprv[r]
                q = rnxt[r]
                rnxt[p] = q
                rprv[q] = p
                p = wprv[r]
                q = wnxt[r]
                wnxt[p] = q
                wprv[q] = p
            fresh = True
            continue
        # A return: backtrack.
        depth = len(stack_nodes)
        if depth > best_depth:
            best_depth = depth
            best_order = [opof[abs(x)] for x in stack_nodes]
            best_state = state
            best_stuck = opof[e]
        countdown -= 1
        if not countdown:
            countdown = _BUDGET_EVERY
            spent += _BUDGET_EVERY
            if (max_backtracks is not None and spent >= max_backtracks) or (
                deadline is not None and clock() > deadline
            ):
                return Outcome(None, tuple(best_order), best_state, best_stuck, len(cache))
        while True:
            if not stack_nodes:
                return Outcome(False, tuple(best_order), best_state, best_stuck, len(cache))
            e = pop_node()
            state = pop_state()
            forced = e < 0
            if forced:
                e = -e
            linearized ^= bit[e]
            r = mate[e]
            if r > 0:
                p = wprv[r]
                q = wnxt[r]
                wnxt[p] = r
                wprv[q] = r
                p = rprv[r]
                q = rnxt[r]
                rnxt[p] = r
                rprv[q] = r
            if forced:
                p = rprv[e]
                q = rnxt[e]
                rnxt[p] = e
                rprv[q] = e
            else:
                p = wprv[e]
                q = wnxt[e]
                wnxt[p] = e
                wprv[q] = e
                break
        e = wnxt[e]
    # Out of states: give up like the other budgets.
    return Outcome(None, tuple(best_order), best_state, best_stuck, len(cache))
