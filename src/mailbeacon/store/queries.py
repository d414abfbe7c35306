"""Read-side queries: report counts, the event stream and a recipient's timeline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mailbeacon.clock import iso
from mailbeacon.core.events import HIT_KINDS
from mailbeacon.core.metrics import Counts, LinkStats
from mailbeacon.core.verdicts import NO_CLIENT, Client, Hit, Verdict, client_of
from mailbeacon.store import rollups, stream
from mailbeacon.store.schema import campaigns, events, messages, rollup_copy, verdicts
from mailbeacon.store.sql import SqlStore
from mailbeacon.store.stream import START, Cursor


class UnknownCampaign(LookupError):
    pass


def campaign_id(store: SqlStore, name: str) -> int:
    with store.connect() as conn:
        found = conn.scalar(sa.select(campaigns.c.id).where(campaigns.c.name == name))
    if found is None:
        raise UnknownCampaign(name)
    return int(found)


def counts(store: SqlStore, campaign: int | None = None) -> Counts:
    """Raw figures: copies by the relay's status (an indexed count over the campaign's
    copies), hits from the rollups (``store.rollups``), never the events.

    Unique opens and clicks count only copies the relay accepted (``sent``), like the
    human figures: a pixel fetched for a refused copy stays in ``opens``, but a rate's
    numerator must be part of its denominator (docs/events.md)."""
    with store.connect() as conn:
        by_status = _copies_by_status(conn, campaign)
        hits = rollups.hit_totals(conn, campaign)
        opened, clicked = _accepted_uniques(conn, campaign)
        links = rollups.links(conn, campaign)

    def raw(kind: str, anonymous: bool | None = None) -> int:
        return sum(n for (k, a, _v), n in hits.items()
                   if k == kind and (anonymous is None or a == anonymous))

    return Counts(
        recipients=sum(by_status.values()), sent=by_status.get("sent", 0),
        bounced=by_status.get("bounced", 0), deferred=by_status.get("deferred", 0),
        queued=by_status.get("queued", 0),
        opens=raw("open"), unique_opens=opened,
        clicks=raw("click"), unique_clicks=clicked,
        downloads=raw("download"),
        anonymous_opens=raw("open", True), anonymous_clicks=raw("click", True),
        links=tuple(sorted((LinkStats(link.url, link.clicks, link.unique_copies)
                            for link in links), key=lambda s: (-s.clicks, s.url))),
    )


def _accepted_uniques(conn: Any, campaign: int | None) -> tuple[int, int]:
    """Accepted copies with an open or click ("seen"), and with a click: one pass over the
    campaign's accepted copies on the (campaign, status) index, a key probe per copy."""
    def has(family: str) -> Any:
        flag = sa.exists().where(rollup_copy.c.message == messages.c.id,
                                 rollup_copy.c.family == family, rollup_copy.c.key == "",
                                 rollup_copy.c.n > 0)
        return sa.func.coalesce(sa.func.sum(sa.case((flag, 1), else_=0)), 0)

    q = sa.select(has("seen"), has("click")).where(messages.c.status == "sent")
    if campaign is not None:
        q = q.where(messages.c.campaign == campaign)
    opened, clicked = conn.execute(q).one()
    return int(opened), int(clicked)


def _copies_by_status(conn: Any, campaign: int | None) -> dict[str, int]:
    q = sa.select(messages.c.status, sa.func.count()).group_by(messages.c.status)
    if campaign is not None:
        q = q.where(messages.c.campaign == campaign)
    return {str(s): int(n) for s, n in conn.execute(q)}


