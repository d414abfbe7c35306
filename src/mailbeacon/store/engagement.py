"""Read-side figures for person vs machine, from the rollups the judge keeps
(``store.rollups``) and per-copy state: never a pass over the events."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from mailbeacon.core.metrics import (
    MACHINE,
    NOT_OPENED,
    OPENED_BY_PERSON,
    CopyState,
    Engagement,
    HumanLink,
    RecipientLine,
    copy_figures,
)
from mailbeacon.store import rollups
from mailbeacon.store.schema import events, messages, rollup_copy, verdicts
from mailbeacon.store.sql import SqlStore

PAGE = 1000  # copies read per query when listing recipients
TOP = 20  # clients and countries shown


def engagement(store: SqlStore, campaign: int | None = None) -> Engagement:
    with store.connect() as conn:
        hits = rollups.hit_totals(conn, campaign)
        copies = rollups.family(conn, campaign, "copies")
        links = rollups.links(conn, campaign)
        clients = rollups.family(conn, campaign, "client")
        devices = rollups.family(conn, campaign, "device")
        countries = rollups.family(conn, campaign, "country")
        figures = copy_figures(_accepted_copies(conn, campaign))

    def clicks(*wanted: str) -> int:  # clicks tied to a copy (honeypot included) by verdict
        return sum(n for (kind, anonymous, v), n in hits.items()
                   if kind in ("click", "honeypot") and not anonymous and v in wanted)

    return Engagement(
        unique_opens_by_verdict={k.split("/", 1)[1]: n for k, n in copies.items()
                                 if k.startswith("best/")},
        delivered=figures.delivered,
        opened_by_person=figures.opened_by_person,
        only_machines=figures.only_machines,
        not_opened=figures.not_opened,
        bounced_later=figures.bounced_later,
        bounced_after_open=figures.bounced_after_open,
        opened_elsewhere=copies.get("elsewhere", 0),
        human_clicks=hits.get(("click", False, "human"), 0),
        unique_human_clicks=figures.unique_human_clicks,
        machine_clicks=clicks(*MACHINE),
        self_clicks=clicks("self"),
        unknown_clicks=clicks("unknown"),
        human_links=tuple(sorted(
            (HumanLink(link.url, link.copy_clicks, link.human_clicks,
                       link.unique_human_copies) for link in links if link.copy_clicks),
            key=lambda link: (-link.human_clicks, link.url))),
        clients=_top(clients, TOP), devices=_top(devices, None),
        countries=_top(countries, TOP),
    )


def _top(table: dict[str, int], limit: int | None) -> dict[str, int]:
    return dict(sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])


def _accepted_copies(conn: Any, campaign: int | None) -> Iterator[CopyState]:
    """Each copy the relay accepted: the judge's engagement word, whether a bounce report
    came back for it and whether a person clicked in it. Human figures count these copies
    and no others. One grouped, indexed query over the campaign's copies."""
    bounced = sa.exists().where(events.c.message == messages.c.id, events.c.kind == "bounced")
    clicked = sa.exists().where(rollup_copy.c.message == messages.c.id,
                                rollup_copy.c.family == "human_click",
                                rollup_copy.c.key == "", rollup_copy.c.n > 0)
    b, c = bounced.label("bounced"), clicked.label("clicked")
    q = (sa.select(messages.c.engagement, b, c, sa.func.count())
         .where(messages.c.status == "sent")
         .group_by(messages.c.engagement, b, c))
    if campaign is not None:
        q = q.where(messages.c.campaign == campaign)
    for word, was_bounced, human_click, n in conn.execute(q):
        state = CopyState(word or NOT_OPENED, bool(was_bounced), bool(human_click))
        yield from itertools.repeat(state, int(n))


def recipients(store: SqlStore, campaign: int | None = None) -> list[RecipientLine]:
    """One line per copy: who, what the relay said, whether a person opened it."""
    return list(iter_recipients(store, campaign))


def who_opened(store: SqlStore, campaign: int | None = None) -> Iterator[RecipientLine]:
    """The copies a person opened, by recipient, page by page."""
    return iter_recipients(store, campaign, engagement_word=OPENED_BY_PERSON)


def iter_recipients(store: SqlStore, campaign: int | None = None, *,
                    engagement_word: str | None = None,
                    page: int = PAGE) -> Iterator[RecipientLine]:
    """The recipient lines in (recipient, copy) order, read ``page`` copies at a time on
    the (campaign, recipient, id) index, so a campaign of any size streams in bounded
    memory and no read holds a transaction open for long."""
    q = (sa.select(messages.c.id, messages.c.recipient, messages.c.status,
                   messages.c.engagement)
         .order_by(messages.c.recipient, messages.c.id).limit(page))
    if campaign is not None:
        q = q.where(messages.c.campaign == campaign)
    if engagement_word is not None:
        q = q.where(messages.c.engagement == engagement_word)
    after: tuple[str, int] | None = None
    while True:
        paged = q if after is None else q.where(
            sa.tuple_(messages.c.recipient, messages.c.id) > sa.tuple_(*after))
        with store.connect() as conn:
            rows = conn.execute(paged).all()
            ids = [r.id for r in rows]
            opens = rollups.copy_counts(conn, ids, "open")
            clicks = rollups.copy_counts(conn, ids, "click")
        for r in rows:
            yield RecipientLine(r.recipient, r.status, r.engagement or NOT_OPENED,
                                opens.get(r.id, 0), clicks.get(r.id, 0))
        if len(rows) < page:
            return
        after = (rows[-1].recipient, rows[-1].id)


def history(store: SqlStore, event: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A hit as recorded, and every verdict it has had, oldest first."""
    with store.connect() as conn:
        hit = conn.execute(sa.select(events).where(events.c.id == event)).first()
        rows = conn.execute(sa.select(verdicts).where(verdicts.c.event == event)
                            .order_by(verdicts.c.id))
        return (dict(hit._mapping) if hit else None), [dict(r._mapping) for r in rows]
