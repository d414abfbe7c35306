"""The records a report parser returns: plain data, no behaviour.

``Report.kind`` names what the message is, in the priority order the parser
decides it: ``arf`` (RFC 5965 complaint), ``mdn`` (RFC 8098 read receipt),
``dsn`` (RFC 3464 delivery status), ``bounce`` (a non-standard delivery
failure from a known server format), ``autoreply`` (RFC 3834), ``reply`` (a
person answering) and ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("arf", "mdn", "dsn", "bounce", "autoreply", "reply", "none")
ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")

Header = tuple[str, str]


@dataclass(slots=True)
class RecipientReport:
    """One per-recipient block of a DSN (or what a vendor bounce says of one)."""

    recipient: str = ""  # Final-Recipient, the address the report is about
    original_recipient: str = ""  # Original-Recipient, ORCPT as we sent it
    action: str = ""  # failed | delayed | delivered | relayed | expanded | ""
    status: str = ""  # RFC 3463 enhanced code such as "5.1.1", "" when none
    reason: str = ""  # Sisimai's vocabulary: userunknown, mailboxfull, ...
    hard: bool = False  # suppress the address after one of these
    diagnostic: str = ""  # Diagnostic-Code text, or the server's words
    diagnostic_type: str = ""  # "smtp", "x-unix", ...
    remote_mta: str = ""
    last_attempt_date: str = ""
    will_retry_until: str = ""
    final_log_id: str = ""
    replycode: str = ""  # SMTP reply code such as "550", "" when none
    command: str = ""  # the SMTP command that failed, when the report says


@dataclass(slots=True)
class Disposition:
    """An RFC 8098 disposition notification (read receipt)."""

    action_mode: str = ""  # manual-action | automatic-action
    sending_mode: str = ""  # MDN-sent-manually | MDN-sent-automatically
    type: str = ""  # displayed | deleted | dispatched | processed | denied | failed
    modifiers: list[str] = field(default_factory=list)
    reporting_ua: str = ""
    final_recipient: str = ""
    original_recipient: str = ""
    original_message_id: str = ""
    error: str = ""


@dataclass(slots=True)
class Feedback:
    """An RFC 5965 feedback report (a complaint)."""

    feedback_type: str = ""  # abuse, fraud, other, virus, not-spam, auth-failure, opt-out
    user_agent: str = ""
    version: str = ""
    original_mail_from: str = ""
    original_rcpt_to: list[str] = field(default_factory=list)
    arrival_date: str = ""
    source_ip: str = ""
    reported_domain: str = ""
    reported_uri: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    """What a message sent back to us says, whatever its kind."""

    kind: str = "none"
    envelope_id: str = ""  # Original-Envelope-Id: our ENVID
    reporting_mta: str = ""
    arrival_date: str = ""
    original_message_id: str = ""
    original_headers: list[Header] = field(default_factory=list)
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    subject: str = ""
    from_address: str = ""
    recipients: list[RecipientReport] = field(default_factory=list)
    mdn: Disposition | None = None
    feedback: Feedback | None = None
    vendor: str = ""  # which server format a "bounce" was read as
    errors: list[str] = field(default_factory=list)  # what went wrong while parsing

    def original_header(self, name: str) -> str:
        """The first value of one header of the original message, or ""."""
        wanted = name.lower()
        return next((v for k, v in self.original_headers if k.lower() == wanted), "")
