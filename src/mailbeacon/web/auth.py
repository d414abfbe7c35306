"""Who may read ``/api/``: a request without a valid API key gets 401.

The tracking paths (pixel, click, download) stay public: they are what mail
links to. Everything under ``/api/`` carries recipients' addresses, IPs and
user agents, so it answers only to ``Authorization: Bearer <key>`` (or
``X-Api-Key: <key>``) with a key made by ``mailbeacon apikey create``.

A verified key is remembered for a few seconds, so a busy API client costs one
store lookup per key per ``CACHE_SECONDS``; a revoked key stops working within
that time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from mailbeacon.services import api_keys
from mailbeacon.services.api_keys import ApiKey
from mailbeacon.store.sql import SqlStore
from mailbeacon.web.tracking import ASGIApp, Receive, Scope, Send

PROTECTED = "/api"
CACHE_SECONDS = 5.0
CACHE_MAX = 1024


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


class RequireApiKey:
    """ASGI middleware: ``/api`` and below need a valid API key; the rest passes."""

    def __init__(self, app: ASGIApp, store: SqlStore,
                 now: Callable[[], float] = time.time):
        self.app = app
        self.store = store
        self.now = now
        self._verified: dict[str, tuple[ApiKey, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PROTECTED or path.startswith(PROTECTED + "/")):
            await self.app(scope, receive, send)
            return
        key = presented_key(list(scope.get("headers", ())))
        if key is None:
            await _unauthorized(send, "an API key is needed: `Authorization: Bearer <key>` "
                                "(make one with `mailbeacon apikey create NAME`)")
            return
        found = await self._check(key)
        if found is None:
            await _unauthorized(send, "this API key is not valid (unknown or revoked)")
            return
        scope.setdefault("state", {})["api_key"] = found
        await self.app(scope, receive, send)

    async def _check(self, key: str) -> ApiKey | None:
        now = self.now()
        cached = self._verified.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            found = await asyncio.to_thread(api_keys.verify, self.store, key, now)
        except Exception:  # the store is away: refuse rather than open the door
            return None
        if found is not None:
            if len(self._verified) >= CACHE_MAX:
                self._verified.clear()
            self._verified[key] = (found, now + CACHE_SECONDS)
        return found


async def _unauthorized(send: Send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="mailbeacon"'), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
