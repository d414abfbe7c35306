"""Rollups kept by delta equal a rebuild from the events, and give the figures the
old event-by-event report gave, after any mix of hits, evidence and re-judging; on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbeacon.core.metrics import (
    NOT_OPENED,
    PRECEDENCE,
    CopyState,
    HumanLink,
    copy_figures,
)
from mailbeacon.core.verdicts import ELSEWHERE, SenderProfile, Verdict, client_of, country
from mailbeacon.core.verdicts.model import Hit
from mailbeacon.judging import Judge, catch_up, rejudge_all
from mailbeacon.services import reporting
from mailbeacon.store import engagement, queries, rollups
from mailbeacon.store.schema import events, messages, verdicts
from mailbeacon.store.sql import NewMessage, SqlStore

T0 = 1_767_225_600.0
URLS = ("https://e.example/a", "https://e.example/b", "https://e.example/c")
AGENTS = ("Mozilla/5.0",  # Apple MPP's prefetch
          "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Mobile/15E148",
          "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
          "(via ggpht.com GoogleImageProxy)",
          "python-requests/2.31")
IPS = ("8.8.8.8", "198.51.100.4", "203.0.113.9", "1.1.1.1", "17.58.0.1")
OWN = Judge(sender=SenderProfile.of(("198.51.100.0/24",)))

hits = st.tuples(st.sampled_from(("open", "open", "click", "click", "download", "honeypot")),
                 st.floats(0, 3 * 86_400), st.integers(0, 3),  # copy index 3: anonymous
                 st.integers(0, 2), st.sampled_from(IPS), st.sampled_from(AGENTS))
steps = st.one_of(
    st.tuples(st.just("hits"), st.lists(hits, min_size=1, max_size=8)),
    st.tuples(st.just("evidence"), st.sampled_from(("delivered", "replied", "read",
                                                    "bounced")), st.integers(0, 2),
              st.floats(0, 86_400)),
    st.tuples(st.just("judge")),
    st.tuples(st.just("rejudge"), st.booleans()),
)


def _copies(store: SqlStore, name: str,
            statuses: tuple[str, ...] = ("sent",) * 3) -> tuple[int, list[int]]:
    """Three copies, with what the relay said of each (a refused copy's pixel can still
    be fetched: a forward of the token, a forgery)."""
    c = store.campaign(name, T0)
    ids = store.add_messages([NewMessage(c, "me@example.com", f"r{i}@example.net", "s",
                                         "identified") for i in range(3)], T0)
    for m in ids:
        store.set_prepared(m, f"<{m}.{name}@example.com>", list(URLS))
    with store.engine.begin() as conn:
        for m, status in zip(ids, statuses, strict=True):
            conn.execute(messages.update().where(messages.c.id == m).values(
                status=status, sent_at=T0))
    return c, ids


def _run(store: SqlStore, c: int, ids: list[int], plan: list[Any]) -> None:
    append = store.appender()
    try:
        for step in plan:
            if step[0] == "hits":
                append([(kind, T0 + at, c, ids[i] if i < 3 else 0, link + 1,
                         URLS[link] if kind == "click" else "", "GET", ip, ua, "")
                        for kind, at, i, link, ip, ua in step[1]])
            elif step[0] == "evidence":
                _, kind, i, at = step
                append([(kind, T0 + at, c, ids[i], 0, "", "", "", "", "")])
            elif step[0] == "judge":
                catch_up(store, Judge(), T0 + 4 * 86_400, settle=10.0)
            else:
                rejudge_all(store, OWN if step[1] else Judge(), T0 + 4 * 86_400)
    finally:
        append.close()
    catch_up(store, Judge(), T0 + 4 * 86_400, settle=10.0)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=st.lists(steps, min_size=1, max_size=8),
       statuses=st.tuples(*[st.sampled_from(("sent", "sent", "bounced", "deferred",
                                              "queued"))] * 3))
def test_incremental_rollups_equal_a_rebuild_and_the_old_figures(
        store: SqlStore, plan: list[Any], statuses: tuple[str, ...]) -> None:
    name = f"c{store.count_events()}"
    c, ids = _copies(store, name, statuses)
    _run(store, c, ids, plan)
    with store.connect() as conn:
        incremental = rollups.snapshot(conn)
    rollups.rebuild(store.engine)
    with store.connect() as conn:
        assert rollups.snapshot(conn) == incremental
    for scope in (c, None):
        assert queries.counts(store, scope) == _old_counts(store, scope)
        assert engagement.engagement(store, scope) == _old_engagement(store, scope)
        assert _hourly_total(store, scope) == _judged_hits(store, scope)
        assert_rates_are_rates(store, None if scope is None else name)


def assert_rates_are_rates(store: SqlStore, name: str | None) -> None:
    """Every rate of the report (raw and human), as ``report --json`` prints it, is in
    [0, 1] or null: each numerator counts only copies its denominator counts."""
    body = reporting.build(store, name, judge=False, now=T0).as_json()
    found = {k: v for k, v in body.items() if k.endswith("_rate")}
    found |= {f"human.{k}": v for k, v in body["human"].items() if k.endswith("_rate")}
    assert len(found) == 6
    assert all(v is None or 0.0 <= v <= 1.0 for v in found.values()), found


def test_rebuild_reads_in_chunks_and_replaces_what_was_there(store: SqlStore) -> None:
    c, ids = _copies(store, "spring")
    _run(store, c, ids, [("hits", [("open", 10.0 * i, i % 3, 0, "8.8.8.8", AGENTS[1])
                                   for i in range(7)]), ("judge",)])
    with store.connect() as conn:
        before = rollups.snapshot(conn)
    with store.engine.begin() as conn:  # damage: a counter nobody moved
        conn.execute(sa.text("UPDATE rollup_counters SET n = n + 5"))
    assert rollups.rebuild(store.engine, chunk=2) == 7
    with store.connect() as conn:
        assert rollups.snapshot(conn) == before
    with store.connect() as conn:
        assert sum(n for _, _, _, n in rollups.hourly(conn, c)) == 7


def test_recipients_stream_page_by_page_in_order(store: SqlStore) -> None:
    c, ids = _copies(store, "news")
    _run(store, c, ids, [("hits", [("open", 100, 1, 0, "8.8.8.8", AGENTS[1]),
                                   ("click", 200, 1, 2, "8.8.8.8", AGENTS[1])])])
    lines = list(engagement.iter_recipients(store, c, page=2))
    assert [(r.recipient, r.opens, r.clicks) for r in lines] == [
        ("r0@example.net", 0, 0), ("r1@example.net", 1, 1), ("r2@example.net", 0, 0)]
    assert [r.recipient for r in engagement.who_opened(store, c)] == ["r1@example.net"]


def _hourly_total(store: SqlStore, scope: int | None) -> int:
    with store.connect() as conn:
        return sum(n for _, _, _, n in rollups.hourly(conn, scope))


def _judged_hits(store: SqlStore, scope: int | None) -> int:
    q = (sa.select(sa.func.count()).select_from(events.join(verdicts, sa.and_(
        verdicts.c.event == events.c.id, verdicts.c.current.is_(True)))))
    with store.connect() as conn:
        return int(conn.scalar(q if scope is None else q.where(events.c.campaign == scope)))


# -- the oracle: the report as it was computed before rollups, event by event -------------


def _scoped(q: Any, scope: int | None) -> Any:
    return q if scope is None else q.where(events.c.campaign == scope)


def _old_counts(store: SqlStore, scope: int | None) -> queries.Counts:
    from mailbeacon.core.metrics import Counts, LinkStats
    with store.connect() as conn:
        m = sa.select(messages.c.status, sa.func.count()).group_by(messages.c.status)
        by_status = dict(conn.execute(m if scope is None else m.where(
            messages.c.campaign == scope)).all())
        rows = conn.execute(_scoped(sa.select(events.c.kind, events.c.message, events.c.url)
                                    .where(events.c.kind.in_(("open", "click", "download"))),
                                    scope)).all()
        accepted = set(conn.scalars(sa.select(messages.c.id)
                                    .where(messages.c.status == "sent")))
    raw = Counter((r.kind, r.message == 0) for r in rows)
    opened = {r.message for r in rows if r.kind in ("open", "click") and r.message in accepted}
    clicked = [r for r in rows if r.kind == "click"]
    per_url: dict[str, list[int]] = {}
    for r in clicked:
        per_url.setdefault(r.url, []).append(r.message)
    return Counts(
        recipients=sum(by_status.values()), sent=by_status.get("sent", 0),
        bounced=by_status.get("bounced", 0), deferred=by_status.get("deferred", 0),
        queued=by_status.get("queued", 0),
        opens=raw[("open", False)] + raw[("open", True)], unique_opens=len(opened),
        clicks=len(clicked),
        unique_clicks=len({r.message for r in clicked if r.message in accepted}),
        downloads=raw[("download", False)] + raw[("download", True)],
        anonymous_opens=raw[("open", True)], anonymous_clicks=raw[("click", True)],
        links=tuple(sorted((LinkStats(u, len(ms), len({m for m in ms if m}))
                            for u, ms in per_url.items()), key=lambda s: (-s.clicks, s.url))))


def _old_engagement(store: SqlStore, scope: int | None) -> Any:
    from mailbeacon.core.metrics import Engagement
    current = sa.and_(verdicts.c.event == events.c.id, verdicts.c.current.is_(True))
    verdict = sa.func.coalesce(verdicts.c.verdict, "unknown").label("verdict")
    q = (sa.select(events.c.id, events.c.kind, events.c.message, events.c.url,
                   events.c.user_agent, events.c.ip, events.c.at, events.c.method,
                   verdict, verdicts.c.reasons)
         .select_from(events.outerjoin(verdicts, current))
         .where(events.c.kind.in_(("open", "click", "download", "honeypot")),
                events.c.message != 0))
    bounced = sa.exists().where(events.c.message == messages.c.id, events.c.kind == "bounced")
    a = sa.select(messages.c.id, messages.c.engagement, bounced).where(
        messages.c.status == "sent")
    with store.connect() as conn:
        rows = conn.execute(_scoped(q, scope)).all()
        accepted = conn.execute(a if scope is None else a.where(
            messages.c.campaign == scope)).all()
    best: dict[int, str] = {}
    for r in rows:
        if r.kind != "honeypot" and (r.message not in best or PRECEDENCE.index(r.verdict)
                                     < PRECEDENCE.index(best[r.message])):
            best[r.message] = r.verdict
    clicks = [r for r in rows if r.kind in ("click", "honeypot")]
    human = [r for r in clicks if r.kind == "click" and r.verdict == "human"]
    figures = copy_figures(CopyState(w or NOT_OPENED, bool(b), m in {r.message for r in human})
                           for m, w, b in accepted)
    links: dict[str, list[Any]] = {}
    for r in clicks:
        if r.kind == "click":
            links.setdefault(r.url, []).append(r)
    clients, devices, countries = Counter[str](), Counter[str](), Counter[str]()
    for r in rows:
        if r.verdict in ("human", "unknown"):
            seen = client_of(Hit(r.id, r.kind, r.at, r.method, r.ip or None, r.user_agent),
                             Verdict(r.verdict, 0.0, ()))
            clients[seen.family or "unknown"] += 1
            devices[seen.device] += 1
            if place := country(r.ip):
                countries[place] += 1
    return Engagement(
        unique_opens_by_verdict=dict(Counter(best.values())),
        delivered=figures.delivered, opened_by_person=figures.opened_by_person,
        only_machines=figures.only_machines, not_opened=figures.not_opened,
        bounced_later=figures.bounced_later, bounced_after_open=figures.bounced_after_open,
        opened_elsewhere=len({r.message for r in rows if r.reasons and ELSEWHERE in r.reasons}),
        human_clicks=len(human), unique_human_clicks=figures.unique_human_clicks,
        machine_clicks=sum(1 for r in clicks if r.verdict in ("prefetch", "scanner")),
        self_clicks=sum(1 for r in clicks if r.verdict == "self"),
        unknown_clicks=sum(1 for r in clicks if r.verdict == "unknown"),
        human_links=tuple(sorted(
            (HumanLink(u, len(rs), sum(1 for r in rs if r.verdict == "human"),
                       len({r.message for r in rs if r.verdict == "human"}))
             for u, rs in links.items()), key=lambda link: (-link.human_clicks, link.url))),
        clients=dict(clients), devices=dict(devices), countries=dict(countries))
