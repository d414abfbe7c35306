"""Why a recipient failed: RFC 3463 status, a reason name, and hard or soft.

The vocabulary is Sisimai's, the one bounce handlers share. Three things
decide a reason: the enhanced status code (what RFC 3463 says it means,
``STATUS_REASONS``), the server's words (``phrases.PHRASES``) and the SMTP
command the server refused (a "user unknown" answered to DATA is a content
filter speaking, not a missing mailbox).

1. ``FIRST_PASS``: specific reasons, in order; each wins when the code means
   it or the words say it (with the command rules of ``_probe``).
2. When the code is vague or absent, ``SECOND_PASS`` reasons by words alone,
   then the code's own reason, then its subject (x.6 content, x.7 security).
3. A delayed recipient with nothing more said has "expired"; words that name
   nothing are "onhold"; no words at all are "undefined".

Hard or soft is Sisimai's practical rule, not an RFC's: hard only for
userunknown, hostunknown, hasmoved, and notaccept with a 5xx code.
"""

from __future__ import annotations

import re
from functools import cache

from mailbeacon.core.reports.phrases import NOT_PHRASES, PHRASES
from mailbeacon.core.reports.records import RecipientReport

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d])")
_REPLY = re.compile(r"(?<![\d.\-:/#\[])([245][0-5]\d)(?:[ -]|$)")

# IANA enhanced status codes, by what they mean in the vocabulary. A code in
# the 4 class is only listed where a transient reading makes sense.
STATUS_REASONS: dict[str, str] = {
    "1.5": "delivered",
    "1.6": "hasmoved",
    "1.7": "rejected",
    "1.8": "rejected",
    "1.9": "systemerror",
    "2.2": "mailboxfull",
    "2.3": "exceedlimit",
    "2.4": "filtered",
    "3.1": "systemfull",
    "3.2": "notaccept",
    "3.3": "systemerror",
    "3.5": "systemerror",
    "4.2": "networkerror",
    "4.3": "systemerror",
    "4.6": "networkerror",
    "4.8": "networkerror",
    "5.3": "systemerror",
    "5.5": "systemerror",
    "6.0": "contenterror",
    "6.2": "contenterror",
    "6.5": "contenterror",
    "7.5": "securityerror",
    "7.6": "securityerror",
    "7.7": "securityerror",
    "7.12": "securityerror",
    "7.15": "securityerror",
    "7.16": "mesgtoobig",
    "7.24": "authfailure",
    "7.25": "requireptr",
    "7.26": "authfailure",
}
TRANSIENT: dict[str, str] = {
    "2.1": "blocked",
    "4.1": "expired",
    "4.4": "networkerror",
    "4.5": "systemfull",
    "4.7": "expired",
    "7.1": "blocked",
    "7.2": "blocked",
}
PERMANENT: dict[str, str] = {
    "1.0": "userunknown",
    "1.1": "userunknown",
    "1.2": "hostunknown",
    "1.3": "userunknown",
    "1.4": "filtered",
    "1.10": "notaccept",
    "2.0": "filtered",
    "2.1": "filtered",
    "3.0": "systemerror",
    "3.4": "mesgtoobig",
    "4.0": "networkerror",
    "4.3": "systemerror",
    "4.4": "hostunknown",
    "5.2": "syntaxerror",
    "5.3": "toomanyconn",
    "5.4": "systemerror",
    "5.6": "syntaxerror",
    "6.1": "contenterror",
    "6.3": "contenterror",
    "6.6": "contenterror",
    "6.7": "contenterror",
    "6.8": "contenterror",
    "6.9": "contenterror",
    "7.0": "securityerror",
    "7.1": "securityerror",
    "7.2": "securityerror",
    "7.3": "securityerror",
    "7.4": "securityerror",
    "7.8": "securityerror",
    "7.9": "securityerror",
    "7.10": "securityerror",
    "7.11": "securityerror",
    "7.13": "suspend",
    "7.14": "securityerror",
    "7.17": "hasmoved",
    "7.18": "hasmoved",
    "7.19": "securityerror",
    "7.20": "authfailure",
    "7.21": "authfailure",
    "7.22": "authfailure",
    "7.23": "authfailure",
    "7.27": "notaccept",
    "7.28": "spamdetected",
    "7.29": "authfailure",
    "7.30": "failedstarttls",
}
# Reasons a code alone cannot settle: the words get a second look.
VAGUE = {
    "",
    "undefined",
    "onhold",
    "systemerror",
    "securityerror",
    "expired",
    "networkerror",
    "hostunknown",
    "userunknown",
}

