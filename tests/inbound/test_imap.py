"""The IMAP poller against a real Dovecot: processed mail is moved (or deleted), never lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from dovecot import Dovecot
from mailbeacon.clock import FixedClock
from mailbeacon.inbound.imap import ImapPoller, ImapSettings, parse_imap_url
from mailbeacon.inbound.pipeline import Pipeline
from mailbeacon.store import inbound as db
from mailbeacon.store import queries
from mailbeacon.store.sql import SqlStore
from reportmail import Copy, dsn, mdn, send_tracked
from smtpserver import SmtpSink

DONE = "mailbeacon-processed"


@pytest.fixture
def sent(store: SqlStore, smtp_sink: SmtpSink, tmp_path: Path) -> tuple[dict[str, Copy], Pipeline]:
    clock = FixedClock()
    copies, keyring, config = send_tracked(store, smtp_sink, tmp_path / "data", clock)
    return copies, Pipeline.from_config(config, store, keyring, clock)


def settings(server: Dovecot, **changes: object) -> ImapSettings:
    return replace(parse_imap_url(server.url), done_folder=DONE, poll=1.0, **changes)


def reports_for(copies: dict[str, Copy], clock: FixedClock) -> list[bytes]:
    ann, bob, cat = copies.values()
    bounce = dsn(bob, "failed", "5.1.1", "550 5.1.1 user unknown", envid="", message_id="<b-1@mx>")
    # The MTA that delivered the bounce to the mailbox wrote down its envelope recipient.
    return [
        dsn(ann, "delivered", "2.0.0"),
        f"Delivered-To: {bob.envelope_from}\r\n".encode() + bounce,
        mdn(cat, clock),
    ]


def receiver(pipeline: Pipeline) -> Callable[[bytes], object]:
    return lambda raw: pipeline.receive(raw, source="imap")


def kinds(store: SqlStore, address: str) -> list[str]:
    return [v.kind for v in queries.timeline(store, address)]


def test_url_forms() -> None:
    s = parse_imap_url("imaps://me%40example.com:p%3Ass@imap.example.com")
    assert (s.host, s.port, s.user, s.password, s.implicit_tls) == (
        "imap.example.com",
        993,
        "me@example.com",
        "p:ss",
        True,
    )
    assert parse_imap_url("imap://u:p@h?starttls=false").starttls is False


def test_drain_matches_and_moves(
    dovecot: Dovecot, sent: tuple[dict[str, Copy], Pipeline], store: SqlStore
) -> None:
    copies, pipeline = sent
    assert isinstance(pipeline.clock, FixedClock)
    for raw in reports_for(copies, pipeline.clock):
        dovecot.append(raw)
    assert ImapPoller(settings(dovecot), receiver(pipeline)).run_once() == 3
    assert (dovecot.count("INBOX"), dovecot.count(DONE)) == (0, 3)
    assert kinds(store, "ann@example.org") == ["sent", "delivered"]
    assert kinds(store, "bob@example.org") == ["sent", "bounced"]
    assert kinds(store, "cat@example.net") == ["sent", "read"]
    assert [r.source for r in db.listing(store)] == ["imap"] * 3
    assert ImapPoller(settings(dovecot), receiver(pipeline)).run_once() == 0


def test_delete_when_configured(dovecot: Dovecot, sent: tuple[dict[str, Copy], Pipeline]) -> None:
    copies, pipeline = sent
    dovecot.append(dsn(copies["ann@example.org"], "delivered", "2.0.0"))
    assert ImapPoller(settings(dovecot, delete=True), receiver(pipeline)).run_once() == 1
    assert (dovecot.count("INBOX"), dovecot.count(DONE)) == (0, 0)


def test_a_message_the_store_cannot_take_stays(
    dovecot: Dovecot, sent: tuple[dict[str, Copy], Pipeline]
) -> None:
    copies, pipeline = sent
    dovecot.append(dsn(copies["ann@example.org"], "delivered", "2.0.0"))

    def down(raw: bytes) -> None:
        raise OSError("store unreachable")

    with pytest.raises(OSError):
        ImapPoller(settings(dovecot), down).run_once()
    assert (dovecot.count("INBOX"), dovecot.count(DONE)) == (1, 0)
    assert ImapPoller(settings(dovecot), receiver(pipeline)).run_once() == 1


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_run_waits_for_news_and_survives_a_restart(
    dovecot: Dovecot, sent: tuple[dict[str, Copy], Pipeline], store: SqlStore
) -> None:
    copies, pipeline = sent
    assert isinstance(pipeline.clock, FixedClock)
    first, second, third = reports_for(copies, pipeline.clock)
    stop = threading.Event()
    poller = ImapPoller(settings(dovecot), receiver(pipeline), stop)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        dovecot.append(first)
        wait_until(lambda: poller.processed == 1)
        dovecot.restart()  # the connection drops; the poller opens a new one
        dovecot.append(second)
        wait_until(lambda: poller.processed == 2)
        dovecot.append(third)
        wait_until(lambda: poller.processed == 3)
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert [r.status for r in db.listing(store)] == ["matched"] * 3
