"""What mail servers and mail clients send back, parsed: bytes in, a Report out.

``parse`` never raises: a message it cannot read is a Report of kind "none"
with the problem in ``errors``. The kinds are tried in order of how specific
their evidence is: arf > mdn > dsn > bounce > autoreply > reply > none.
"""

from __future__ import annotations

from email.message import Message

from mailbeacon.core.reports import arf, autoreply, bounce, dsn, mdn, mime, reply, sesjson
from mailbeacon.core.reports.classify import classify
from mailbeacon.core.reports.mdn import MdnNotRequested, build_mdn
from mailbeacon.core.reports.records import (
    Disposition,
    Feedback,
    RecipientReport,
    Report,
)

__all__ = [
    "Disposition",
    "Feedback",
    "MdnNotRequested",
    "RecipientReport",
    "Report",
    "build_mdn",
    "parse",
    "parse_message",
]


def parse(data: bytes) -> Report:
    """Read one message; never raises."""
    try:
        return parse_message(mime.load(data))
    except Exception as exc:  # a parser for hostile input must not take the caller down
        return Report(kind="none", errors=[f"{type(exc).__name__}: {exc}"[:300]])


def parse_message(msg: Message) -> Report:
    report = _envelope(msg)
    if arf.parse_arf(msg, report) or mdn.parse_mdn(msg, report):
        return report
    if dsn.parse_dsn(msg, report):
        _classify(report, bounce.enrich_dsn(msg, report))
        return report
    if sesjson.parse_ses(mime.body_text(msg), report):
        if report.kind == "bounce":
            _classify(report, [])
        return report
    hints = bounce.parse_bounce(msg, report)
    if report.kind == "bounce":
        _classify(report, hints)
        return report
    if autoreply.is_autoreply(msg):
        report.kind = "autoreply"
        report.recipients = [_vacation(report)]
    elif reply.is_reply(msg):
        report.kind = "reply"
    return report


def _envelope(msg: Message) -> Report:
    original = dsn.original_headers(msg)
    report = Report(
        subject=mime.header(msg, "Subject"),
        from_address=mime.address_in(mime.header(msg, "From")),
        in_reply_to=mime.header(msg, "In-Reply-To"),
        references=reply.message_ids(mime.header(msg, "References")),
        original_headers=original,
    )
    report.original_message_id = report.original_header("Message-ID")
    return report


def _classify(report: Report, hints: list[tuple[str, str]]) -> None:
    padded = hints + [("", "")] * len(report.recipients)
    for rcpt, (hint, context) in zip(report.recipients, padded, strict=False):
        hint = hint or bounce.remote_host_hint(rcpt, report.reporting_mta, context)
        classify(rcpt, hint, context)


def _vacation(report: Report) -> RecipientReport:
    return RecipientReport(recipient=report.from_address, action="delivered", reason="vacation")
