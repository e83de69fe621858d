"""cluster.toml parsing (drafty.service.config)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from drafty.node import NodeOptions, TransferLimits
from drafty.service.config import (
    MAX_CHUNK_BYTES,
    ClusterConfig,
    ClusterConfigError,
    NodeEntry,
    ReadSettings,
    SnapshotSettings,
    from_dict,
    load,
    parse_address,
    render,
)

GOOD = """\
cluster = "prod"
tick_ms = 20

[[node]]
id = 1
peer = "127.0.0.1:7001"
client = "127.0.0.1:6379"

[[node]]
id = 3
peer = "10.0.0.3:7001"
client = "[::1]:6380"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cluster.toml"
    p.write_text(text)
    return p


def test_valid_file(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, GOOD))
    assert cfg.name == "prod"
    assert cfg.tick_ms == 20
    assert cfg.nodes == {
        1: NodeEntry(1, ("127.0.0.1", 7001), ("127.0.0.1", 6379)),
        3: NodeEntry(3, ("10.0.0.3", 7001), ("::1", 6380)),
    }
    assert cfg.peers() == {1: ("127.0.0.1", 7001), 3: ("10.0.0.3", 7001)}
    assert cfg.clients()[3] == ("::1", 6380)


def test_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, '[[node]]\nid = 1\npeer = "h:1"\nclient = "h:2"\n'))
    assert cfg.name == "drafty" and cfg.tick_ms == 50


def node(i: object = 1, peer: object = "h:1", client: object = "h:2") -> str:
    def lit(v: object) -> str:
        return f'"{v}"' if isinstance(v, str) else str(v).lower()

    return f"[[node]]\nid = {lit(i)}\npeer = {lit(peer)}\nclient = {lit(client)}\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("cluster = \n", "not valid TOML"),
        ("[[node]\nid=1", "not valid TOML"),
        ('cluster = "x"\n', "no [[node]]"),
        ("node = []\n", "no [[node]]"),
        ("node = 5\n", "no [[node]]"),
        ("node = [5]\n", "must be a table"),
        (node(1) + node(1, "h:3", "h:4"), "id 1 is used twice"),
        (node("1"), "id must be a positive integer"),
        (node(0), "id must be a positive integer"),
        (node(-2), "id must be a positive integer"),
        (node(True), "id must be a positive integer"),
        (node(1.0), "id must be a positive integer"),
        ('[[node]]\npeer = "h:1"\nclient = "h:2"\n', "id must be a positive integer"),
        (node(1, "h"), "peer"),
        (node(1, "h:0"), "port in 1..65535"),
        (node(1, "h:65536"), "port in 1..65535"),
        (node(1, ":80"), "peer"),
        (node(1, "h:-1"), "peer"),
        (node(1, "h:x"), "peer"),
        (node(1, 7001), "peer"),
        ('[[node]]\nid = 1\npeer = "h:1"\n', "client"),
        (node(1, "h:1", "h:1"), "client address h:1 is also"),
        (node(1) + node(2, "h:3", "h:1"), "client address h:1 is also"),
        (node(1) + node(2, "h:2", "h:3"), "peer address h:2 is also"),
        (node(1) + "port = 5\n", "unknown field(s) port"),
        ("tick_ms = 0\n" + node(), "tick_ms"),
        ("tick_ms = 10001\n" + node(), "tick_ms"),
        ('tick_ms = "50"\n' + node(), "tick_ms"),
        ("tick_ms = 1.5\n" + node(), "tick_ms"),
        ("tick_ms = true\n" + node(), "tick_ms"),
        ('cluster = ""\n' + node(), "cluster must be"),
        ("cluster = 5\n" + node(), "cluster must be"),
    ],
)
def test_errors_name_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ClusterConfigError) as e:
        load(path)
    assert problem in str(e.value)
    assert str(path) in str(e.value)


def test_error_names_the_node(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="node 2: peer"):
        load(write(tmp_path, node(1) + node(2, "bad", "h:9")))
    with pytest.raises(
        ClusterConfigError, match=r"node 2: peer address h:2 is also .*node 1 client"
    ):
        load(write(tmp_path, node(1) + node(2, "h:2", "h:9")))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="no such file"):
        load(tmp_path / "nope.toml")


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_bytes(b'cluster = "\xff"\n')
    with pytest.raises(ClusterConfigError, match="not valid TOML"):
        load(p)


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError):
        load(tmp_path)  # a directory: IsADirectoryError escapes


def test_unicode_digit_port_is_a_config_error() -> None:
    with pytest.raises(ClusterConfigError):
        parse_address("h:²", "x")


def test_unknown_top_level_field(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="tick-ms"):
        load(write(tmp_path, "tick-ms = 20\n" + node()))


def test_render_parses_back(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, GOOD))
    again = from_dict(tomllib.loads(render(cfg)), "rendered")
    assert again == cfg
    made = ClusterConfig(
        "local",
        {i: NodeEntry(i, ("127.0.0.1", 7000 + i), ("localhost", 6000 + i)) for i in (3, 1, 2)},
        7,
    )
    assert from_dict(tomllib.loads(render(made)), "x") == made


