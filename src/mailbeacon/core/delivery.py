"""What a report means for one recipient copy, and the delivery figures (pure).

``events_for`` turns a parsed report (core.reports) that was matched to a copy
into events; ``tally`` turns the delivery events of many copies into counts,
and ``rates`` into rates. Definitions, also in docs/events.md "Delivery figures":

- ``sent``: copies the relay accepted; the denominator of every rate.
- ``delivered``: copies with a ``delivered`` event (a DSN saying delivered or
  expanded, or an MDN saying processed/dispatched). ``relayed``: copies handed
  to a server without DSN, from which no receipt can come; not in ``delivered``.
- ``bounced``: copies with a bounce *report* (after the relay accepted them);
  ``hard_bounced`` those with at least one hard one, ``soft_bounced`` the rest.
  Refusals at send time are ``bounced at send`` in the main figures.
- ``complained``, ``read`` (``read_manual`` of them by a person's action),
  ``replied``, ``auto_replied``: copies with at least one such event.
- delivered rate = delivered / sent; bounce rate = bounced / sent (hard and soft
  rates likewise); complaint rate = complained / sent; read-receipt rate =
  read / sent; reply rate = replied / sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mailbeacon.core.events import Event, EventKind
from mailbeacon.core.reports import RecipientReport, Report

DELIVERY_KINDS = (
    EventKind.DELIVERED, EventKind.RELAYED, EventKind.DELAYED, EventKind.BOUNCED,
    EventKind.COMPLAINED, EventKind.READ, EventKind.RECEIPT_DENIED, EventKind.RECEIPT_DELETED,
    EventKind.AUTO_REPLIED, EventKind.REPLIED,
)  # fmt: skip

_BY_ACTION = {
    "delivered": EventKind.DELIVERED,
    "expanded": EventKind.DELIVERED,
    "relayed": EventKind.RELAYED,
    "delayed": EventKind.DELAYED,
    "failed": EventKind.BOUNCED,
}
_BY_DISPOSITION = {
    "displayed": EventKind.READ,
    "deleted": EventKind.RECEIPT_DELETED,
    "denied": EventKind.RECEIPT_DENIED,
    "failed": EventKind.RECEIPT_DENIED,
    "processed": EventKind.DELIVERED,  # reached the mailbox; says nothing of reading
    "dispatched": EventKind.DELIVERED,
}


def _recipient_detail(r: RecipientReport) -> dict[str, Any]:
    detail = {
        "action": r.action,
        "status": r.status,
        "reason": r.reason,
        "hard": r.hard,
        "diagnostic": r.diagnostic[:500],
        "remote_mta": r.remote_mta,
        "final_recipient": r.recipient,
    }
    return {k: v for k, v in detail.items() if v != ""}


def _kind_of(report: Report, r: RecipientReport) -> EventKind:
    kind = _BY_ACTION.get(r.action)
    if kind is None:  # a vendor bounce without an Action field is a failure
        kind = EventKind.BOUNCED
    return kind


def events_for(
    report: Report,
    about: Sequence[RecipientReport],
    *,
    at: float,
    campaign: int,
    message: int,
    inbound: int,
    matched_by: str,
) -> list[Event]:
    """The events ``report`` means for one copy; ``about`` are its blocks for that copy."""
    base = {"inbound": inbound, "matched_by": matched_by, "report": report.kind}

    def event(kind: EventKind, **detail: Any) -> Event:
        return Event(kind, at, campaign, message, detail={**base, **detail})

    if report.kind in ("dsn", "bounce"):
        out = [
            event(
                _kind_of(report, r),
                **_recipient_detail(r),
                **({"source": "report"} if _kind_of(report, r) is EventKind.BOUNCED else {}),
            )
            for r in about
        ]
        return _dedupe(out)
    if report.kind == "mdn" and report.mdn is not None:
        d = report.mdn
        kind = _BY_DISPOSITION.get(d.type, EventKind.RECEIPT_DENIED)
        if "error" in d.modifiers or d.error:
            kind = EventKind.RECEIPT_DENIED
        return [
            event(
                kind,
                disposition=d.type,
                manual=d.action_mode != "automatic-action",
                action_mode=d.action_mode,
                sending_mode=d.sending_mode,
                modifiers=d.modifiers,
                reporting_ua=d.reporting_ua,
                final_recipient=d.final_recipient,
                error=d.error,
            )
        ]
    if report.kind == "arf" and report.feedback is not None:
        f = report.feedback
        return [
            event(
                EventKind.COMPLAINED,
                feedback_type=f.feedback_type,
                user_agent=f.user_agent,
                source_ip=f.source_ip,
                reported_domain=f.reported_domain,
                arrival_date=f.arrival_date,
            )
        ]
    if report.kind == "autoreply":
        return [
            event(
                EventKind.AUTO_REPLIED,
                subject=report.subject[:300],
                from_address=report.from_address,
            )
        ]
    if report.kind == "reply":
        return [
            event(EventKind.REPLIED, subject=report.subject[:300], from_address=report.from_address)
        ]
    return []


def _dedupe(events: list[Event]) -> list[Event]:
    """One event per kind: an expanded alias reports the same copy several times."""
    seen: dict[EventKind, Event] = {}
    for e in events:
        if e.kind not in seen or (e.kind is EventKind.BOUNCED and e.detail.get("hard")):
            seen[e.kind] = e
    return list(seen.values())


# -- figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryCounts:
    sent: int = 0
    delivered: int = 0
    relayed: int = 0
    delayed: int = 0
    bounced: int = 0
    hard_bounced: int = 0
    soft_bounced: int = 0
    complained: int = 0
    read: int = 0
    read_manual: int = 0
    receipts_denied: int = 0
    receipts_deleted: int = 0
    auto_replied: int = 0
    replied: int = 0
    suppressed: int = 0  # addresses on the suppression list (not per campaign)


@dataclass(frozen=True)
class DeliveryRates:
    delivered_rate: float | None
    bounce_rate: float | None
    hard_bounce_rate: float | None
    soft_bounce_rate: float | None
    complaint_rate: float | None
    read_receipt_rate: float | None
    reply_rate: float | None


def tally(
    rows: Iterable[tuple[str, int, dict[str, Any]]], *, sent: int, suppressed: int = 0
) -> DeliveryCounts:
    """Counts from (kind, message, detail) of delivery events; each copy counts once per kind."""
    copies: dict[str, set[int]] = {}
    hard: set[int] = set()
    manual: set[int] = set()
    for kind, message, detail in rows:
        if kind == EventKind.BOUNCED and detail.get("source") != "report":
            continue  # refused at send time: counted by the main figures
        copies.setdefault(kind, set()).add(message)
        if kind == EventKind.BOUNCED and detail.get("hard"):
            hard.add(message)
        if kind == EventKind.READ and detail.get("manual"):
            manual.add(message)
    bounced = copies.get(EventKind.BOUNCED, set())

    def n(kind: EventKind) -> int:
        return len(copies.get(kind, ()))

    return DeliveryCounts(
        sent=sent, delivered=n(EventKind.DELIVERED), relayed=n(EventKind.RELAYED),
        delayed=n(EventKind.DELAYED), bounced=len(bounced), hard_bounced=len(hard),
        soft_bounced=len(bounced - hard), complained=n(EventKind.COMPLAINED),
        read=n(EventKind.READ), read_manual=len(manual),
        receipts_denied=n(EventKind.RECEIPT_DENIED),
        receipts_deleted=n(EventKind.RECEIPT_DELETED),
        auto_replied=n(EventKind.AUTO_REPLIED), replied=n(EventKind.REPLIED),
        suppressed=suppressed,
    )  # fmt: skip


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def rates(c: DeliveryCounts) -> DeliveryRates:
    return DeliveryRates(
        delivered_rate=_ratio(c.delivered, c.sent),
        bounce_rate=_ratio(c.bounced, c.sent),
        hard_bounce_rate=_ratio(c.hard_bounced, c.sent),
        soft_bounce_rate=_ratio(c.soft_bounced, c.sent),
        complaint_rate=_ratio(c.complained, c.sent),
        read_receipt_rate=_ratio(c.read, c.sent),
        reply_rate=_ratio(c.replied, c.sent),
    )


def as_json(c: DeliveryCounts) -> dict[str, Any]:
    """The stable JSON shape of the "delivery" key of reports."""
    return {**asdict(c), **asdict(rates(c))}
