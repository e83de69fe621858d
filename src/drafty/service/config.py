"""cluster.toml: the list of nodes, read and validated with clear errors.

Format::

    cluster = "local"            # optional name; nodes refuse peers of another cluster
    tick_ms = 50                 # optional: one core tick; election after 10-20 ticks

    [snapshot]                   # optional; these are the defaults
    entries = 10000              # snapshot after this many entries applied (0: never by count)
    bytes = 67108864             # ... or this many bytes of entry data (0: never by size)
    keep_entries = 5000          # entries kept in the log behind a snapshot
    keep_bytes = 8388608         # ... but no more than this many bytes of them
    chunk_bytes = 1048576        # largest piece of a snapshot sent to a follower (<= 16 MiB)

    [reads]                      # optional; these are the defaults
    lease = false                # leader answers reads from a lease (needs clocks to
                                 # agree in rate; see README "Reads"); false: ReadIndex
    lease_drift_ticks = 2        # ticks the lease is shortened by for clock drift

    [[node]]
    id = 1                       # positive integer, unique
    peer = "127.0.0.1:7001"      # Raft traffic
    client = "127.0.0.1:6379"    # Redis protocol

Every problem is reported as a :class:`ClusterConfigError` naming the file,
the node and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import DraftyError
from ..node import TransferLimits
from ..transport import address as transport_address
from ..transport.address import Address


class ClusterConfigError(DraftyError, ValueError):
    """cluster.toml is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class NodeEntry:
    id: int
    peer: Address
    client: Address


MAX_CHUNK_BYTES = 16 << 20
"""Largest ``chunk_bytes``: a window of chunks must fit in a transport frame."""


