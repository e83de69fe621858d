"""Shared pytest options: ``--rewrite`` regenerates scripted test expectations."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite the expected output of scripted tests (tests/scripted/testdata)",
    )
