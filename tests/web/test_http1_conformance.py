"""The HTTP protocol against an independent parser: h11 says what the answers must be.

Hypothesis draws pipelined streams of valid requests (pixels and clicks with good
and bad tokens, health checks, POSTs with a Content-Length or chunked body,
keep-alive, ``Connection: close``, HTTP/1.0) and invalid ones (a broken request
line, an oversize URL or header block, a bad or too large Content-Length). Each
stream goes to a real ``mailbeacon serve`` over one connection, cut at random
byte boundaries. h11, as a server-side parser of the same bytes, decides where
each request ends and where the stream stops being HTTP; our limits and our
routes decide the status. The server must give exactly those answers, in that
order, and nothing more.

Where mailbeacon is deliberately more lenient than h11, the oracle is told so
(``_OracleView``): a user agent may carry control characters (some real ones
do; the pixel is still served), so h11 reads those bytes as ``?``.
"""

from __future__ import annotations

import itertools
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, TokenKind
from mailbeacon.web import http1
from serverproc import ServerProcess


@dataclass(frozen=True)
class Wire:
    """One request as bytes on the wire, and as the oracle reads it."""

    sent: bytes
    oracle: bytes


@dataclass
class Tokens:
    pixel: str
    click: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("conformance")
    with ServerProcess(data / "d", f"sqlite:///{data / 'mb.db'}", "--judge", "false") as proc:
        yield proc


@pytest.fixture(scope="module")
def signed(server: ServerProcess) -> Tokens:
    keyring = keys.load_or_create(server.data_dir)
    return Tokens(tokens.encode(Claims(TokenKind.OPEN, 1, 1), keyring),
                  tokens.encode(Claims(TokenKind.CLICK, 1, 1, 1, "https://example.com/"),
                                keyring))


# -- what the server must answer, per request h11 accepted ---------------------------------

def expected_status(method: bytes, target: bytes, good_click: str) -> int:
    """The routes: the pixel always 200, a click 302 only with its signed token."""
    path = target.split(b"?", 1)[0].decode()
    if path.startswith("/o/") and path.endswith(".gif"):
        return 200
    if path.startswith("/c/"):
        return 302 if path == f"/c/{good_click}" else 404
    if path == "/healthz":
        return 200 if method in (b"GET", b"HEAD") else 405
    return 404


def over_our_limits(request: h11.Request) -> int | None:
    """The limits h11 does not have: the status mailbeacon answers instead of serving."""
    if len(request.target) > http1.MAX_URL:
        return 414
    sizes = sum(len(name) + len(value) for name, value in request.headers)
    if len(request.headers) > http1.MAX_HEADERS or sizes > http1.MAX_HEADER_BYTES:
        return 431
    length = dict(request.headers).get(b"content-length")
    if length is not None and int(length) > http1.MAX_BODY:
        return 413
    return None


@dataclass
class Expected:
    answers: list[tuple[bytes, int]] = field(default_factory=list)  # (method, status)


