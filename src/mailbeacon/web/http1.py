"""The HTTP/1.1 server: pixels and clicks answered straight from the protocol.

A hit costs what it must (parse the request with httptools, verify the
token, hand the row to the group committer) and nothing more: no ASGI scope,
no task, no future. The answer is written by a callback when the hit's batch
is committed. Every other path (downloads, the API, health) goes through the
ASGI app (``TrackingApp`` in front of Starlette) by a small bridge.

Responses on a connection leave in request order even when a later request
(a bad token, answered at once) is ready before an earlier one (waiting for
its commit): each request takes a slot, and slots are written from the front.
Limits close what no browser or mail client sends: long request lines,
header floods, bodies over a megabyte, connections idle too long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

import httptools

from mailbeacon.web.tracking import ASGIApp, TrackingApp, _printable

log = logging.getLogger("mailbeacon.http")

MAX_URL = 8192
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY = 1024 * 1024
MAX_PIPELINED = 64  # requests waiting for their answers on one connection
IDLE_SECONDS = 75.0  # a keep-alive connection with nothing asked of it
REQUEST_SECONDS = 30.0  # to send one whole request (slowloris)

Submit = Callable[[tuple[Any, ...], Callable[[BaseException | None], None]], None]
_REASONS = {200: b"OK", 302: b"Found", 400: b"Bad Request", 404: b"Not Found",
            413: b"Content Too Large", 414: b"URI Too Long",
            431: b"Request Header Fields Too Large", 500: b"Internal Server Error"}


class Clockwork:
    """The Date header, rebuilt once a second rather than per response."""

    def __init__(self) -> None:
        self.second = 0
        self.header = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.header = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.header


class Server:
    """What every connection shares: the tracking app, the committer, the Date header,
    and one sweep a second that closes idle and too slow connections (cheaper than a
    timer per request)."""

    def __init__(self, app: TrackingApp, asgi: ASGIApp, submit: Submit, host: str, port: int):
        self.app = app
        self.asgi = asgi
        self.submit = submit
        self.address = (host, port)
        self.clockwork = Clockwork()
        self.connections: set[HttpProtocol] = set()
        self.sweeper: asyncio.TimerHandle | None = None

    def protocol(self) -> HttpProtocol:
        if self.sweeper is None:
            self._sweep()
        return HttpProtocol(self)

    def _sweep(self) -> None:
        now = time.monotonic()
        for connection in [c for c in self.connections if c.deadline < now]:
            connection.expired()
        self.sweeper = asyncio.get_running_loop().call_later(1.0, self._sweep)

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()


class _Slot:
    __slots__ = ("close", "data")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.close = False


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: Server):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.slots: deque[_Slot] = deque()
        self.deadline = time.monotonic() + IDLE_SECONDS
        self.ended = False
        self.closing = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.user_agent = b""
        self.forwarded = b""
        self.body = b""
        self.refused = 0

    # -- the connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.connections.discard(self)

    def eof_received(self) -> bool:
        """The client is done sending: answer what it asked, then close."""
        self.ended = True
        if not self.slots and self.transport is not None:
            self.transport.close()
        return True  # keep the transport open for the answers still to come

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # the client said "Connection: close": nothing after that counts
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400)
        except httptools.HttpParserError:
            if not self.closing:  # (llhttp also refuses bytes after "Connection: close")
                self._refuse(self.refused or 400)

    def expired(self) -> None:
        if self.transport is not None and not self.slots:
            self.transport.close()
        else:  # answers are on their way; wait for them
            self.deadline = time.monotonic() + IDLE_SECONDS

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.deadline = time.monotonic() + REQUEST_SECONDS

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL:
            self.refused = 414
            raise httptools.HttpParserError("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if len(self.headers) >= MAX_HEADERS or self.header_bytes > MAX_HEADER_BYTES:
            self.refused = 431
            raise httptools.HttpParserError("too many or too large headers")
        lowered = name.lower()
        if lowered == b"content-length" and value.strip().isdigit() and int(value) > MAX_BODY:
            self.refused = 413  # say so before the body arrives
            raise httptools.HttpParserError("body too large")
        self.headers.append((lowered, value))
        if lowered == b"user-agent":
            self.user_agent = value
        elif lowered == b"x-forwarded-for":
            self.forwarded = value

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > MAX_BODY:
            self.refused = 413
            raise httptools.HttpParserError("body too large")

    def on_message_complete(self) -> None:
        self.deadline = time.monotonic() + IDLE_SECONDS
        if len(self.slots) >= MAX_PIPELINED:
            self._refuse(400)
            return
        slot = _Slot()
        slot.close = self.closing = not self.parser.should_keep_alive()
        self.slots.append(slot)
        method = self.parser.get_method().decode("ascii", "replace")
        raw_path, _, query = self.url.partition(b"?")
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path, errors="replace")
        found = self.server.app.answer_hit(
            path, method, self.peer, _printable(self.user_agent[:1024]),
            _printable(self.forwarded[:1024]))
        if found is None:
            asyncio.get_running_loop().create_task(
                self._asgi(slot, method, path, raw_path, query))
            return
        row, (status, headers, body) = found
        answer = self._response(status, headers, b"" if method == "HEAD" else body, slot.close)
        if row is None:
            self._fill(slot, answer)
        else:
            self.server.submit(row, lambda _error: self._fill(slot, answer))

    # -- answers ---------------------------------------------------------------------------

    def _response(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  close: bool) -> bytes:
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"OK")),
                self.server.clockwork.date()]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        if close:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        return b"".join(head) + body

    def _fill(self, slot: _Slot, data: bytes) -> None:
        slot.data = data
        while self.slots and self.slots[0].data is not None:
            ready = self.slots.popleft()
            if self.transport is None:
                continue  # the client left; the hit is kept all the same
            self.transport.write(ready.data)  # type: ignore[arg-type]
            if ready.close or (self.ended and not self.slots):
                self.transport.close()
                self.slots.clear()

    def _refuse(self, status: int) -> None:
        if self.transport is None:
            return
        body = _REASONS.get(status, b"Bad Request") + b"\n"
        self.transport.write(self._response(status, [
            (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            body, close=True))
        self.transport.close()

    async def _asgi(self, slot: _Slot, method: str, path: str, raw_path: bytes,
                    query: bytes) -> None:
        """Any other path: run the ASGI app, buffer its (small) answer, write it in turn."""
        body, started, chunks = self.body, {}, []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": raw_path,
            "query_string": query, "root_path": "", "headers": self.headers,
            "client": (self.peer, 0), "server": self.server.address,
        }

        async def receive() -> dict[str, Any]:
            nonlocal body
            sent, body = body, b""
            return {"type": "http.request", "body": sent, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.server.asgi(scope, receive, send)  # type: ignore[arg-type]
            status, headers = started["status"], list(started.get("headers", []))
        except Exception:
            log.exception("%s %s failed", method, path)
            status, headers, chunks = 500, [(b"content-type", b"text/plain")], [b"error\n"]
        data = b"".join(chunks)
        headers = [(n.lower(), v) for n, v in headers if n.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        self._fill(slot, self._response(status, headers, b"" if method == "HEAD" else data,
                                        slot.close))


async def listen(server: Server, *, reuse_port: bool = False) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    host, port = server.address
    return await loop.create_server(server.protocol, host, port, backlog=2048,
                                    reuse_port=reuse_port or None)