FIRST_PASS = (
    "mailboxfull",
    "mesgtoobig",
    "exceedlimit",
    "suspend",
    "hasmoved",
    "norelaying",
    "authfailure",
    "userunknown",
    "filtered",
    "requireptr",
    "notcompliantrfc",
    "badreputation",
    "contenterror",
    "rejected",
    "hostunknown",
    "spamdetected",
    "speeding",
    "toomanyconn",
    "blocked",
)
# Words about a system's state are weighed after the specific ones, and
# "gave up after retrying" outranks whatever the last attempt said.
SECOND_PASS = (
    "mailboxfull", "authfailure", "badreputation", "speeding", "spamdetected",
    "virusdetected", "policyviolation", "norelaying", "notaccept", "expired", "systemerror",
    "networkerror", "suspend", "contenterror", "systemfull", "failedstarttls",
    "securityerror", "mailererror",
)  # fmt: skip
# Words that show an x.1.1 is not about the mailbox (a relay, rate or block).
NOT_THE_MAILBOX = (
    "blocked", "mailboxfull", "hasmoved", "rejected", "notaccept", "norelaying", "speeding",
)  # fmt: skip
BEFORE_DATA = {"HELO", "EHLO", "MAIL", "RCPT", "CONN", "STARTTLS", "AUTH"}

# The SMTP command a server refused, in the words servers use to say so.
COMMANDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "DATA",
        re.compile(
            r"end of data|after data|(reply|response) to (end of )?data|"
            r">>> data|our (final )?data|after end of|\bdata command",
            re.I,
        ),
    ),
    (
        "RCPT",
        re.compile(
            r"rcpt to|after rcpt|reply to rcpt|>>> rcpt|\brcpt:|\bsmtp:rcpt\b|"
            r"does not like recipient|recipient address rejected",
            re.I,
        ),
    ),
    ("MAIL", re.compile(r"mail from|after mail|reply to mail|sender was rejected", re.I)),
    ("HELO", re.compile(r"\b(helo|ehlo)\b|my name was rejected", re.I)),
    ("CONN", re.compile(r"initial connection|after connect|greeting", re.I)),
)

REASON_STATUS = {
    "userunknown": "1.1",
    "hostunknown": "1.2",
    "hasmoved": "1.6",
    "mailboxfull": "2.2",
    "exceedlimit": "2.3",
    "suspend": "2.1",
    "filtered": "2.1",
    "systemfull": "3.1",
    "notaccept": "3.2",
    "mesgtoobig": "3.4",
    "systemerror": "3.0",
    "networkerror": "4.0",
    "expired": "4.7",
    "toomanyconn": "5.3",
    "syntaxerror": "5.2",
    "contenterror": "6.0",
    "norelaying": "7.1",
    "blocked": "7.1",
    "rejected": "7.1",
    "securityerror": "7.0",
    "policyviolation": "7.1",
    "spamdetected": "7.1",
    "virusdetected": "7.1",
    "authfailure": "7.26",
    "requireptr": "7.25",
    "failedstarttls": "7.10",
}
HARD = {"userunknown", "hostunknown", "hasmoved"}


@cache
def _compiled(reason: str) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    def join(items: tuple[str, ...]) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{p})" for p in items)) if items else None

    return join(PHRASES.get(reason, ())), join(NOT_PHRASES.get(reason, ()))


def says(reason: str, text: str) -> bool:
    """Whether the (lower-cased) text says ``reason`` in a server's words."""
    yes, no = _compiled(reason)
    return bool(yes and yes.search(text)) and not (no and no.search(text))


def status_in(text: str) -> str:
    """The first RFC 3463 code in a diagnostic, e.g. "550 5.1.1 ..." -> "5.1.1".

    In a session transcript the server's "250 2.1.5 Ok" lines come before
    the refusal: a failure code wins over the success codes before it.
    """
    found = [".".join(m.groups()) for m in _STATUS.finditer(text)]
    return next((c for c in found if c[0] != "2"), found[0] if found else "")


def replycode_in(text: str) -> str:
    m = _REPLY.search(text)
    return m.group(1) if m else ""


def command_in(text: str) -> str:
    return next((name for name, p in COMMANDS if p.search(text)), "")


def is_placeholder(status: str) -> bool:
    """x.0.9xx: Sisimai's labels for "no code given", not RFC 3463 codes."""
    parts = status.split(".")
    return len(parts) == 3 and parts[1] == "0" and len(parts[2]) == 3


def reason_by_status(status: str) -> str:
    if not status or is_placeholder(status):
        return ""
    klass, _, detail = status.partition(".")
    if klass == "2":
        return "delivered"
    table = PERMANENT if klass == "5" else TRANSIENT
    return STATUS_REASONS.get(detail) or table.get(detail, "")