def oracle(stream: bytes, good_click: str) -> Expected:
    """Run h11 as the server over ``stream`` (then EOF): the answers it must give."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024 * 1024)
    conn.receive_data(stream)
    conn.receive_data(b"")
    expected = Expected()
    request: h11.Request | None = None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            expected.answers.append((b"-", 400))
            return expected
        if isinstance(event, h11.Request):
            request = event
            limit = over_our_limits(event)
            if limit is not None:
                expected.answers.append((event.method, limit))
                return expected
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            expected.answers.append(
                (request.method, expected_status(request.method, request.target, good_click)))
            conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                return expected
            conn.start_next_cycle()
        elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            return expected


# -- streams -------------------------------------------------------------------------------

_CONTROLS = b"\x00\x07\x1b\x7f\x01"


@st.composite
def user_agents(draw: st.DrawFn) -> tuple[bytes, bytes]:
    text = draw(st.binary(max_size=40).map(
        lambda b: bytes(c for c in b if (c not in b"\r\n" and c >= 0x20) or c in _CONTROLS)))
    value = b"Agent/1.0 " + text
    shown = bytes(ord("?") if c < 0x20 or c == 0x7F else c for c in value)  # what h11 sees
    return value, shown


@st.composite
def valid_requests(draw: st.DrawFn, signed: Tokens) -> Wire:
    target = draw(st.sampled_from([
        f"/o/{signed.pixel}.gif", "/o/forged.gif", f"/o/{signed.pixel[:-2]}.gif",
        f"/c/{signed.click}", f"/c/{signed.click}?u=https://evil.example", "/c/forged",
        "/healthz", "/nothing-here", "/o/%00%ff.gif",
    ]))
    version = draw(st.sampled_from([b"1.1"] * 5 + [b"1.0"]))
    body = draw(st.one_of(st.none(), st.binary(max_size=300)))
    method = b"POST" if body is not None else draw(st.sampled_from([b"GET", b"HEAD"]))
    head = [method + b" " + target.encode() + b" HTTP/" + version, b"Host: t.example"]
    shown = list(head)
    if draw(st.booleans()):
        agent, seen = draw(user_agents())
        head.append(b"User-Agent: " + agent)
        shown.append(b"User-Agent: " + seen)
    if version == b"1.1":
        connection = draw(st.sampled_from([None, None, None, b"keep-alive", b"close"]))
        if connection:
            head.append(b"Connection: " + connection)
            shown.append(b"Connection: " + connection)
    payload = b""
    if body is not None:
        if version == b"1.1" and draw(st.booleans()):
            framing = b"Transfer-Encoding: chunked"
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _chunks(body)) + b"0\r\n\r\n"
        else:
            framing, payload = b"Content-Length: %d" % len(body), body
        head.append(framing)
        shown.append(framing)
    return Wire(b"\r\n".join(head) + b"\r\n\r\n" + payload,
                b"\r\n".join(shown) + b"\r\n\r\n" + payload)


def _chunks(body: bytes) -> list[bytes]:
    return [body[i:i + 97] for i in range(0, len(body), 97) if body[i:i + 97]]


INVALID = [
    b"GET /healthz HTTP/1.1 trailing\r\nHost: x\r\n\r\n",
    b"GE T / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # TLS spoken to plain HTTP
    b"GET /" + b"a" * 9000 + b".gif HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 20_000 + b"\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
]


@st.composite
def streams(draw: st.DrawFn, signed: Tokens) -> tuple[list[Wire], list[int]]:
    requests = draw(st.lists(valid_requests(signed), min_size=1, max_size=8))
    if draw(st.integers(0, 2)) == 0:  # a third of the streams go wrong somewhere
        bad = draw(st.sampled_from(INVALID))
        requests.insert(draw(st.integers(0, len(requests))), Wire(bad, bad))
    size = sum(len(r.sent) for r in requests)
    cuts = draw(st.lists(st.integers(1, max(1, size - 1)), max_size=6, unique=True))
    return requests, sorted(cuts)


# -- the exchange ----------------------------------------------------------------------------

def send_in_pieces(port: int, stream: bytes, cuts: list[int]) -> bytes:
    """Send ``stream`` cut at ``cuts`` (each piece its own segment), then EOF; read all."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        edges = [0, *cuts, len(stream)]
        try:
            for start, end in itertools.pairwise(edges):
                s.sendall(stream[start:end])
                time.sleep(0.002)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the server closed first (after a refusal): it may do that
            pass
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def parse_answers(raw: bytes, methods: list[bytes]) -> list[int]:
    """Split ``raw`` into responses (a HEAD's has no body); fail on anything left over."""
    statuses, pos = [], 0
    for method in methods:
        if pos >= len(raw):
            break
        end = raw.find(b"\r\n\r\n", pos) + 4
        assert end >= 4, f"an answer cut short: {raw[pos:pos + 80]!r}"
        head = raw[pos:end]
        match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
        assert match, raw[pos:pos + 80]
        length = re.search(rb"\r\ncontent-length: (\d+)\r\n", head)
        assert length, head
        pos = end + (0 if method == b"HEAD" else int(length.group(1)))
        statuses.append(int(match.group(1)))
    assert pos == len(raw), f"more than {len(methods)} answers: {raw[pos:pos + 80]!r}"
    return statuses


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_answers_match_what_h11_says(server: ServerProcess, signed: Tokens,
                                     data: st.DataObject) -> None:
    requests, cuts = data.draw(streams(signed))
    expected = oracle(b"".join(r.oracle for r in requests), signed.click)
    raw = send_in_pieces(server.port, b"".join(r.sent for r in requests), cuts)
    methods = [method for method, _ in expected.answers]
    assert parse_answers(raw, methods) == [status for _, status in expected.answers]


def test_the_oracle_tells_good_from_bad() -> None:
    """The oracle itself: it must see the ends of streams where a server must."""
    ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    assert oracle(ok * 2, "c").answers == [(b"GET", 200)] * 2
    assert oracle(ok + INVALID[0] + ok, "c").answers == [(b"GET", 200), (b"-", 400)]
    assert oracle(ok + INVALID[3], "c").answers == [(b"GET", 200), (b"GET", 414)]
    close = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert oracle(close + ok, "c").answers == [(b"GET", 200)]
    assert oracle(b"GET /o/x.gif HTTP/1.0\r\n\r\n" + ok, "c").answers == [(b"GET", 200)]
