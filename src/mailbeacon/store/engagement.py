"""Read-side queries for person-vs-machine figures (the judge writes the verdicts)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa

from mailbeacon.core.metrics import (
    NOT_OPENED,
    CopyState,
    Engagement,
    HumanLink,
    RecipientLine,
    copy_figures,
)
from mailbeacon.core.verdicts import ELSEWHERE, client_of, country
from mailbeacon.core.verdicts.model import Hit, Verdict
from mailbeacon.store.schema import events, messages, verdicts
from mailbeacon.store.sql import SqlStore

OPENING = ("open", "click", "download")
# Which verdict speaks for a copy's opens: the most person-like one it has.
PRECEDENCE = ("human", "proxy", "unknown", "prefetch", "scanner", "self")
PERSON = ("human", "proxy")


def _current() -> Any:
    return sa.and_(verdicts.c.event == events.c.id, verdicts.c.current.is_(True))


def _scoped(q: Any, campaign: int | None) -> Any:
    return q if campaign is None else q.where(events.c.campaign == campaign)


def engagement(store: SqlStore, campaign: int | None = None,
               country_db: Any = None) -> Engagement:
    verdict = sa.func.coalesce(verdicts.c.verdict, "unknown").label("verdict")
    hits = (sa.select(events.c.id, events.c.kind, events.c.message, events.c.url,
                      events.c.user_agent, events.c.ip, events.c.at, events.c.method,
                      verdict, verdicts.c.reasons)
            .select_from(events.outerjoin(verdicts, _current()))
            .where(events.c.kind.in_((*OPENING, "honeypot")), events.c.message != 0))
    with store.connect() as conn:
        rows = list(conn.execute(_scoped(hits, campaign)))
        accepted = _accepted_copies(conn, campaign)
    best: dict[int, str] = {}
    for r in rows:
        if r.kind in OPENING:
            prior = best.get(r.message)
            if prior is None or PRECEDENCE.index(r.verdict) < PRECEDENCE.index(prior):
                best[r.message] = r.verdict
    clicks = [r for r in rows if r.kind in ("click", "honeypot")]
    human_clicks = [r for r in clicks if r.kind == "click" and r.verdict == "human"]
    clicked = {r.message for r in human_clicks}
    figures = copy_figures(CopyState(status, bounced, copy in clicked)
                           for copy, (status, bounced) in accepted.items())
    links: dict[str, list[Any]] = {}
    for r in clicks:
        if r.kind == "click":
            links.setdefault(r.url, []).append(r)
    clients, devices, countries = Counter[str](), Counter[str](), Counter[str]()
    for r in rows:
        if r.verdict not in ("human", "unknown"):
            continue  # a proxy's or a scanner's device and place describe the machine
        seen = client_of(_as_hit(r), Verdict(r.verdict, 0.0, ()))
        clients[seen.family or "unknown"] += 1
        devices[seen.device] += 1
        place = country(r.ip, country_db) if r.ip else None
        if place:
            countries[place] += 1
    return Engagement(
        unique_opens_by_verdict=dict(Counter(best.values())),
        delivered=figures.delivered,
        opened_by_person=figures.opened_by_person,
        only_machines=figures.only_machines,
        not_opened=figures.not_opened,
        bounced_later=figures.bounced_later,
        bounced_after_open=figures.bounced_after_open,
        opened_elsewhere=len({r.message for r in rows if r.reasons and ELSEWHERE in r.reasons}),
        human_clicks=len(human_clicks),
        unique_human_clicks=figures.unique_human_clicks,
        machine_clicks=sum(1 for r in clicks if r.verdict in ("prefetch", "scanner")),
        self_clicks=sum(1 for r in clicks if r.verdict == "self"),
        unknown_clicks=sum(1 for r in clicks if r.verdict == "unknown"),
        human_links=tuple(sorted(
            (HumanLink(url, len(rs), sum(1 for r in rs if r.verdict == "human"),
                       len({r.message for r in rs if r.verdict == "human"})) for url, rs
             in links.items()), key=lambda link: (-link.human_clicks, link.url))),
        clients=dict(clients.most_common(20)), devices=dict(devices),
        countries=dict(countries.most_common(20)),
    )


def _accepted_copies(conn: Any, campaign: int | None) -> dict[int, tuple[str, bool]]:
    """Each copy the relay accepted: the judge's engagement word, and whether a bounce
    report came back for it. Human figures count these copies and no others."""
    bounced = sa.exists().where(events.c.message == messages.c.id, events.c.kind == "bounced")
    q = sa.select(messages.c.id, messages.c.engagement, bounced).where(
        messages.c.status == "sent")
    if campaign is not None:
        q = q.where(messages.c.campaign == campaign)
    return {int(m): (word or NOT_OPENED, bool(b)) for m, word, b in conn.execute(q)}


def _as_hit(r: Any) -> Hit:
    return Hit(id=r.id, kind=r.kind, at=r.at, method=r.method, ip=r.ip or None,
               user_agent=r.user_agent)


def recipients(store: SqlStore, campaign: int | None = None) -> list[RecipientLine]:
    """One line per copy: who, what the relay said, whether a person opened it."""
    opens = sa.func.sum(sa.case((events.c.kind == "open", 1), else_=0))
    clicks = sa.func.sum(sa.case((events.c.kind == "click", 1), else_=0))
    q = (sa.select(messages.c.recipient, messages.c.status, messages.c.engagement,
                   sa.func.coalesce(opens, 0), sa.func.coalesce(clicks, 0))
         .select_from(messages.outerjoin(events, events.c.message == messages.c.id))
         .group_by(messages.c.id, messages.c.recipient, messages.c.status,
                   messages.c.engagement)
         .order_by(messages.c.recipient, messages.c.id))
    if campaign is not None:
        q = q.where(messages.c.campaign == campaign)
    with store.connect() as conn:
        return [RecipientLine(r, s, e or "not opened", int(o), int(c))
                for r, s, e, o, c in conn.execute(q)]


def history(store: SqlStore, event: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A hit as recorded, and every verdict it has had, oldest first."""
    with store.connect() as conn:
        hit = conn.execute(sa.select(events).where(events.c.id == event)).first()
        rows = conn.execute(sa.select(verdicts).where(verdicts.c.event == event)
                            .order_by(verdicts.c.id))
        return (dict(hit._mapping) if hit else None), [dict(r._mapping) for r in rows]