@dataclass(frozen=True, kw_only=True)
class SnapshotSettings:
    """The ``[snapshot]`` table: when to take snapshots and how to send them."""

    entries: int = 10_000
    bytes: int = 64 << 20
    keep_entries: int = 5_000
    keep_bytes: int = 8 << 20
    chunk_bytes: int = 1 << 20

    def node_options(self) -> dict[str, Any]:
        """These settings as :class:`~drafty.node.NodeOptions` fields."""
        return {
            "snapshot_entries": self.entries,
            "snapshot_bytes": self.bytes,
            "snapshot_keep_entries": self.keep_entries,
            "snapshot_keep_bytes": self.keep_bytes,
            "transfer": TransferLimits(chunk_bytes=self.chunk_bytes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadSettings:
    """How linearizable reads are confirmed: ReadIndex (default) or a lease."""

    lease: bool = False
    lease_drift_ticks: int = 2

    def raft_options(self) -> dict[str, Any]:
        """The core :class:`~drafty.core.Config` fields these settings set."""
        return {"lease_reads": self.lease, "lease_drift_ticks": self.lease_drift_ticks}


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    nodes: dict[int, NodeEntry]
    tick_ms: int = 50
    snapshot: SnapshotSettings = SnapshotSettings()
    reads: ReadSettings = ReadSettings()

    def peers(self) -> dict[int, Address]:
        return {i: n.peer for i, n in self.nodes.items()}

    def clients(self) -> dict[int, Address]:
        return {i: n.client for i, n in self.nodes.items()}


def parse_address(text: object, where: str) -> Address:
    """:func:`drafty.transport.address.parse_address`, as a ClusterConfigError."""
    try:
        return transport_address.parse_address(text, where)
    except ValueError as e:
        raise ClusterConfigError(str(e)) from None


def load(path: Path) -> ClusterConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterConfigError(f"{path}: no such file") from None
    except OSError as e:
        raise ClusterConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ClusterConfigError(f"{path}: not valid TOML: {e}") from None
    return from_dict(raw, str(path))


_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def from_dict(raw: dict[str, Any], where: str) -> ClusterConfig:
    unknown = set(raw) - {"cluster", "tick_ms", "node", "snapshot", "reads"}
    if unknown:
        raise ClusterConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    name = raw.get("cluster", "drafty")
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ClusterConfigError(
            f"{where}: cluster must be 1-64 letters, digits, '.', '_' or '-', got {name!r}"
        )
    tick_ms = raw.get("tick_ms", 50)
    if type(tick_ms) is not int or not 1 <= tick_ms <= 10_000:
        raise ClusterConfigError(f"{where}: tick_ms must be an integer in 1..10000")
    tables = raw.get("node")
    if not isinstance(tables, list) or not tables:
        raise ClusterConfigError(f"{where}: no [[node]] tables")
    nodes: dict[int, NodeEntry] = {}
    seen: dict[Address, str] = {}
    for k, t in enumerate(tables, 1):
        here = f"{where}: node #{k}"
        if not isinstance(t, dict):
            raise ClusterConfigError(f"{here}: must be a table")
        unknown = set(t) - {"id", "peer", "client"}
        if unknown:
            raise ClusterConfigError(f"{here}: unknown field(s) {', '.join(sorted(unknown))}")
        node_id = t.get("id")
        if type(node_id) is not int or node_id < 1:
            raise ClusterConfigError(f"{here}: id must be a positive integer, got {node_id!r}")
        if node_id in nodes:
            raise ClusterConfigError(f"{here}: id {node_id} is used twice")
        here = f"{where}: node {node_id}"
        peer = parse_address(t.get("peer"), f"{here}: peer")
        client = parse_address(t.get("client"), f"{here}: client")
        for label, addr in (("peer", peer), ("client", client)):
            if addr in seen:
                raise ClusterConfigError(
                    f"{here}: {label} address {addr[0]}:{addr[1]} is also {seen[addr]}'s"
                )
            seen[addr] = f"node {node_id} {label}"
        nodes[node_id] = NodeEntry(node_id, peer, client)
    snapshot = _snapshot(raw.get("snapshot", {}), where)
    return ClusterConfig(name, nodes, tick_ms, snapshot, _reads(raw.get("reads", {}), where))


def _reads(table: object, where: str) -> ReadSettings:
    here = f"{where}: [reads]"
    if not isinstance(table, dict):
        raise ClusterConfigError(f"{here} must be a table")
    unknown = set(table) - {"lease", "lease_drift_ticks"}
    if unknown:
        raise ClusterConfigError(f"{here}: unknown field(s) {', '.join(sorted(unknown))}")
    lease = table.get("lease", False)
    if type(lease) is not bool:
        raise ClusterConfigError(f"{here}: lease must be true or false, got {lease!r}")
    drift = table.get("lease_drift_ticks", 2)
    if type(drift) is not int or not 0 <= drift <= 7:
        # The default election timeout is 10 ticks; a lease needs at least 2.
        raise ClusterConfigError(f"{here}: lease_drift_ticks must be an integer in 0..7")
    return ReadSettings(lease=lease, lease_drift_ticks=drift)


_SNAPSHOT_LIMITS = {
    "entries": (0, 1 << 62, "a non-negative integer (0: never by count)"),
    "bytes": (0, 1 << 62, "a non-negative integer (0: never by size)"),
    "keep_entries": (0, 1 << 62, "a non-negative integer"),
    "keep_bytes": (0, 1 << 62, "a non-negative integer"),
    "chunk_bytes": (1, MAX_CHUNK_BYTES, f"an integer in 1..{MAX_CHUNK_BYTES} (16 MiB)"),
}


def _snapshot(table: object, where: str) -> SnapshotSettings:
    here = f"{where}: [snapshot]"
    if not isinstance(table, dict):
        raise ClusterConfigError(f"{here} must be a table")
    unknown = set(table) - set(_SNAPSHOT_LIMITS)
    if unknown:
        raise ClusterConfigError(f"{here}: unknown field(s) {', '.join(sorted(unknown))}")
    for key, value in table.items():
        lo, hi, what = _SNAPSHOT_LIMITS[key]
        if type(value) is not int or not lo <= value <= hi:
            raise ClusterConfigError(f"{here}: {key} must be {what}, got {value!r}")
    return SnapshotSettings(**table)


def render(config: ClusterConfig) -> str:
    """The TOML text of ``config`` (what ``drafty cluster`` writes)."""
    lines = [f'cluster = "{config.name}"', f"tick_ms = {config.tick_ms}", ""]
    snap = config.snapshot
    if snap != SnapshotSettings():
        lines += [
            "[snapshot]",
            f"entries = {snap.entries}",
            f"bytes = {snap.bytes}",
            f"keep_entries = {snap.keep_entries}",
            f"keep_bytes = {snap.keep_bytes}",
            f"chunk_bytes = {snap.chunk_bytes}",
            "",
        ]
    if config.reads != ReadSettings():
        lease = "true" if config.reads.lease else "false"
        lines += ["[reads]", f"lease = {lease}",
                  f"lease_drift_ticks = {config.reads.lease_drift_ticks}", ""]  # fmt: skip
    for n in sorted(config.nodes.values(), key=lambda n: n.id):
        lines += [
            "[[node]]",
            f"id = {n.id}",
            f'peer = "{n.peer[0]}:{n.peer[1]}"',
            f'client = "{n.client[0]}:{n.client[1]}"',
            "",
        ]
    return "\n".join(lines)
