"""How the command a server refused and the server itself steer the reason."""

from __future__ import annotations

import pytest

from mailbeacon.core.reports import bounce
from mailbeacon.core.reports.classify import classify
from mailbeacon.core.reports.records import RecipientReport


@pytest.mark.parametrize(
    ("diagnostic", "status", "reason"),
    [
        # "user unknown" said to RCPT is a missing mailbox ...
        ("550 unknown user (in reply to RCPT TO command)", "", "userunknown"),
        # ... said to DATA, or with no command named, a filter is speaking.
        ("550 unknown user (in reply to end of DATA command)", "", "filtered"),
        ("550 kijitora@example.com... No such user", "", "filtered"),
        # An address code answered to MAIL FROM is about the sender.
        ("after MAIL FROM:<a@example.org>: 553 5.1.0 example.org does not exist", "", "rejected"),
        # An x.1.1 whose words describe rate limiting is not about the mailbox.
        ("550 5.1.1 <a@example.com> - 192.0.2.1 has sent to too many recipients", "", "speeding"),
    ],
)
def test_reason_by_command_and_words(diagnostic: str, status: str, reason: str) -> None:
    rcpt = classify(RecipientReport(recipient="a@example.com", action="failed",
                                    status=status, diagnostic=diagnostic))  # fmt: skip
    assert rcpt.reason == reason


@pytest.mark.parametrize(
    ("remote_mta", "diagnostic", "reason"),
    [
        ("lsean.ezweb.ne.jp", "550 <a@ezweb.ne.jp>: User unknown", "userunknown"),
        ("lsean.ezweb.ne.jp", "550 : User unknown", "filtered"),
        ("smtp-in.orange.fr", "550 5.5.0 Invalid recipient. LPN007_416", "userunknown"),
        ("smtp-in.orange.fr", "421 4.2.0 Service refused. OFR005_505 [505]", "systemerror"),
        ("mx.example.net", "550 5.5.0 Invalid recipient. LPN007_416", ""),
    ],
)
def test_remote_host_rules(remote_mta: str, diagnostic: str, reason: str) -> None:
    rcpt = RecipientReport(recipient="a@example.jp", remote_mta=remote_mta, diagnostic=diagnostic)
    assert bounce.remote_host_hint(rcpt, "") == reason
