"""The engine that reads non-standard bounces with the rows of ``rules.RULES``.

It also lends a DSN the words its human-readable part gives when the
machine-readable part leaves Diagnostic-Code empty, and it decides whether a
message announces itself as a delivery report at all.
"""

from __future__ import annotations

import re
from email.message import Message

from mailbeacon.core.reports import dsn, mime
from mailbeacon.core.reports.classify import command_in, status_in
from mailbeacon.core.reports.records import RecipientReport, Report
from mailbeacon.core.reports.rhosts import REMOTE_HOSTS
from mailbeacon.core.reports.rules import (
    GENERIC,
    GENERIC_RECIPIENT,
    ORIGINAL_STARTS,
    POWERMTA_CATEGORIES,
    REPORT_SENDERS,
    REPORT_SUBJECTS,
    RULES,
    BounceRule,
)

MAX_DIAG_LINES = 12
_HOST_SAID = re.compile(r"\bhost ([\w.-]+\.[a-z]{2,}) \[", re.I)  # Exim, Postfix: "host mx [ip]"
_GROUPS = ("rcpt", "r2", "r3", "r4", "r5")


def header_lines(msg: Message) -> str:
    return "\n".join(f"{k}: {mime.decode_words(v)}" for k, v in msg.items()[:200])


def recognises(rule: BounceRule, msg: Message, text: str) -> bool:
    checks = [
        (rule.sender, mime.header(msg, "From")),
        (rule.subject, mime.header(msg, "Subject")),
        (rule.header, header_lines(msg) if rule.header else ""),
        (rule.marker, text),
    ]
    given = [bool(p.search(s)) for p, s in checks if p is not None]
    if not given:
        return False
    return all(given) if rule.need_all else any(given)


def choose_rule(msg: Message, text: str) -> BounceRule:
    return next((r for r in RULES if recognises(r, msg, text)), GENERIC)


def looks_like_report(msg: Message) -> bool:
    """Whether the message says it is a delivery report (sender, subject, type)."""
    if "report" in msg.get_content_type():
        return True
    sender = mime.header(msg, "From") or mime.header(msg, "Return-Path")
    return bool(
        REPORT_SENDERS.search(sender) or REPORT_SUBJECTS.search(mime.header(msg, "Subject"))
    )


def error_section(rule: BounceRule, text: str) -> str:
    if rule.begin is not None:
        m = rule.begin.search(text)
        if m:
            text = text[m.end() :]
    for end in (rule.end, ORIGINAL_STARTS):
        m = end.search(text) if end is not None else None
        if m and m.start() > 0:
            return text[: m.start()]
    return text


def _address(m: re.Match[str]) -> str:
    groups = m.groupdict()
    return next((groups[g] for g in _GROUPS if groups.get(g)), "")


def read_recipients(
    pattern: re.Pattern[str],
    section: str,
    *,
    words_first: bool = False,
    skip: frozenset[str] = frozenset(),
) -> list[RecipientReport]:
    """Recipients named in ``section``, each with the words that go with it.

    Usually the words follow the line naming the address. ``words_first``
    formats (Lotus Notes, Sendmail v5 transcripts) write them first: the lines
    since the previous recipient, and the recipient's own line, are its words.
    """
    found: dict[str, RecipientReport] = {}
    current: RecipientReport | None = None
    pending: list[str] = []
    lines = 0
    for line in section.splitlines():
        m = pattern.search(line)
        address = _address(m) if m else ""
        if address and address.lower() not in skip:
            key = address.lower()
            current = found.setdefault(key, RecipientReport(recipient=address, action="failed"))
            words = (
                [*pending, line.strip()] if words_first else [line[m.end() :].strip() if m else ""]
            )
            current.diagnostic = " ".join([current.diagnostic, *words]).strip()
            pending, lines = [], 0
        elif words_first and line.strip():
            pending.append(line.strip())
        elif current is not None and lines < MAX_DIAG_LINES and line.strip():
            current.diagnostic = f"{current.diagnostic} {line.strip()}".strip()
            lines += 1
    return list(found.values())


def extract(rule: BounceRule, msg: Message, text: str) -> list[RecipientReport]:
    section = error_section(rule, text)
    skip = _not_recipients(msg)
    recipients: list[RecipientReport] = []
    for pattern in (rule.recipient, GENERIC.recipient):
        if pattern is not None and not recipients:
            found = read_recipients(pattern, section, words_first=rule.words_first, skip=skip)
            recipients = [r for r in found if _keep(r, skip)]
    if recipients:
        return recipients
    # The text names no recipient in a known shape: any address in the error
    # section, then the ones the server puts in headers, then the original's To.
    words = " ".join(section.split())[:2000]
    candidates = (
        [a for a in mime.addresses(section) if a.lower() not in skip][:1]
        or _named_elsewhere(msg)
        or _original_to(msg, text, rule)
    )
    return [RecipientReport(recipient=a, action="failed", diagnostic=words) for a in candidates]


