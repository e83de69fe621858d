"""``drafty storage inspect DIR``: a read-only report on a data directory.

Accepts a node directory (``meta.json``, ``wal/``, ``snap/``) or a bare log
directory. Prints the meta file, every segment (name, size, index range,
record count), the recovered hard state and log range, every snapshot
(verified), and the problems found: what ``open`` would truncate (a crash
tail) and what would make it refuse to start (corruption). Never writes,
truncates or deletes anything. Exit status 0: would open; 1: would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import CorruptionError
from .meta import META_NAME, Meta, read_meta
from .node import cross_check
from .segment import Replay, list_segments, replay_dir
from .snapshot import SnapshotFile, SnapshotMeta, SnapshotStore


@dataclass(slots=True)
class SnapshotReport:
    file: SnapshotFile
    size: int
    meta: SnapshotMeta | None = None
    """The verified header (None if the file is damaged)."""
    error: str | None = None


@dataclass(slots=True)
class Report:
    directory: Path
    meta: Meta | None = None
    meta_error: str | None = None
    wal_dir: Path | None = None
    replay: Replay | None = None
    snapshots: list[SnapshotReport] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)
    """Temporary files of interrupted writes (open removes them)."""

    @property
    def fatal(self) -> list[str]:
        out: list[str] = []
        if self.meta_error:
            out.append(self.meta_error)
        if self.replay is not None:
            out += [str(p) for p in self.replay.problems if p.fatal]
            if not any(p.fatal for p in self.replay.problems):
                log = self.replay.state.log
                good = [s.meta for s in self.snapshots if s.meta is not None]
                why = cross_check(log.base_index, log.base_term, good[0] if good else None)
                if why is not None:
                    out.append(f"CORRUPT: {why}")
        return out


def inspect_dir(directory: Path) -> Report:
    """Gather the report; reads files only."""
    rep = Report(directory)
    node_layout = (directory / META_NAME).exists() or (directory / "wal").is_dir()
    if node_layout:
        try:
            rep.meta = read_meta(directory)
            if rep.meta is None:
                rep.meta_error = f"{META_NAME} is missing"
        except CorruptionError as exc:
            rep.meta_error = str(exc)
        wal_dir = directory / "wal"
    else:
        wal_dir = directory
    if wal_dir.is_dir() and (list_segments(wal_dir) or node_layout):
        rep.wal_dir = wal_dir
        rep.replay = replay_dir(wal_dir, strict=False)
        rep.leftovers += sorted(wal_dir.glob("wal-*.log.tmp"))
    snap_dir = directory / "snap"
    if snap_dir.is_dir():
        store = SnapshotStore(snap_dir)
        for f in store.files():
            sr = SnapshotReport(f, f.path.stat().st_size)
            try:
                sr.meta = store.load(f.path).meta
            except CorruptionError as exc:
                sr.error = str(exc)
            rep.snapshots.append(sr)
        rep.leftovers += sorted(snap_dir.glob("snap-*.snap.tmp"))
        rep.leftovers += sorted(snap_dir.glob("snap-*.snap.recv"))
    return rep


def format_report(rep: Report) -> str:
    lines = [f"directory: {rep.directory}"]
    if rep.meta is not None:
        lines.append(f"meta: cluster {rep.meta.cluster_id!r}, node {rep.meta.node_id}")
    elif rep.meta_error:
        lines.append(f"meta: {rep.meta_error}")
    r = rep.replay
    if r is None:
        lines.append("log: no log segments found")
    else:
        lines.append(f"log: {rep.wal_dir}")
        lines.append(f"  {'segment':<42} {'bytes':>12} {'records':>8}  entries")
        for s in r.scanned:
            rng = f"{s.min_index}..{s.max_index}" if s.max_index else "-"
            lines.append(f"  {s.path.name:<42} {s.size:>12} {s.records:>8}  {rng}")
        if not [p for p in r.problems if p.fatal]:
            log, hs = r.state.log, r.state.hard_state
            lines.append(f"  hard state: term {hs.term}, vote {hs.vote}, commit {hs.commit}")
            lines.append(
                f"  entries {log.base_index + 1}..{log.last_index} "
                f"(compacted through {log.base_index}, term {log.base_term})"
            )
            if r.obsolete:
                names = ", ".join(s.path.name for s in r.obsolete)
                lines.append(f"  fully compacted (open deletes them): {names}")
        else:
            lines.append("  hard state and range: unknown (replay stopped at corruption)")
    lines.append("snapshots:" if rep.snapshots else "snapshots: none")
    for sr in rep.snapshots:
        status = "ok" if sr.error is None else f"DAMAGED ({sr.error})"
        lines.append(
            f"  {sr.file.path.name}  index {sr.file.index} term {sr.file.term} "
            f"voters {list(sr.meta.voters) if sr.meta else '?'} {sr.size} bytes: {status}"
        )
    problems = (
        []
        if r is None
        else [str(p) + ("" if p.fatal else " (open truncates it)") for p in r.problems]
    )
    if rep.meta_error:
        problems.insert(0, f"CORRUPT: {rep.meta_error}")
    problems += [
        f"damaged snapshot (not used): {sr.file.path.name}" for sr in rep.snapshots if sr.error
    ]
    problems += [f"leftover temporary file (removed on open): {p.name}" for p in rep.leftovers]
    problems += [p for p in rep.fatal if p.startswith("CORRUPT: ")]
    lines.append("problems:" if problems else "problems: none")
    lines += [f"  {p}" for p in problems]
    verdict = "would REFUSE to start" if rep.fatal else "would open"
    lines.append(f"verdict: {verdict}")
    return "\n".join(lines)


def run_inspect(directory: Path) -> int:
    """Print the report; 0 if the directory would open, 1 if not, 2 if it is not there."""
    if not directory.is_dir():
        print(f"{directory}: not a directory")
        return 2
    rep = inspect_dir(directory)
    print(format_report(rep))
    return 1 if rep.fatal else 0
