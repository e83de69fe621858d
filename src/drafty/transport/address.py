"""Peer and client addresses as text (``host:port``, ``[v6]:port``) and back.

One parser for every place an address arrives as text: cluster.toml, the
command line, a configuration entry's address book, ``RAFT MEMBER ADD``.
A malformed address raises :class:`ValueError` naming where it came from.
"""

from __future__ import annotations

Address = tuple[str, int]


def parse_address(text: object, where: str = "address") -> Address:
    """``host:port`` as an address tuple; ValueError (naming ``where``) if malformed."""
    if not isinstance(text, str):
        raise ValueError(f'{where}: expected "host:port", got {text!r}')
    host, _, port = text.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"{where}: {text!r} is not host:port with a port in 1..65535")
    return host.strip("[]"), int(port)


def format_address(addr: Address) -> str:
    """The text of ``addr`` (an IPv6 host in brackets)."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
