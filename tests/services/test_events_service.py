"""services.events on a real store, fed by real sending and a real report: the stream the
CLI and /api/events read is one implementation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailbeacon.clock import FixedClock
from mailbeacon.inbound.pipeline import Pipeline
from mailbeacon.services import events
from mailbeacon.store.sql import SqlStore
from mailbeacon.store.stream import START
from mailbeacon.web.app import api
from reportmail import Copy, dsn, send_tracked
from smtpserver import SmtpSink

Sent = tuple[dict[str, Copy], Pipeline]


@pytest.fixture
def sent(store: SqlStore, smtp_sink: SmtpSink, tmp_path: Path) -> Sent:
    clock = FixedClock()
    copies, keyring, config = send_tracked(store, smtp_sink, tmp_path / "data", clock)
    clock.advance(600)
    return copies, Pipeline.from_config(config, store, keyring, clock)


def test_a_campaign_is_named_or_the_error_says_which(sent: Sent, store: SqlStore) -> None:
    assert events.campaign_id(store, None) is None
    spring = events.campaign_id(store, "spring")
    assert isinstance(spring, int)
    assert [v.kind for v in events.recent(store, limit=10, campaign=spring).events] == ["sent"] * 3
    with pytest.raises(events.UnknownCampaign, match=r"^no campaign named 'autumn'$"):
        events.campaign_id(store, "autumn")


@pytest.mark.parametrize("limit", [0, events.MAX_PAGE + 1])
def test_a_page_out_of_range_is_refused(store: SqlStore, limit: int) -> None:
    with pytest.raises(events.BadPage, match=rf"^limit must be 1 to {events.MAX_PAGE}$"):
        events.page(store, limit=limit)


def test_the_api_pages_the_stream_as_the_service_does(sent: Sent, store: SqlStore) -> None:
    copies, pipeline = sent
    pipeline.receive(dsn(copies["ann@example.org"], "delivered", "2.0.0"), source="file")
    first = events.page(store, after=START, limit=2)
    rest = events.page(store, after=first.next, limit=100)
    got, more, refused = asyncio.run(_api_pages(store))
    assert got.json() == [v.as_json() for v in first.events]
    assert more.json() == [v.as_json() for v in rest.events]
    assert [v["kind"] for v in got.json() + more.json()] == ["sent"] * 3 + ["delivered"]
    assert (refused.status_code, refused.json()) == (400, {"error": "limit must be 1 to 1000"})


async def _api_pages(store: SqlStore) -> tuple[Any, Any, Any]:
    transport = httpx.ASGITransport(app=api(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://mb") as client:
        got = await client.get("/api/events", params={"limit": "2"})
        more = await client.get("/api/events", params={"after": got.headers["X-Next-Cursor"]})
        refused = await client.get("/api/events", params={"limit": "0"})
    return got, more, refused


def test_follow_brings_each_new_event_once(sent: Sent, store: SqlStore) -> None:
    copies, pipeline = sent
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # the second nap is when a report comes back
        naps.append(seconds)
        if len(naps) == 2:
            pipeline.receive(dsn(copies["bob@example.org"], "delivered", "2.0.0"), source="file")

    start = events.recent(store, limit=50).next
    batch = next(events.follow(store, start, interval=0.25, sleep=sleep))
    assert naps == [0.25, 0.25]  # the first poll found nothing and yielded nothing
    assert [(v.kind, v.recipient) for v in batch] == [("delivered", "bob@example.org")]


def test_timeline_and_explain(sent: Sent, store: SqlStore) -> None:
    [view] = events.timeline(store, "Cat@example.net ")
    assert (view.kind, view.recipient) == ("sent", "cat@example.net")
    told = events.explain(store, view.id)
    assert (told.hit["kind"], told.verdicts) == ("sent", [])
    assert told.as_json()["event"]["id"] == view.id
    with pytest.raises(events.NoSuchEvent, match=r"^no event 999999$"):
        events.explain(store, 999_999)
