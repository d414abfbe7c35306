"""Amazon SES notifications: JSON delivered by email through Amazon SNS.

SES reports bounces, complaints and deliveries as a JSON document
(``notificationType`` Bounce | Complaint | Delivery), sometimes wrapped in an
SNS envelope whose ``Message`` field holds the same document as a string.
SNS's mailer breaks long lines with "!" plus a newline, which is undone here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mailbeacon.core.reports.records import Feedback, Header, RecipientReport, Report

_WRAP = re.compile(r"!\r?\n ")
MAX_JSON = 1024 * 1024


def notification_of(text: str) -> dict[str, Any] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start or end - start > MAX_JSON:
        return None
    try:
        doc = json.loads(_WRAP.sub("", text[start : end + 1]))
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("Message"), str):
        try:
            doc = json.loads(doc["Message"])
        except ValueError:
            return None
    if not isinstance(doc, dict) or ("notificationType" not in doc and "eventType" not in doc):
        return None
    return doc


def _bounced(doc: dict[str, Any]) -> list[RecipientReport]:
    bounce = doc.get("bounce") or {}
    out = []
    for row in bounce.get("bouncedRecipients") or []:
        diag_type, _, diagnostic = str(row.get("diagnosticCode", "")).partition(";")
        if not diagnostic:
            diag_type, diagnostic = "", diag_type
        out.append(
            RecipientReport(
                recipient=str(row.get("emailAddress", "")),
                action=str(row.get("action", "failed")) or "failed",
                status=str(row.get("status", "")),
                diagnostic=diagnostic.strip(),
                diagnostic_type=diag_type.strip().lower(),
                remote_mta=str(bounce.get("remoteMtaIp", "")),
            )
        )
    return out


def _delivered(doc: dict[str, Any]) -> list[RecipientReport]:
    delivery = doc.get("delivery") or {}
    response = str(delivery.get("smtpResponse", ""))
    return [
        RecipientReport(recipient=str(a), action="delivered", diagnostic=response)
        for a in delivery.get("recipients") or []
    ]


def _complaint(doc: dict[str, Any], report: Report) -> None:
    complaint = doc.get("complaint") or {}
    rcpts = [str(r.get("emailAddress", "")) for r in complaint.get("complainedRecipients") or []]
    report.kind = "arf"
    report.feedback = Feedback(
        feedback_type=str(complaint.get("complaintFeedbackType", "")).lower(),
        user_agent=str(complaint.get("userAgent", "")),
        original_rcpt_to=rcpts,
        arrival_date=str(complaint.get("arrivalDate", "")),
    )
    report.recipients = [
        RecipientReport(recipient=a, action="failed", reason="feedback") for a in rcpts
    ]


def _original(doc: dict[str, Any]) -> list[Header]:
    mail = doc.get("mail") or {}
    return [
        (str(h.get("name", "")), str(h.get("value", "")))
        for h in mail.get("headers") or []
        if isinstance(h, dict)
    ]


def parse_ses(text: str, report: Report) -> bool:
    """Fill ``report`` from an SES notification; False when ``text`` is not one."""
    if '"notificationType"' not in text and "notificationType" not in text:
        return False
    doc = notification_of(text)
    if doc is None:
        return False
    kind = str(doc.get("notificationType") or doc.get("eventType") or "")
    report.original_headers = report.original_headers or _original(doc)
    report.original_message_id = report.original_header("Message-ID") or str(
        (doc.get("mail") or {}).get("messageId", "")
    )
    report.vendor = "amazonses"
    if kind == "Complaint":
        _complaint(doc, report)
        return True
    recipients = (
        _bounced(doc) if kind == "Bounce" else _delivered(doc) if kind == "Delivery" else []
    )
    if not recipients:
        return False
    report.kind = "bounce"
    report.recipients = recipients
    return True
