"""The incremental judge gives exactly the verdicts and engagement today's judge gave.

Today's judge (kept below, and only here) re-judged every touched copy on all its
events on every pass, so once it has caught up, each copy's verdicts are
``judge`` over all the copy's hits and evidence: that is what it is compared
with. Random streams of hits and evidence (deliveries, replies, receipts, link
count and send time changes, each followed by a later event of that copy, as
in life: the old judge only looked at a copy again when the stream touched it)
arrive in random passes of random sizes; the new judge runs between them with
small windows and caps, so copies go through the whole, windowed and deferred
paths.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from mailbeacon import judging
from mailbeacon.core.verdicts import Evidence, Hit, SenderProfile, judge, message_status
from mailbeacon.judging import Judge, catch_up, rejudge_all
from mailbeacon.store import copies
from mailbeacon.store.schema import copy_state, events, messages, verdicts
from mailbeacon.store.sql import NewMessage, SqlStore

T0 = 1_767_225_600.0
HIT_KINDS = ("open", "click", "download", "honeypot")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Mobile/15E148")
THUNDERBIRD = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.0"
AGENTS = (FIREFOX, IPHONE, THUNDERBIRD, "Mozilla/5.0", "GoogleImageProxy", "curl/8.0", "")
ADDRESSES = ("198.51.100.4", "198.51.100.9", "203.0.113.7", "192.0.2.1", "2001:db8::1", "")
OWN = SenderProfile.of(("192.0.2.0/24",), ("Thunderbird",))


# -- today's judge, as it was: every copy judged on all its events ---------------------


def old_verdicts(store: SqlStore, own: SenderProfile, now: float) -> tuple[
        dict[int, tuple[str, float, str]], dict[int, str | None]]:
    """Every hit's verdict and every copy's engagement as today's judge leaves them."""
    with store.connect() as conn:
        rows = list(conn.execute(sa.select(events).where(
            events.c.kind.in_((*HIT_KINDS, "delivered", "replied", "read")))
            .order_by(events.c.id)))
        copies = {r.id: r for r in conn.execute(sa.select(messages))}
    by_copy: dict[int, list[Any]] = {}
    found: dict[int, tuple[str, float, str]] = {}
    for r in rows:
        if r.message:
            by_copy.setdefault(r.message, []).append(r)
        elif r.kind in HIT_KINDS:
            hit = _hit(r)
            v = judge([hit], Evidence(sent_at=hit.at - 86_400), own)[hit.id]
            found[hit.id] = (v.verdict, round(v.confidence, 2), json.dumps(list(v.reasons)))
    engagement: dict[int, str | None] = {}
    for m, copy_events in by_copy.items():
        row = copies.get(m)
        hits = [_hit(e) for e in copy_events if e.kind in HIT_KINDS]
        evidence = _evidence(row, copy_events, hits, now)
        for hid, v in judge(hits, evidence, own).items():
            found[hid] = (v.verdict, round(v.confidence, 2), json.dumps(list(v.reasons)))
        if row is not None:
            answered = evidence.replied_at or evidence.read_receipt_at
            engagement[m] = (message_status(hits, judge(hits, evidence, own), evidence)
                             if hits or answered else None)
    return found, engagement


def _evidence(row: Any, copy_events: list[Any], hits: list[Hit], now: float) -> Evidence:
    if row is None:
        sent_at, links = min((h.at for h in hits), default=now), 0
    else:
        sent_at, links = row.sent_at or row.created_at, len(json.loads(row.links or "[]"))
    return Evidence(sent_at=sent_at, link_count=links,
                    delivered_at=_first(copy_events, "delivered"),
                    replied_at=_first(copy_events, "replied"),
                    read_receipt_at=_first(copy_events, "read", manual_only=True))


def _first(rows: list[Any], kind: str, manual_only: bool = False) -> float | None:
    times = []
    for e in rows:
        if e.kind != kind:
            continue
        if manual_only:
            detail = json.loads(e.detail) if e.detail else {}
            if detail.get("action_mode", "manual-action") != "manual-action":
                continue
        times.append(float(e.at))
    return min(times, default=None)


