"""``drafty serve``: run one node of the key-value service until told to stop.

Starts a :class:`~drafty.driver.RaftNode` around a :class:`KVStore` and a
:class:`RespServer` in front of it, on uvloop when it is installed. SIGINT and
SIGTERM stop the node cleanly (the log is synced and closed); a fatal storage
error stops it with exit status 3 so a supervisor notices, and a node that
must not start (its cluster removed it; ``--join`` found no cluster; its
data directory cannot be opened) exits
with status 2 and says why. With ``--join`` the node adds itself to a
running cluster (:mod:`drafty.service.join`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from ..driver import NodeSettings, RaftNode
from ..driver.members import RemovedFromCluster
from ..node.members import MemberAddress
from ..storage import StorageError
from .config import ClusterConfig, ClusterConfigError, render
from .join import JoinRequest, join_cluster, keep_settings, settings_for
from .kv import KVStore
from .loopwatch import LoopWatch
from .server import RespServer

log = logging.getLogger("drafty.serve")


async def run_node(
    config: ClusterConfig, node_id: int, data_dir: Path, join: JoinRequest | None = None
) -> int:
    book: dict[int, MemberAddress] = {}
    if join is not None:
        try:
            config, book = await settings_for(join)
        except ClusterConfigError as e:
            log.error("%s", e)
            return 2
    entry = config.nodes[node_id]
    settings = NodeSettings(
        id=node_id,
        cluster=config.name,
        peers=config.peers(),
        clients=config.clients(),
        join=join is not None,
        data_dir=data_dir,
        tick_ms=config.tick_ms,
        node_options=config.snapshot.node_options(),
        extra_config=config.reads.raft_options(),
    )
    node = RaftNode(settings, KVStore())
    stop = asyncio.Event()
    status = 0

    def fatal(e: BaseException) -> None:
        nonlocal status
        status = 3
        stop.set()

    node.on_fatal = fatal
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
    except RemovedFromCluster as e:
        log.error("%s", e)
        return 2
    except (StorageError, OSError) as e:  # a bad or unreadable data directory
        log.error("node %d: cannot open its data directory %s: %s", node_id, data_dir, e)
        return 2
    joining: asyncio.Task[None] | None = None
    if join is not None:
        node.learn_addresses(book)
        keep_settings(join, config)
        joining = asyncio.create_task(join_cluster(join, node), name="join")
    # The recovered log is long-lived and free of cycles: take it out of the
    # collector's sight so full collections do not rescan it (about 76 ms per
    # million entries here, seen as latency spikes). Done here, not in the
    # library, because it affects the whole process.
    gc.collect()
    gc.freeze()
    watch = LoopWatch()
    watch.start()
    server = RespServer(node, config.clients(), loopwatch=watch, cluster_toml=render(config))
    await server.start(entry.client)
    log.info(
        "node %d serving Redis clients on %s:%d, Raft peers on %s:%d, data in %s",
        node_id, *entry.client, *entry.peer, data_dir,
    )  # fmt: skip
    await stop.wait()
    log.info("node %d stopping", node_id)
    if joining is not None:
        joining.cancel()
    # The node first, so waiting commands resolve and new ones are refused;
    # then the server flushes those answers and closes its connections.
    await node.stop()
    await server.close()
    await watch.stop()
    return status


def serve(
    config: ClusterConfig,
    node_id: int,
    data_dir: Path,
    verbose: bool = False,
    join: JoinRequest | None = None,
) -> int:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s node-{node_id} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_node(config, node_id, data_dir, join))
    result: int = uvloop.run(run_node(config, node_id, data_dir, join))
    return result
