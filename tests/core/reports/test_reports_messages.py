"""Read receipts, complaints, auto-replies, replies and odd DSNs from real clients' formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbeacon.core.reports import parse

DATA = Path(__file__).resolve().parents[2] / "data" / "reports"


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_thunderbird_receipt_is_a_manual_displayed_mdn() -> None:
    report = parse(read("thunderbird-mdn.eml"))
    assert report.kind == "mdn"
    assert report.mdn is not None
    assert (report.mdn.action_mode, report.mdn.sending_mode) == (
        "manual-action",
        "MDN-sent-manually",
    )
    assert report.mdn.type == "displayed"
    assert report.mdn.reporting_ua == "example.org"
    assert report.mdn.final_recipient == "kijitora@example.org"
    assert report.mdn.original_message_id == "<campaign-7.msg-42@mailbeacon.example>"
    assert report.original_header("Subject") == "Quarterly figures"


def test_outlook_read_receipt_without_fields() -> None:
    report = parse(read("outlook-read-receipt.eml"))
    assert report.kind == "mdn"
    assert report.mdn is not None
    assert report.mdn.type == "displayed"
    assert report.mdn.final_recipient == "neko@example.com"
    assert report.mdn.original_message_id == "<campaign-7.msg-43@mailbeacon.example>"


def test_outlook_not_read_is_deleted() -> None:
    report = parse(read("outlook-not-read.eml"))
    assert report.kind == "mdn"
    assert report.mdn is not None and report.mdn.type == "deleted"


def test_rfc2298_denied_disposition() -> None:
    report = parse(read("mdn-denied-rfc2298.eml"))
    assert report.kind == "mdn"
    assert report.mdn is not None
    assert report.mdn.type == "denied"
    assert report.mdn.original_recipient == "shironeko@example.net"


def test_arf_complaint_fields() -> None:
    report = parse(read("gmail-style-arf.eml"))
    assert report.kind == "arf"
    assert report.feedback is not None
    fb = report.feedback
    assert fb.feedback_type == "abuse"
    assert fb.original_rcpt_to == ["mikeneko@example.com"]
    assert fb.original_mail_from == "bounces+abc@mailbeacon.example"
    assert fb.source_ip == "192.0.2.10"
    assert fb.reported_uri == ["https://mailbeacon.example/c/abc"]
    assert [r.recipient for r in report.recipients] == ["mikeneko@example.com"]
    assert report.original_message_id == "<campaign-8.msg-7@mailbeacon.example>"


@pytest.mark.parametrize("name", ["vacation-reply.eml", "apple-vacation.eml"])
def test_vacation_replies_are_autoreplies(name: str) -> None:
    report = parse(read(name))
    assert report.kind == "autoreply"
    assert report.recipients[0].reason == "vacation"


def test_human_reply() -> None:
    report = parse(read("human-reply.eml"))
    assert report.kind == "reply"
    assert report.in_reply_to == "<campaign-7.msg-42@mailbeacon.example>"
    assert report.references == ["<campaign-7.msg-42@mailbeacon.example>"]


def test_base64_delivery_status_part() -> None:
    report = parse(read("dsn-base64-status.eml"))
    assert report.kind == "dsn"
    assert report.envelope_id == "campaign-7-msg-42"
    (rcpt,) = report.recipients
    assert (rcpt.recipient, rcpt.action, rcpt.status) == ("neko@example.net", "failed", "5.2.2")
    assert (rcpt.reason, rcpt.hard, rcpt.replycode) == ("mailboxfull", False, "552")


def test_delivery_status_sent_as_text_plain() -> None:
    report = parse(read("dsn-as-text-plain.eml"))
    assert report.kind == "dsn"
    (rcpt,) = report.recipients
    assert (rcpt.action, rcpt.status, rcpt.reason) == ("delayed", "4.4.7", "expired")
    assert rcpt.will_retry_until.startswith("Sat, 7 Mar 2026")


def test_mailer_daemon_is_never_an_autoreply() -> None:
    raw = (
        b"From: MAILER-DAEMON@example.net\r\nTo: a@example.com\r\n"
        b"Auto-Submitted: auto-replied\r\nSubject: Auto: hello\r\n\r\nnothing useful\r\n"
    )
    assert parse(raw).kind != "autoreply"
