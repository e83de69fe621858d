"""Real-process fault soaks: clients keep going while nodes are SIGKILLed and
SIGSTOPped at random. Afterwards every acknowledged write must be readable,
with its value, from every node; and a history of reads, writes and appends
on a few shared keys must be linearizable (judged by :mod:`drafty.check`).

CI runs short soaks; run long ones with::

    DRAFTY_SOAK_SECONDS=300 .venv/bin/pytest tests/e2e/test_soak.py -q -s
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable

from drafty.check import Verdict, check_history
from drafty.client import Client
from drafty.driver.api import OutcomeUnknown, Refused

from .conftest import Cluster

Factory = Callable[..., Cluster]


def _run_with_faults(
    c: Cluster, rng: random.Random, seconds: float, threads: list[threading.Thread],
    stop: threading.Event,
) -> int:  # fmt: skip
    """Start ``threads``; kill or pause random nodes for ``seconds``; stop and join."""
    for t in threads:
        t.start()
    faults = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 1.5))
            victim = rng.choice([1, 2, 3])
            if rng.random() < 0.5:
                c.kill(victim)
                time.sleep(rng.uniform(0.2, 1.0))
                c.start(victim)
            else:
                c.procs[victim].send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(0.2, 1.5))
                c.procs[victim].send_signal(signal.SIGCONT)
            faults += 1
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return faults


def test_acknowledged_writes_survive_kills_and_pauses(cluster_factory: Factory) -> None:
    seconds = float(os.environ.get("DRAFTY_SOAK_SECONDS", "8"))
    rng = random.Random(int(os.environ.get("DRAFTY_SOAK_SEED", "1")))
    c = cluster_factory(3)
    c.leader()
    addrs = [f"127.0.0.1:{c.port(i)}" for i in (1, 2, 3)]
    acked: dict[str, str] = {}
    unknown: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def writer(w: int) -> None:
        try:
            with Client(addrs, timeout=1.0, deadline=5.0) as cl:
                k = 0
                while not stop.is_set():
                    key, value = f"w{w}-{k}", f"v{w}-{k}-{rng.random():.6f}"
                    k += 1
                    try:
                        cl.set(key, value)
                    except OutcomeUnknown:
                        with lock:
                            unknown.add(key)
                        continue
                    except Refused:
                        continue
                    with lock:
                        acked[key] = value
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    faults = _run_with_faults(c, rng, seconds, threads, stop)
    assert not errors, errors
    print(f"soak: {seconds:.0f} s, {faults} faults, {len(acked)} writes acknowledged, "
          f"{len(unknown)} of unknown outcome")  # fmt: skip
    assert faults >= 1
    assert len(acked) > 20, f"too few writes acknowledged ({len(acked)}) to mean anything"
    c.leader()
    time.sleep(1.0)  # let every node catch up
    for i in (1, 2, 3):
        r = c.client(i)
        keys = sorted(acked)
        got = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for _ in range(50):
                try:
                    got.update(zip(chunk, r.mget(chunk), strict=True))
                    break
                except Exception:
                    time.sleep(0.2)
        lost = [k for k in keys if got.get(k) != acked[k].encode()]
        assert not lost, f"node {i} lost {len(lost)} acknowledged writes, e.g. {lost[:5]}"


def test_a_history_under_kills_and_pauses_is_linearizable(cluster_factory: Factory) -> None:
    """Clients read, overwrite and append to three shared keys through any node;
    the recorded history (the format of shared/histories) must be linearizable."""
    seconds = float(os.environ.get("DRAFTY_SOAK_SECONDS", "8"))
    rng = random.Random(int(os.environ.get("DRAFTY_SOAK_SEED", "1")) + 1)
    c = cluster_factory(3)
    c.leader()
    addrs = [f"127.0.0.1:{c.port(i)}" for i in (1, 2, 3)]
    events: list[dict[str, object]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()
    processes = iter(range(1_000_000))

    def record(**ev: object) -> None:
        with lock:
            ev["index"] = len(events)
            events.append(ev)

    def client(w: int) -> None:
        crng = random.Random(w)
        process = next(processes)
        try:
            with Client(addrs[w % 3 :] + addrs[: w % 3], timeout=1.0, deadline=5.0) as cl:
                k = 0
                while not stop.is_set():
                    f = crng.choice(("get", "put", "append", "append"))
                    key = crng.choice("abc")
                    value = None if f == "get" else f"x {w} {k} y"
                    k += 1
                    record(process=process, type="invoke", f=f, key=key, value=value)
                    try:
                        if f == "get":
                            got = cl.get(key)
                            value = None if got is None else got.decode()
                        elif f == "put":
                            cl.set(key, value or "")
                        else:
                            cl.execute("APPEND", key, value or "")
                    except OutcomeUnknown:
                        record(process=process, type="info", f=f, key=key, value=value)
                        process = next(processes)
                        continue
                    except Refused as e:
                        record(process=process, type="fail", f=f, key=key, value=value,
                               error=str(e))  # fmt: skip
                        continue
                    record(process=process, type="ok", f=f, key=key, value=value)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    faults = _run_with_faults(c, rng, seconds, threads, stop)
    assert not errors, errors
    oks = sum(1 for e in events if e["type"] == "ok")
    result = check_history(events, model="kv", max_states=2_000_000)
    print(f"history: {seconds:.0f} s, {faults} faults, {len(events)} events, {oks} ok: "
          f"{result.verdict.name} {result.explanation}")  # fmt: skip
    assert oks > 20, f"too few operations completed ({oks}) to mean anything"
    assert result.verdict is Verdict.OK, result.explanation
