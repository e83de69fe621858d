"""DiskSnapshotFiles: the node's snapshot files port on real files (drafty.driver.files)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from drafty.core import SnapshotMeta
from drafty.driver.files import DiskSnapshotFiles
from drafty.node import SnapshotIOError
from drafty.storage import SnapshotStore

META = SnapshotMeta(42, 3, (1, 2, 3))
PIECES = [b"alpha-", b"", b"beta-" * 100, b"gamma"]
PAYLOAD = b"".join(PIECES)


def files_in(tmp_path: Path, name: str = "snap", keep: int = 2) -> DiskSnapshotFiles:
    return DiskSnapshotFiles(SnapshotStore.open(tmp_path / name, keep=keep))


def leftovers(store: SnapshotStore) -> list[str]:
    return sorted(p.name for p in store.directory.iterdir() if not p.name.endswith(".snap"))


def test_save_size_and_read_serve_the_whole_file(tmp_path: Path) -> None:
    files = files_in(tmp_path)
    size = files.save(META, iter(PIECES))
    path = files.store.path_of(META)
    assert size == path.stat().st_size == files.size(META)
    assert bytes(files.store.load(path).data) == PAYLOAD
    assert files.store.load(path).meta == META
    whole = b"".join(files.read(META, off, 100) for off in range(0, size, 100))
    assert whole == path.read_bytes()
    assert files.read(META, size - 3, 100) == path.read_bytes()[-3:]  # short at the end
    assert leftovers(files.store) == []


def test_save_keeps_two_snapshots(tmp_path: Path) -> None:
    files = files_in(tmp_path, keep=2)
    metas = [SnapshotMeta(i, 1, (1,)) for i in (10, 20, 30)]
    for m in metas:
        files.save(m, [b"x" * m.index])
    assert [f.index for f in files.store.files()] == [30, 20]
    with pytest.raises(SnapshotIOError, match="snap-0000000000000010"):
        files.size(metas[0])
    assert files.size(metas[1]) > 0


def test_missing_files_raise_snapshot_io_errors_naming_them(tmp_path: Path) -> None:
    files = files_in(tmp_path)
    name = files.store.path_of(META).name
    with pytest.raises(SnapshotIOError, match=name) as got:
        files.size(META)
    assert isinstance(got.value.__cause__, FileNotFoundError)
    with pytest.raises(SnapshotIOError, match=f"cannot read 10 bytes at 5 of .*{name}"):
        files.read(META, 5, 10)


def test_a_failed_save_is_a_snapshot_io_error_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    files = files_in(tmp_path)
    files.store.directory.rmdir()  # the disk lost the directory
    with pytest.raises(SnapshotIOError, match=f"cannot save .*{files.store.path_of(META).name}"):
        files.save(META, iter(PIECES))
    files.store.directory.mkdir()

    def broken_disk() -> Iterator[bytes]:
        yield b"some"
        raise OSError(28, "No space left on device")

    with pytest.raises(SnapshotIOError, match="No space left on device"):
        files.save(META, broken_disk())
    assert leftovers(files.store) == []


def test_a_state_machine_error_in_the_pieces_passes_through_untranslated(
    tmp_path: Path,
) -> None:
    files = files_in(tmp_path)

    def unencodable() -> Iterator[bytes]:
        yield b"head"
        raise TypeError("cannot encode a socket")

    with pytest.raises(TypeError, match="socket"):
        files.save(META, unencodable())
    assert leftovers(files.store) == [] and files.store.files() == []


def test_receive_writes_in_order_and_finish_keeps_the_verified_payload(tmp_path: Path) -> None:
    leader, follower = files_in(tmp_path, "leader"), files_in(tmp_path, "follower")
    leader.save(META, PIECES)
    total = leader.size(META)
    incoming = follower.receive(META, total)
    assert leftovers(follower.store) == [follower.store.path_of(META).name + ".recv"]
    for off in range(0, total, 64):
        incoming.write(off, leader.read(META, off, 64))
    payload = incoming.finish()
    assert bytes(payload) == PAYLOAD
    assert leftovers(follower.store) == []
    kept = follower.store.latest()
    assert kept is not None and kept.meta == META and bytes(kept.data) == PAYLOAD
    assert follower.store.path_of(META).read_bytes() == leader.store.path_of(META).read_bytes()


def test_a_damaged_received_file_raises_and_leaves_nothing(tmp_path: Path) -> None:
    leader, follower = files_in(tmp_path, "leader"), files_in(tmp_path, "follower")
    leader.save(META, PIECES)
    raw = bytearray(leader.store.path_of(META).read_bytes())
    raw[100] ^= 0xFF  # a bit flipped in the payload, on the way
    incoming = follower.receive(META, len(raw))
    for off in range(0, len(raw), 64):
        incoming.write(off, bytes(raw[off : off + 64]))
    with pytest.raises(SnapshotIOError, match="checksum mismatch") as got:
        incoming.finish()
    assert follower.store.path_of(META).name in str(got.value)
    assert leftovers(follower.store) == []
    assert follower.store.files() == []
    incoming.abort()  # harmless afterwards


def test_a_file_of_another_snapshot_is_refused(tmp_path: Path) -> None:
    leader, follower = files_in(tmp_path, "leader"), files_in(tmp_path, "follower")
    leader.save(META, PIECES)
    other = SnapshotMeta(43, 3, (1, 2, 3))
    data = leader.store.path_of(META).read_bytes()
    incoming = follower.receive(other, len(data))
    incoming.write(0, data)
    with pytest.raises(SnapshotIOError):
        incoming.finish()
    assert os.listdir(follower.store.directory) == []


def test_out_of_order_and_incomplete_receives_are_snapshot_io_errors(tmp_path: Path) -> None:
    follower = files_in(tmp_path)
    incoming = follower.receive(META, 100)
    incoming.write(0, b"x" * 10)
    with pytest.raises(SnapshotIOError, match="does not follow 10"):
        incoming.write(20, b"y")
    with pytest.raises(SnapshotIOError, match="within 100"):
        incoming.write(10, b"z" * 100)
    with pytest.raises(SnapshotIOError, match="incomplete: 10 of 100"):
        incoming.finish()
    assert leftovers(follower.store) == []


def test_abort_throws_the_partial_file_away(tmp_path: Path) -> None:
    follower = files_in(tmp_path)
    incoming = follower.receive(META, 100)
    incoming.write(0, b"x" * 10)
    incoming.abort()
    incoming.abort()
    assert os.listdir(follower.store.directory) == []
    with pytest.raises(SnapshotIOError, match="closed"):
        incoming.write(10, b"x")


def test_receive_into_a_missing_directory_is_a_snapshot_io_error(tmp_path: Path) -> None:
    follower = files_in(tmp_path)
    follower.store.directory.rmdir()
    with pytest.raises(SnapshotIOError, match="cannot create"):
        follower.receive(META, 100)
