"""Fault kinds, the seeded nemesis schedule, and the packet-filter rules of a partition.

Theory of operation
-------------------
Everything here is pure (no I/O, no clock, no global randomness), so the
schedule and the rules can be tested without root.

A run's nemesis is an endless, seeded sequence of :class:`Step` values
(:func:`schedule`): the kinds cycle in a fresh seeded order each round (every
selected kind once per round), each with a hold time drawn from the
``--fault-seconds`` range (or the fixed long-partition time for network kinds)
and a quiet time after the heal. A step does not name its nodes: which nodes
a fault hits may depend on who leads at the moment it starts, so
:func:`resolve` turns a step plus the current leader into a :class:`Fault`,
deterministically (the step carries its own seed).

Network faults are a set of *directed drops*: ``(src, dst)`` means packets
sent by node ``src`` never reach node ``dst``. A symmetric cut between groups
``A`` and ``B`` is both directions of every pair across them; a one-way fault
drops only ``S -> rest``. :func:`input_rules` places every drop at the
receiver, as an ``iptables`` rule on its INPUT chain (``-s src -j DROP``:
silent loss, never a reset), and :func:`restore_script` renders one node's
complete filter table for ``iptables-restore``, so applying or healing a
fault replaces each node's rules atomically. Client traffic comes from the
hub's address, which no rule names, so clients always reach every node.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

NETWORK_KINDS = ("partition-halves", "isolate-leader", "bridge", "one-way")
PROCESS_KINDS = ("kill", "pause")
ALL_KINDS = NETWORK_KINDS + PROCESS_KINDS

Drop = tuple[int, int]
"""``(src, dst)``: packets from node ``src`` to node ``dst`` are dropped."""


@dataclass(frozen=True)
class Step:
    """One entry of the nemesis schedule, before it meets the running cluster."""

    kind: str
    hold_s: float
    quiet_s: float
    seed: int
    """Seeds the choice of nodes when the step is resolved."""
    prefer_leader: bool
    """kill/pause: hit the leader (when one is known) rather than a random node."""


@dataclass(frozen=True)
class Fault:
    """A resolved step: exactly which nodes it hits."""

    kind: str
    drops: frozenset[Drop]
    """Directed packet drops (network kinds); empty for kill/pause."""
    victim: int | None
    """The node killed or paused (process kinds)."""
    description: str


def parse_kinds(text: str) -> tuple[str, ...]:
    """``"kill,pause"`` -> ``("kill", "pause")``; ``"all"`` -> every kind. ValueError if unknown."""
    if text.strip() in ("", "all"):
        return ALL_KINDS
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(ALL_KINDS)}"
        )
    return kinds


def parse_range(text: str) -> tuple[float, float]:
    """``"2..10"`` -> ``(2.0, 10.0)``; ``"5"`` -> ``(5.0, 5.0)``. ValueError if malformed."""
    lo, sep, hi = text.partition("..")
    a = float(lo)
    b = float(hi) if sep else a
    if not 0 <= a <= b:
        raise ValueError(f"{text!r} is not a range LOW..HIGH with 0 <= LOW <= HIGH")
    return a, b


def schedule(
    seed: int,
    kinds: Sequence[str],
    hold: tuple[float, float],
    quiet: tuple[float, float],
    long_partition_s: float | None = None,
) -> Iterator[Step]:
    """The endless nemesis schedule of a run: the same seed gives the same steps."""
    if not kinds:
        return
    rng = random.Random(seed)
    while True:
        order = list(kinds)
        rng.shuffle(order)
        for kind in order:
            held = rng.uniform(*hold)
            if long_partition_s is not None and kind in NETWORK_KINDS:
                held = long_partition_s
            yield Step(
                kind=kind,
                hold_s=round(held, 3),
                quiet_s=round(rng.uniform(*quiet), 3),
                seed=rng.randrange(1 << 32),
                prefer_leader=rng.random() < 0.7,
            )


def cut(a: Sequence[int], b: Sequence[int]) -> frozenset[Drop]:
    """Both directions of every pair across groups ``a`` and ``b``."""
    return frozenset({(x, y) for x in a for y in b} | {(y, x) for x in a for y in b})


def one_way(senders: Sequence[int], rest: Sequence[int]) -> frozenset[Drop]:
    """Packets from ``senders`` to ``rest`` dropped; the other direction untouched."""
    return frozenset((s, r) for s in senders for r in rest)


def resolve(step: Step, nodes: Sequence[int], leader: int | None) -> Fault:
    """The concrete fault of ``step`` on ``nodes`` when ``leader`` leads (None: unknown)."""
    rng = random.Random(step.seed)
    ids = sorted(nodes)
    shuffled = ids[:]
    rng.shuffle(shuffled)
    minority = (len(ids) - 1) // 2
    kind = step.kind
    if kind == "partition-halves":
        small = sorted(shuffled[: rng.randint(1, minority)])
        big = sorted(set(ids) - set(small))
        return Fault(kind, cut(small, big), None, f"{_g(big)} | {_g(small)}")
    if kind == "isolate-leader":
        lone = leader if leader in ids else shuffled[0]
        rest = [i for i in ids if i != lone]
        why = "leader" if lone == leader else "no leader known: a random node"
        return Fault(kind, cut([lone], rest), None, f"{_g(rest)} | {_g([lone])} ({why})")
    if kind == "bridge":
        middle, others = shuffled[0], shuffled[1:]
        half = len(others) // 2
        left, right = sorted(others[:half]), sorted(others[half:])
        text = f"{_g(left)} | {middle} | {_g(right)} (node {middle} sees both sides)"
        return Fault(kind, cut(left, right), None, text)
    if kind == "one-way":
        senders = sorted(shuffled[: rng.randint(1, minority)])
        rest = sorted(set(ids) - set(senders))
        return Fault(kind, one_way(senders, rest), None, f"{_g(senders)} -> {_g(rest)} dropped")
    if kind in PROCESS_KINDS:
        victim = leader if step.prefer_leader and leader in ids else shuffled[0]
        who = "the leader" if victim == leader else "a follower" if leader else "leader unknown"
        return Fault(kind, frozenset(), victim, f"node {victim} ({who})")
    raise ValueError(f"unknown fault kind {kind!r}")


def _g(group: Sequence[int]) -> str:
    return "{" + ",".join(str(i) for i in group) + "}"


def input_rules(drops: frozenset[Drop], address: Mapping[int, str]) -> dict[int, list[str]]:
    """Per receiving node, the INPUT rules (``iptables`` arguments) that make ``drops`` happen.

    Every node in ``address`` gets an entry (an empty list heals it).
    """
    rules: dict[int, list[str]] = {i: [] for i in address}
    for src, dst in sorted(drops):
        rules[dst].append(f"-A INPUT -s {address[src]}/32 -j DROP")
    return rules


def restore_script(rules: Sequence[str]) -> str:
    """A complete filter table for ``iptables-restore`` (it replaces the table atomically)."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    return "\n".join([*lines, *rules, "COMMIT", ""])


def reachable(drops: frozenset[Drop], src: int, dst: int) -> bool:
    """Whether packets from ``src`` get to ``dst`` directly under ``drops``."""
    return (src, dst) not in drops
