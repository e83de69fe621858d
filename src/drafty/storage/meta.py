"""The meta file: which cluster and node a data directory belongs to.

``meta.json`` is written once, atomically (temp file, fsync, rename, directory
fsync), after the log's first segment exists, so a directory with a meta file
always has a log. Contents (JSON object)::

    {"format": "drafty-storage", "version": 1, "cluster_id": "...",
     "node_id": 3, "seed_voters": [1, 2, 3],
     "crc32": <zlib.crc32 of the canonical JSON of the other keys>}

``seed_voters`` is the membership the node started its log from: the voters
of cluster.toml when the directory was created, or ``[]`` for a node that
joined an existing cluster (it learnt its membership from the leader). After
that the log and snapshots hold the membership; the seed is the base they
build on, so a cluster.toml edited later cannot change it. Directories made
before membership changes existed have no ``seed_voters`` (None: the caller
falls back to cluster.toml, which could not have changed safely before).

Opening a directory whose cluster id or node id differ from the expected ones
raises :class:`WrongNodeError`: starting node 2 on node 3's data (or on another
cluster's) would break Raft's safety argument silently.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import CorruptionError, WrongNodeError
from .fsutil import atomic_write

META_NAME = "meta.json"
META_FORMAT = "drafty-storage"
META_VERSION = 1


@dataclass(frozen=True, slots=True)
class Meta:
    cluster_id: str
    node_id: int
    seed_voters: tuple[int, ...] | None = None
    """The membership the log starts from (empty: joined; None: not recorded)."""


def _canonical(body: dict[str, object]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def write_meta(directory: Path, meta: Meta) -> None:
    body: dict[str, object] = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "cluster_id": meta.cluster_id,
        "node_id": meta.node_id,
    }
    if meta.seed_voters is not None:
        body["seed_voters"] = list(meta.seed_voters)
    body["crc32"] = zlib.crc32(_canonical(body))
    atomic_write(directory / META_NAME, json.dumps(body, indent=1).encode() + b"\n")


def read_meta(directory: Path) -> Meta | None:
    """The meta of ``directory``; None if it has no meta file; CorruptionError if unreadable."""
    path = directory / META_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        crc = body.pop("crc32")
        if zlib.crc32(_canonical(body)) != crc:
            raise ValueError("checksum mismatch")
        if body.get("format") != META_FORMAT or body.get("version") != META_VERSION:
            raise ValueError(f"unknown format {body.get('format')!r} v{body.get('version')}")
        cluster_id, node_id = body["cluster_id"], body["node_id"]
        if not isinstance(cluster_id, str) or not isinstance(node_id, int):
            raise ValueError("cluster_id must be a string and node_id an integer")
        seed = body.get("seed_voters")
        if seed is not None and (
            not isinstance(seed, list)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in seed)
        ):
            raise ValueError("seed_voters must be a list of positive node ids")
    except (ValueError, KeyError) as exc:
        raise CorruptionError(path, 0, f"unreadable meta file: {exc}") from None
    return Meta(cluster_id, node_id, None if seed is None else tuple(seed))


def check_meta(directory: Path, found: Meta, expected: Meta) -> None:
    """Raise WrongNodeError unless ``found`` names the expected cluster and node."""
    if (found.cluster_id, found.node_id) != (expected.cluster_id, expected.node_id):
        raise WrongNodeError(
            directory / META_NAME,
            f"cluster {expected.cluster_id!r} node {expected.node_id}",
            f"cluster {found.cluster_id!r} node {found.node_id}",
        )