def _probe(reason: str, coded: str, text: str, command: str) -> bool:
    if reason == "userunknown":
        if command == "MAIL":
            return False  # refused at MAIL FROM: the words are about the sender
        if coded == "userunknown":
            return not any(says(r, text) for r in NOT_THE_MAILBOX)
        # Words alone say "user unknown" only when the server said them to
        # RCPT; said to DATA, or with no command named, a filter is speaking.
        return command == "RCPT" and says(reason, text)
    if reason == "filtered":
        if coded == "filtered":
            return says("userunknown", text) or says("filtered", text)
        if command in BEFORE_DATA:
            return False
        return says("filtered", text) or says("userunknown", text)
    if reason == "rejected":
        if coded == "rejected":
            return True
        if command == "MAIL" and coded in ("userunknown", "hostunknown"):
            return True  # an address code said to MAIL FROM is about the sender
        loose = (
            command == "MAIL"
            or (command == "DATA" and coded != "userunknown")
            or coded in ("", "onhold", "undefined", "securityerror", "systemerror")
        )
        return loose and says(reason, text)
    if reason == "hostunknown" and coded == "hostunknown":
        return not says("networkerror", text) and not says("notaccept", text)
    if reason == "hostunknown" and command in ("HELO", "EHLO", "MAIL"):
        return False  # "invalid domain name" said to HELO or MAIL FROM is about us
    if reason == "mesgtoobig" and coded == "exceedlimit":
        return False  # x.2.3 is the per-mailbox limit, whatever the words say
    return coded == reason or says(reason, text)


def decide_reason(rcpt: RecipientReport, hint: str = "", context: str = "") -> str:
    """The reason for one recipient; ``hint`` is what a vendor rule already knows."""
    if rcpt.action in ("delivered", "relayed", "expanded") or rcpt.status.startswith("2."):
        return "delivered"
    if hint:
        return hint  # the server's own format said it
    text = " ".join(rcpt.diagnostic.lower().split())
    if rcpt.diagnostic_type.startswith("x-unix") and re.search(r"[a-z]{3}", text):
        # A local delivery program's own words ("procmail: ... No such user")
        # describe its failure, not the recipient's address.
        return "mailboxfull" if says("mailboxfull", text) else "mailererror"
    coded = hint or reason_by_status(rcpt.status)
    command = rcpt.command or command_in(text)
    found = next((r for r in FIRST_PASS if _probe(r, coded, text, command)), "")
    if found:
        return found
    if coded and coded not in VAGUE and rcpt.diagnostic_type in ("", "smtp"):
        return coded
    return _second_pass(rcpt, coded or found, text, context, command)


def _second_pass(rcpt: RecipientReport, coded: str, text: str, context: str, cmd: str) -> str:
    # An x-unix diagnostic is a local program's exit status: the notice's prose
    # around it describes the message, not why the program failed.
    around = "" if rcpt.diagnostic_type.startswith("x-unix") else context
    for words in (text, " ".join(around.lower().split()) if around else ""):
        found = next((r for r in SECOND_PASS if words and says(r, words)), "")
        if found:
            return found
    if coded:
        return coded
    subject = rcpt.status[1:3]
    if subject == ".6":
        return "contenterror"
    if subject == ".7":
        return "securityerror"
    if rcpt.diagnostic_type.startswith("x-unix"):
        return "mailererror"
    if says("syntaxerror", text):
        return "syntaxerror"
    if rcpt.action == "delayed":
        return "expired"
    if cmd in ("HELO", "EHLO", "CONN"):
        return "blocked"  # refused before any address was given: the client is
    if says("vacation", text):
        return "vacation"
    return "onhold" if text.strip() else "undefined"


def classify(rcpt: RecipientReport, hint: str = "", context: str = "") -> RecipientReport:
    """Fill status, replycode, command, reason and hard on one recipient, in place."""
    if not rcpt.status or rcpt.status.endswith(".0.0"):
        rcpt.status = status_in(rcpt.diagnostic) or rcpt.status
    if not rcpt.replycode:
        rcpt.replycode = replycode_in(rcpt.diagnostic)
    if not rcpt.command:
        rcpt.command = command_in(rcpt.diagnostic) or command_in(context)
    rcpt.reason = decide_reason(rcpt, hint, context)
    if not rcpt.status:
        rcpt.status = _status_for(rcpt)
    rcpt.hard = is_hard(rcpt.reason, rcpt.status, rcpt.replycode)
    return rcpt


def _status_for(rcpt: RecipientReport) -> str:
    if rcpt.reason == "delivered":
        return "2.0.0"
    klass = (
        rcpt.replycode[0]
        if rcpt.replycode[:1] in ("4", "5")
        else "4"
        if rcpt.action == "delayed"
        else "5"
    )
    return f"{klass}.{REASON_STATUS.get(rcpt.reason, '0.0')}"


def is_hard(reason: str, status: str = "", replycode: str = "") -> bool:
    if reason in HARD:
        return True
    if reason == "notaccept":
        return status.startswith("5") or replycode.startswith("5")
    return False