@dataclass(frozen=True)
class EventView:
    """An event as users read it: stable keys for ``events --json``."""

    id: int
    at: float
    kind: str
    campaign: str
    recipient: str | None
    message_id: str | None
    link: int
    url: str
    method: str
    ip: str
    user_agent: str
    detail: dict[str, Any]
    verdict: str | None = None  # hits only; None until the judge has seen it
    confidence: float | None = None
    reasons: tuple[str, ...] = ()
    tx: int = 0  # the writing transaction (PostgreSQL); with id, the stream position

    @property
    def cursor(self) -> Cursor:
        """Where a reader that has seen this event resumes the stream."""
        return Cursor(self.tx, self.id)

    @property
    def is_hit(self) -> bool:
        return self.kind in HIT_KINDS

    def client(self) -> Client:
        """Client, system and device; none for machine verdicts (they describe the machine)."""
        if not self.is_hit or self.verdict is None:
            return NO_CLIENT
        hit = Hit(self.id, self.kind, self.at, self.method, self.ip or None, self.user_agent)
        return client_of(hit, Verdict(self.verdict, self.confidence or 0.0, self.reasons))

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "at": iso(self.at), "kind": self.kind, "campaign": self.campaign,
            "recipient": self.recipient, "message_id": self.message_id, "link": self.link,
            "url": self.url, "method": self.method, "ip": self.ip,
            "user_agent": self.user_agent, "detail": self.detail, "cursor": str(self.cursor),
        }
        if self.is_hit:
            seen = self.client()
            body.update(verdict=self.verdict, confidence=self.confidence,
                        reasons=list(self.reasons), client=seen.client, os=seen.os,
                        device=seen.device if seen.family else None)
        return body


def _event_query() -> Any:
    current = sa.and_(verdicts.c.event == events.c.id, verdicts.c.current.is_(True))
    return (sa.select(events, campaigns.c.name.label("campaign_name"),
                      messages.c.recipient, messages.c.message_id,
                      verdicts.c.verdict, verdicts.c.confidence, verdicts.c.reasons)
            .select_from(events.outerjoin(campaigns, campaigns.c.id == events.c.campaign)
                         .outerjoin(messages, messages.c.id == events.c.message)
                         .outerjoin(verdicts, current)))


def _view(row: Any) -> EventView:
    return EventView(
        id=row.id, at=row.at, kind=row.kind, campaign=row.campaign_name or "",
        recipient=row.recipient, message_id=row.message_id, link=row.link, url=row.url,
        method=row.method, ip=row.ip, user_agent=row.user_agent,
        detail=json.loads(row.detail) if row.detail else {},
        verdict=row.verdict, confidence=row.confidence,
        reasons=tuple(json.loads(row.reasons)) if row.reasons else (), tx=row.tx,
    )


@dataclass(frozen=True)
class EventPage:
    """Events in commit order, and the cursor the next page starts from."""

    events: list[EventView]
    next: Cursor


def event_page(store: SqlStore, *, after: Cursor = START, limit: int = 100,
               campaign: int | None = None) -> EventPage:
    """The next ``limit`` events past ``after`` in commit order (see ``store.stream``)."""
    q = _event_query() if campaign is None else _event_query().where(
        events.c.campaign == campaign)
    with store.connect() as conn:
        start = stream.resolve(conn, after)
        views = [_view(r) for r in conn.execute(stream.after(q, start, store.dialect, limit))]
    return EventPage(views, views[-1].cursor if views else start)


def newest_events(store: SqlStore, *, limit: int = 100,
                  campaign: int | None = None) -> EventPage:
    """The last ``limit`` committed events, oldest first; ``next`` follows on after them."""
    q = _event_query() if campaign is None else _event_query().where(
        events.c.campaign == campaign)
    with store.connect() as conn:
        views = [_view(r) for r in conn.execute(stream.newest(q, store.dialect, limit))]
    views.reverse()
    return EventPage(views, views[-1].cursor if views else START)


def list_events(store: SqlStore, *, after: int | Cursor = 0, limit: int = 100,
                campaign: int | None = None, newest: bool = False) -> list[EventView]:
    """Events past ``after`` (a cursor or an event id) in commit order; ``newest`` takes
    the last ``limit`` instead."""
    if newest:
        return newest_events(store, limit=limit, campaign=campaign).events
    start = after if isinstance(after, Cursor) else Cursor(0, after)
    return event_page(store, after=start, limit=limit, campaign=campaign).events


def timeline(store: SqlStore, address: str) -> list[EventView]:
    """Every event of every copy sent to ``address``, oldest first."""
    q = (_event_query().where(messages.c.recipient == address.strip().lower())
         .order_by(events.c.at, events.c.id))
    with store.connect() as conn:
        return [_view(r) for r in conn.execute(q)]
