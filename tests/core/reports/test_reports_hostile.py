"""Whatever arrives, parse() answers with a Report and never raises."""

from __future__ import annotations

import random
import time

import pytest

from mailbeacon.core.reports import parse

POSTFIX_DSN = (
    b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\n<neko@example.net>: host said: 550 5.1.1 "
    b"User unknown (in reply to RCPT TO command)\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
    b"Final-Recipient: rfc822; neko@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"--b--\r\n"
)


@pytest.mark.parametrize("cut", [0, 1, 10, 50, 120, 200, 300, 400, len(POSTFIX_DSN) - 5])
def test_truncated_mime(cut: int) -> None:
    assert parse(POSTFIX_DSN[:cut]).kind in {"none", "dsn", "bounce", "reply"}


def test_whole_report_reads() -> None:
    report = parse(POSTFIX_DSN)
    assert report.kind == "dsn"
    assert (report.recipients[0].reason, report.recipients[0].hard) == ("userunknown", True)


def test_one_megabyte_header_is_bounded() -> None:
    raw = b"X-Junk: " + b"a" * 1_000_000 + b"\r\nSubject: hi\r\n\r\nbody\r\n"
    started = time.perf_counter()
    report = parse(raw)
    assert report.kind == "none"
    assert time.perf_counter() - started < 5


def test_many_headers_and_parts() -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(20_000))
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(5_000))
    raw = headers + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    assert parse(raw).kind == "none"


def test_bogus_charsets_and_encodings() -> None:
    raw = (
        b"From: =?x-unknown?B?////?= <mailer-daemon@example.net>\r\n"
        b"Subject: =?utf-8?Q?Undelivered=ZZ?=\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\xff\xfe\r\n"
    )
    assert parse(raw).kind in {"none", "bounce"}


@pytest.mark.parametrize("seed", range(20))
def test_binary_junk(seed: int) -> None:
    junk = random.Random(seed).randbytes(20_000)
    assert parse(junk).kind in {"none", "bounce", "reply", "autoreply", "dsn"}


def test_non_bytes_like_garbage_is_reported_not_raised() -> None:
    report = parse(None)  # type: ignore[arg-type]
    assert report.kind == "none"
    assert report.errors


def _bounce_with(body: bytes, headers: bytes = b"") -> bytes:
    return (headers + b"From: MAILER-DAEMON@mx.example.net\r\nTo: a@example.com\r\n"
            b"Subject: Undelivered Mail\r\nContent-Type: text/plain\r\n\r\n" + body)


@pytest.mark.parametrize("raw", [
    _bounce_with(b"\n" * 40_000),
    _bounce_with(b"\r\n" * 40_000),
    _bounce_with(b"        \n" * 4_000 + b"<a@example.com>: 550 5.1.1 unknown\r\n"),
    _bounce_with(b"-" * 40_000),
    _bounce_with(b"a" * 40_000),
    _bounce_with(b"", headers=b"X-From: " + b"a@" * 20_000 + b"\r\n"),
    _bounce_with(b"", headers=b"Subject: " + b"=?utf-8?q?a" * 3_600 + b"\r\n"),
], ids=["lf", "crlf", "blank-lines", "dashes", "letters", "at-signs", "encoded-words"])
def test_no_pattern_runs_away(raw: bytes) -> None:
    """Runs of blank lines or address characters once took minutes (quadratic regexes):
    a hostile bounce sent to the receiver stalled the whole server. A hang guard, not a
    speed goal: each of these parses in well under a second."""
    started = time.perf_counter()
    parse(raw)
    assert time.perf_counter() - started < 10
