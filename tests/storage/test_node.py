"""NodeStorage: meta identity checks, layout, and log/snapshot cross-checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from drafty.core.types import HardState
from drafty.storage import (
    CorruptionError,
    NodeStorage,
    SnapshotMeta,
    StorageError,
    WrongNodeError,
)
from drafty.storage.meta import META_NAME

from .helpers import make_entries


def open_node(d: Path, cluster: str = "c1", node: int = 1, **kw: object) -> NodeStorage:
    return NodeStorage.open(d, cluster_id=cluster, node_id=node, segment_size=1024, **kw)  # type: ignore[arg-type]


def test_create_then_reopen(tmp_path: Path) -> None:
    d = tmp_path / "node1"
    with open_node(d) as st:
        st.log.append(make_entries(1, 5), HardState(2, 1, 3))
        assert st.snapshot is None
    assert sorted(p.name for p in d.iterdir()) == [META_NAME, "snap", "wal"]
    meta = json.loads((d / META_NAME).read_text())
    assert (meta["cluster_id"], meta["node_id"]) == ("c1", 1)
    with open_node(d) as st:
        assert st.hard_state == HardState(2, 1, 3)
        assert st.log.entries(1, 5) == make_entries(1, 5)


@pytest.mark.parametrize(("cluster", "node"), [("c2", 1), ("c1", 2)])
def test_wrong_cluster_or_node_is_refused(tmp_path: Path, cluster: str, node: int) -> None:
    open_node(tmp_path).close()
    with pytest.raises(WrongNodeError) as info:
        open_node(tmp_path, cluster, node)
    msg = str(info.value)
    assert "cluster 'c1' node 1" in msg and f"cluster '{cluster}' node {node}" in msg
    assert info.value.path == tmp_path / META_NAME


def test_the_seed_membership_is_recorded_once_at_creation(tmp_path: Path) -> None:
    with open_node(tmp_path / "a", seed_voters=(1, 2, 3)) as st:
        assert st.meta.seed_voters == (1, 2, 3)
    # A later cluster.toml (another seed asked for) cannot change it.
    with open_node(tmp_path / "a", seed_voters=(1, 2, 3, 4, 5)) as st:
        assert st.meta.seed_voters == (1, 2, 3)
    with open_node(tmp_path / "b", seed_voters=()) as st:  # a node that joined
        assert st.meta.seed_voters == ()
    with open_node(tmp_path / "b", seed_voters=(1, 2)) as st:
        assert st.meta.seed_voters == ()
    open_node(tmp_path / "c").close()  # a directory from before: nothing recorded
    assert "seed_voters" not in json.loads((tmp_path / "c" / META_NAME).read_text())
    with open_node(tmp_path / "c", seed_voters=(1,)) as st:
        assert st.meta.seed_voters is None


def test_a_malformed_seed_is_corruption(tmp_path: Path) -> None:
    from drafty.storage.meta import Meta, write_meta

    open_node(tmp_path, seed_voters=(1,)).close()
    write_meta(tmp_path, Meta("c1", 1, (0,)))  # a well-formed file with a bad id
    with pytest.raises(CorruptionError, match="seed_voters"):
        open_node(tmp_path)


def test_damaged_meta_is_corruption(tmp_path: Path) -> None:
    open_node(tmp_path).close()
    meta = tmp_path / META_NAME
    meta.write_text(meta.read_text().replace('"node_id": 1', '"node_id": 2'))
    with pytest.raises(CorruptionError, match="checksum mismatch"):
        open_node(tmp_path, node=2)


def test_open_without_create_needs_a_data_dir(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a drafty data directory"):
        open_node(tmp_path, create=False)


def test_missing_meta_with_data_is_refused(tmp_path: Path) -> None:
    with open_node(tmp_path) as st:
        st.log.append(make_entries(1, 3))
    (tmp_path / META_NAME).unlink()
    with pytest.raises(CorruptionError, match=r"meta\.json is missing"):
        open_node(tmp_path)


def test_interrupted_initialisation_is_redone(tmp_path: Path) -> None:
    open_node(tmp_path).close()
    (tmp_path / META_NAME).unlink()  # crash after the log existed, before meta was written
    with open_node(tmp_path, "c9", 9) as st:
        assert st.meta.cluster_id == "c9" and st.log.last_index == 0


def test_missing_wal_dir_is_corruption(tmp_path: Path) -> None:
    open_node(tmp_path).close()
    shutil.rmtree(tmp_path / "wal")
    with pytest.raises(StorageError, match="no such log directory"):
        open_node(tmp_path)


def test_snapshot_then_compact_then_restart(tmp_path: Path) -> None:
    with open_node(tmp_path) as st:
        st.log.append(make_entries(1, 50, size=40), HardState(1, 1, 40))
        st.save_snapshot(SnapshotMeta(40, 1, (1, 2, 3)), b"state@40")
        st.log.compact(40)
        st.log.sync()
    with open_node(tmp_path) as st:
        assert st.snapshot is not None and st.snapshot.data == b"state@40"
        assert (st.log.base_index, st.log.first_index, st.log.last_index) == (40, 41, 50)


def test_log_compacted_past_the_newest_valid_snapshot_is_refused(tmp_path: Path) -> None:
    with open_node(tmp_path, keep_snapshots=2) as st:
        st.log.append(make_entries(1, 50), HardState(1, 1, 45))
        st.save_snapshot(SnapshotMeta(20, 1, (1,)), b"a")
        st.log.compact(20)
        newest = st.save_snapshot(SnapshotMeta(40, 1, (1,)), b"b")
        st.log.compact(40)
    raw = bytearray(newest.read_bytes())
    raw[-5] ^= 0xFF
    newest.write_bytes(raw)
    with pytest.raises(CorruptionError, match=r"compacted through index 40 .* covers only 20"):
        open_node(tmp_path)


def test_snapshot_damaged_but_log_still_covers_it(tmp_path: Path) -> None:
    with open_node(tmp_path, keep_snapshots=2) as st:
        st.log.append(make_entries(1, 50), HardState(1, 1, 45))
        st.save_snapshot(SnapshotMeta(20, 1, (1,)), b"a")
        newest = st.save_snapshot(SnapshotMeta(40, 1, (1,)), b"b")  # log not compacted yet
    newest.write_bytes(newest.read_bytes()[:-1])
    with open_node(tmp_path) as st:
        assert st.snapshot is not None and st.snapshot.meta.index == 20
        assert [p.path for p in st.snapshots.problems] == [newest]


def test_snapshot_term_must_match_the_log_base(tmp_path: Path) -> None:
    with open_node(tmp_path) as st:
        st.log.append(make_entries(1, 10, term=2), HardState(2, 1, 8))
        st.save_snapshot(SnapshotMeta(8, 3, (1,)), b"wrong term")
        st.log.compact(8)
    with pytest.raises(CorruptionError, match=r"term 2\) disagrees with the snapshot's term 3"):
        open_node(tmp_path)


def test_finish_install_resets_a_log_short_of_the_snapshot_and_keeps_a_tail_otherwise(
    tmp_path: Path,
) -> None:
    short, held = tmp_path / "short", tmp_path / "held"
    with open_node(short) as st:  # a crash after saving an installed snapshot
        st.log.append(make_entries(1, 10, size=40), HardState(1, 1, 10))
        st.save_snapshot(SnapshotMeta(30, 2, (1, 2, 3)), b"state@30")
        st.log.sync()
    with open_node(short) as st:
        assert st.finish_install()
        assert (st.log.base_index, st.log.base_term, st.log.last_index) == (30, 2, 30)
    with open_node(short) as st:  # durable: nothing left to do
        assert not st.finish_install() and st.log.base_index == 30
    with open_node(held) as st:  # a snapshot of our own, with the tail kept behind it
        st.log.append(make_entries(1, 50, size=40), HardState(1, 1, 50))
        st.save_snapshot(SnapshotMeta(40, 1, (1, 2, 3)), b"state@40")
        st.log.compact(30)
        st.log.sync()
    with open_node(held) as st:
        assert not st.finish_install()
        assert (st.log.first_index, st.log.last_index) == (31, 50)
