"""Listening sockets: an address that cannot be bound is a one-line error, not a traceback.

``serve`` binds every listener (HTTP, the inbound SMTP/LMTP receivers) before it
says it is serving, so "address already in use" stops it at start, with the
address named.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Awaitable
from typing import TypeVar

from mailbeacon.errors import ConfigError

T = TypeVar("T")


async def bound(listening: Awaitable[T], host: str, port: int) -> T:
    """Await ``listening`` (a ``create_server``); a bind failure becomes a ConfigError."""
    try:
        return await listening
    except OSError as exc:
        raise cannot_listen(host, port, exc) from exc


def nobody_holds(host: str, port: int) -> None:
    """Raise the ConfigError ``bound`` would when anyone listens on ``host:port``.

    Sockets bound with SO_REUSEPORT (``--workers`` above 1) share a port with any other
    such socket of the same user: a second ``serve --workers 2`` would bind it too and
    take half the hits into its own store. A probe bound without SO_REUSEPORT fails
    while anyone holds the port; it is closed before the real listeners bind.
    """
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
                probe.bind(address)
    except OSError as exc:
        raise cannot_listen(host, port, exc) from exc


def cannot_listen(host: str, port: int, exc: OSError) -> ConfigError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ConfigError(f"cannot listen on {where}: {_reason(exc)}")


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):  # the resolver's own codes: strerror(-2) is nonsense
        return f"not an address this machine has ({str(exc.strerror).lower()})"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "not an address this machine has"
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)
