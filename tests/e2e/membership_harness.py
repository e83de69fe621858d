"""The harness of the membership end-to-end test (test_membership.py): a
cluster whose nodes can join with ``drafty serve --join``, the RAFT admin
helpers, and the client load that records the history to check."""

from __future__ import annotations

import itertools
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from drafty.client import Client, CommandError
from drafty.driver.api import OutcomeUnknown, Refused
from drafty.service.config import NodeEntry, SnapshotSettings
from drafty.service.localcluster import free_port_base

from .conftest import Cluster

KEYS = ("x", "y", "z")
"""The keys the history clients share (register model, one register per key)."""
JOINERS = (4, 5, 6, 7)
"""Ids of the nodes that join: 4 and 5 grow the cluster, 6 replaces a dead
voter, 7 joins as a learner (a target that is no voter)."""
WAIT_S = 30.0
"""How long any one step may take (polling, not sleeping)."""


class MemberCluster(Cluster):
    """A :class:`Cluster` whose later nodes join with ``drafty serve --join``."""

    def __init__(self, directory: Path, n: int, snapshot: SnapshotSettings) -> None:
        super().__init__(directory, n, snapshot)
        taken = {p for e in self.config.nodes.values() for p in (e.client[1], e.peer[1])}
        while True:  # ports for the joiners, clear of the seed nodes' ports
            base = free_port_base(len(JOINERS))
            ports = {base + k for k in range(len(JOINERS))}
            ports |= {p + 100 for p in ports}
            if not ports & taken:
                break
        self.joiners = {
            i: NodeEntry(i, ("127.0.0.1", base + 100 + k), ("127.0.0.1", base + k))
            for k, i in enumerate(JOINERS)
        }
        self.argv: dict[int, list[str]] = {}
        """Membership changes refused for now and asked again (see admin)."""
        self.before_shutdown: list[Callable[[], None]] = []

    def shutdown(self) -> None:
        for f in self.before_shutdown:
            f()
        super().shutdown()

    def join(self, i: int, seed: int, learner: bool = False) -> None:
        """Start node ``i`` empty, joining through node ``seed``'s client port."""
        e = self.joiners[i]
        peer, client = "{}:{}".format(*e.peer), "{}:{}".format(*e.client)
        self.argv[i] = [
            sys.executable, "-m", "drafty", "serve", "--join", self.address(seed), "--id", str(i),
            "--peer", peer, "--client", client, "--data-dir", str(self.dir / f"node-{i}"),
        ] + (["--learner"] if learner else [])  # fmt: skip
        log = open(self.dir / f"node-{i}.log", "ab")  # noqa: SIM115
        self.procs[i] = subprocess.Popen(self.argv[i], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def command(self, i: int) -> list[str]:
        """The command line node ``i`` was started with."""
        if i in self.argv:
            return self.argv[i]
        return [sys.executable, "-m", "drafty", "serve", "--config", str(self.path),
                "--id", str(i), "--data-dir", str(self.dir / f"node-{i}")]  # fmt: skip

    def port(self, i: int) -> int:
        return self.joiners[i].client[1] if i in self.joiners else super().port(i)

    def address(self, i: int) -> str:
        return f"127.0.0.1:{self.port(i)}"

    def logs(self) -> str:
        return "\n".join(
            f"--- node {i}\n" + (self.dir / f"node-{i}.log").read_text()[-4000:]
            for i in sorted(self.procs)
        )


# -- looking at the cluster -------------------------------------------------------------


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _bytes(v: bytes | str) -> bytes:
    return v if isinstance(v, bytes) else v.encode()


def raft(c: MemberCluster, i: int, *args: str | int, timeout: float = 2.0) -> Any:
    """``RAFT args...`` at node ``i`` with redis-py (errors raised as they come)."""
    r = c.client(i, socket_timeout=timeout)
    return r.execute_command("RAFT", *args)  # type: ignore[no-untyped-call]


def status(c: MemberCluster, i: int) -> dict[str, str]:
    """RAFT STATUS of node ``i`` as text."""
    got = raft(c, i, "STATUS")
    if not isinstance(got, dict):  # a flat array in RESP2
        got = dict(zip(got[::2], got[1::2], strict=True))
    return {_text(k): _text(v) for k, v in got.items()}


def is_removed(c: MemberCluster, i: int) -> bool:
    return status(c, i)["removed"] == "1"


def roles(c: MemberCluster, i: int) -> dict[int, str]:
    """RAFT MEMBERS at node ``i``: each member's role."""
    rows = raft(c, i, "MEMBERS")
    return {int(r[0]): _text(r[2]) for r in rows}


def wait_for(
    c: MemberCluster, what: str, check: Callable[[], bool], seconds: float = WAIT_S
) -> None:
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what} ({last})\n{c.logs()}")


