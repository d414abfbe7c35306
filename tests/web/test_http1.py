"""The HTTP/1.1 server itself, over raw sockets: limits, order, keep-alive, HEAD, and what
it answers when a hit is not kept or our own code fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from mailbeacon import keys
from mailbeacon.clock import FixedClock
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, Keyring, TokenKind
from mailbeacon.web import http1
from mailbeacon.web.tracking import TrackingApp
from serverproc import ServerProcess, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("http1")
    with ServerProcess(data / "d", f"sqlite:///{data / 'mb.db'}") as proc:
        yield proc


def _exchange(server: ServerProcess, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def _pixel(server: ServerProcess, n: int) -> str:
    keyring = keys.load_or_create(server.data_dir)
    return f"/o/{tokens.encode(Claims(TokenKind.OPEN, 1, n), keyring)}.gif"


@pytest.mark.parametrize(("raw", "status"), [
    (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n",
     b"431"),
    (b"POST /healthz HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", b"413"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"400"),  # TLS spoken to plain HTTP
    (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400"),
])
def test_what_no_client_sends_is_refused(server: ServerProcess, raw: bytes,
                                         status: bytes) -> None:
    answer = _exchange(server, raw)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]
    assert b"connection: close" in answer.lower()


def test_pipelined_answers_keep_request_order(server: ServerProcess) -> None:
    good, bad = _pixel(server, 1), "/c/forged"
    raw = b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                   for p in (good, bad, good, "/healthz"))
    answer = _exchange(server, raw)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"200", b"200"]


def test_head_keep_alive_and_close(server: ServerProcess) -> None:
    raw = (f"HEAD {_pixel(server, 2)} HTTP/1.1\r\nHost: x\r\n\r\n"
           f"GET {_pixel(server, 3)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
           f"GET {_pixel(server, 4)} HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    answer = _exchange(server, raw)
    assert answer.count(b"HTTP/1.1 200") == 2  # nothing after "Connection: close"
    head, rest = answer.split(b"\r\n\r\n", 1)
    assert b"content-length: 43" in head and rest.startswith(b"HTTP/1.1 200")  # no HEAD body
    assert answer.endswith(b";")  # the GIF's trailer ends the second answer
    assert b"date: " in head


def test_http_1_0_closes_after_its_answer(server: ServerProcess) -> None:
    answer = _exchange(server, f"GET {_pixel(server, 5)} HTTP/1.0\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer



def _statuses(answer: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)


def test_a_bad_request_is_answered_after_the_hits_before_it(server: ServerProcess) -> None:
    """Three pixels and a bad request in one segment: three GIFs, then the 400, then close."""
    pixels = b"".join(f"GET {_pixel(server, 10 + n)} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                      for n in range(3))
    for bad, status in ((b"NOT A REQUEST\r\n\r\n", b"400"),
                        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"414"),
                        (b"GET / HTTP/1.1\r\nX: " + b"y" * 17000 + b"\r\n\r\n", b"431"),
                        (b"POST / HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n", b"413")):
        answer = _exchange(server, pixels + bad + b"GET /healthz HTTP/1.1\r\n\r\n")
        assert _statuses(answer) == [b"200", b"200", b"200", status], answer[-200:]
        assert answer.count(b"GIF89a") == 3


def test_a_pipelined_flood_is_read_as_answers_go_out(server: ServerProcess) -> None:
    """Far more requests than may wait at once, in one write: all answered, in order."""
    pixels = [_pixel(server, 100 + n) for n in range(5 * http1.MAX_PIPELINED)]
    raw = b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in pixels)
    answer = _exchange(server, raw + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _statuses(answer) == [b"200"] * (len(pixels) + 1)
    assert answer.endswith(b"ok\n")


def test_user_agents_with_control_characters_get_the_gif(server: ServerProcess) -> None:
    for agent in (b"Mozilla/5.0 \x1b[2J", b"a\x00b", b"bell\x07", b"del\x7f", b"tab\tok"):
        answer = _exchange(server, f"GET {_pixel(server, 20)} HTTP/1.1\r\nHost: x\r\n".encode()
                           + b"User-Agent: " + agent + b"\r\n\r\n")
        assert _statuses(answer) == [b"200"], agent
        assert answer.endswith(b";")


def test_a_lone_cr_in_a_header_is_still_refused(server: ServerProcess) -> None:
    """Leniency stops at what could smuggle a request: CR without LF, a second length."""
    for raw in (b"GET / HTTP/1.1\r\nX: a\rContent-Length: 5\r\n\r\nhello",
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"):
        assert _statuses(_exchange(server, raw)) == [b"400"], raw


# -- in process: the protocol with an ASGI app and a committer we control -----------------

KEYRING = Keyring({1: b"k" * 32}, 1)


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """Every request's own headers and body, sent back as JSON."""
    message = await receive()
    if scope["path"] == "/boom":
        raise RuntimeError("the app failed")
    body = json.dumps({"headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                       "body": message["body"].decode()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class _BrokenApp(TrackingApp):
    def answer_hit(self, path: str, *args: Any) -> Any:
        if path == "/o/crash.gif":
            raise ZeroDivisionError("a bug in the hot path")
        return super().answer_hit(path, *args)


class InProcess:
    """http1 on a real localhost socket in a thread of its own; ``lose_hits``: the committer
    reports that neither store nor spool took them."""

    def __init__(self) -> None:
        self.lose_hits = False
        self.kept: list[tuple[Any, ...]] = []
        self.loop = asyncio.new_event_loop()
        self.app = _BrokenApp(keyring=KEYRING, record=self._record, clock=FixedClock(1.0),
                              fallback=_echo, load_attachment=lambda _: None)
        self.server = http1.Server(self.app, self.app, self.submit, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.listening = cast(asyncio.Server, asyncio.run_coroutine_threadsafe(
            http1.listen(self.server), self.loop).result(10))
        self.port = self.listening.sockets[0].getsockname()[1]

    def submit(self, row: tuple[Any, ...], done: Callable[[BaseException | None], None]) -> None:
        if self.lose_hits:  # as the group committer does when its write raised
            self.loop.call_soon(done, OSError(28, "No space left on device"))
        else:
            self.kept.append(row)
            self.loop.call_soon(done, None)

    async def _record(self, row: tuple[Any, ...]) -> None:
        raise AssertionError("the fast path submits; record is for the ASGI path")

    def exchange(self, raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            return b"".join(iter(lambda: s.recv(65536), b""))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.listening.close)
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def inproc() -> Iterator[InProcess]:
    proc = InProcess()
    yield proc
    proc.close()


def _bodies(answer: bytes) -> list[Any]:
    return [json.loads(part.split(b"\r\n\r\n", 1)[1]) for part in
            re.split(rb"(?=HTTP/1\.1 )", answer) if part]


def test_pipelined_posts_each_keep_their_own_headers_and_body(inproc: InProcess) -> None:
    raw = (b"POST /a HTTP/1.1\r\nHost: x\r\nX-Which: first\r\nContent-Length: 5\r\n\r\nfirst"
           b"POST /b HTTP/1.1\r\nHost: x\r\nX-Which: second\r\nContent-Length: 6\r\n\r\nsecond")
    first, second = _bodies(inproc.exchange(raw))
    assert (first["headers"]["x-which"], first["body"]) == ("first", "first")
    assert (second["headers"]["x-which"], second["body"]) == ("second", "second")


def test_a_hit_that_was_not_kept_is_answered_503(inproc: InProcess) -> None:
    pixel = f"/o/{tokens.encode(Claims(TokenKind.OPEN, 1, 1), KEYRING)}.gif"
    click = f"/c/{tokens.encode(Claims(TokenKind.CLICK, 1, 1, 1, 'https://e.x/'), KEYRING)}"
    raw = "".join(f"{m} {p} HTTP/1.1\r\nHost: x\r\n\r\n"
                  for m, p in (("GET", pixel), ("HEAD", pixel), ("GET", click))).encode()
    assert _statuses(inproc.exchange(raw)) == [b"200", b"200", b"302"]
    inproc.lose_hits = True
    answer = inproc.exchange(raw + b"GET /o/forged.gif HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _statuses(answer) == [b"503", b"503", b"503", b"200"]  # a forged token keeps nothing
    assert answer.count(b"retry-after: 5\r\n") == 3 and b"location" not in answer
    assert len(inproc.kept) == 3


def test_our_own_failures_are_a_logged_500(inproc: InProcess,
                                           caplog: pytest.LogCaptureFixture) -> None:
    pixel = f"/o/{tokens.encode(Claims(TokenKind.OPEN, 1, 1), KEYRING)}.gif"
    raw = "".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n"
                  for p in (pixel, "/o/crash.gif", "/boom", pixel)).encode()
    with caplog.at_level(logging.ERROR, logger="mailbeacon.http"):
        answer = inproc.exchange(raw)
    assert _statuses(answer) == [b"200", b"500"]  # a bug of ours closes the connection
    assert "a bug in the hot path" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="mailbeacon.http"):
        assert _statuses(inproc.exchange(raw.split(b"\r\n\r\n", 2)[2])) == [b"500", b"200"]
    assert "GET /boom failed" in caplog.text and "the app failed" in caplog.text


# -- the process: access log, busy ports ------------------------------------------------------

def test_access_log_shows_each_request_without_the_whole_token(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "d", f"sqlite:///{tmp_path / 'mb.db'}",
                       "--log-access", "true") as proc:
        pixel = _pixel(proc, 1)
        _exchange(proc, f"GET {pixel}?x=secret HTTP/1.1\r\nHost: x\r\n\r\n"
                        f"HEAD /nothing HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n".encode())
        _wait_for(lambda: "HEAD /nothing" in proc.output())
    log = proc.output()
    token = pixel[3:-4]
    assert re.search(rf"INFO mailbeacon.access: GET /o/{token[:8]}\.\.\.\.gif\?\.\.\. 200 \d+ "
                     r"[\d.]+ms 127\.0\.0\.1", log), log
    assert re.search(r"mailbeacon.access: HEAD /nothing 404 \d+ [\d.]+ms", log), log
    assert re.search(r"mailbeacon.access: - \S* 400 ", log), log
    assert token not in log and "secret" not in log


def test_no_access_log_unless_asked(server: ServerProcess) -> None:
    _exchange(server, f"GET {_pixel(server, 1)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert "mailbeacon.access" not in server.output()


def _wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("taken", ["--http", "--inbound-smtp"])
def test_serve_on_a_busy_port_says_which_and_exits(tmp_path: Path, taken: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        busy = squatter.getsockname()[1]
        ports = {"--http": free_port(), "--inbound-smtp": free_port(), taken: busy}
        done = subprocess.run(
            [sys.executable, "-m", "mailbeacon", "serve", "--data-dir", str(tmp_path / "d"),
             "--db", f"sqlite:///{tmp_path / 'mb.db'}", "--bounce-domain", "b.example",
             *(arg for flag, port in ports.items() for arg in (flag, f"127.0.0.1:{port}"))],
            capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("MAILBEACON_")})
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(
        f"mailbeacon: error: cannot listen on 127.0.0.1:{busy}: address already in use\n")
    assert "tracking at" not in done.stderr and "Traceback" not in done.stderr
    assert "stopped" not in done.stderr


def _serve_fails(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbeacon", "serve", "--data-dir", str(tmp_path / "d2"),
         "--db", f"sqlite:///{tmp_path / 'mb2.db'}", "--bounce-domain", "b.example",
         "--inbound-smtp", f"127.0.0.1:{free_port()}", *args],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAILBEACON_")})


def test_a_second_multi_worker_serve_on_a_taken_port_fails(tmp_path: Path) -> None:
    """SO_REUSEPORT would let it bind beside the first and split the hits between stores."""
    with ServerProcess(tmp_path / "d", f"sqlite:///{tmp_path / 'mb.db'}", "--workers", "2",
                       "--judge", "false") as first:
        done = _serve_fails(tmp_path, "--workers", "2", "--judge", "false",
                            "--http", f"127.0.0.1:{first.port}")
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(f"mailbeacon: error: cannot listen on 127.0.0.1:{first.port}: "
                                "address already in use\n"), done.stderr
    assert "tracking at" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("address", "reason"), [
    ("999.1.1.1:8080", "not an address this machine has (name or service not known)"),
    ("192.0.2.77:8080", "not an address this machine has"),  # TEST-NET: nobody's here
])
def test_an_address_this_machine_has_not_is_said_plainly(tmp_path: Path, address: str,
                                                         reason: str) -> None:
    done = _serve_fails(tmp_path, "--http", address)
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(f"mailbeacon: error: cannot listen on {address}: {reason}\n"), \
        done.stderr


def test_a_header_name_with_whitespace_is_refused(server: ServerProcess) -> None:
    """RFC 9112 5.1: "Content-Length : 3" would otherwise pass as some other header, and
    its body as the next request."""
    for name in (b"Content-Length ", b"Content-Length\t", b"X Y"):
        answer = _exchange(server, b"POST /healthz HTTP/1.1\r\nHost: x\r\n" + name +
                           b": 3\r\n\r\nabc")
        assert _statuses(answer) == [b"400"], (name, answer[:80])


def test_an_absolute_form_request_is_served_and_kept(inproc: InProcess) -> None:
    token = tokens.encode(Claims(TokenKind.OPEN, 1, 7), KEYRING)
    raw = (f"GET http://t.example/o/{token}.gif HTTP/1.1\r\nHost: t.example\r\n\r\n"
           f"HEAD HTTPS://t.example:8443/o/{token}.gif?x=1 HTTP/1.1\r\nHost: t.example\r\n\r\n"
           f"GET http://t.example HTTP/1.1\r\nHost: t.example\r\n\r\n").encode()
    assert _statuses(inproc.exchange(raw)) == [b"200", b"200", b"200"]  # the last: "/"
    assert [row[3] for row in inproc.kept] == [7, 7]


def test_a_refused_request_logs_what_is_known_and_no_more(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "d", f"sqlite:///{tmp_path / 'mb.db'}",
                       "--log-access", "true") as proc:
        _exchange(proc, b"GET /" + b"A" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        _wait_for(lambda: " 414 " in proc.output())
    [line] = [x for x in proc.output().splitlines() if " 414 " in x]
    assert re.search(r"mailbeacon.access: GET /A{199}\.\.\. 414 \d+ [\d.]+ms 127\.0\.0\.1$",
                     line), line


def _write_buffer(inproc: InProcess) -> int:
    async def size() -> int:
        return sum(c.transport.get_write_buffer_size() for c in inproc.server.connections
                   if c.transport is not None)
    return asyncio.run_coroutine_threadsafe(size(), inproc.loop).result(10)


def test_a_client_that_never_reads_cannot_fill_our_memory(inproc: InProcess) -> None:
    """Pipelined pixels, answers never read: once the answers it has not read pass the
    transport's high-water mark, the server reads no more of its requests."""
    one = b"GET /o/x.gif HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", inproc.port))
        s.settimeout(0.5)
        sent, deadline = 0, time.monotonic() + 4
        with contextlib.suppress(TimeoutError):
            while time.monotonic() < deadline:
                sent += s.send(one * 1000)
        buffered = _write_buffer(inproc)
        assert sent < 8_000_000, "the server read on though its answers were not read"
        assert buffered < 1_000_000, f"{buffered} bytes of answers buffered"
        # Then the client reads, and is done asking: every whole request it sent (those
        # held back unread too) is answered before the server closes.
        reader = ThreadWithResult(lambda: b"".join(iter(lambda: s.recv(1 << 20), b"")))
        s.settimeout(30)
        s.sendall(one[sent % len(one):] if sent % len(one) else b"")  # the last one whole
        s.shutdown(socket.SHUT_WR)
        answer = reader.result()
    assert answer.count(b"HTTP/1.1 200 ") == -(-sent // len(one))


class ThreadWithResult(threading.Thread):
    def __init__(self, work: Callable[[], bytes]) -> None:
        super().__init__(daemon=True)
        self.work, self.value = work, b""
        self.start()

    def run(self) -> None:
        self.value = self.work()

    def result(self) -> bytes:
        self.join(30)
        return self.value