def _keep(rcpt: RecipientReport, skip: frozenset[str]) -> bool:
    return rcpt.recipient.lower() not in skip


def _not_recipients(msg: Message) -> frozenset[str]:
    """Addresses that are never the failed recipient: ours and the reporter's."""
    own = mime.addresses(mime.header(msg, "To")) + mime.addresses(mime.header(msg, "From"))
    return frozenset(a.lower() for a in own)


def _named_elsewhere(msg: Message) -> list[str]:
    """Recipients a server names outside the text: X-Failed-Recipients (Exim)."""
    return mime.addresses(mime.header(msg, "X-Failed-Recipients"))


def _original_to(msg: Message, text: str, rule: BounceRule) -> list[str]:
    """The To of the returned message, attached or quoted after the error text."""
    attached = [v for k, v in dsn.original_headers(msg) if k.lower() == "to"]
    if attached:
        return mime.addresses(attached[0])[:1]
    m = (rule.end.search(text) if rule.end else None) or ORIGINAL_STARTS.search(text)
    quoted = mime.headers_of(text[m.end() :].lstrip("-\n ").split("\n\n", 1)[0]) if m else []
    found = [v for k, v in quoted if k.lower() == "to"]
    return mime.addresses(found[0])[:1] if found else []


def hint_for(rule: BounceRule, diagnostic: str) -> str:
    found = next((reason for p, reason in rule.reasons if p.search(diagnostic)), "")
    return found or rule.reason


Hint = tuple[str, str]  # (a reason the rule knows, the text around the recipient)


def parse_bounce(msg: Message, report: Report) -> list[Hint]:
    """Fill ``report`` from a plain-text bounce; returns per-recipient hints."""
    text = mime.body_text(msg)
    rule = choose_rule(msg, text)
    if rule is GENERIC and not looks_like_report(msg):
        return []
    recipients = extract(rule, msg, text)
    if not recipients:
        return []
    report.kind = "bounce"
    report.vendor = rule.name
    report.recipients = recipients
    section = error_section(rule, text)
    return [(hint_for(rule, r.diagnostic) or hint_for(rule, section), section) for r in recipients]


def enrich_dsn(msg: Message, report: Report) -> list[Hint]:
    """Words for DSN recipients whose Diagnostic-Code is empty; per-recipient hints."""
    text = mime.body_text(msg)
    rule = choose_rule(msg, text)
    report.vendor = rule.name if rule is not GENERIC else ""
    section = error_section(rule, text)
    by_text = {r.recipient.lower(): r for r in read_recipients(GENERIC_RECIPIENT, section)}
    category = _categories(msg)
    hints = []
    for rcpt in report.recipients:
        found = by_text.get(rcpt.recipient.lower()) or by_text.get(rcpt.original_recipient.lower())
        if found is None and len(report.recipients) == 1 and by_text:
            found = next(iter(by_text.values()))
        context = found.diagnostic if found else section
        if not rcpt.diagnostic:
            rcpt.diagnostic = context if found else ""
        hint = hint_for(rule, rcpt.diagnostic) or hint_for(rule, context)
        hints.append((hint or category.get(rcpt.recipient.lower(), ""), context))
    return hints


def _categories(msg: Message) -> dict[str, str]:
    """PowerMTA's X-PowerMTA-BounceCategory per recipient, as reasons."""
    text = dsn.find_status_text(msg)
    if "x-powermta-bouncecategory" not in text.lower():
        return {}
    found = {}
    for block in dsn.split_blocks(text)[1]:
        fields = {k.lower(): v for k, v in block}
        reason = POWERMTA_CATEGORIES.get(fields.get("x-powermta-bouncecategory", "").strip())
        if reason:
            found[dsn.recipient_of(block).recipient.lower()] = reason
    return found


def remote_host_hint(rcpt: RecipientReport, reporting_mta: str, context: str = "") -> str:
    """What a known receiving server means by its reply, from ``REMOTE_HOSTS``."""
    if not rcpt.diagnostic:
        return ""
    named = _HOST_SAID.search(rcpt.diagnostic)
    hosts = [
        rcpt.remote_mta,
        named.group(1) if named else "",
        reporting_mta,
        rcpt.recipient.rpartition("@")[2],
    ]
    hosts = [h.split()[0].strip("[]").rstrip(".").lower() for h in hosts if h.strip()]
    command = rcpt.command or command_in(rcpt.diagnostic) or command_in(context)
    reply = f"{rcpt.status or status_in(rcpt.diagnostic)} {command}: {rcpt.diagnostic}"
    for pattern, phrases in REMOTE_HOSTS:
        if any(pattern.search(h) for h in hosts):
            found = next((reason for p, reason in phrases if p.search(reply)), "")
            if found:
                return found
    return ""
