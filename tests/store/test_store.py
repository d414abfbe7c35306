"""The store, on SQLite and PostgreSQL alike: migrations, messages, events, reports."""

from __future__ import annotations

import json

import sqlalchemy as sa

from mailbeacon.core.events import Event, EventKind
from mailbeacon.judging import Judge, catch_up
from mailbeacon.store import queries, schema
from mailbeacon.store.sql import NewMessage, SqlStore, open_store

NOW = 1_767_225_600.0


def _hit(kind: str, campaign: int, message: int, link: int = 0, url: str = "") -> tuple:
    return (kind, NOW + 5, campaign, message, link, url, "GET", "192.0.2.1", "UA", "")


def test_fresh_store_has_every_migration(store: SqlStore) -> None:
    assert store.applied_migrations() == [name for name, _ in schema.MIGRATIONS]
    assert store.migrate(NOW) == []  # idempotent


def test_old_database_is_upgraded(store_url: str) -> None:
    engine = sa.create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    legacy = SqlStore(engine)
    assert legacy.migrate(NOW, upto=1) == ["0001_initial"]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO events (at, kind, campaign, message, link, url, method, ip, "
            "user_agent, detail) VALUES (1, 'open', 1, 1, 0, '', 'GET', '', '', '')"))
    legacy.close()
    upgraded = open_store(store_url, now=NOW)
    assert upgraded.applied_migrations() == [name for name, _ in schema.MIGRATIONS]
    assert upgraded.count_events("open") == 1  # data kept across the upgrade
    assert {i["name"] for i in sa.inspect(upgraded.engine).get_indexes("events")} >= {
        "ix_events_campaign_kind", "ix_events_message_kind"}
    upgraded.close()


def test_a_store_judged_before_rollups_reports_the_same_after_the_upgrade(
        store_url: str) -> None:
    """Verdicts written before migration 0008 are counted into the rollups by the upgrade."""
    engine = sa.create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    legacy = SqlStore(engine)
    legacy.migrate(NOW, upto=[n for n, _ in schema.MIGRATIONS].index("0008_rollups"))
    campaign = legacy.campaign("spring", NOW)
    [copy] = legacy.add_messages([NewMessage(campaign, "a@example.com", "b@example.org",
                                             "Hi", "identified")], NOW)
    legacy.appender()([_hit("open", campaign, copy), _hit("open", campaign, copy),
                       _hit("click", campaign, copy, 1, "https://a.example/")])
    with engine.begin() as conn:  # sent, and judged as the judge of that version left it
        conn.execute(schema.messages.update().values(status="sent", sent_at=NOW))
        ids = list(conn.scalars(sa.select(schema.events.c.id).order_by(schema.events.c.id)))
        conn.execute(schema.verdicts.insert(), [
            {"event": e, "message": copy, "verdict": "human", "confidence": 0.8,
             "reasons": "[]", "judged_at": NOW, "current": True} for e in ids])
    legacy.close()
    upgraded = open_store(store_url, now=NOW)
    try:
        counts = queries.counts(upgraded, campaign)
        assert (counts.opens, counts.clicks, counts.unique_opens) == (2, 1, 1)
    finally:
        upgraded.close()


def test_campaign_is_get_or_create(store: SqlStore) -> None:
    first = store.campaign("spring", NOW)
    assert store.campaign("spring", NOW) == first
    assert store.campaign("autumn", NOW) != first


def test_report_counts_totals_and_uniques(store: SqlStore) -> None:
    c = store.campaign("news", NOW)
    ids = store.add_messages([NewMessage(c, "me@example.com", f"r{i}@Example.org", "Hi",
                                         "identified") for i in range(4)], NOW)
    for i, status in zip(ids, ["sent", "sent", "bounced", "deferred"], strict=True):
        store.record_send(i, Event(EventKind(status), NOW, c, i), code=250, detail="ok",
                          dsn=True)
    append = store.appender()
    append([_hit("open", c, ids[0])] * 3 + [_hit("click", c, ids[0], 1, "https://a.example/")]
           + [_hit("click", c, ids[1], 2, "https://b.example/")] * 2
           + [_hit("open", c, 0)])  # anonymous
    append.close()
    catch_up(store, Judge(), NOW + 60, settle=10.0)  # reports count what the judge has seen
    counts = queries.counts(store, c)
    assert (counts.recipients, counts.sent, counts.bounced, counts.deferred) == (4, 2, 1, 1)
    assert (counts.opens, counts.unique_opens) == (4, 2)  # the click opens ids[1]
    assert (counts.clicks, counts.unique_clicks) == (3, 2)
    assert counts.anonymous_opens == 1
    assert [(link.url, link.clicks, link.unique_clicks) for link in counts.links] == [
        ("https://b.example/", 2, 1), ("https://a.example/", 1, 1)]
    assert queries.counts(store, store.campaign("other", NOW)).sent == 0


def test_events_and_timeline(store: SqlStore) -> None:
    c = store.campaign("news", NOW)
    [m] = store.add_messages([NewMessage(c, "me@example.com", "Ann@Example.org", "Hi",
                                         "identified")], NOW)
    store.set_prepared(m, "<abc@example.com>", ["https://a.example/"])
    store.record_send(m, Event(EventKind.SENT, NOW, c, m, detail={"code": 250}), code=250,
                      detail="2.0.0 ok", dsn=False)
    append = store.appender()
    append([_hit("open", c, m), _hit("click", c, m, 1, "https://a.example/")])
    append.close()
    views = queries.list_events(store)
    assert [v.kind for v in views] == ["sent", "open", "click"]
    assert views[0].recipient == "ann@example.org" and views[0].message_id == "<abc@example.com>"
    assert views[0].detail == {"code": 250}
    assert json.loads(json.dumps(views[2].as_json()))["url"] == "https://a.example/"
    assert [v.kind for v in queries.list_events(store, after=views[0].id)] == ["open", "click"]
    assert [v.kind for v in queries.list_events(store, limit=1, newest=True)] == ["click"]
    assert [v.kind for v in queries.timeline(store, "ANN@example.org ")] == [
        "sent", "open", "click"]
    assert store.message_rows([m])[0]["status"] == "sent"


def test_attachments(store: SqlStore) -> None:
    aid = store.put_attachment("report é.pdf", "application/pdf", b"%PDF-1.4\x00\xff", NOW)
    got = store.get_attachment(aid)
    assert got is not None and got.data == b"%PDF-1.4\x00\xff" and got.filename == "report é.pdf"
    assert store.get_attachment(aid + 1000) is None
