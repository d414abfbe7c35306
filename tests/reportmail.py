"""Tracked mail sent for real (to the SMTP sink), and the reports mail servers send back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailbeacon import config as cfg
from mailbeacon import keys
from mailbeacon.clock import FixedClock
from mailbeacon.core.reports import build_mdn
from mailbeacon.core.tokens import Keyring
from mailbeacon.services.sending import Outgoing, compose, envelope_id, send
from mailbeacon.store.sql import SqlStore
from smtpserver import Received, SmtpSink

SENDER = "news@example.com"
BOUNCE_DOMAIN = "bounce.example.com"
RECIPIENTS = ("ann@example.org", "bob@example.org", "cat@example.net")


@dataclass(frozen=True)
class Copy:
    recipient: str
    message: int
    message_id: str
    envelope_from: str  # the VERP address
    data: bytes

    @property
    def envid(self) -> str:
        return envelope_id(self.message_id)


def send_tracked(
    store: SqlStore,
    sink: SmtpSink,
    data_dir: Path,
    clock: FixedClock,
    recipients: tuple[str, ...] = RECIPIENTS,
    campaign: str = "spring",
) -> tuple[dict[str, Copy], Keyring, cfg.Config]:
    """Send one tracked copy (with a read receipt request) to each recipient."""
    config = cfg.load(
        {
            "data-dir": str(data_dir),
            "bounce-domain": BOUNCE_DOMAIN,
            "smtp": sink.url,
            "send-backoff": "0",
        },
        environ={},
    )
    keyring = keys.load_or_create(data_dir)
    source = compose(
        sender=SENDER,
        to=list(recipients),
        subject="Spring news",
        html="<p>Hello <a href='https://example.com/x'>there</a></p>",
        text=None,
        attach=[],
        clock=clock,
        domain=BOUNCE_DOMAIN,
    )
    before = len(sink.messages)
    results = send(
        Outgoing(
            sender=SENDER,
            recipients=recipients,
            source=source,
            subject="Spring news",
            campaign=campaign,
            receipt=True,
        ),
        config=config,
        store=store,
        keyring=keyring,
        clock=clock,
    )
    assert [r.status for r in results] == ["sent"] * len(recipients)
    received = sink.wait_for(before + len(recipients))[before:]
    rows = {r["recipient"]: r for r in store.message_rows(range(1, 10_000))}
    copies = {}
    for r in results:
        got: Received = next(m for m in received if m.rcpt_tos == [r.recipient])
        row = rows[r.recipient]
        copies[r.recipient] = Copy(r.recipient, row["id"], r.message_id, got.mail_from, got.data)
    return copies, keyring, config


def dsn(
    copy: Copy,
    action: str,
    status: str,
    diagnostic: str = "",
    envid: str | None = None,
    final_recipient: str | None = None,
    message_id: str = "<dsn-1@mx.example.org>",
) -> bytes:
    """A realistic RFC 3464 report, as Postfix writes it."""
    rcpt = final_recipient or copy.recipient
    diag = f"Diagnostic-Code: smtp; {diagnostic}\r\n" if diagnostic else ""
    headers = copy.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return (
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n"
        f"To: {copy.envelope_from}\r\n"
        f"Subject: Delivery Status Notification ({action})\r\n"
        f"Message-ID: {message_id}\r\n"
        "Date: Thu, 01 Jan 2026 00:05:00 +0000\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0"\r\n'
        "\r\n--B0\r\nContent-Type: text/plain\r\n\r\n"
        f"This is the mail system at host mx.example.org. Your message: {action}.\r\n"
        "\r\n--B0\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.org\r\n"
        f"Original-Envelope-Id: {envid if envid is not None else copy.envid}\r\n"
        "Arrival-Date: Thu, 01 Jan 2026 00:04:00 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Original-Recipient: rfc822;{rcpt}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        "Remote-MTA: dns; mail.example.org\r\n"
        f"{diag}"
        "\r\n--B0\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{headers}\r\n"
        "\r\n--B0--\r\n"
    ).encode()


def mdn(copy: Copy, clock: FixedClock, disposition: str = "displayed") -> bytes:
    return build_mdn(
        copy.data,
        disposition,
        reporting_ua="Thunderbird 128",
        sender_address=copy.recipient,
        clock=clock,
    )
