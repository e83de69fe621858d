"""Snapshots on a real RaftNode cluster: taken, compacted, restored, installed.

Three :class:`~drafty.driver.RaftNode` instances in one asyncio loop (loopback
TCP, real files), a :class:`KVStore` each, and thresholds small enough that a
few dozen writes take several snapshots and stream them in 256-byte chunks.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from drafty.core import Entry, EntryKind, HardState, SnapshotMeta
from drafty.driver import NodeSettings, RaftNode, Refused
from drafty.driver.files import DiskSnapshotFiles
from drafty.node import SnapshotIOError
from drafty.node import snapshot as snapshot_payload
from drafty.node.dedupe import DuplicateFilter
from drafty.node.sessions import SessionTable
from drafty.service.kv import KVStore, encode_command
from drafty.storage import NodeStorage
from drafty.storage.inspect import format_report, inspect_dir

from ..e2e.conftest import _free_base

OPTIONS = {
    "snapshot_entries": 20,
    "snapshot_keep_entries": 5,
    "transfer": {"chunk_bytes": 256, "ack_timeout_ms": 500},
}


def settings(tmp_path: Path, n: int = 3) -> list[NodeSettings]:
    base = _free_base(n + 1)
    peers = {i: ("127.0.0.1", base + i) for i in range(1, n + 1)}
    return [
        NodeSettings(
            id=i,
            cluster="snap",
            peers=peers,
            data_dir=tmp_path / f"node-{i}",
            tick_ms=20,
            node_options=OPTIONS,
        )
        for i in peers
    ]


async def until(cond: object, seconds: float = 15.0, what: str = "condition") -> None:
    assert callable(cond)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def leader_of(nodes: list[RaftNode]) -> RaftNode:
    found: list[RaftNode] = []

    def elected() -> bool:
        found[:] = [n for n in nodes if n.status().leader == n.id]
        return bool(found)

    await until(elected, what="a leader")
    return found[0]


async def write(nodes: list[RaftNode], keys: range, tag: str) -> None:
    """SET key:i through the leader, retried while there is none."""
    for i in keys:
        cmd = encode_command([b"SET", f"key:{i}".encode(), f"{tag}-{i}".encode() * 3])
        for _ in range(100):
            try:
                await (await leader_of(nodes)).submit(cmd, timeout=2.0)
                break
            except Refused:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"key:{i} was never accepted")


async def converged(nodes: list[RaftNode], kvs: dict[int, KVStore]) -> None:
    """Every node applied the leader's commit index and holds the same data."""
    leader = await leader_of(nodes)

    def same() -> bool:
        commit = leader.status().commit
        return all(n.applied == commit for n in nodes) and all(
            kvs[n.id].data == kvs[leader.id].data for n in nodes
        )

    await until(same, what="the nodes to apply the same state")


