"""build_mdn: a read receipt built to RFC 8098, read back by our own parser."""

from __future__ import annotations

import email
import email.policy

import pytest

from mailbeacon.clock import FixedClock
from mailbeacon.core.reports import MdnNotRequested, build_mdn, parse

ORIGINAL = (
    b"From: Sender <sender@mailbeacon.example>\r\n"
    b"To: Kijitora <kijitora@example.org>\r\n"
    b"Subject: Quarterly figures\r\n"
    b"Message-ID: <campaign-7.msg-42@mailbeacon.example>\r\n"
    b"Disposition-Notification-To: Sender <sender@mailbeacon.example>\r\n"
    b"Original-Recipient: rfc822;kijitora@example.org\r\n"
    b"\r\nHello\r\n"
)


def build(**kwargs: object) -> bytes:
    options: dict[str, object] = {
        "reporting_ua": "mail.example.org; mailbeacon",
        "sender_address": "kijitora@example.org",
        "clock": FixedClock(),
    }
    options.update(kwargs)
    return build_mdn(ORIGINAL, **options)  # type: ignore[arg-type]


def test_round_trip_displayed_manual() -> None:
    report = parse(build())
    assert report.kind == "mdn"
    assert report.mdn is not None
    assert report.mdn.type == "displayed"
    assert report.mdn.action_mode == "manual-action"
    assert report.mdn.sending_mode == "MDN-sent-manually"
    assert report.mdn.final_recipient == "kijitora@example.org"
    assert report.mdn.original_recipient == "kijitora@example.org"
    assert report.mdn.original_message_id == "<campaign-7.msg-42@mailbeacon.example>"


def test_structure_follows_rfc_6522() -> None:
    raw = build()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "disposition-notification"
    types = [p.get_content_type() for p in msg.iter_parts()]
    assert types == ["text/plain", "message/disposition-notification", "text/rfc822-headers"]
    assert msg["To"] == "sender@mailbeacon.example"
    assert msg["In-Reply-To"] == "<campaign-7.msg-42@mailbeacon.example>"
    assert msg["Date"] == "Thu, 01 Jan 2026 00:00:00 +0000"
    assert "Auto-Submitted" not in msg


def test_automatic_receipt_says_so() -> None:
    report = parse(build(manual=False, disposition="processed"))
    assert report.mdn is not None
    assert (report.mdn.action_mode, report.mdn.type) == ("automatic-action", "processed")
    assert b"Auto-Submitted: auto-replied" in build(manual=False)


def test_refuses_a_message_that_asked_for_nothing() -> None:
    plain = ORIGINAL.replace(b"Disposition-Notification-To", b"X-Nothing")
    with pytest.raises(MdnNotRequested, match="Disposition-Notification-To"):
        build_mdn(plain, reporting_ua="ua", sender_address="a@example.org", clock=FixedClock())


def test_refuses_an_unknown_disposition() -> None:
    with pytest.raises(ValueError, match="disposition"):
        build(disposition="read")
