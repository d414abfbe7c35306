"""End to end: tracked mail sent for real, reports fed back to a real `mailbeacon serve`
through its SMTP receiver and through a real Dovecot it polls; the CLI report, the
timeline and the API show delivered, bounced and read for the right recipients."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from apikeys import api_headers
from dovecot import Dovecot
from mailbeacon.clock import FixedClock
from mailbeacon.services.sending import Outgoing, send
from mailbeacon.store import inbound as db
from mailbeacon.store.sql import SqlStore, open_store
from reportmail import BOUNCE_DOMAIN, SENDER, dsn, mdn, send_tracked
from serverproc import ServerProcess, free_port
from smtpserver import SmtpSink

pytestmark = pytest.mark.slow


def cli(data_dir: Path, db_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mailbeacon", *args, "--data-dir", str(data_dir), "--db", db_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def smtp_deliver(port: int, rcpt: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.ehlo("mx.example.org")
        c.sendmail("", [rcpt], raw, mail_options=["BODY=8BITMIME"])


def wait_for(store: SqlStore, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len([r for r in db.listing(store) if r.status != "received"]) < n:
        assert time.monotonic() < deadline, f"expected {n} inbound messages processed"
        time.sleep(0.2)


def timeline(data_dir: Path, db_url: str, address: str) -> list[str]:
    return [e["kind"] for e in json.loads(cli(data_dir, db_url, "timeline", address, "--json"))]


def test_reports_come_back_through_smtp_and_imap(
    tmp_path: Path, store_url: str, smtp_sink: SmtpSink
) -> None:
    data_dir = tmp_path / "data"
    store = open_store(store_url, now=1_767_225_600.0)
    clock = FixedClock()
    by_smtp, _, config = send_tracked(store, smtp_sink, data_dir, clock, campaign="spring")
    by_imap, _, _ = send_tracked(
        store,
        smtp_sink,
        data_dir,
        clock,
        campaign="summer",
        recipients=("dan@example.org", "eve@example.org", "fay@example.net"),
    )
    inbound_port = free_port()
    with (
        Dovecot(tmp_path / "dovecot") as imap,
        ServerProcess(
            data_dir,
            store_url,
            "--inbound-smtp",
            f"127.0.0.1:{inbound_port}",
            "--bounce-domain",
            BOUNCE_DOMAIN,
            "--receipt-addresses",
            SENDER,
            "--imap",
            imap.url,
            "--imap-poll",
            "1",
        ) as server,
    ):
        ann, bob, cat = by_smtp.values()
        smtp_deliver(inbound_port, SENDER, dsn(ann, "delivered", "2.0.0"))  # by ENVID
        smtp_deliver(
            inbound_port,
            bob.envelope_from,
            dsn(  # by the VERP address
                bob,
                "failed",
                "5.1.1",
                "550 5.1.1 <bob@example.org>: user unknown",
                envid="",
                message_id="<b1@mx>",
            ),
        )
        smtp_deliver(inbound_port, SENDER, mdn(cat, clock))  # by Original-Message-ID
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp_deliver(inbound_port, "someone@" + BOUNCE_DOMAIN, b"Subject: x\r\n\r\nx\r\n")
        dan, eve, fay = by_imap.values()
        imap.append(dsn(dan, "delivered", "2.0.0", message_id="<d2@mx>"))
        imap.append(
            f"Delivered-To: {eve.envelope_from}\r\n".encode()
            + dsn(eve, "failed", "5.1.1", "550 5.1.1 user unknown", envid="", message_id="<e2@mx>")
        )
        imap.append(mdn(fay, clock))
        wait_for(store, 6)
        assert (imap.count("INBOX"), imap.count("mailbeacon-processed")) == (0, 3)
        api = httpx.get(f"{server.url}/api/report", params={"campaign": "spring"},
                        headers=api_headers(store_url)).json()
    assert [r.status for r in db.listing(store)] == ["matched"] * 6
    for a, b, c in (by_smtp.values(), by_imap.values()):
        assert timeline(data_dir, store_url, a.recipient) == ["sent", "delivered"]
        assert timeline(data_dir, store_url, b.recipient) == ["sent", "bounced"]
        assert timeline(data_dir, store_url, c.recipient) == ["sent", "read"]
    for campaign in ("spring", "summer"):
        report = json.loads(cli(data_dir, store_url, "report", "--campaign", campaign, "--json"))
        d = report["delivery"]
        assert (d["sent"], d["delivered"], d["bounced"], d["hard_bounced"], d["read"]) == (
            3,
            1,
            1,
            1,
            1,
        )
        assert d["delivered_rate"] == d["bounce_rate"] == d["read_receipt_rate"] == 0.3333
    assert api["delivery"]["bounced"] == 1
    text = cli(data_dir, store_url, "report", "--campaign", "spring")
    assert "bounced later" in text and "read receipts" in text
    listed = [
        json.loads(line)["address"]
        for line in cli(data_dir, store_url, "suppress", "list", "--json").splitlines()
    ]
    assert sorted(listed) == ["bob@example.org", "eve@example.org"]
    again = send(
        Outgoing(
            sender=SENDER,
            recipients=("bob@example.org", "ann@example.org"),
            source=b"From: news@example.com\r\nSubject: hi\r\n\r\nhello\r\n",
            composed=False,
        ),
        config=config,
        store=store,
        keyring=_keys(data_dir),
        clock=clock,
    )
    assert [(r.recipient, r.status) for r in again] == [
        ("bob@example.org", "suppressed"),
        ("ann@example.org", "sent"),
    ]
    store.close()


def _keys(data_dir: Path):  # type: ignore[no-untyped-def]
    from mailbeacon import keys

    return keys.load_or_create(data_dir)