@pytest.mark.parametrize("name", ['a"b', "back\\slash", "", "x" * 65, "sp ace"])
def test_cluster_names_are_restricted(name: str) -> None:
    """Names are plain tokens, so render() can never write broken TOML."""
    with pytest.raises(ClusterConfigError, match="cluster must be"):
        from_dict({"cluster": name, "node": [{"id": 1, "peer": "h:1", "client": "h:2"}]}, "x")


def test_snapshot_table_defaults_and_values(tmp_path: Path) -> None:
    assert load(write(tmp_path, node())).snapshot == SnapshotSettings(
        entries=10_000, bytes=64 << 20, keep_entries=5_000, keep_bytes=8 << 20, chunk_bytes=1 << 20
    )
    text = (
        "[snapshot]\nentries = 20\nbytes = 0\nkeep_entries = 5\nkeep_bytes = 999\n"
        "chunk_bytes = 256\n\n" + node()
    )
    cfg = load(write(tmp_path, text))
    assert cfg.snapshot == SnapshotSettings(
        entries=20, bytes=0, keep_entries=5, keep_bytes=999, chunk_bytes=256
    )
    partial = load(write(tmp_path, "[snapshot]\nkeep_entries = 7\n" + node())).snapshot
    assert partial == SnapshotSettings(keep_entries=7)
    edge = load(write(tmp_path, f"[snapshot]\nchunk_bytes = {16 << 20}\n" + node())).snapshot
    assert edge.chunk_bytes == MAX_CHUNK_BYTES == 16 << 20


def test_snapshot_settings_become_node_options() -> None:
    settings = SnapshotSettings(entries=20, bytes=1000, keep_entries=5, keep_bytes=77,
                                chunk_bytes=256)  # fmt: skip
    opts = NodeOptions(**settings.node_options())
    assert (opts.snapshot_entries, opts.snapshot_bytes, opts.snapshot_keep_entries) == (20, 1000, 5)
    assert opts.snapshot_keep_bytes == 77
    assert opts.transfer == TransferLimits(chunk_bytes=256)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("entries = -1", "[snapshot]: entries must be a non-negative integer"),
        ('entries = "10"', "entries must be"),
        ("entries = 1.5", "entries must be"),
        ("entries = true", "entries must be"),
        ("bytes = -5", "[snapshot]: bytes must be"),
        ("keep_entries = -1", "[snapshot]: keep_entries must be"),
        ("keep_bytes = -1", "[snapshot]: keep_bytes must be"),
        ("chunk_bytes = 0", "[snapshot]: chunk_bytes must be an integer in 1..16777216"),
        (f"chunk_bytes = {(16 << 20) + 1}", "chunk_bytes must be an integer in 1..16777216"),
        ("chunk = 5", "[snapshot]: unknown field(s) chunk"),
    ],
)
def test_snapshot_table_errors_name_the_field(tmp_path: Path, table: str, problem: str) -> None:
    path = write(tmp_path, f"[snapshot]\n{table}\n\n" + node())
    with pytest.raises(ClusterConfigError) as e:
        load(path)
    assert problem in str(e.value) and str(path) in str(e.value)


def test_snapshot_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match=r"\[snapshot\] must be a table"):
        load(write(tmp_path, "snapshot = 5\n" + node()))


def test_render_keeps_snapshot_settings() -> None:
    made = ClusterConfig(
        "local",
        {1: NodeEntry(1, ("h", 1), ("h", 2))},
        50,
        SnapshotSettings(entries=20, bytes=0, keep_entries=5, chunk_bytes=256),
    )
    text = render(made)
    assert "[snapshot]" in text
    assert from_dict(tomllib.loads(text), "x") == made
    plain = ClusterConfig("local", {1: NodeEntry(1, ("h", 1), ("h", 2))})
    assert "[snapshot]" not in render(plain)
    assert from_dict(tomllib.loads(render(plain)), "x") == plain


def test_reads_table(tmp_path: Path) -> None:
    assert load(write(tmp_path, node())).reads == ReadSettings(lease=False, lease_drift_ticks=2)
    cfg = load(write(tmp_path, "[reads]\nlease = true\nlease_drift_ticks = 3\n" + node()))
    assert cfg.reads == ReadSettings(lease=True, lease_drift_ticks=3)
    assert from_dict(tomllib.loads(render(cfg)), "rendered") == cfg
    assert cfg.reads.raft_options() == {"lease_reads": True, "lease_drift_ticks": 3}
    for table, problem in [
        ('lease = "yes"', "lease must be true or false"),
        ("lease_drift_ticks = 8", "lease_drift_ticks must be an integer in 0..7"),
        ("lease_drift_ticks = -1", "lease_drift_ticks must be"),
        ("leases = true", "unknown field"),
    ]:
        with pytest.raises(ClusterConfigError, match=problem):
            load(write(tmp_path, f"[reads]\n{table}\n" + node()))
