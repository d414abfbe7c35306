"""Listening sockets: an address that cannot be bound is a one-line error, not a traceback.

``serve`` binds every listener (HTTP, the inbound SMTP/LMTP receivers) before it
says it is serving, so "address already in use" stops it at start, with the
address named.
"""

from __future__ import annotations

import os
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


def cannot_listen(host: str, port: int, exc: OSError) -> ConfigError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return ConfigError(f"cannot listen on {where}: {reason}")
