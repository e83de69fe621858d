"""Unit tests of the simulated network: loss, duplication, latency, FIFO, cuts."""

from __future__ import annotations

import random

from drafty.core import Heartbeat
from drafty.sim import Network, NetworkParams


def _net(params: NetworkParams, seed: int = 1, n: int = 3) -> Network:
    return Network(random.Random(seed), tuple(range(1, n + 1)), params)


def _hb(src: int = 1, dst: int = 2) -> Heartbeat:
    return Heartbeat(src, dst, 1, 0)


def test_calm_network_delivers_each_message_once_within_latency() -> None:
    net = _net(NetworkParams(latency_min=2, latency_max=5))
    for now in range(100):
        (t,) = net.route(_hb(), now)
        assert now + 2 <= t <= now + 5
    assert net.stats.sent == 100 and net.stats.dropped == 0 and net.stats.duplicated == 0


def test_drop_and_duplicate_rates_are_applied() -> None:
    net = _net(NetworkParams(drop=1.0))
    assert net.route(_hb(), 0) == []
    assert net.stats.dropped == 1
    net = _net(NetworkParams(duplicate=1.0))
    assert len(net.route(_hb(), 0)) == 2
    assert net.stats.duplicated == 1
    net = _net(NetworkParams(drop=0.3, duplicate=0.5), seed=7)
    copies = [len(net.route(_hb(), 0)) for _ in range(2000)]
    assert 0.2 < copies.count(0) / 2000 < 0.4
    assert 0.25 < copies.count(2) / 2000 < 0.45


def test_fifo_links_never_reorder_but_reordering_links_do() -> None:
    fifo = _net(NetworkParams(latency_min=1, latency_max=50, reorder=False))
    times = [fifo.route(_hb(), now)[0] for now in range(200)]
    assert times == sorted(times)
    other = fifo.route(_hb(2, 1), 0)[0]  # another link is not held back
    assert other <= 50
    loose = _net(NetworkParams(latency_min=1, latency_max=50, reorder=True))
    times = [loose.route(_hb(), now)[0] for now in range(200)]
    assert times != sorted(times)


def test_spikes_give_long_latencies() -> None:
    net = _net(NetworkParams(latency_min=1, latency_max=2, spike=1.0, spike_max=500, reorder=True))
    times = [net.route(_hb(), 0)[0] for _ in range(50)]
    assert max(times) > 100 and min(times) >= 2


def test_cut_links_drop_at_send_and_at_delivery() -> None:
    net = _net(NetworkParams())
    net.cut.add((1, 2))
    assert net.route(_hb(1, 2), 0) == []
    assert net.route(_hb(2, 1), 0) != []  # one way only
    net.heal()
    assert net.route(_hb(1, 2), 0) != []
    net.cut.add((1, 2))
    assert not net.admit(_hb(1, 2))  # in flight when the link went down
    assert net.admit(_hb(2, 1))
    assert net.stats.cut == 2 and net.stats.delivered == 1


def test_fault_shapes() -> None:
    net = _net(NetworkParams(), n=5)
    net.split([[1, 2], [3, 4, 5]])
    assert (1, 3) in net.cut and (3, 1) in net.cut and (1, 2) not in net.cut
    assert len(net.cut) == 2 * 2 * 3
    net.heal()
    net.one_way([1], [2, 3])
    assert net.cut == {(1, 2), (1, 3)}
    net.heal()
    net.bridge([1, 2], [4, 5])  # 3 talks to everyone
    assert not any(3 in link for link in net.cut)
    assert (1, 4) in net.cut and (5, 2) in net.cut and (1, 2) not in net.cut
    net.heal()
    net.isolate(4)
    assert net.cut == {(4, i) for i in (1, 2, 3, 5)} | {(i, 4) for i in (1, 2, 3, 5)}
    assert net.describe_cut().startswith("1->4 ")


def test_same_seed_same_routing() -> None:
    params = NetworkParams(drop=0.2, duplicate=0.3, latency_min=1, latency_max=30, reorder=True)
    a, b = _net(params, seed=5), _net(params, seed=5)
    assert [a.route(_hb(), i) for i in range(300)] == [b.route(_hb(), i) for i in range(300)]


def test_chosen_parameters_stay_in_range() -> None:
    rng = random.Random(3)
    for _ in range(200):
        p = NetworkParams.choose(rng)
        assert 0 <= p.drop <= 0.3 and 0 <= p.duplicate <= 0.5
        assert 1 <= p.latency_min <= p.latency_max
