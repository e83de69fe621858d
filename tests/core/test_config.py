"""Configuration validation (drafty.core.config): every rule, with its message."""

from __future__ import annotations

import pytest

from drafty.core import Config, ConfigError, CoreMisuse


def make(**kw: object) -> Config:
    args: dict[str, object] = {"id": 1, "voters": (1, 2, 3)}
    args.update(kw)
    return Config(**args)  # type: ignore[arg-type]


def test_defaults_are_valid() -> None:
    c = make()
    assert c.election_ticks > c.heartbeat_ticks
    assert (c.prevote, c.check_quorum, c.forward_proposals) == (True, True, False)


def test_single_voter_is_valid() -> None:
    assert make(voters=(1,)).voters == (1,)
    assert make(voters=()).voters == ()  # a node that joins an existing cluster


def test_config_error_is_core_misuse_and_value_error() -> None:
    with pytest.raises(CoreMisuse):
        make(id=0)
    with pytest.raises(ValueError):
        make(id=0)


def test_config_is_frozen() -> None:
    c = make()
    with pytest.raises(AttributeError):
        c.election_ticks = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        # election must exceed heartbeat
        (
            {"election_ticks": 5, "heartbeat_ticks": 5},
            r"election_ticks \(5\) must exceed heartbeat_ticks \(5\)",
        ),
        (
            {"election_ticks": 2, "heartbeat_ticks": 3},
            r"election_ticks \(2\) must exceed heartbeat_ticks \(3\)",
        ),
        ({"election_ticks": 1}, r"election_ticks \(1\) must exceed heartbeat_ticks \(1\)"),
        # zero, negative, bool, wrong type
        ({"id": 0}, r"id: must be a positive integer, got 0"),
        ({"id": -2}, r"id: must be a positive integer, got -2"),
        ({"id": True, "voters": (1, 2)}, r"id: must be a positive integer, got True"),
        ({"id": "1"}, r"id: must be a positive integer, got '1'"),
        ({"election_ticks": 0}, r"election_ticks: must be a positive integer, got 0"),
        ({"election_ticks": -10}, r"election_ticks: must be a positive integer, got -10"),
        ({"election_ticks": 10.0}, r"election_ticks: must be a positive integer, got 10.0"),
        ({"election_ticks": True}, r"election_ticks: must be a positive integer, got True"),
        ({"heartbeat_ticks": 0}, r"heartbeat_ticks: must be a positive integer, got 0"),
        ({"heartbeat_ticks": -1}, r"heartbeat_ticks: must be a positive integer, got -1"),
        ({"heartbeat_ticks": False}, r"heartbeat_ticks: must be a positive integer, got False"),
        ({"max_inflight": 0}, r"max_inflight: must be a positive integer, got 0"),
        ({"max_inflight": -5}, r"max_inflight: must be a positive integer, got -5"),
        ({"max_inflight": True}, r"max_inflight: must be a positive integer, got True"),
        ({"max_msg_bytes": 0}, r"max_msg_bytes: must be a positive integer, got 0"),
        ({"max_msg_bytes": -1}, r"max_msg_bytes: must be a positive integer, got -1"),
        ({"max_msg_bytes": None}, r"max_msg_bytes: must be a positive integer, got None"),
        # flags must be real bools
        ({"prevote": 1}, r"prevote: must be True or False"),
        ({"check_quorum": "yes"}, r"check_quorum: must be True or False"),
        ({"forward_proposals": None}, r"forward_proposals: must be True or False"),
        # voters
        ({"voters": [1, 2, 3]}, r"voters: must be a tuple of node ids"),
        ({"voters": {1, 2, 3}}, r"voters: must be a tuple of node ids"),
        ({"promote_max_lag_entries": -1}, r"promote_max_lag_entries: must not be negative"),
        ({"promote_max_lag_entries": 1.5}, r"promote_max_lag_entries: must be an integer"),
        ({"voters": (1, 2, 2)}, r"voters: duplicate node id in \(1, 2, 2\)"),
        ({"voters": (1, 0)}, r"voters entry: must be a positive integer, got 0"),
        ({"voters": (1, -3)}, r"voters entry: must be a positive integer, got -3"),
        ({"voters": (1, True)}, r"voters entry: must be a positive integer, got True"),
        ({"id": 4}, r"id: node 4 is not among voters \(1, 2, 3\)"),
    ],
)
def test_invalid_config_raises_with_message(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        make(**kwargs)
