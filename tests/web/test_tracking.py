"""The tracking server over real HTTP: pixels, clicks, downloads, forged input."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from apikeys import api_headers
from mailbeacon import judging, keys
from mailbeacon.clock import FixedClock
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, Keyring, TokenKind, TrackLevel
from mailbeacon.store import queries, schema, stream
from mailbeacon.store.sql import NewMessage, open_store
from mailbeacon.web.tracking import PIXEL, TrackingApp
from serverproc import ServerProcess


@pytest.fixture
def server(tmp_path: Path, store_url: str) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data", store_url,
                       "--trusted-proxies", "127.0.0.1/32") as proc:
        yield proc


def _token(server: ServerProcess, claims: Claims) -> str:
    return tokens.encode(claims, keys.load_or_create(server.data_dir))


def _events(server: ServerProcess) -> list[queries.EventView]:
    store = open_store(server.db_url, create=False)
    try:
        # The stream stops below transactions still running (the server's judge may be
        # writing): wait for those, as `report` does, so every answered hit is listed.
        stream.settle(store, 10.0)
        return queries.list_events(store, limit=1000)
    finally:
        store.close()


def test_pixel_is_always_a_gif(server: ServerProcess) -> None:
    good = _token(server, Claims(TokenKind.OPEN, 1, 42))
    click = _token(server, Claims(TokenKind.CLICK, 1, 42, 1, "https://example.com/"))
    for path in (f"/o/{good}.gif", "/o/forged.gif", f"/o/{good[:-3]}.gif", f"/o/{click}.gif",
                 "/o/" + "A" * 5000 + ".gif", "/o/%00%ff.gif"):
        r = httpx.get(server.url + path, headers={"User-Agent": "Test/1.0"})
        assert r.status_code == 200, path
        assert r.content == PIXEL and len(PIXEL) == 43
        assert r.headers["content-type"] == "image/gif"
        assert "no-store" in r.headers["cache-control"]
    head = httpx.head(f"{server.url}/o/{good}.gif")
    assert head.status_code == 200 and head.content == b""
    hits = _events(server)
    assert [(e.kind, e.method, e.user_agent) for e in hits] == [
        ("open", "GET", "Test/1.0"), ("open", "HEAD", "python-httpx/" + httpx.__version__)]


def test_click_redirects_only_to_the_signed_url(server: ServerProcess) -> None:
    url = "https://example.com/path?q=1&r=é#top"
    token = _token(server, Claims(TokenKind.CLICK, 1, 42, 3, url))
    r = httpx.get(f"{server.url}/c/{token}")
    assert r.status_code == 302
    assert r.headers["location"] == "https://example.com/path?q=1&r=%C3%A9#top"
    # An open redirect is impossible: altered, forged or foreign tokens get a plain 404.
    other = _token(server, Claims(TokenKind.OPEN, 1, 42))
    for bad in (token[:-2], token.replace(token[10], "A" if token[10] != "A" else "B"),
                other, "nonsense", ""):
        r = httpx.get(f"{server.url}/c/{bad}")
        assert r.status_code == 404, bad
        assert r.headers["content-type"].startswith("text/plain")
        assert "location" not in r.headers
    # A query string cannot steer it elsewhere either.
    r = httpx.get(f"{server.url}/c/{token}?u=https://evil.example&url=https://evil.example")
    assert r.headers["location"] == "https://example.com/path?q=1&r=%C3%A9#top"
    hits = _events(server)
    assert [(h.kind, h.link, h.url, h.message_id) for h in hits] == [("click", 3, url, None)] * 2


def test_replayed_tokens_count_in_totals_not_uniques(server: ServerProcess) -> None:
    store = open_store(server.db_url, create=False)
    campaign = store.campaign("spring", 1.0)
    [copy] = store.add_messages([NewMessage(campaign, "me@example.com", "ann@example.org",
                                            "Hi", "identified")], 1.0)
    with store.engine.begin() as conn:  # accepted by the relay: uniques count such copies
        conn.execute(schema.messages.update().values(status="sent", sent_at=1.0))
    store.close()
    open_token = _token(server, Claims(TokenKind.OPEN, campaign, copy))
    for _ in range(5):
        httpx.get(f"{server.url}/o/{open_token}.gif")
    store = open_store(server.db_url, create=False)
    # The figures come from rollups, which move as hits are judged (serve's judge may be
    # on it already: the cursor's compare-and-set keeps the two from doubling anything).
    judging.catch_up(store, judging.Judge(), time.time(), settle=5.0)
    counts = queries.counts(store)
    store.close()
    assert (counts.opens, counts.unique_opens) == (5, 1)


def test_anonymous_hits_name_nobody(server: ServerProcess) -> None:
    token = _token(server, Claims(TokenKind.OPEN, 3, 0, level=TrackLevel.ANONYMOUS))
    httpx.get(f"{server.url}/o/{token}.gif")
    [hit] = _events(server)
    assert hit.recipient is None and hit.kind == "open"


def test_forwarded_for_is_believed_only_from_trusted_proxies(server: ServerProcess) -> None:
    token = _token(server, Claims(TokenKind.OPEN, 1, 1))
    httpx.get(f"{server.url}/o/{token}.gif",
              headers={"X-Forwarded-For": "198.51.100.7, 10.9.9.9, 127.0.0.1"})
    [hit] = _events(server)
    assert hit.ip == "10.9.9.9"  # the first hop from the right that is not a trusted proxy


def test_untrusted_peer_cannot_spoof_its_address(tmp_path: Path, store_url: str) -> None:
    with ServerProcess(tmp_path / "d2", store_url) as server:
        token = _token(server, Claims(TokenKind.OPEN, 1, 1))
        httpx.get(f"{server.url}/o/{token}.gif", headers={"X-Forwarded-For": "198.51.100.7"})
        [hit] = _events(server)
    assert hit.ip == "127.0.0.1"


def test_hostile_user_agent_is_kept_bounded(server: ServerProcess) -> None:
    token = _token(server, Claims(TokenKind.OPEN, 1, 1))
    r = httpx.get(f"{server.url}/o/{token}.gif",
                  headers={b"User-Agent": b"x" * 6000 + b"\xc3\xa9\xff"})
    assert r.status_code == 200
    [hit] = _events(server)
    assert len(hit.user_agent) == 1024


def test_download_serves_the_file(server: ServerProcess) -> None:
    store = open_store(server.db_url, create=False)
    aid = store.put_attachment("Bericht é.pdf", "application/pdf", b"%PDF-1.7 data", 1.0)
    store.close()
    token = _token(server, Claims(TokenKind.DOWNLOAD, 1, 9, link=aid))
    r = httpx.get(f"{server.url}/d/{token}")
    assert r.status_code == 200 and r.content == b"%PDF-1.7 data"
    assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''Bericht%20%C3%A9.pdf"
    missing = _token(server, Claims(TokenKind.DOWNLOAD, 1, 9, link=aid + 99))
    assert httpx.get(f"{server.url}/d/{missing}").status_code == 404
    assert httpx.get(f"{server.url}/d/forged").status_code == 404
    assert [e.kind for e in _events(server)] == ["download"]


def test_api_and_health(server: ServerProcess) -> None:
    key = api_headers(server.db_url)
    assert httpx.get(f"{server.url}/healthz").text == "ok\n"
    assert httpx.get(f"{server.url}/api/report", headers=key).json()["sent"] == 0
    assert httpx.get(f"{server.url}/api/report?campaign=nope", headers=key).status_code == 404
    for bad in ("after=x", "limit=-1", "limit=0", "limit=5000", "after=-1",
                "after=99999999999999999999999"):
        assert httpx.get(f"{server.url}/api/events?{bad}", headers=key).status_code == 400, bad
    assert httpx.get(f"{server.url}/nothing-here").status_code == 404


def test_serve_refuses_to_start_without_its_store(tmp_path: Path) -> None:
    """It never answers hits it could not record: no store, no server."""
    import subprocess
    import sys

    (tmp_path / "file").write_text("not a directory")
    for db in ("postgresql://nobody@127.0.0.1:1/none", f"sqlite:///{tmp_path}/file/x.db",
               "mysql+nodriver://x/y"):
        done = subprocess.run([sys.executable, "-m", "mailbeacon", "serve", "--data-dir",
                               str(tmp_path / "d"), "--db", db, "--http", "127.0.0.1:0"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, db
        assert "mailbeacon: error:" in done.stderr, done.stderr
        assert "store" in done.stderr or "--db" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_link_with_an_upper_case_scheme_redirects(server: ServerProcess) -> None:
    for url, location in (("HTTPS://example.com/X", "https://example.com/X"),
                          ("Http://example.com/", "http://example.com/")):
        token = _token(server, Claims(TokenKind.CLICK, 1, 42, 3, url))
        r = httpx.get(f"{server.url}/c/{token}")
        assert (r.status_code, r.headers["location"]) == (302, location)
    assert [h.url for h in _events(server)] == ["HTTPS://example.com/X", "Http://example.com/"]


def test_control_characters_in_a_user_agent_are_stored_replaced(server: ServerProcess) -> None:
    token = _token(server, Claims(TokenKind.OPEN, 1, 1))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        # (raw bytes: an HTTP client refuses to send a NUL)
        s.sendall(f"GET /o/{token}.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                  + b"User-Agent: Evil\x1b]0;PWNED\x07\x00\x7f/1\r\n\r\n")
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(PIXEL)
    [hit] = _events(server)
    assert hit.user_agent == "Evil\ufffd]0;PWNED\ufffd\ufffd\ufffd/1"


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes


def test_the_asgi_path_answers_503_for_a_hit_not_kept() -> None:
    """TrackingApp as a plain ASGI app (no http1): a hit the committer could not keep."""
    keyring = Keyring({1: b"k" * 32}, 1)

    async def lost(row: tuple[object, ...]) -> None:
        raise OSError(28, "No space left on device")

    async def fallback(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    app = TrackingApp(keyring=keyring, record=lost, clock=FixedClock(), fallback=fallback,
                      load_attachment=lambda _: Attachment("a.txt", "text/plain", b"data"))
    paths = [f"/o/{tokens.encode(Claims(TokenKind.OPEN, 1, 1), keyring)}.gif",
             f"/c/{tokens.encode(Claims(TokenKind.CLICK, 1, 1, 1, 'https://e.x/'), keyring)}",
             f"/d/{tokens.encode(Claims(TokenKind.DOWNLOAD, 1, 1, 1), keyring)}"]

    async def get_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            return [await client.get(p) for p in [*paths, "/o/forged.gif"]]

    answers = asyncio.run(get_all())
    assert [r.status_code for r in answers] == [503, 503, 503, 200]
    assert all(r.headers["retry-after"] == "5" for r in answers[:3])
    assert "location" not in answers[1].headers and answers[2].content != b"data"