def wait_members(c: MemberCluster, expected: dict[int, str]) -> None:
    """Until every member in ``expected`` reports exactly that membership."""
    for i in expected:

        def seen(i: int = i) -> bool:
            return roles(c, i) == expected

        wait_for(c, f"node {i} to see members {expected}", seen)


def leader_of(c: MemberCluster, voters: list[int], seconds: float = WAIT_S) -> int:
    """The voter that says it leads and that a majority of ``voters`` name."""
    found: list[int] = []

    def agreed() -> bool:
        named = Counter[int]()
        for i in voters:
            try:
                got = raft(c, i, "LEADER", timeout=1.0)
            except (redis.RedisError, OSError):
                continue
            if got:
                named[int(got[0])] += 1
        for leader, n in named.items():
            if 2 * n > len(voters) and leader in voters and status(c, leader)["role"] == "leader":
                found.append(leader)
                return True
        return False

    wait_for(c, f"a leader among {voters}", agreed, seconds)
    return found[-1]


def admin(c: MemberCluster, via: list[int], *args: str | int) -> Any:
    """``RAFT args...`` through drafty's client: it follows -TRYAGAIN to the
    leader, and retries one a change that cannot be made *yet* gets (a new
    leader's first commit, another change still in progress)."""
    with Client([c.address(i) for i in via], timeout=10.0, deadline=WAIT_S) as cl:
        return cl.execute("RAFT", *args)


def lead(c: MemberCluster, via: list[int], target: int) -> None:
    """RAFT TRANSFER until ``target`` says it leads (again if a handover under
    load did not happen in time, or an election took leadership away at once)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            assert admin(c, via, "TRANSFER", target) == "OK"
            if status(c, target)["role"] == "leader":
                return
        except CommandError as e:
            if not re.search("t(ake|ook) over", str(e)):
                raise
        except (redis.RedisError, OSError):
            pass
        assert time.monotonic() < deadline, f"node {target} did not lead in time\n{c.logs()}"
        time.sleep(0.1)


# -- the load ---------------------------------------------------------------------------


def _kind(error: str) -> str:
    """A failed operation's error, in a word or three (for the summary)."""
    for pattern, kind in (
        ("gave up", "refused after the deadline"),
        ("this node was removed", "TRYAGAIN removed"),
        ("TRYAGAIN|Try again", "TRYAGAIN"),
        ("refused", "connection refused"),
        ("[Tt]imeout|timed out", "timeout"),
        ("[Cc]onnection", "connection lost"),
    ):
        if re.search(pattern, error):
            return kind
    return error[:60]


