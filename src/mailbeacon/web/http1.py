"""The HTTP/1.1 server: pixels and clicks answered straight from the protocol.

A hit costs what it must (parse the request with httptools, verify the
token, hand the row to the group committer) and nothing more: no ASGI scope,
no task, no future. The answer is written by a callback when the hit's batch
is committed; a hit that neither the store nor the spool took is answered 503,
never 200. Every other path (downloads, the API, health) goes through the
ASGI app (``TrackingApp`` in front of Starlette) by a small bridge.

Each request has its own state (``_Request``): pipelined requests never see
each other's headers or body. Responses on a connection leave in request
order even when a later request (a bad token, a refused request) is ready
before an earlier one (waiting for its commit): each request takes a slot,
and slots are written from the front. A refusal (400, 413, 414, 431, 500) is
the last slot: the answers before it go out first, then the connection closes.

Limits close what no browser or mail client sends: long request lines,
header floods, bodies over a megabyte, connections idle too long. Header
values may carry control characters (user agents with ESC, NUL, BEL or DEL
exist): llhttp's lenient header mode takes them, the tracking app replaces
them before storing; CR and LF alone, Content-Length and Transfer-Encoding
stay strict, so no request can be smuggled past the parser.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from mailbeacon.core.urls import shorten_tokens
from mailbeacon.web.tracking import (
    CANNED_ANSWERS,
    UNAVAILABLE,
    Answer,
    ASGIApp,
    TrackingApp,
    _printable,
)

log = logging.getLogger("mailbeacon.http")
access_log = logging.getLogger("mailbeacon.access")

MAX_URL = 8192
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY = 1024 * 1024
MAX_PIPELINED = 64  # requests waiting for their answers: read no more until fewer wait
FEED_BYTES = 1024  # parsed at a time, so a pipelined flood stops near MAX_PIPELINED
REFUSE_PIPELINED = 2 * MAX_PIPELINED  # unreachable: 1 KB holds at most 57 requests
IDLE_SECONDS = 75.0  # a keep-alive connection with nothing asked of it
REQUEST_SECONDS = 30.0  # to send one whole request (slowloris)
LINGER_SECONDS = 2.0  # after the last answer, read (and drop) what is still coming
LOGGED_URL = 200  # characters of a request target in an access log line

Submit = Callable[[tuple[Any, ...], Callable[[BaseException | None], None]], None]
_REASONS = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


class _Canned:
    """The canned answers by identity (an equal answer built elsewhere is not one)."""

    def __init__(self, answers: tuple[Answer, ...]):
        self.numbers = {id(a): n for n, a in enumerate(answers)}
        self.answers = answers  # held, so no other object ever gets their ids

    def __contains__(self, answer: object) -> bool:
        return id(answer) in self.numbers

    def __getitem__(self, answer: Answer) -> int:
        return self.numbers[id(answer)]


_CANNED = _Canned(CANNED_ANSWERS)

class _Refusal(Exception):
    """Raised in a parser callback: answer ``status`` and close (the request is not served)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class Clockwork:
    """The Date header, rebuilt once a second rather than per response; and the whole
    bytes of the answers that never change (the pixel, ...), built once a second too."""

    def __init__(self) -> None:
        self.second = 0
        self.header = b""
        self.canned: dict[tuple[int, bool, bool], bytes] = {}

    def date(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.header = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
            self.canned = {}
        return self.header


class Server:
    """What every connection shares: the tracking app, the committer, the Date header,
    and one sweep a second that closes idle and too slow connections (cheaper than a
    timer per request). ``log_access``: one log line per answer (``mailbeacon.access``)."""

    def __init__(self, app: TrackingApp, asgi: ASGIApp, submit: Submit, host: str, port: int,
                 *, log_access: bool = False):
        self.app = app
        self.asgi = asgi
        self.submit = submit
        self.address = (host, port)
        self.log_access = log_access
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


class _Request:
    """One request as the parser delivers it; each pipelined request has its own."""

    __slots__ = ("body", "forwarded", "header_bytes", "headers", "started", "url",
                 "user_agent")

    def __init__(self, started: float) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.user_agent = b""
        self.forwarded = b""
        self.body = b""
        self.started = started  # for the access log only (0.0 when it is off)


class _Slot:
    """A place in the answer queue: filled when the answer is ready, written in turn."""

    __slots__ = ("close", "data", "method", "request")

    def __init__(self, close: bool, method: str = "-", request: _Request | None = None) -> None:
        self.data: bytes | None = None
        self.close = close
        self.method = method
        self.request = request  # kept only for the access log


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: Server):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_headers=True)  # see the module docstring
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.slots: deque[_Slot] = deque()
        self.request = _Request(0.0)
        self.deadline = time.monotonic() + IDLE_SECONDS
        self.ended = False  # the client sent EOF
        self.closing = False  # no more requests are read: an answer says "connection: close"
        self.backlog = b""  # read, not parsed yet: too many answers are owed
        self.feeding = False
        self.held = False  # the client does not read its answers: we do not read its asks

    # -- the connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        """The transport buffers more answers than its high-water mark: the client
        does not read them. Read nothing more from it (what it already sent waits in the
        backlog) until the buffer drains, so its answers cannot fill our memory."""
        self.held = True
        if self.transport is not None and self.transport.is_reading() and not self.closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.held = False
        if self.backlog and not self.feeding and len(self.slots) < MAX_PIPELINED:
            self._resume()
        elif (self.transport is not None and not self.closing and not self.backlog
              and not self.transport.is_reading()):
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        """The client is done sending: answer what it asked, then close."""
        self.ended = True
        if not self.slots and not self.backlog and self.transport is not None:
            self.transport.close()
        return True  # keep the transport open for the answers still to come

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # after "Connection: close" or a refusal nothing counts (read and dropped)
        if self.backlog or self.held:
            self.backlog += data  # (a read already under way when reading was paused)
        elif len(data) <= FEED_BYTES and len(self.slots) < MAX_PIPELINED:
            self._parse(data)  # the usual case: one request, one piece
        else:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Parse ``data`` a piece at a time; once MAX_PIPELINED answers are owed, keep the
        rest and stop reading until they are written (backpressure, not a refusal)."""
        self.feeding = True
        try:
            for start in range(0, len(data), FEED_BYTES):
                if self.closing:
                    return
                if len(self.slots) >= MAX_PIPELINED or self.held:
                    self.backlog = data[start:]
                    if self.transport is not None and self.transport.is_reading():
                        self.transport.pause_reading()
                    return
                self._parse(data[start:start + FEED_BYTES])
        finally:
            self.feeding = False

    def _parse(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close_after_answers()  # what follows an upgrade is not HTTP/1.1 we serve
        except httptools.HttpParserCallbackError as exc:
            self._callback_failed(exc.__context__)
        except httptools.HttpParserError:
            if not self.closing:  # (llhttp also refuses bytes after "Connection: close")
                self._refuse(400)

    def expired(self) -> None:
        if self.transport is not None and not self.slots:
            self.transport.close()
        else:  # answers are on their way; wait for them
            self.deadline = time.monotonic() + IDLE_SECONDS

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        now = time.monotonic()
        self.request = _Request(now if self.server.log_access else 0.0)
        self.deadline = now + REQUEST_SECONDS

    def on_url(self, url: bytes) -> None:
        request = self.request
        request.url += url
        if len(request.url) > MAX_URL:
            raise _Refusal(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.request
        request.header_bytes += len(name) + len(value)
        if len(request.headers) >= MAX_HEADERS or request.header_bytes > MAX_HEADER_BYTES:
            raise _Refusal(431)
        if b" " in name or b"\t" in name:  # RFC 9112 5.1 (lenient mode lets it through):
            raise _Refusal(400)  # "Content-Length : 3" must not pass as another header
        lowered = name.lower()
        if lowered == b"content-length" and value.strip().isdigit() and int(value) > MAX_BODY:
            raise _Refusal(413)  # say so before the body arrives
        request.headers.append((lowered, value))
        if lowered == b"user-agent":
            request.user_agent = value
        elif lowered == b"x-forwarded-for":
            request.forwarded = value

    def on_body(self, body: bytes) -> None:
        request = self.request
        request.body += body
        if len(request.body) > MAX_BODY:
            raise _Refusal(413)

    def on_message_complete(self) -> None:
        self.deadline = time.monotonic() + IDLE_SECONDS
        if len(self.slots) >= REFUSE_PIPELINED:
            raise _Refusal(400)
        request = self.request
        method = self.parser.get_method().decode("ascii", "replace")
        slot = _Slot(not self.parser.should_keep_alive(), method,
                     request if self.server.log_access else None)
        self.closing = slot.close
        self.slots.append(slot)
        try:
            self._dispatch(request, slot)
        except Exception:  # a bug of ours: say so, in the log and to the client
            log.exception("%s %s failed", method, request.url[:200])
            slot.close = self.closing = True
            self._fill(slot, self._plain(500, slot.close))

    def _dispatch(self, request: _Request, slot: _Slot) -> None:
        url = request.url
        if url[:1] != b"/":  # RFC 9112 3.2.2: absolute-form is accepted too
            url = _origin_form(url)
        raw_path, _, query = url.partition(b"?")
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path, errors="replace")
        found = self.server.app.answer_hit(
            path, slot.method, self.peer, _printable(request.user_agent[:1024]),
            _printable(request.forwarded[:1024]))
        if found is None:
            asyncio.get_running_loop().create_task(
                self._asgi(slot, request, path, raw_path, query))
            return
        row, answer = found
        data = self._answer(answer, slot)
        if row is None:
            self._fill(slot, data)
        else:
            self.server.submit(row, lambda error: self._committed(slot, data, error))

    def _committed(self, slot: _Slot, data: bytes, error: BaseException | None) -> None:
        """The committer's word on a hit: kept (its answer goes), or lost (503, never 200)."""
        self._fill(slot, data if error is None else self._answer(UNAVAILABLE, slot))

    def _callback_failed(self, cause: BaseException | None) -> None:
        if isinstance(cause, _Refusal):
            self._refuse(cause.status)
        else:
            log.error("HTTP parser callback failed", exc_info=cause)
            self._refuse(500)

    # -- answers ---------------------------------------------------------------------------

    def _answer(self, answer: Answer, slot: _Slot) -> bytes:
        head = slot.method == "HEAD"
        if answer in _CANNED:  # (by identity: these are module constants)
            clockwork = self.server.clockwork
            clockwork.date()  # a new second drops the bytes built with the old Date
            key = (_CANNED[answer], head, slot.close)
            data = clockwork.canned.get(key)
            if data is None:
                data = clockwork.canned[key] = self._built(answer, head, slot.close)
            return data
        return self._built(answer, head, slot.close)

    def _built(self, answer: Answer, head: bool, close: bool) -> bytes:
        status, headers, body = answer
        return self._response(status, headers, b"" if head else body, close)

    def _response(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  close: bool) -> bytes:
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown")),
                self.server.clockwork.date()]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        if close:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        return b"".join(head) + body

    def _plain(self, status: int, close: bool) -> bytes:
        body = _REASONS.get(status, b"Error") + b"\n"
        return self._response(status, [
            (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            body, close)

    def _fill(self, slot: _Slot, data: bytes) -> None:
        slot.data = data
        while self.slots and self.slots[0].data is not None:
            ready = self.slots.popleft()
            if self.server.log_access:
                self._log_access(ready)
            if self.transport is None:
                continue  # the client left; the hit is kept all the same
            self.transport.write(ready.data)  # type: ignore[arg-type]
            if ready.close or (self.ended and not self.slots and not self.backlog):
                self._linger()
                self.slots.clear()
        if self.backlog and not self.feeding and not self.held and len(self.slots) < MAX_PIPELINED:
            self._resume()

    def _resume(self) -> None:
        """Fewer answers are owed: parse what was held back, then read again."""
        data, self.backlog = self.backlog, b""
        self._feed(data)
        if self.backlog or self.transport is None:
            return
        if self.ended and not self.slots:
            self._linger()  # everything asked is answered and the client is done
        elif not self.closing and not self.held and not self.transport.is_reading():
            self.transport.resume_reading()

    def _refuse(self, status: int) -> None:
        """Answer ``status`` after the answers still owed, then close: nothing more is read."""
        self.closing = True
        slot = _Slot(True, "-", None)
        if self.server.log_access:
            slot.method, slot.request = self._method(), self.request
        self.slots.append(slot)
        self._fill(slot, self._plain(status, close=True))

    def _method(self) -> str:
        """The method of the request being parsed, "-" when the parser has none yet
        (its URL has begun only once the method is read; before, the parser still holds
        the previous request's)."""
        if not self.request.url:
            return "-"
        try:
            return self.parser.get_method().decode("ascii", "replace")
        except httptools.HttpParserError:
            return "-"

    def _close_after_answers(self) -> None:
        self.closing = True
        if self.slots:  # the last answer owed closes the connection once it is written
            self.slots[-1].close = True
        else:
            self._linger()

    def _linger(self) -> None:
        """Close our side once the answers are out, but keep reading (and dropping) what
        the client still sends for a moment: closing with unread input sends a TCP reset,
        which can destroy answers the client has not read yet."""
        self.closing = True
        if self.transport is None:
            return
        if self.ended or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        if self.backlog:  # held back while answers were owed: dropped, and read on
            self.backlog = b""
        if not self.transport.is_reading():
            self.transport.resume_reading()
        self.deadline = time.monotonic() + LINGER_SECONDS

    def _log_access(self, slot: _Slot) -> None:
        request, data = slot.request, slot.data or b""
        url = request.url if request is not None else b""
        took = (time.monotonic() - request.started) * 1000 if request is not None else 0.0
        if url[:1] != b"/":
            url = _origin_form(url)  # so the token in it is shortened too
        target = shorten_tokens(url.decode("latin-1")) or "-"
        if len(target) > LOGGED_URL:  # (a 414's is kilobytes of whatever the client sent)
            target = target[:LOGGED_URL] + "..."
        access_log.info("%s %s %s %d %.1fms %s", slot.method, target,
                        data[9:12].decode("latin-1"), len(data), took, self.peer)

    async def _asgi(self, slot: _Slot, request: _Request, path: str, raw_path: bytes,
                    query: bytes) -> None:
        """Any other path: run the ASGI app, buffer its (small) answer, write it in turn."""
        body, started, chunks = request.body, {}, []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": slot.method, "scheme": "http", "path": path, "raw_path": raw_path,
            "query_string": query, "root_path": "", "headers": request.headers,
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
            log.exception("%s %s failed", slot.method, path)
            self._fill(slot, self._plain(500, slot.close))
            return
        data = b"".join(chunks)
        headers = [(n.lower(), v) for n, v in headers if n.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        self._fill(slot, self._answer((status, headers, data), slot))


def _origin_form(url: bytes) -> bytes:
    """``http://host/o/x.gif?q`` -> ``/o/x.gif?q``; anything else (``*``, an authority) as
    it is (no route takes it)."""
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return url
    slash = rest.find(b"/")
    if slash < 0:
        question = rest.find(b"?")
        return b"/" if question < 0 else b"/" + rest[question:]
    return rest[slash:]


async def listen(server: Server, *, reuse_port: bool = False) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    host, port = server.address
    return await loop.create_server(server.protocol, host, port, backlog=2048,
                                    reuse_port=reuse_port or None)
