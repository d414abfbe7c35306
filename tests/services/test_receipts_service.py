"""services.receipts: the read receipt a message asks for, built and sent for real."""

from __future__ import annotations

from pathlib import Path

from mailbeacon import config as cfg
from mailbeacon.clock import FixedClock
from mailbeacon.services import receipts
from smtpserver import SmtpSink

ORIGINAL = (b"From: ann@example.com\r\nTo: bob@example.org\r\nMessage-ID: <m1@example.com>\r\n"
            b"Disposition-Notification-To: Ann <receipts@example.com>\r\nSubject: hi\r\n\r\nhi\r\n")


def test_a_receipt_goes_to_whom_the_message_asked_with_a_null_return_path(
        smtp_sink: SmtpSink, tmp_path: Path) -> None:
    receipt = receipts.build(ORIGINAL, "displayed", sender="Bob <bob@example.org>",
                             manual=True, clock=FixedClock())
    config = cfg.load({"data-dir": str(tmp_path), "smtp": smtp_sink.url}, environ={})
    to, answer = receipts.send(ORIGINAL, receipt, config)
    assert (to, answer.status) == ("receipts@example.com", "sent")
    [got] = smtp_sink.wait_for(1)
    assert (got.mail_from, got.rcpt_tos) == ("<>", ["receipts@example.com"])  # MAIL FROM:<>
    assert b"Original-Message-ID: <m1@example.com>" in got.data
    assert b"Final-Recipient: rfc822;bob@example.org" in got.data.replace(b"; ", b";")
