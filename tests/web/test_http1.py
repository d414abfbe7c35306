"""The HTTP/1.1 server itself, over raw sockets: limits, order, keep-alive, HEAD."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

from mailbeacon import keys
from mailbeacon.core import tokens
from mailbeacon.core.tokens import Claims, TokenKind
from serverproc import ServerProcess


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