@dataclass
class Load:
    """Client threads recording a history, and a writer of fresh keys."""

    addresses: list[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    """The errors of failed operations, by kind (see :func:`_kind`)."""
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)
    processes: Iterator[int] = field(default_factory=itertools.count)

    def record(self, **ev: Any) -> None:
        with self.lock:
            ev["index"] = len(self.events)
            self.events.append(ev)
            if ev["type"] != "invoke":
                self.outcomes[f"{ev['f']} {ev['type']}{' error' if 'error' in ev else ''}"] += 1
            if "error" in ev:
                self.errors[_kind(ev["error"])] += 1

    def oks(self) -> int:
        with self.lock:
            return sum(n for k, n in self.outcomes.items() if k.endswith(" ok")) + len(self.acked)

    def start(self, exactly_once: int = 3) -> None:
        for w in range(exactly_once):
            self.threads.append(threading.Thread(target=self._guarded, args=(self._client, w)))
        self.threads.append(threading.Thread(target=self._guarded, args=(self._raw, 99)))
        self.threads.append(threading.Thread(target=self._guarded, args=(self._writer, 100)))
        for t in self.threads:
            t.daemon = True
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads), "a client thread hangs"

    def _guarded(self, body: Callable[[int], None], w: int) -> None:
        try:
            body(w)
        except BaseException as e:  # surfaced by the test
            with self.lock:
                self.unexpected.append(f"client {w} crashed: {e!r}")

    def _client(self, w: int) -> None:
        """Reads, writes and CAS on KEYS through drafty's exactly-once client."""
        rng = random.Random(w)
        process = next(self.processes)
        last: dict[str, str] = {}  # the value this client last saw or wrote per key
        servers = self.addresses[w:] + self.addresses[:w]
        with Client(servers, timeout=1.0, deadline=5.0) as cl:
            for k in itertools.count():
                if self.stop.is_set():
                    return
                key = rng.choice(KEYS)
                r = rng.random()
                new = f"c{w}-{k}"
                value: Any
                if r < 0.4:
                    f, value = "read", None
                elif r < 0.7:
                    f, value = "write", new
                else:
                    f, value = "cas", [last.get(key, "nothing"), new]
                self.record(process=process, type="invoke", f=f, key=key, value=value)
                try:
                    if f == "read":
                        got = cl.get(key)
                        value = None if got is None else got.decode()
                        if value is not None:
                            last[key] = value
                        ok = True
                    elif f == "write":
                        cl.set(key, new)
                        last[key] = new
                        ok = True
                    else:
                        ok = cl.cas(key, value[0], value[1])
                        if ok:
                            last[key] = new
                except OutcomeUnknown:
                    self.record(process=process, type="info", f=f, key=key, value=value)
                    process = next(self.processes)
                    continue
                except Refused as e:
                    self.record(process=process, type="fail", f=f, key=key, value=value,
                                error=str(e))  # fmt: skip
                    continue
                except CommandError as e:  # -ERR: not allowed here
                    self.record(process=process, type="info", f=f, key=key, value=value)
                    process = next(self.processes)
                    with self.lock:
                        self.unexpected.append(f"client {w}: {f} {key}: {e}")
                    continue
                # A CAS that did not match is an observation: fail without error.
                self.record(process=process, type="ok" if ok else "fail", f=f, key=key,
                            value=value)  # fmt: skip

    def _raw(self, w: int) -> None:
        """Plain redis-py on random nodes, no retries: sees the servers' errors as
        they are. -TRYAGAIN and refused connections certainly had no effect;
        -UNCERTAIN and a lost answer to a write are unknown outcomes; anything
        else is unexpected."""
        rng = random.Random(w)
        process = next(self.processes)
        # No retries inside redis-py: a write resent after a lost answer could
        # take effect twice, which is the client's doing, not the cluster's.
        conns = {
            a: redis.Redis.from_url(f"redis://{a}", socket_timeout=2.0, socket_connect_timeout=1.0,
                                    retry=Retry(NoBackoff(), 0))
            for a in self.addresses
        }  # fmt: skip
        for k in itertools.count():
            if self.stop.is_set():
                return
            r = conns[rng.choice(self.addresses)]
            key = rng.choice(KEYS)
            f, value = ("read", None) if rng.random() < 0.5 else ("write", f"r{w}-{k}")
            self.record(process=process, type="invoke", f=f, key=key, value=value)
            try:
                if f == "read":
                    got = r.get(key)
                    value = None if got is None else _text(got)
                else:
                    assert r.set(key, str(value)) is True
            except redis.exceptions.TryAgainError as e:
                self.record(process=process, type="fail", f=f, key=key, value=value,
                            error=f"TRYAGAIN {e}")  # fmt: skip
                time.sleep(0.02)
                continue
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
                if f == "read" or "Connection refused" in str(e):
                    self.record(process=process, type="fail", f=f, key=key, value=value,
                                error=str(e))  # fmt: skip
                else:
                    self.record(process=process, type="info", f=f, key=key, value=value)
                    process = next(self.processes)
                time.sleep(0.02)
                continue
            except redis.exceptions.ResponseError as e:
                self.record(process=process, type="info", f=f, key=key, value=value)
                process = next(self.processes)
                if not str(e).startswith("UNCERTAIN"):
                    with self.lock:
                        self.unexpected.append(f"raw client: {f} {key}: {e}")
                continue
            self.record(process=process, type="ok", f=f, key=key, value=value)

    def _writer(self, w: int) -> None:
        """Fresh keys through drafty's client: each acknowledged one must survive."""
        with Client(self.addresses, timeout=1.0, deadline=5.0) as cl:
            for k in itertools.count():
                if self.stop.is_set():
                    return
                key, value = f"fresh-{k}", f"v{k}"
                try:
                    cl.set(key, value)
                except OutcomeUnknown:
                    with self.lock:
                        self.unknown[key] = value
                    continue
                except Refused:
                    continue
                with self.lock:
                    self.acked[key] = value


def wait_progress(c: MemberCluster, load: Load, what: str, more: int = 10) -> None:
    """Until clients completed ``more`` further operations: the cluster serves."""
    target = load.oks() + more
    wait_for(c, f"{more} client operations to complete {what}", lambda: load.oks() >= target)


def final_read(c: MemberCluster, i: int, keys: list[str]) -> list[bytes | None]:
    """A linearizable MGET at node ``i``, retried while the node cannot confirm it."""
    got: list[list[bytes | None]] = []

    def read() -> bool:
        got.append(
            [v if v is None else _bytes(v) for v in c.client(i, socket_timeout=5).mget(keys)]
        )
        return True

    wait_for(c, f"a read at node {i}", read)
    return got[-1]