def _hit(e: Any) -> Hit:
    return Hit(id=int(e.id), kind=e.kind, at=float(e.at), method=e.method or "GET",
               ip=e.ip or None, user_agent=e.user_agent or "", link=int(e.link or 0))


# -- what the new judge left -------------------------------------------------------------


def new_verdicts(store: SqlStore) -> tuple[dict[int, tuple[str, float, str]],
                                           dict[int, str | None]]:
    with store.connect() as conn:
        current = conn.execute(sa.select(verdicts.c.event, verdicts.c.verdict,
                                         verdicts.c.confidence, verdicts.c.reasons)
                               .where(verdicts.c.current.is_(True))).all()
        engagement = dict(conn.execute(sa.select(messages.c.id, messages.c.engagement)).all())
    assert len(current) == len({r.event for r in current}), "one current verdict per hit"
    return ({r.event: (r.verdict, round(r.confidence, 2), r.reasons) for r in current},
            engagement)


# -- random streams ------------------------------------------------------------------------


class Stream:
    """A few copies and the events that arrive for them, written as the server writes."""

    def __init__(self, store: SqlStore, rng: random.Random, hits_only: bool = False):
        self.store, self.rng = store, rng
        # hits alone: no evidence makes the judge take a copy whole, so the windows do it all
        self.weights = [30, 30, 3, 2, 0, 0, 0, 0, 0] if hits_only else [30, 30, 3, 2, 4, 1, 2, 2, 1]
        self.campaign = store.campaign("c", T0)
        new = [NewMessage(self.campaign, "me@example.com", f"r{i}@example.net", "s",
                          "identified") for i in range(4)]
        self.copies = store.add_messages(new, T0)
        for m in self.copies:
            self._links(m, rng.choice([0, 2, 3, 4]))
        self.unknown = max(self.copies) + 1000  # a signed token for a copy not stored
        self.clock = T0 + rng.choice([0.5, 30.0, 3600.0])
        self.append = store.appender()

    def _links(self, m: int, n: int) -> None:
        self.store.set_prepared(m, f"<{m}@example.com>", [f"https://e.example/{i}"
                                                          for i in range(n)])

    def events(self, n: int) -> None:
        """``n`` random events, crowded in time so that the windows fill up."""
        rng, rows = self.rng, []
        for _ in range(n):
            self.clock += rng.choice([0.0, 0.3, 1.0, 2.5, 4.0, 9.0, 31.0, 600.0])
            m = rng.choice([*self.copies, *self.copies, self.unknown, 0])
            at = self.clock - rng.choice([0.0, 0.0, 0.0, 12.0, 45.0])  # some arrive late
            kind = rng.choices(["open", "click", "download", "honeypot", "delivered",
                                "replied", "read", "links", "sent"],
                               self.weights)[0]
            if m in (0, self.unknown) and kind not in HIT_KINDS:
                kind = "open"
            if kind in ("links", "sent"):  # a messages row change, then an event of the copy
                self._change(m, kind, at)
                kind = "open"
            detail = ""
            if kind == "read":
                detail = json.dumps({"action_mode": rng.choice(["manual-action",
                                                                 "automatic-action"])})
            link = rng.randint(0, 4) if kind == "click" else 0
            ip, ua = rng.choice(ADDRESSES), rng.choice(AGENTS)
            method = rng.choice(["GET"] * 9 + ["HEAD"])
            rows.append((kind, at, self.campaign, m, link, "", method, ip, ua, detail))
        self.append(rows)

    def _change(self, m: int, what: str, at: float) -> None:
        if what == "links":
            self._links(m, self.rng.choice([0, 2, 3, 4]))
            return
        with self.store.engine.begin() as conn:
            conn.execute(messages.update().where(messages.c.id == m).values(sent_at=at - 5))

    def close(self) -> None:
        self.append.close()


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[str]:
    """Tiers: "whole" (the default, every copy small), "window" (every copy through the
    windowed path, with deferral after 5 hits), keeping the windows wide enough to be exact."""
    tier = request.param
    if tier == "window":
        monkeypatch.setattr(judging, "WHOLE_COPY", 0)
        monkeypatch.setattr(judging, "COPY_CAP", 5)
        monkeypatch.setattr(judging, "DEFERRED_PER_PASS", 2)
    yield tier


