"""The inbound receiver on a real localhost port, spoken to with smtplib (SMTP and LMTP)."""

from __future__ import annotations

import asyncio
import smtplib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbeacon.clock import FixedClock
from mailbeacon.inbound.pipeline import Pipeline
from mailbeacon.smtp.receiver import InboundHandler, start_server
from mailbeacon.store import inbound as db
from mailbeacon.store import queries
from mailbeacon.store.sql import SqlStore
from reportmail import Copy, dsn, send_tracked
from smtpserver import SmtpSink

RECEIPTS = "receipts@example.com"


class Running:
    """A receiver listening on 127.0.0.1 in an event loop of its own thread."""

    def __init__(self, handler: InboundHandler) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(start_server(handler, "127.0.0.1", 0), self.loop)
        self.server = future.result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def shut() -> None:  # on the server's own loop: close() is not thread-safe
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def sent(store: SqlStore, smtp_sink: SmtpSink, tmp_path: Path) -> tuple[dict[str, Copy], Pipeline]:
    clock = FixedClock()
    copies, keyring, config = send_tracked(store, smtp_sink, tmp_path / "data", clock)
    return copies, Pipeline.from_config(config, store, keyring, clock)


@pytest.fixture(params=["smtp", "lmtp"])
def receiver(
    request: pytest.FixtureRequest, sent: tuple[dict[str, Copy], Pipeline]
) -> Iterator[tuple[Running, bool]]:
    lmtp = request.param == "lmtp"
    running = Running(InboundHandler(sent[1], [RECEIPTS], lmtp=lmtp))
    yield running, lmtp
    running.stop()


def client(running: Running, lmtp: bool) -> smtplib.SMTP:
    if lmtp:
        c: smtplib.SMTP = smtplib.LMTP("127.0.0.1", running.port)
        c.ehlo_or_helo_if_needed = lambda: None  # type: ignore[method-assign]
        c.docmd("LHLO", "mx.example.org")
        return c
    c = smtplib.SMTP("127.0.0.1", running.port)
    c.ehlo("mx.example.org")
    return c


def test_unknown_and_forged_addresses_get_550(
    receiver: tuple[Running, bool], sent: tuple[dict[str, Copy], Pipeline]
) -> None:
    running, lmtp = receiver
    bob = sent[0]["bob@example.org"]
    forged = bob.envelope_from.replace("bounces+", "bounces+aa", 1)
    with client(running, lmtp) as c:
        c.mail("<>")
        for address in ("nobody@bounce.example.com", forged, "bounces+@bounce.example.com"):
            code, text = c.rcpt(address)
            assert code == 550, (address, text)
        assert c.rcpt(RECEIPTS)[0] == 250
    assert db.listing(sent[1].store) == []


def test_a_bounce_to_a_valid_verp_address_is_kept_then_matched(
    receiver: tuple[Running, bool], sent: tuple[dict[str, Copy], Pipeline], store: SqlStore
) -> None:
    running, lmtp = receiver
    bob = sent[0]["bob@example.org"]
    report = dsn(bob, "failed", "5.1.1", "550 5.1.1 <bob@example.org>: user unknown", envid="")
    with client(running, lmtp) as c:
        c.mail("<>", ["BODY=8BITMIME", "SMTPUTF8"] if not lmtp else ["BODY=8BITMIME"])
        assert c.rcpt(bob.envelope_from)[0] == 250
        code, text = c.data(report)
    assert code == 250 and b"kept as inbound" in text
    [row] = db.listing(store)  # stored before the 250 came back
    assert (
        row.raw == report and row.status == "matched" and row.source == ("lmtp" if lmtp else "smtp")
    )
    assert row.envelope_to == (bob.envelope_from,) and row.message == bob.message
    assert [v.kind for v in queries.timeline(store, bob.recipient)] == ["sent", "bounced"]


def test_lmtp_answers_data_once_per_recipient(
    sent: tuple[dict[str, Copy], Pipeline], store: SqlStore
) -> None:
    running = Running(InboundHandler(sent[1], [RECEIPTS], lmtp=True))
    try:
        ann, bob = sent[0]["ann@example.org"], sent[0]["bob@example.org"]
        with client(running, True) as c:
            c.mail("<>")
            c.rcpt(ann.envelope_from)
            c.rcpt(bob.envelope_from)
            c.putcmd("data")
            assert c.getreply()[0] == 354
            c.send(b"Subject: hello\r\n\r\nnot a report\r\n.\r\n")
            assert c.getreply()[0] == 250
            assert c.getreply()[0] == 250
    finally:
        running.stop()
    [row] = db.listing(store)
    assert row.status == "quarantined" and "not recognised" in row.reason


def test_a_store_that_is_down_answers_451(
    sent: tuple[dict[str, Copy], Pipeline], store_url: str
) -> None:
    pipeline = sent[1]
    broken = Pipeline(
        SqlStore(__import__("sqlalchemy").create_engine("sqlite:////nonexistent/dir/x.db")),
        pipeline.keyring,
        pipeline.clock,
        pipeline.bounce_domain,
    )
    running = Running(InboundHandler(broken, [RECEIPTS]))
    try:
        with client(running, False) as c:
            c.mail("<>")
            assert c.rcpt(RECEIPTS)[0] == 250
            code, _ = c.data(b"Subject: x\r\n\r\nbody\r\n")
            assert code == 451
    finally:
        running.stop()


def test_undecodable_address_gets_a_clean_550(receiver: tuple[Running, bool]) -> None:
    """The refusal echoes the address; bytes that are not UTF-8 must not break the reply."""
    import socket

    running, lmtp = receiver
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"LHLO mx.example.org\r\n" if lmtp else b"EHLO mx.example.org\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(b"MAIL FROM:<>\r\n")
        assert f.readline().startswith(b"250")
        s.sendall(b"RCPT TO:<bounces+\xff\xfe@bounce.example.com>\r\n")
        reply = f.readline()
    assert reply.startswith(b"550 5.1.1"), reply
