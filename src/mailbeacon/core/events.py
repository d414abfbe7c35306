"""The event kinds and the record every event is stored as.

Tracking hits (open, click, download, honeypot) and what happens at sending
(sent, bounced, deferred) share one record and one ordered stream, so a
timeline or ``events --follow`` reads a single sequence. Names follow the
words users know from SendGrid/Postmark/SES where one exists.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any


class EventKind(enum.StrEnum):
    SENT = "sent"  # the relay accepted the copy
    BOUNCED = "bounced"  # refused (5xx at send time, or a bounce report later)
    DEFERRED = "deferred"  # 4xx until the attempts ran out
    OPEN = "open"  # the pixel was fetched
    CLICK = "click"  # a tracked link was followed
    DOWNLOAD = "download"  # a tracked attachment was fetched
    HONEYPOT = "honeypot"  # the invisible link was followed: not a person
    # What comes back (inbound reports, see docs/inbound.md); details in Event.detail.
    DELIVERED = "delivered"  # a DSN says delivered (or an MDN says processed)
    RELAYED = "relayed"  # handed to a server without DSN: no receipt can come from further on
    DELAYED = "delayed"  # a DSN says still trying
    COMPLAINED = "complained"  # an ARF feedback report (marked as spam)
    READ = "read"  # an MDN says displayed (detail: manual or automatic)
    RECEIPT_DENIED = "receipt_denied"  # an MDN refusing or failing to report
    RECEIPT_DELETED = "receipt_deleted"  # an MDN says deleted without being displayed
    AUTO_REPLIED = "auto_replied"  # an RFC 3834 auto-reply (vacation, out of office)
    REPLIED = "replied"  # a person answered

    @property
    def is_hit(self) -> bool:
        return self in HIT_KINDS


# The one definition of what a tracking hit is. A tuple of str enums, so it serves as it is
# in SQL (``kind.in_(HIT_KINDS)``), joined to other kinds (``HIT_KINDS + (...)``) and in tests.
HIT_KINDS = (EventKind.OPEN, EventKind.CLICK, EventKind.DOWNLOAD, EventKind.HONEYPOT)


@dataclass(slots=True)
class Event:
    kind: EventKind
    at: float
    campaign: int
    message: int  # the recipient copy; 0 when not tied to one (anonymous tracking)
    link: int = 0
    url: str = ""
    method: str = ""
    ip: str = ""
    user_agent: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    # Idempotency key: the store keeps one event per key (None: no such guard).
    key: str | None = None

    def values(self) -> tuple[Any, ...]:
        """The columns in ``COLUMNS`` order, as the store writes them."""
        return (
            str(self.kind),
            self.at,
            self.campaign,
            self.message,
            self.link,
            self.url,
            self.method,
            self.ip,
            self.user_agent,
            json.dumps(self.detail, sort_keys=True) if self.detail else "",
            self.key,
        )

    def row(self) -> dict[str, Any]:
        return dict(zip(COLUMNS, self.values(), strict=True))


COLUMNS = (
    "kind",
    "at",
    "campaign",
    "message",
    "link",
    "url",
    "method",
    "ip",
    "user_agent",
    "detail",
    "key",
)
