"""RFC 8098 message disposition notifications (read receipts), both ways.

Reading: the message/disposition-notification part of a multipart/report
(report-type=disposition-notification), including the older RFC 2298/3798
``denied``/``failed`` types, and the receipts Outlook/Exchange send as
"Read: <subject>" with only human-readable text.

Writing: ``build_mdn`` answers a message that asked for a receipt with
Disposition-Notification-To. Sending one is always the recipient's choice
(RFC 8098 section 2.1), so the caller decides; this only builds it right.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid

from mailbeacon.clock import Clock
from mailbeacon.core.reports import mime
from mailbeacon.core.reports.records import Disposition, Header, Report
from mailbeacon.errors import MailbeaconError

DISPOSITION_TYPES = ("displayed", "deleted", "dispatched", "processed")
_OLD_TYPES = ("denied", "failed")  # RFC 2298, still sent by older clients
_FIELD_TYPES = ("message/disposition-notification", "message/global-disposition-notification")
_READ_SUBJECT = re.compile(
    r"^\s*(read|gelesen|lu|le[ií]do|letto|gelezen|l[äa]st|lido|przeczytano|прочитано|開封済み)\s*:",
    re.I,
)
_NOT_READ_SUBJECT = re.compile(r"^\s*(not read|nicht gelesen|non lu|no le[ií]do)\s*:", re.I)
_READ_TEXT = re.compile(
    r"(was read on|was (displayed|read) (on|at)|has been (read|displayed)|wurde am .* gelesen|"
    r"a [ée]t[ée] lu|fue le[ií]do|return receipt|read receipt|was deleted without being read)",
    re.I,
)


class MdnNotRequested(MailbeaconError):
    """The message does not ask for a read receipt, so none may be built."""


def parse_disposition(value: str) -> Disposition:
    """``action-mode/sending-mode; type/modifier,modifier`` (modes optional in old forms)."""
    modes, _, rest = value.partition(";")
    if not rest:
        modes, rest = "", modes
    action_mode, _, sending_mode = modes.strip().partition("/")
    kind, _, modifiers = rest.strip().partition("/")
    return Disposition(
        action_mode=action_mode.strip().lower(),
        sending_mode=sending_mode.strip(),
        type=kind.strip().lower(),
        modifiers=[m.strip().lower() for m in modifiers.split(",") if m.strip()],
    )


def disposition_fields(msg: Message) -> list[Header]:
    for part in mime.walk(msg, attached=False):
        if part.get_content_type() in _FIELD_TYPES:
            return [f for block in mime.field_blocks(mime.text_of(part)) for f in block]
    return []


def _one(fields: list[Header], name: str) -> str:
    return next((v for k, v in fields if k.lower() == name), "")


def from_fields(fields: list[Header]) -> Disposition | None:
    value = _one(fields, "disposition")
    if not value:
        return None
    disposition = parse_disposition(value)
    disposition.reporting_ua = _one(fields, "reporting-ua").split(";", 1)[0].strip()
    disposition.final_recipient = mime.address_in(_one(fields, "final-recipient"))
    disposition.original_recipient = mime.address_in(_one(fields, "original-recipient"))
    disposition.original_message_id = _one(fields, "original-message-id")
    disposition.error = _one(fields, "error")
    return disposition


def from_subject(msg: Message, report: Report) -> Disposition | None:
    """Outlook/Exchange "Read:"/"Not read:" receipts that carry no fields."""
    subject = report.subject
    deleted = bool(_NOT_READ_SUBJECT.search(subject))
    if not (deleted or _READ_SUBJECT.search(subject)):
        return None
    body = mime.body_text(msg)
    if not (_READ_TEXT.search(body) or "report" in msg.get_content_type()):
        return None
    return Disposition(
        type="deleted" if deleted else "displayed",
        final_recipient=report.from_address,
        original_message_id=report.in_reply_to or report.original_message_id,
    )


def parse_mdn(msg: Message, report: Report) -> bool:
    """Fill ``report`` from a read receipt; False when the message is not one."""
    disposition = from_fields(disposition_fields(msg)) or from_subject(msg, report)
    if disposition is None:
        return False
    if not disposition.final_recipient:
        disposition.final_recipient = report.from_address
    if not disposition.original_message_id:
        disposition.original_message_id = report.original_message_id or report.in_reply_to
    report.kind = "mdn"
    report.mdn = disposition
    return True


def requested_by(original: Message) -> str:
    """The address Disposition-Notification-To asks us to send the receipt to."""
    found = mime.addresses(mime.header(original, "Disposition-Notification-To"))
    return found[0] if found else ""


def build_mdn(
    original: bytes,
    disposition: str = "displayed",
    *,
    reporting_ua: str,
    sender_address: str,
    manual: bool = True,
    clock: Clock,
) -> bytes:
    """A multipart/report read receipt answering ``original``, CRLF line ends."""
    if disposition not in DISPOSITION_TYPES:
        raise ValueError(f"disposition {disposition!r} is not one of {DISPOSITION_TYPES}")
    msg = mime.load(original)
    notify = requested_by(msg)
    if not notify:
        raise MdnNotRequested("the message has no Disposition-Notification-To: no receipt asked")
    report = MIMEMultipart("report", report_type="disposition-notification")
    _address_receipt(report, msg, notify, sender_address, manual, clock)
    report.attach(MIMEText(_human_text(msg, disposition), "plain", "utf-8"))
    report.attach(_fields_part(msg, disposition, reporting_ua, sender_address, manual))
    report.attach(MIMEText(_headers_text(msg), "rfc822-headers", "utf-8"))
    raw = report.as_bytes()
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _address_receipt(
    out: Message, original: Message, notify: str, sender: str, manual: bool, clock: Clock
) -> None:
    subject = mime.header(original, "Subject")
    message_id = mime.header(original, "Message-ID")
    domain = sender.rpartition("@")[2] or "localhost"
    out["From"] = sender
    out["To"] = notify
    out["Subject"] = f"Read: {subject}" if subject else "Read receipt"
    out["Date"] = format_datetime(datetime.fromtimestamp(clock.now(), UTC))
    out["Message-ID"] = make_msgid(clock.token_bytes(8).hex(), domain=domain)
    if message_id:
        out["In-Reply-To"] = message_id
        out["References"] = f"{mime.header(original, 'References')} {message_id}".strip()
    if not manual:
        out["Auto-Submitted"] = "auto-replied"  # RFC 3834: a machine answered


def _human_text(original: Message, disposition: str) -> str:
    subject = mime.header(original, "Subject") or "(no subject)"
    return f'The message "{subject}" was {disposition} by the recipient.\r\n'


def _fields_part(
    original: Message, disposition: str, ua: str, sender: str, manual: bool
) -> Message:
    mode = (
        "manual-action/MDN-sent-manually" if manual else "automatic-action/MDN-sent-automatically"
    )
    lines = [f"Reporting-UA: {ua}"]
    orcpt = mime.header(original, "Original-Recipient")
    if orcpt:
        lines.append(f"Original-Recipient: {orcpt}")
    lines.append(f"Final-Recipient: rfc822;{sender}")
    message_id = mime.header(original, "Message-ID")
    if message_id:
        lines.append(f"Original-Message-ID: {message_id}")
    lines.append(f"Disposition: {mode}; {disposition}")
    part = Message()
    part["Content-Type"] = "message/disposition-notification"
    part.set_payload("\r\n".join(lines) + "\r\n")
    return part


def _headers_text(original: Message) -> str:
    return "".join(f"{k}: {v}\n" for k, v in original.items())
