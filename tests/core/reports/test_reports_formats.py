"""Server formats the bounce rules read: one small message per generalising fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbeacon.core.reports import RecipientReport, parse
from mailbeacon.core.reports.bounce import remote_host_hint
from mailbeacon.core.reports.classify import status_in

DATA = Path(__file__).resolve().parents[2] / "data" / "reports"


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def rows(name: str) -> list[tuple[str, str, bool]]:
    return [(r.recipient, r.reason, r.hard) for r in parse(read(name)).recipients]


def test_dsn_fields_written_before_final_recipient_belong_to_it() -> None:
    # Facebook's code table then reads "RCP-P2" as the recipient's own filter.
    assert rows("dsn-fields-before-recipient.eml") == [("someone@facebook.com", "filtered", False)]


def test_sendmail_v5_transcript_gives_the_words_before_each_address() -> None:
    report = parse(read("v5sendmail-transcript.eml"))
    assert report.vendor == "v5sendmail"
    assert rows("v5sendmail-transcript.eml") == [
        ("gone@example.net", "hostunknown", True),
        ("nobody@example.co.jp", "userunknown", True),
    ]


def test_apple_mail_unsubscribe_is_an_opt_out() -> None:
    report = parse(read("apple-unsubscribe.eml"))
    assert report.kind == "arf"
    assert report.feedback is not None and report.feedback.feedback_type == "opt-out"
    assert rows("apple-unsubscribe.eml") == [("someone@icloud.com", "feedback", False)]


def test_transcript_failure_code_wins_over_the_ok_before_it() -> None:
    assert status_in("Out: 250 2.1.5 Ok In: DATA Out: 451 4.3.0 Error") == "4.3.0"
    assert status_in("250 2.1.5 Ok") == "2.1.5"
    [rcpt] = parse(read("postfix-transcript-ok-then-fail.eml")).recipients
    assert (rcpt.status, rcpt.reason) == ("4.3.0", "systemerror")


@pytest.mark.parametrize(
    ("status", "command", "reason"),
    [("5.0.0", "RCPT", "userunknown"), ("5.0.0", "DATA", "rejected"), ("5.2.0", "", "filtered")],
)
def test_remote_host_table_reads_status_and_command(status: str, command: str, reason: str) -> None:
    rcpt = RecipientReport(
        recipient="someone@docomo.ne.jp",
        status=status,
        command=command,
        remote_mta="mfsmax.docomo.ne.jp",
        diagnostic="550 Unknown user someone@docomo.ne.jp",
    )
    assert remote_host_hint(rcpt, "mx.example.org") == reason


def test_remote_host_table_matches_the_recipient_domain() -> None:
    rcpt = RecipientReport(
        recipient="someone@cox.net",
        remote_mta="cxr.mx.a.cloudfilter.net",
        diagnostic="550 5.1.0 <a@example.org> sender rejected. AUP#CDRBL",
    )
    assert remote_host_hint(rcpt, "") == "blocked"
