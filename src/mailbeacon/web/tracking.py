"""The tracking hot path: a bare ASGI handler for pixels, clicks and downloads.

It verifies the token (one HMAC, no database read), hands the hit to the group
committer and answers once the hit is durable. No framework sits in front of
it: every other path goes to the ``fallback`` app (Starlette).

Protocol answers, whatever goes wrong:
- pixel: always the 43-byte GIF with no-cache headers; a bad token is answered
  but not recorded;
- click: a redirect to the URL signed inside the token, never anywhere else; a
  bad token gets 404 and a plain page;
- download: the file, or 404;
- a hit that neither the store nor the spool could take is answered 503 with
  ``retry-after`` (the client asks again): never a 200 for a hit that may be lost.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import quote

from mailbeacon.clock import Clock
from mailbeacon.config import Network
from mailbeacon.core import tokens
from mailbeacon.core.events import EventKind
from mailbeacon.core.tokens import Claims, Keyring, TokenKind, TrackLevel
from mailbeacon.core.urls import (
    CLICK_PREFIX,
    DOWNLOAD_PREFIX,
    OPEN_PREFIX,
    PIXEL_SUFFIX,
    is_web_url,
    lower_scheme,
)
from mailbeacon.errors import TokenError

log = logging.getLogger("mailbeacon.tracking")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A transparent 1x1 GIF89a: the smallest image every mail client renders.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_NO_CACHE = [
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"Thu, 01 Jan 1970 00:00:00 GMT"),
]
_PIXEL_HEADERS = [(b"content-type", b"image/gif"),
                  (b"content-length", str(len(PIXEL)).encode()), *_NO_CACHE]
_NOT_FOUND = b"This tracking link is not valid. Please check the address.\n"
_NOT_FOUND_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"),
                      (b"content-length", str(len(_NOT_FOUND)).encode()), *_NO_CACHE]
_UNAVAILABLE = b"This hit could not be recorded right now. Please try again.\n"
MAX_USER_AGENT = 1024
RETRY_AFTER_SECONDS = 5
_HIT_KIND = {TokenKind.OPEN: str(EventKind.OPEN), TokenKind.CLICK: str(EventKind.CLICK),
             TokenKind.DOWNLOAD: str(EventKind.DOWNLOAD),
             TokenKind.HONEYPOT: str(EventKind.HONEYPOT)}

Row = tuple[Any, ...]


class HitKeys:
    """Idempotency keys for hits: a random prefix per process and a counter.

    Unique across processes and restarts (the prefix is 96 random bits), one
    string concatenation per hit. The store refuses a second row with the same
    key, so a spool replayed twice counts each hit once.
    """

    def __init__(self) -> None:
        self.prefix = "h" + base64.b32encode(os.urandom(10)).decode().lower() + "."
        self.counter = itertools.count(1)

    def next(self) -> str:
        return self.prefix + str(next(self.counter))


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body
UNAVAILABLE: Answer = (503, [(b"content-type", b"text/plain; charset=utf-8"),
                             (b"content-length", str(len(_UNAVAILABLE)).encode()),
                             (b"retry-after", str(RETRY_AFTER_SECONDS).encode()), *_NO_CACHE],
                       _UNAVAILABLE)
PIXEL_ANSWER: Answer = (200, _PIXEL_HEADERS, PIXEL)
NOT_FOUND_ANSWER: Answer = (404, _NOT_FOUND_HEADERS, _NOT_FOUND)
# Answers that never change: an HTTP server may build their bytes once (web/http1.py).
CANNED_ANSWERS = (PIXEL_ANSWER, NOT_FOUND_ANSWER, UNAVAILABLE)
Recorder = Callable[[Row], Awaitable[None]]
AttachmentLoader = Callable[[int], Any]


class TrackingApp:
    def __init__(self, *, keyring: Keyring, record: Recorder, clock: Clock,
                 fallback: ASGIApp, load_attachment: AttachmentLoader,
                 trusted_proxies: Sequence[Network] = ()):
        self.keyring = keyring
        self.record = record
        self.clock = clock
        self.fallback = fallback
        self.load_attachment = load_attachment
        self.trusted_proxies = tuple(trusted_proxies)
        self.hit_keys = HitKeys()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        path: str = scope["path"]
        client = scope.get("client")
        user_agent, forwarded = _headers(scope)
        found = self.answer_hit(path, scope.get("method", "GET"), client[0] if client else "",
                                user_agent, forwarded)
        if found is not None:
            row, answer = found
            if row is not None and not await self._keep(row):
                answer = UNAVAILABLE
            await _respond(send, scope, *answer)
        elif path.startswith(DOWNLOAD_PREFIX):
            await self.download(scope, send, path[len(DOWNLOAD_PREFIX):])
        else:
            await self.fallback(scope, receive, send)

    # -- the hits ------------------------------------------------------------------------

    def answer_hit(self, path: str, method: str, peer: str, user_agent: str,
                   forwarded: str) -> tuple[Row | None, Answer] | None:
        """A pixel or a click: the row to commit first (None: nothing to keep) and the
        answer. None for any other path. Shared by the ASGI app and the fast path."""
        if path.startswith(OPEN_PREFIX):
            token = path[len(OPEN_PREFIX):].removesuffix(PIXEL_SUFFIX)
            claims = self._verify(token, (TokenKind.OPEN,))
            row = None if claims is None else self._row(claims, method, peer, user_agent,
                                                         forwarded)
            return row, PIXEL_ANSWER
        if path.startswith(CLICK_PREFIX):
            claims = self._verify(path[len(CLICK_PREFIX):],
                                  (TokenKind.CLICK, TokenKind.HONEYPOT))
            if claims is None or not is_web_url(claims.url):
                return None, NOT_FOUND_ANSWER
            location = quote(lower_scheme(claims.url), safe=":/?#[]@!$&'()*+,;=%~-._")
            return self._row(claims, method, peer, user_agent, forwarded), (
                302, [(b"location", location.encode("ascii")), (b"content-length", b"0"),
                      *_NO_CACHE], b"")
        return None

    async def download(self, scope: Scope, send: Send, token: str) -> None:
        claims = self._verify(token, (TokenKind.DOWNLOAD,))
        attachment = None
        if claims is not None:
            attachment = await asyncio.to_thread(self.load_attachment, claims.link)
        if claims is None or attachment is None:
            await _respond(send, scope, 404, _NOT_FOUND_HEADERS, _NOT_FOUND)
            return
        client = scope.get("client")
        user_agent, forwarded = _headers(scope)
        if not await self._keep(self._row(claims, scope.get("method", "GET"),
                                          client[0] if client else "", user_agent, forwarded)):
            await _respond(send, scope, *UNAVAILABLE)
            return
        disposition = f"attachment; filename*=UTF-8''{quote(attachment.filename, safe='')}"
        await _respond(send, scope, 200, [
            (b"content-type", attachment.content_type.encode("latin-1", "replace")),
            (b"content-length", str(len(attachment.data)).encode()),
            (b"content-disposition", disposition.encode("ascii")),
            (b"cache-control", b"private, no-store"),
        ], attachment.data)

    # -- helpers -------------------------------------------------------------------------

    def _verify(self, token: str, kinds: tuple[TokenKind, ...]) -> Claims | None:
        try:
            claims = tokens.decode(token, self.keyring)
        except TokenError:
            return None
        if claims.kind not in kinds:
            return None
        if claims.level is TrackLevel.ANONYMOUS and claims.message:
            return None
        return claims

    def _row(self, claims: Claims, method: str, peer: str, user_agent: str,
             forwarded: str) -> Row:
        # The row in events.COLUMNS order, built here without an Event: this runs per hit.
        return (_HIT_KIND[claims.kind], self.clock.now(), claims.campaign, claims.message,
                claims.link, claims.url if claims.kind is TokenKind.CLICK else "",
                method, self.client_ip(peer, forwarded), user_agent, "", self.hit_keys.next())

    async def _keep(self, row: Row) -> bool:
        """Whether the hit is kept (committed or spooled); False: answer 503, not 200."""
        try:
            await self.record(row)
        except Exception as exc:  # the writer logged why
            log.error("hit not kept (%s): answered 503", exc)
            return False
        return True

    def client_ip(self, peer: str, forwarded: str) -> str:
        if not forwarded or not self.trusted_proxies or not self._trusted(peer):
            return peer
        # Walk right to left: the first address not of our proxies is the client.
        for hop in reversed([h.strip() for h in forwarded.split(",")]):
            if not self._trusted(hop):
                return hop[:64]
        return peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)


def _headers(scope: Scope) -> tuple[str, str]:
    user_agent = forwarded = ""
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            user_agent = _printable(value[:MAX_USER_AGENT])
        elif name == b"x-forwarded-for":
            forwarded = _printable(value[:1024])
    return user_agent, forwarded


def _printable(value: bytes) -> str:
    """Header bytes as text a database takes: UTF-8 where it is, no NUL or controls."""
    text = value.decode("utf-8", "replace")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


async def _respond(send: Send, scope: Scope, status: int, headers: list[tuple[bytes, bytes]],
                   body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if scope.get("method") == "HEAD":
        body = b""
    await send({"type": "http.response.body", "body": body})
