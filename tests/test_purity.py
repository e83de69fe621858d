"""core/ must stay pure: no platform modules, no global randomness.

The check parses every module under src/drafty/core with ``ast`` (so a
forbidden import hidden in a function body or a ``from x import y`` is caught
too), and a second pass confirms that the checker itself trips on a planted
violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "src" / "drafty" / "core"
FORBIDDEN_MODULES = {
    "asyncio",
    "socket",
    "os",
    "time",
    "threading",
    "selectors",
    "subprocess",
    "multiprocessing",
    "signal",
    "io",
    "pathlib",
    "datetime",
}
GLOBAL_RANDOM_FUNCS = {
    "random",
    "randint",
    "randrange",
    "choice",
    "choices",
    "shuffle",
    "uniform",
    "sample",
    "seed",
    "getrandbits",
    "gauss",
}


def violations(source: str, name: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{name}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES:
                found.append(f"{name}:{node.lineno}: from {node.module} import ...")
            if root == "random" and any(a.name != "Random" for a in node.names):
                found.append(f"{name}:{node.lineno}: from random import a global function")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr in GLOBAL_RANDOM_FUNCS
        ):
            found.append(f"{name}:{node.lineno}: random.{node.attr} (global PRNG)")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"open", "print", "input", "__import__"}
        ):
            found.append(f"{name}:{node.lineno}: {node.func.id}() does I/O")
    return found


def test_core_modules_exist() -> None:
    assert len(list(CORE.glob("*.py"))) >= 8


def test_core_is_pure() -> None:
    problems: list[str] = []
    for path in sorted(CORE.rglob("*.py")):
        problems.extend(violations(path.read_text(), path.name))
    assert not problems, "core/ touches the platform:\n" + "\n".join(problems)


SRC = CORE.parent
PURE_ABOVE_CORE = [
    *sorted((SRC / "node").glob("*.py")),
    SRC / "service" / "commands.py",
    SRC / "service" / "calls.py",
    SRC / "service" / "kv.py",
]
"""The node layer, the service's command/outcome mapping and retry rules and the KV
store: what the simulator drives must be drivable without I/O."""


@pytest.mark.parametrize("path", PURE_ABOVE_CORE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_layers_the_simulator_runs_are_pure(path: Path) -> None:
    problems = violations(path.read_text(), path.name)
    assert not problems, f"{path} touches the platform:\n" + "\n".join(problems)


def test_checker_catches_planted_violations() -> None:
    planted = {
        "import asyncio": 1,
        "import os.path": 1,
        "from time import monotonic": 1,
        "def f():\n    import socket": 1,
        "import random\nx = random.random()": 1,
        "from random import choice": 1,
        "from random import Random\nr = Random(1)\nr.random()": 0,
        "open('x')": 1,
    }
    for source, expected in planted.items():
        assert len(violations(source, "planted.py")) == expected, source
