"""Small durable-file helpers shared by the log, snapshots and the meta file.

Rules these helpers encode (POSIX, Linux ext4/xfs semantics):

- ``sync_data`` uses ``fdatasync`` where the platform has it: it flushes the
  data and every piece of metadata needed to read it back (including the file
  size of an append), skipping only timestamps. macOS has no ``fdatasync``
  and its ``fsync`` does not flush the drive cache; we fall back to ``fsync``.
- A new or renamed or removed directory entry is durable only once the
  directory itself is fsynced (``sync_dir``).
- ``atomic_write`` = write a temp file, fsync it, rename over the target,
  fsync the directory: a reader sees the old file or the new one, never a mix.

The functions call ``os.fsync`` / ``os.fdatasync`` through the ``os`` module
at call time so tests can interpose a fake disk.
"""

from __future__ import annotations

import os
from pathlib import Path

HAVE_FDATASYNC = hasattr(os, "fdatasync")


def sync_data(fd: int) -> None:
    """Make the bytes written to ``fd`` durable (fdatasync, else fsync)."""
    if HAVE_FDATASYNC:
        os.fdatasync(fd)
    else:  # pragma: no cover - not Linux
        os.fsync(fd)


def sync_dir(path: Path) -> None:
    """fsync a directory so entries created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """``os.write`` until every byte is written (regular files may write short)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temp, fsync, rename, dir fsync)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_dir(path.parent)


def make_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing, making the new entry durable."""
    if path.is_dir():
        return
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        sync_dir(created.parent)
