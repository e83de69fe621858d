"""The torture's private network: one namespace per node, a bridge in a hub namespace.

Theory of operation
-------------------
With root, ``ip`` and a working ``iptables-restore``, :func:`setup` builds::

    hub namespace   bridge br0 = 10.213.0.1/24, ports v1..vN
    node namespace  eth0 = 10.213.0.(10+i)/24, the veth peer of hub's vI

Namespaces are named ``drftt<pid>-hub`` and ``drftt<pid>-n<i>`` (unique per
run; ``drftt`` marks them as ours). Every veth is created directly inside its
namespaces (``ip -n hub link add ... peer ... netns node``), so nothing is
ever added to the root namespace and its routing is untouched; deleting the
namespaces deletes the veths and the bridge with them. The subnet exists only
behind the hub.

Nodes run under ``ip netns exec <node-ns>`` (:meth:`Network.wrap`). The
torture's own sockets (clients, probes) are created in the hub namespace by
:meth:`Network.socket`, which switches the calling thread into the hub with
``setns(2)`` just long enough to create the socket (a socket stays in the
namespace it was made in), so the torture process itself stays in the root
namespace and needs no helper process.

Partitions are packet filtering inside the node namespaces:
:meth:`Network.apply` loads each node's complete INPUT rules (from
:func:`drafty.torture.faults.input_rules`) with one ``iptables-restore`` per
node, concurrently; an empty rule set heals. The backend is the first of
``iptables-nft-restore``, ``iptables-legacy-restore``, ``iptables-restore``
that works in a namespace here, and :func:`setup` proves that filtering
really drops packets silently before any node starts (a SYN to a closed port
times out while the rule is in place and is refused once it is gone).

:func:`teardown` (called from ``finally`` and therefore also on SIGINT and
SIGTERM) kills whatever still runs in the namespaces and deletes them;
:func:`remove_stale` does the same at start for namespaces whose run (the pid
in the name) is no longer alive. When anything is missing, :func:`setup`
raises :class:`NetnsUnavailable` with the reason, and the caller falls back
to loopback (kill and pause faults only).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .faults import Drop, input_rules, restore_script

PREFIX = "drftt"
SUBNET = "10.213.0"
HUB_ADDRESS = f"{SUBNET}.1"
_CLONE_NEWNET = 0x40000000
_STALE = re.compile(rf"^{PREFIX}(\d+)-\S+$")
RESTORE_CANDIDATES = ("iptables-nft-restore", "iptables-legacy-restore", "iptables-restore")


class NetnsUnavailable(Exception):
    """Namespaces or packet filtering cannot be used here; the message says why."""


def node_address(i: int) -> str:
    return f"{SUBNET}.{10 + i}"


@dataclass(frozen=True)
class Names:
    hub: str
    nodes: dict[int, str]

    def all(self) -> list[str]:
        return [*self.nodes.values(), self.hub]


def names(pid: int, nodes: Sequence[int]) -> Names:
    return Names(f"{PREFIX}{pid}-hub", {i: f"{PREFIX}{pid}-n{i}" for i in nodes})


def setup_commands(n: Names) -> list[list[str]]:
    """The ``ip`` commands that build the network (pure, in order)."""
    hub = n.hub
    cmds = [
        ["ip", "netns", "add", hub],
        ["ip", "-n", hub, "link", "set", "lo", "up"],
        ["ip", "-n", hub, "link", "add", "br0", "type", "bridge"],
        ["ip", "-n", hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0"],
        ["ip", "-n", hub, "link", "set", "br0", "up"],
    ]
    for i, ns in sorted(n.nodes.items()):
        cmds += [
            ["ip", "netns", "add", ns],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
            [
                "ip",
                "-n",
                hub,
                "link",
                "add",
                f"v{i}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            ],
            ["ip", "-n", hub, "link", "set", f"v{i}", "master", "br0"],
            ["ip", "-n", hub, "link", "set", f"v{i}", "up"],
            ["ip", "-n", ns, "addr", "add", f"{node_address(i)}/24", "dev", "eth0"],
            ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ]
    return cmds


def stale_names(listing: str, alive: Mapping[int, bool]) -> list[str]:
    """Our namespaces in ``ip netns list`` output whose run's pid is not alive (pure)."""
    out = []
    for line in listing.splitlines():
        name = line.split(" ", 1)[0].strip()
        m = _STALE.match(name)
        if m and not alive.get(int(m.group(1)), False):
            out.append(name)
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(cmd: list[str], stdin: str | None = None, timeout: float = 15) -> None:
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetnsUnavailable(f"{' '.join(cmd)}: {e}") from None
    if p.returncode != 0:
        raise NetnsUnavailable(f"{' '.join(cmd)}: {p.stderr.strip() or f'exit {p.returncode}'}")


