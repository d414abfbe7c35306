"""RFC 3834 automatic responses, and the vacation markers that predate it.

``Auto-Submitted`` other than ``no`` is the standard signal. Many systems
still mark only with Precedence, X-Autoreply/X-Autorespond, Apple's
X-Apple-Action or a conventional Subject, so those count too. Mail from
mailer-daemon@ or postmaster@ is a delivery report, never an auto-reply.
"""

from __future__ import annotations

import re
from email.message import Message

from mailbeacon.core.reports import mime

_SYSTEM_SENDER = re.compile(r"\b(mailer-daemon|postmaster)@", re.I)
_VACATION_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response", "X-Vacation")
_PRECEDENCE = {"auto_reply", "auto-reply"}
_SUBJECTS = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|autoreply|out of (the )?office|"
    r"away from (the )?office|on vacation|vacation|absence|abwesend|absent|r[ée]ponse automatique|"
    r"risposta automatica|respuesta autom[áa]tica|fuera de la oficina|afwezig|"
    r"automatisch antwoord|自動応答|不在)",
    re.I,
)
_AWAY_TEXT = re.compile(
    r"(out of (the )?office|i am (currently )?(away|out)|on (vacation|holiday|leave)|"
    r"limited access to (e-?mail|my email)|will (be )?(back|return)|upon my return)",
    re.I,
)


def is_system_sender(msg: Message) -> bool:
    return bool(_SYSTEM_SENDER.search(mime.header(msg, "From")))


def is_autoreply(msg: Message) -> bool:
    if is_system_sender(msg):
        return False
    submitted = mime.header(msg, "Auto-Submitted").lower().split(";")[0].strip()
    if submitted and submitted != "no":
        return True
    if mime.header(msg, "Precedence").lower() in _PRECEDENCE:
        return True
    if any(mime.header(msg, h) for h in _VACATION_HEADERS):
        return True
    if mime.header(msg, "X-Apple-Action").lower().startswith("vacation"):
        return True
    return bool(_SUBJECTS.search(mime.header(msg, "Subject")))


def looks_away(msg: Message) -> bool:
    """Whether an auto-reply's words say "I am away" (vacation) or not."""
    return bool(_AWAY_TEXT.search(mime.header(msg, "Subject") + "\n" + mime.body_text(msg)))
