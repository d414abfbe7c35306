"""RFC 5965 Abuse Reporting Format: a complaint about a message we sent.

A feedback report is a multipart/report (report-type=feedback-report) whose
message/feedback-report part holds the fields, followed by the original
message or its headers. Some providers (and Amazon SES complaint
notifications) send the fields with a wrong Content-Type; the fields
themselves are what makes a report.
"""

from __future__ import annotations

import re
from email.message import Message

from mailbeacon.core.reports import mime
from mailbeacon.core.reports.records import Feedback, Header, RecipientReport, Report

_FIELD_TYPES = ("message/feedback-report",)
_LOOKS_LIKE = re.compile(r"^Feedback-Type\s*:", re.M | re.I)


def feedback_text(msg: Message) -> str:
    for part in mime.walk(msg, attached=False):
        if part.get_content_type() in _FIELD_TYPES:
            return mime.text_of(part)
    for part in mime.walk(msg, attached=False):
        if part.get_content_maintype() == "text" and not part.is_multipart():
            text = mime.text_of(part)
            if _LOOKS_LIKE.search(text) and re.search(r"^User-Agent\s*:", text, re.M | re.I):
                return text
    return ""


def feedback_of(fields: list[Header]) -> Feedback:
    def one(name: str) -> str:
        return next((v for k, v in fields if k.lower() == name), "")

    def every(name: str) -> list[str]:
        return [v for k, v in fields if k.lower() == name]

    return Feedback(
        feedback_type=one("feedback-type").lower(),
        user_agent=one("user-agent"),
        version=one("version"),
        original_mail_from=mime.address_in(one("original-mail-from")),
        original_rcpt_to=[mime.address_in(v) for v in every("original-rcpt-to")],
        arrival_date=one("arrival-date") or one("received-date"),
        source_ip=one("source-ip"),
        reported_domain=one("reported-domain"),
        reported_uri=every("reported-uri"),
    )


def complained_about(feedback: Feedback, report: Report, fields: list[Header]) -> list[str]:
    """Who complained: Original-Rcpt-To, else the To of the original message.

    An opt-out report of the early ARF drafts names the address to take off
    the list in Removal-Recipient instead.
    """
    found = [a for a in feedback.original_rcpt_to if "@" in a]
    if found:
        return found
    to = report.original_header("To") or report.original_header("Delivered-To")
    removal = [mime.address_in(v) for k, v in fields if k.lower() == "removal-recipient"]
    return mime.addresses(to)[:50] or [a for a in removal if "@" in a]


def parse_unsubscribe(msg: Message, report: Report) -> bool:
    """An unsubscribe request a mail client sends on its user's behalf (opt-out).

    Apple Mail's "Unsubscribe" button mails the List-Unsubscribe mailto: address
    with ``X-Apple-Unsubscribe: true``; the person opting out is the sender.
    """
    if mime.header(msg, "X-Apple-Unsubscribe").strip().lower() != "true":
        return False
    sender = mime.address_in(mime.header(msg, "From"))
    report.kind = "arf"
    report.feedback = Feedback(feedback_type="opt-out", user_agent="Apple Mail")
    report.recipients = [RecipientReport(recipient=sender, action="failed", reason="feedback")]
    return True


def parse_arf(msg: Message, report: Report) -> bool:
    """Fill ``report`` from a feedback report; False when the message is not one."""
    text = feedback_text(msg)
    if not text:
        return parse_unsubscribe(msg, report)
    fields = [f for block in mime.field_blocks(text) for f in block]
    feedback = feedback_of(fields)
    if not feedback.feedback_type:
        return False
    report.kind = "arf"
    report.feedback = feedback
    report.recipients = [
        RecipientReport(recipient=a, action="failed", reason="feedback")
        for a in complained_about(feedback, report, fields)
    ]
    return True