def _delete_namespace(name: str) -> None:
    """Kill every process still in namespace ``name`` and delete it (best effort)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        got = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10
        )
        for word in got.stdout.split():
            if word.isdigit():
                with contextlib.suppress(OSError):
                    os.kill(int(word), signal.SIGCONT)
                    os.kill(int(word), signal.SIGKILL)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def remove_stale() -> list[str]:
    """Delete namespaces left by earlier torture runs that died; returns their names."""
    if shutil.which("ip") is None:
        return []
    try:
        got = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    pids = {
        int(m.group(1))
        for line in got.stdout.splitlines()
        if (m := _STALE.match(line.split(" ", 1)[0]))
    }
    stale = stale_names(got.stdout, {p: _pid_alive(p) for p in pids})
    for name in stale:
        _delete_namespace(name)
    return stale


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@dataclass
class Network:
    """A built network; :func:`setup` makes one, :meth:`teardown` removes it."""

    names: Names
    restore: str
    """The ``iptables-restore`` variant that works here."""
    _hub_fd: int = -1
    _home_fd: int = -1
    filtered: set[int] = field(default_factory=set)
    """Nodes that currently have DROP rules."""

    mode = "netns"

    def host(self, i: int) -> str:
        return node_address(i)

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        """``argv`` run inside node ``i``'s namespace."""
        return ["ip", "netns", "exec", self.names.nodes[i], *argv]

    def socket(self) -> socket.socket:
        """A TCP socket in the hub namespace (so it reaches every node's address)."""
        _setns(self._hub_fd)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(self._home_fd)

    def _restore_cmd(self, i: int) -> list[str]:
        cmd = ["ip", "netns", "exec", self.names.nodes[i], self.restore]
        return [*cmd, "-w", "5"] if "legacy" in self.restore else cmd

    async def apply(self, drops: frozenset[Drop]) -> None:
        """Make exactly ``drops`` happen (replacing any earlier rules); empty heals."""
        rules = input_rules(drops, {i: node_address(i) for i in self.names.nodes})

        async def one(i: int, script: str) -> None:
            proc = await asyncio.create_subprocess_exec(
                *self._restore_cmd(i),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate(script.encode())
            if proc.returncode != 0:
                raise RuntimeError(f"{self.restore} in node {i}: {err.decode().strip()}")

        todo = {i: r for i, r in rules.items() if r or i in self.filtered}
        await asyncio.gather(*(one(i, restore_script(r)) for i, r in todo.items()))
        self.filtered = {i for i, r in rules.items() if r}

    def teardown(self) -> None:
        for fd in (self._hub_fd, self._home_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._hub_fd = self._home_fd = -1
        for name in self.names.all():
            _delete_namespace(name)


def _find_restore(ns: str) -> str:
    """The first iptables-restore variant that loads a DROP rule inside ``ns``."""
    tried = []
    for cand in RESTORE_CANDIDATES:
        if shutil.which(cand) is None:
            continue
        cmd = ["ip", "netns", "exec", ns, cand, *(["-w", "5"] if "legacy" in cand else [])]
        try:
            _run(cmd, restore_script([f"-A INPUT -s {SUBNET}.254/32 -j DROP"]))
            _run(cmd, restore_script([]))
        except NetnsUnavailable as e:
            tried.append(str(e))
            continue
        return cand
    if not tried:
        raise NetnsUnavailable("no iptables-restore found (install the iptables package)")
    raise NetnsUnavailable("no working iptables-restore: " + "; ".join(tried))


def _self_test(net: Network, i: int) -> None:
    """Prove a DROP rule loses packets silently and that healing restores them."""
    target = (node_address(i), 9)  # nothing listens there: reachable means refused

    def probe() -> str:
        s = net.socket()
        s.settimeout(0.5)
        try:
            s.connect(target)
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as e:
            return f"error {e}"
        finally:
            s.close()
        return "connected"

    def load(rules: list[str]) -> None:
        _run(net._restore_cmd(i), restore_script(rules))

    before = probe()
    load([f"-A INPUT -s {HUB_ADDRESS}/32 -j DROP"])
    try:
        during = probe()
    finally:
        load([])
    after = probe()
    if (before, during, after) != ("refused", "timeout", "refused"):
        raise NetnsUnavailable(
            f"packet filtering self-test failed with {net.restore}: connect to a closed port "
            f"was {before!r} before a DROP rule, {during!r} with it, {after!r} after "
            "(expected refused, timeout, refused)"
        )


def setup(pid: int, nodes: Sequence[int]) -> Network:
    """Build the network for ``nodes`` (NetnsUnavailable, after cleaning up, if impossible)."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("not running as root (network namespaces need root)")
    if shutil.which("ip") is None:
        raise NetnsUnavailable("the ip command (iproute2) is not installed")
    n = names(pid, nodes)
    net = Network(n, restore="")
    try:
        for cmd in setup_commands(n):
            _run(cmd)
        net.restore = _find_restore(n.nodes[min(nodes)])
        net._hub_fd = os.open(f"/run/netns/{n.hub}", os.O_RDONLY)
        net._home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        deadline = time.monotonic() + 5
        while True:  # a new bridge port may take a moment to forward
            try:
                _self_test(net, min(nodes))
                break
            except NetnsUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    except BaseException:
        net.teardown()
        raise
    return net


class Loopback:
    """The fallback network: every node on 127.0.0.1, no packet filtering."""

    mode = "loopback"

    def host(self, i: int) -> str:
        return "127.0.0.1"

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        return argv

    def socket(self) -> socket.socket:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    async def apply(self, drops: frozenset[Drop]) -> None:
        if drops:
            raise RuntimeError("partitions need network namespaces; this run has none")

    def teardown(self) -> None:
        pass


Net = Network | Loopback
