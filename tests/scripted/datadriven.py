"""A reader and rewriter for etcd-raft style scripted test files.

A file is a sequence of cases. Each case is one command line (``#`` lines
and blank lines before it are comments), a line ``----``, and the expected
output up to the next blank line::

    # An election in a three-node cluster.
    campaign 1
    ----
    ok

Expected output never contains blank lines (renderers write ``ok`` for
nothing). With ``pytest --rewrite`` the actual output replaces the expected,
preserving comments and commands, so a reviewer reads the change as a diff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Case:
    preamble: list[str]
    command: str
    line: int
    expected: str


def parse(text: str) -> tuple[list[Case], list[str]]:
    """Cases of a file, plus trailing comment lines."""
    lines = text.splitlines()
    cases: list[Case] = []
    pre: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            pre.append(line)
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != "----":
            raise ValueError(f"line {i + 1}: command {line!r} is not followed by ----")
        start, i = i, i + 2
        out: list[str] = []
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        cases.append(Case(pre, line, start + 1, "\n".join(out)))
        pre = []
    return cases, pre


def run_file(path: Path, run: Callable[[str], str], rewrite: bool) -> list[str]:
    """Run every case; return mismatch reports (or rewrite the file)."""
    cases, trailer = parse(path.read_text())
    failures: list[str] = []
    parts: list[str] = []
    for case in cases:
        actual = run(case.command).rstrip("\n") or "ok"
        if actual != case.expected:
            failures.append(
                f"{path.name}:{case.line}: {case.command}\n"
                f"--- expected\n{case.expected}\n--- actual\n{actual}"
            )
        parts.extend(case.preamble)
        parts.extend([case.command, "----", actual if rewrite else case.expected])
    if rewrite:
        parts.extend(trailer)
        text = "\n".join(parts).rstrip("\n") + "\n"
        path.write_text(text)
        return []
    return failures