@pytest.mark.parametrize("small_windows", ["whole", "window"], indirect=True)
@pytest.mark.parametrize("seed", range(10))
def test_random_streams_give_todays_verdicts(store: SqlStore, small_windows: str,
                                             seed: int) -> None:
    rng = random.Random(seed)
    live = Stream(store, rng, hits_only=seed % 2 == 1)
    judge_ = Judge(sender=OWN)
    now = T0 + 10**6
    for _ in range(rng.randint(4, 10)):
        live.events(rng.randint(1, 25))
        for _ in range(rng.randint(0, 3)):
            catch_up(store, judge_, now, batch=rng.randint(1, 30),
                     passes=rng.randint(1, 3), settle=10.0)
    live.close()
    catch_up(store, judge_, now, batch=rng.randint(5, 40), settle=10.0)
    expected, engaged = old_verdicts(store, OWN, now)
    found, engagement = new_verdicts(store)
    assert found == expected
    assert {m: engagement[m] for m in engaged} == engaged
    assert all(v is None for m, v in engagement.items() if m not in engaged)
    with store.connect() as conn:  # nothing left waiting once caught up
        assert conn.scalar(sa.select(sa.func.count()).select_from(copy_state)
                           .where(copy_state.c.behind_id.is_not(None))) == 0
    before = len(found)
    assert rejudge_all(store, judge_, now) == 0  # from scratch: the same, no new history
    assert len(new_verdicts(store)[0]) == before


def test_a_hammered_copy_waits_its_turn_and_other_copies_are_judged(
        store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of one client's clicks on one copy, in passes: at most COPY_CAP of its hits
    per pass, another copy's hit behind the flood is judged in the first pass, and the
    flood ends with the verdicts a judge over all its hits gives."""
    monkeypatch.setattr(judging, "COPY_CAP", 400)
    live = Stream(store, random.Random(1))
    flood, other = live.copies[0], live.copies[1]
    rows = [("click", T0 + 600 + i * 0.01, live.campaign, flood, 1 + i % 3, "", "GET",
             "203.0.113.7", "curl/8.0", "") for i in range(3000)]
    rows.append(("open", T0 + 700, live.campaign, other, 0, "", "GET", "198.51.100.4",
                 FIREFOX, ""))
    live.append(rows)
    live.close()
    now = T0 + 10**6
    assert catch_up(store, Judge(), now, batch=5000, passes=1, settle=10.0) == 3001
    found, _ = new_verdicts(store)
    with store.connect() as conn:
        other_hit = conn.scalar(sa.select(events.c.id).where(events.c.message == other))
        flood_judged = int(conn.scalar(sa.select(sa.func.count()).select_from(
            verdicts.join(events, events.c.id == verdicts.c.event))
            .where(events.c.message == flood)) or 0)
    assert found[int(other_hit or 0)][0] == "human"
    assert flood_judged <= 400 + judging.WINDOW  # the rest waits for the next passes
    catch_up(store, Judge(), now)
    expected, engaged = old_verdicts(store, SenderProfile(), now)
    found, engagement = new_verdicts(store)
    assert found == expected
    assert engagement[flood] == engaged[flood] == "only by machines"



def test_postgresql_statistics_and_the_partial_index_on_current_verdicts(
        store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a bulk of verdicts the judge refreshes the planner's statistics (ANALYZE), and
    the look-up of current verdicts uses the partial index."""
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's planner")
    monkeypatch.setattr(judging, "ANALYZE_ROWS", 10)
    monkeypatch.setattr(judging, "_analyze", {"rows": 0, "at": 0.0})
    live = Stream(store, random.Random(5))
    live.events(60)
    live.close()
    catch_up(store, Judge(), T0 + 10**6, settle=10.0)
    with store.connect() as conn:
        analyzed = conn.exec_driver_sql(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'verdicts' "
            "AND schemaname = current_schema()").scalar()
        q = sa.select(verdicts.c.id).where(verdicts.c.event.in_([1, 2, 3]), copies.CURRENT)
        sql = str(q.compile(conn, compile_kwargs={"literal_binds": True}))
        conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: make it choose
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert analyzed is not None
    assert "ix_verdicts_current" in plan