def test_snapshots_compaction_restart_and_install(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drafty.driver")

    async def scenario() -> None:
        cfg = settings(tmp_path)
        kvs = {s.id: KVStore() for s in cfg}
        nodes = [RaftNode(s, kvs[s.id]) for s in cfg]
        for n in nodes:
            await n.start()
        try:
            await run(cfg, kvs, nodes)
        finally:
            for n in nodes:
                await n.stop()

    async def run(cfg: list[NodeSettings], kvs: dict[int, KVStore], nodes: list[RaftNode]) -> None:
        # 1. Writes take snapshots on every node and compact every log.
        await write(nodes, range(80), "a")
        await converged(nodes, kvs)
        assert len(kvs[1].data) == 80
        # A save in flight has its file on disk before the node hears it is
        # durable; compare files with the log only once every save is done.
        await until(lambda: not any(n.log_status().snapshot_saving for n in nodes),
                    what="snapshot saves to finish")  # fmt: skip
        for n in nodes:
            lg = n.log_status()
            st = n.status()
            assert st.counters["snapshots_taken"] >= 2, st.counters
            assert lg.snapshot_index >= 60 and lg.snapshot_term >= 1
            wal = n._wal
            assert wal is not None and wal.base_index > 0
            # The log keeps snapshot_keep_entries behind the snapshot, not more.
            assert lg.first_index == wal.base_index + 1
            assert lg.first_index <= lg.snapshot_index - 5 + 1
            assert lg.entries == lg.last_index - lg.first_index + 1 < 80
            assert lg.bytes > 0
            snaps = NodeStorage.open(n.settings.data_dir, cluster_id="snap", node_id=n.id,
                                     create=False)  # fmt: skip
            held = [f.index for f in snaps.snapshots.files()]
            snaps.close(sync=False)
            assert 1 <= len(held) <= 2 and held[0] == lg.snapshot_index
        assert "snapshot saved: index" in caplog.text
        assert "log compacted through index" in caplog.text

        # 2. A follower stopped and restarted recovers from its snapshot.
        leader = await leader_of(nodes)
        k = next(i for i, n in enumerate(nodes) if n is not leader)
        f = nodes[k]
        snap_index = f.log_status().snapshot_index
        expected = dict(kvs[f.id].data)
        await f.stop()
        caplog.clear()
        kvs[f.id] = KVStore()
        nodes[k] = f = RaftNode(cfg[k], kvs[f.id])
        await f.start()
        # Right after start, before any message: the snapshot is restored.
        assert f.node.snapshot_index == snap_index
        assert f.applied >= snap_index
        assert len(kvs[f.id].data) > 0
        assert all(expected[key] == v for key, v in kvs[f.id].data.items())
        assert f"restarted from the snapshot at index {snap_index}" in caplog.text
        await converged(nodes, kvs)
        assert kvs[f.id].data == expected

        # 3. A follower whose data directory is wiped while it is down gets
        #    everything through InstallSnapshot (the leader compacted entry 1).
        leader = await leader_of(nodes)
        k = next(i for i, n in enumerate(nodes) if n is not leader)
        g = nodes[k]
        await g.stop()
        shutil.rmtree(g.settings.data_dir)
        await write(nodes, range(80, 120), "b")
        leader = await leader_of(nodes)
        assert leader.log_status().first_index > 1
        caplog.clear()
        kvs[g.id] = KVStore()
        nodes[k] = g = RaftNode(cfg[k], kvs[g.id])
        await g.start()
        assert kvs[g.id].data == {}
        await converged(nodes, kvs)
        assert kvs[g.id].data == kvs[leader.id].data and len(kvs[g.id].data) == 120
        assert g.status().counters["snapshots_installed"] >= 1
        assert leader.status().counters["snapshot_sends_done"] >= 1
        assert "installed a snapshot from leader" in caplog.text
        installed = g.log_status()
        assert installed.snapshot_index > 0 and installed.first_index > 1

        # 4. Writes after the install keep working on the new follower, and
        #    `drafty storage inspect` reads its (version 2) snapshot files.
        await write(nodes, range(120, 130), "c")
        await converged(nodes, kvs)
        await g.stop()
        report = inspect_dir(g.settings.data_dir)
        assert report.snapshots and all(s.error is None for s in report.snapshots)
        assert not report.fatal, format_report(report)
        assert "would open" in format_report(report)
        nodes[k] = g = RaftNode(cfg[k], KVStore())
        await g.start()

    asyncio.run(scenario())


def test_a_snapshot_that_outlived_its_log_reset_is_recovered(tmp_path: Path) -> None:
    """A crash after an installed snapshot was kept but before the log was
    reset: the data directory holds the snapshot and an (empty) log that does
    not reach it. Restart compacts the log to the snapshot, restores it, and
    the node catches up."""

    async def scenario() -> None:
        cfg = settings(tmp_path)
        kvs = {s.id: KVStore() for s in cfg}
        nodes = [RaftNode(s, kvs[s.id]) for s in cfg]
        for n in nodes:
            await n.start()
        try:
            await write(nodes, range(50), "a")
            await converged(nodes, kvs)
            leader = await leader_of(nodes)
            k = next(i for i, n in enumerate(nodes) if n is not leader)
            f = nodes[k]
            await f.stop()
            d = f.settings.data_dir
            saved = tmp_path / "saved-snap"
            shutil.copytree(d / "snap", saved)
            shutil.rmtree(d)
            NodeStorage.open(d, cluster_id="snap", node_id=f.id).close()
            newest = max(saved.iterdir())
            shutil.copy(newest, d / "snap" / newest.name)
            kvs[f.id] = KVStore()
            nodes[k] = f = RaftNode(cfg[k], kvs[f.id])
            await f.start()
            wal = f._wal
            assert wal is not None and wal.base_index == f.node.snapshot_index > 0
            assert f.applied == f.node.snapshot_index and len(kvs[f.id].data) > 0
            await write(nodes, range(50, 60), "b")
            await converged(nodes, kvs)
            assert len(kvs[f.id].data) == 60
        finally:
            for n in nodes:
                await n.stop()

    asyncio.run(scenario())


def one_node(tmp_path: Path, **options: object) -> NodeSettings:
    base = _free_base(2)
    return NodeSettings(
        1, "solo", {1: ("127.0.0.1", base + 1)}, tmp_path / "solo", tick_ms=20,
        node_options={"snapshot_entries": 10, "snapshot_keep_entries": 2, **options},
    )  # fmt: skip


async def set_keys(node: RaftNode, keys: range) -> None:
    await until(lambda: node.status().leader == node.id, what="the node to lead")
    for i in keys:
        await node.submit(encode_command([b"SET", b"k%d" % i, b"v"]), timeout=2.0)


def test_a_slow_snapshot_save_delays_no_fsync_and_stop_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    entered = threading.Event()
    real_save = DiskSnapshotFiles.save

    def slow_save(self: DiskSnapshotFiles, meta: SnapshotMeta, pieces: Iterable[bytes]) -> int:
        entered.set()
        assert release.wait(10)
        return real_save(self, meta, pieces)

    monkeypatch.setattr(DiskSnapshotFiles, "save", slow_save)

    async def scenario() -> None:
        kv = KVStore()
        node = RaftNode(one_node(tmp_path), kv)
        await node.start()
        await set_keys(node, range(12))
        await until(entered.is_set, what="the save to start")
        # The save is stuck; writes (each needing an fsync) still complete.
        await asyncio.wait_for(set_keys(node, range(12, 40)), 5)
        assert node.status().counters.get("snapshots_taken", 0) == 0
        assert node.log_status().snapshot_index == 0
        threading.Timer(0.3, release.set).start()
        await node.stop()  # waits for the save that is running
        assert release.is_set()
        snap = tmp_path / "solo" / "snap"
        assert [p.name for p in snap.iterdir() if not p.name.endswith(".snap")] == []
        assert len(list(snap.glob("*.snap"))) == 1
        # The saved snapshot (taken at index ~11) serves the restart.
        again = KVStore()
        node = RaftNode(one_node(tmp_path), again)
        await node.start()
        try:
            assert node.node.snapshot_index >= 10
            await until(lambda: again.data == kv.data, what="the restart to replay the log")
        finally:
            await node.stop()

    asyncio.run(scenario())


def test_a_failed_snapshot_save_is_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_save(self: DiskSnapshotFiles, meta: SnapshotMeta, pieces: Iterable[bytes]) -> int:
        raise SnapshotIOError("cannot save snapshot file x: No space left on device")

    monkeypatch.setattr(DiskSnapshotFiles, "save", failing_save)

    async def scenario() -> None:
        kv = KVStore()
        node = RaftNode(one_node(tmp_path, snapshot_retry_ms=50), kv)
        await node.start()
        try:
            await set_keys(node, range(15))
            await until(lambda: node.status().counters.get("snapshot_save_failed", 0) >= 1,
                        what="the failed save")  # fmt: skip
            await set_keys(node, range(15, 30))
            assert node.failed is None and len(kv.data) == 30
            assert node.log_status().snapshot_index == 0
            wal = node._wal
            assert wal is not None and wal.base_index == 0
        finally:
            await node.stop()
        assert "saving the snapshot at index" in caplog.text
        assert "No space left on device" in caplog.text

    asyncio.run(scenario())


def test_a_snapshot_durable_before_the_commit_that_covers_it(tmp_path: Path) -> None:
    """The snapshot thread's fsync can beat the fsync of the hard state that
    committed its entries: after a crash the log holds the snapshot's entry
    (kept behind it) but the recorded commit index is lower. The snapshot
    vouches for the commit; the node starts from it and keeps the log."""
    s = one_node(tmp_path)
    storage = NodeStorage.open(s.data_dir, cluster_id="solo", node_id=1)
    storage.log.append([Entry(i, 1, EntryKind.NOOP) for i in range(1, 16)], HardState(1, 1, 5))
    storage.log.sync()
    kv = KVStore()
    kv.execute([b"SET", b"a", b"1"])
    payload = snapshot_payload.encode(kv, SessionTable(), DuplicateFilter())
    storage.snapshots.save(SnapshotMeta(12, 1, (1,)), payload)
    storage.close()

    async def scenario() -> None:
        again = KVStore()
        node = RaftNode(s, again)
        await node.start()
        try:
            assert node.node.snapshot_index == 12 and node.applied >= 12
            assert node.status().commit >= 12
            assert again.data == {b"a": b"1"}
            lg = node.log_status()
            assert (lg.first_index, lg.snapshot_index) == (1, 12)  # the log is kept
            await set_keys(node, range(3))
            assert again.data[b"k2"] == b"v" and again.data[b"a"] == b"1"
        finally:
            await node.stop()

    asyncio.run(scenario())
