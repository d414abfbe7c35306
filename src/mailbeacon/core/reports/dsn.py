"""RFC 3464 delivery status notifications inside RFC 6522 multipart/report.

A DSN's machine-readable part, message/delivery-status, is one block of
per-message fields (Reporting-MTA, Original-Envelope-Id, Arrival-Date...)
followed by one block per recipient (Final-Recipient, Action, Status...).
Real servers get details wrong: the part arrives as text/plain, with a broken
Content-Type, base64-encoded, or with every field in one block. Each of those
is read here rather than dropped.
"""

from __future__ import annotations

import re
from email.message import Message

from mailbeacon.core.reports import mime
from mailbeacon.core.reports.records import Header, RecipientReport, Report

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLYCODE = re.compile(r"(?<![\d.])([245]\d\d)(?![\d.])")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ORIGINAL_TYPES = (
    "message/rfc822",
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global",
    "message/global-headers",
)
_PER_RECIPIENT = {"final-recipient", "original-recipient", "action", "status"}
_ACTION_ALIASES = {
    "failure": "failed",
    "fail": "failed",
    "expired": "failed",
    "deliverable": "delivered",
    "delay": "delayed",
}


def find_status_text(msg: Message) -> str:
    """The text of the message/delivery-status part, wherever it hides.

    First in the report itself, then inside attached messages (a report
    forwarded as an attachment), then as bare fields in a text part (a broken
    Content-Type, or a report quoted inline with "> ").
    """
    # A report can hold nested reports (a multipart/report inside another):
    # their recipient blocks are read together.
    found = [mime.text_of(p) for p in mime.walk(msg, attached=False) if _is_status(p)]
    if found:
        return "\n\n".join(found)
    for part in mime.walk(msg, attached=True):
        if _is_status(part):
            return mime.text_of(part)
    for part in mime.walk(msg, attached=False):
        broken = mime.is_broken_multipart(part)
        if not broken and (part.is_multipart() or part.get_content_maintype() == "multipart"):
            continue
        text = mime.text_of(part)
        if _looks_like_status(text):
            return _QUOTED.sub("", text)
    return ""


_QUOTED = re.compile(r"^> ?", re.M)


def _is_status(part: Message) -> bool:
    return part.get_content_type() in _DSN_TYPES


def _looks_like_status(text: str) -> bool:
    final = re.search(r"^(> ?)?Final-Recipient\s*:", text, re.M | re.I)
    return bool(final) and bool(re.search(r"^(> ?)?(Action|Status)\s*:", text, re.M | re.I))


def original_headers(msg: Message) -> list[Header]:
    """The headers of the message the report is about, from the attached copy."""
    for part in mime.walk(msg, attached=False):
        ctype = part.get_content_type()
        if ctype not in _ORIGINAL_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            inner = payload[0]
            if inner.keys():
                return [(k, mime.decode_words(v)) for k, v in inner.items()]
            text = inner.get_payload()
            return mime.headers_of(text if isinstance(text, str) else "")
        return mime.headers_of(mime.text_of(part))
    return []


def split_blocks(text: str) -> tuple[list[Header], list[list[Header]]]:
    """Per-message fields and per-recipient blocks, splitting run-together ones."""
    per_message: list[Header] = []
    recipients: list[list[Header]] = []
    for block in mime.field_blocks(text):
        current: list[Header] = []
        for name, value in block:
            key = name.lower()
            if key not in _PER_RECIPIENT and not recipients and not current:
                per_message.append((name, value))
                continue
            # A repeated per-recipient field starts the next recipient's block.
            if key in _PER_RECIPIENT and _has(current, key):
                recipients.append(current)
                current = []
            current.append((name, value))
        if current:
            if (
                recipients
                and not _has(current, "final-recipient")
                and not _has(current, "original-recipient")
            ):
                recipients[-1].extend(current)  # a block cut in two by a stray blank line
            else:
                recipients.append(current)
    return per_message, recipients


def _has(block: list[Header], key: str) -> bool:
    return any(k.lower() == key for k, _ in block)


def _get(block: list[Header], key: str) -> str:
    return next((v for k, v in block if k.lower() == key), "")


def status_in(text: str) -> str:
    m = _STATUS.search(text)
    return ".".join(m.groups()) if m else ""


def replycode_in(text: str) -> str:
    m = _REPLYCODE.search(text)
    return m.group(1) if m else ""


def recipient_of(block: list[Header]) -> RecipientReport:
    diag_type, _, diagnostic = _get(block, "diagnostic-code").partition(";")
    if not diagnostic:
        diag_type, diagnostic = "", diag_type
    action = _get(block, "action").lower().split(" ")[0].strip()
    final = mime.address_in(_get(block, "final-recipient"))
    original = mime.address_in(_get(block, "original-recipient"))
    if not _usable(final) and _usable(original):
        final = original  # "@host" or an RFC 821 source route: ORCPT says more
    diagnostic = diagnostic.strip()
    return RecipientReport(
        recipient=final or original,
        original_recipient=original,
        action=_ACTION_ALIASES.get(action, action),
        status=status_in(_get(block, "status")),
        diagnostic=diagnostic,
        diagnostic_type=diag_type.strip().lower(),
        remote_mta=_after_type(_get(block, "remote-mta")),
        last_attempt_date=_get(block, "last-attempt-date"),
        will_retry_until=_get(block, "will-retry-until"),
        final_log_id=_get(block, "final-log-id"),
        replycode=replycode_in(diagnostic[:40]),
    )


# Fields only a recipient has; some servers write them before Final-Recipient.
_RECIPIENT_ONLY = {"diagnostic-code", "remote-mta", "last-attempt-date", "will-retry-until"}


def _with_misplaced(per_message: list[Header], block: list[Header]) -> list[Header]:
    """A lone recipient block, with its own fields found among the per-message ones."""
    extra = [
        (k, v)
        for k, v in per_message
        if k.lower() in _RECIPIENT_ONLY and not _has(block, k.lower())
    ]
    return block + extra


def _usable(address: str) -> bool:
    return bool(_MAILBOX.fullmatch(address))


_MAILBOX = re.compile(r"[^@\s:<>]+@[^@\s:<>]+\.[^@\s:<>]+")
_GENERATED_BY = re.compile(r"^[ \t]+generated by <?([^@\s<>]+@[\w.-]+\.[a-z]{2,})>?", re.M | re.I)


def _after_type(value: str) -> str:
    return value.split(";", 1)[-1].strip()


def parse_dsn(msg: Message, report: Report) -> bool:
    """Fill ``report`` from a DSN; False when the message carries none."""
    text = find_status_text(msg)
    if not text:
        return False
    per_message, blocks = split_blocks(text)
    if len(blocks) == 1:
        blocks = [_with_misplaced(per_message, blocks[0])]
    recipients = [recipient_of(b) for b in blocks]
    recipients = [r for r in recipients if r.recipient or r.action or r.status]
    if not recipients:
        return False
    if len(recipients) == 1 and not _usable(recipients[0].recipient):
        # The report names a file or a pipe, not a mailbox: the address that
        # led there (Exim: "generated by a@b"), else the original's To.
        generated = _GENERATED_BY.search(mime.body_text(msg))
        to = [generated.group(1)] if generated else mime.addresses(report.original_header("To"))
        if to:
            recipients[0].recipient = to[0]
    report.kind = "dsn"
    report.envelope_id = _get(per_message, "original-envelope-id")
    report.reporting_mta = _after_type(_get(per_message, "reporting-mta"))
    report.arrival_date = _get(per_message, "arrival-date")
    report.recipients = recipients
    return True
