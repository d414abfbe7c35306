"""The judge over a real store: verdicts, re-labelling with history, concurrent judges."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from mailbeacon.core.verdicts import SenderProfile
from mailbeacon.judging import Judge, rejudge_all
from mailbeacon.judging import catch_up as _catch_up
from mailbeacon.store import engagement, queries
from mailbeacon.store.schema import messages, verdicts
from mailbeacon.store.sql import NewMessage, SqlStore

T0 = 1_767_225_600.0
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _copy(store: SqlStore, links: int = 3) -> tuple[int, int]:
    c = store.campaign("c", T0)
    [m] = store.add_messages([NewMessage(c, "me@example.com", "r@example.net", "s",
                                         "identified")], T0)
    store.set_prepared(m, f"<{m}@example.com>", [f"https://e.example/{i}" for i in range(links)])
    with store.engine.begin() as conn:
        conn.execute(messages.update().where(messages.c.id == m).values(status="sent",
                                                                        sent_at=T0))
    return c, m


def _hits(store: SqlStore, c: int, m: int, *hits: tuple[str, float, str, int]) -> None:
    append = store.appender()
    append([(kind, T0 + at, c, m, link, "", "GET", "198.51.100.4", ua, "")
            for kind, at, ua, link in hits])
    append.close()


def catch_up(store: SqlStore, judge_: Judge, now: float) -> int:
    """A judge that sees every hit written before it: other writers on the same PostgreSQL
    server (other tests, other databases) may hold the stream's horizon back a moment."""
    return _catch_up(store, judge_, now, settle=10.0)


def _current(store: SqlStore) -> list[str | None]:
    return [v.verdict for v in queries.list_events(store) if v.is_hit]


def test_a_person_after_mpp_makes_the_copy_opened(store: SqlStore) -> None:
    c, m = _copy(store)
    _hits(store, c, m, ("open", 3600, "Mozilla/5.0", 0))
    catch_up(store, Judge(), T0 + 4000)
    assert _current(store) == ["prefetch"]
    assert engagement.recipients(store)[0].engagement == "only by machines"
    _hits(store, c, m, ("open", 7200, FIREFOX, 0))
    catch_up(store, Judge(), T0 + 8000)
    assert _current(store) == ["prefetch", "human"]
    assert engagement.recipients(store)[0].engagement == "opened by a person"


def test_a_burst_seen_late_relabels_earlier_clicks_and_keeps_history(store: SqlStore) -> None:
    c, m = _copy(store, links=8)
    _hits(store, c, m, *[("click", 3600 + i, FIREFOX, i + 1) for i in range(3)])
    catch_up(store, Judge(), T0 + 3700)
    before = _current(store)
    _hits(store, c, m, ("click", 3603.5, FIREFOX, 4))
    catch_up(store, Judge(), T0 + 3800)
    assert _current(store) == ["scanner"] * 4
    first = queries.list_events(store)[0].id
    hit, history = engagement.history(store, first)
    assert hit is not None and hit["user_agent"] == FIREFOX  # the raw hit is unchanged
    assert [h["verdict"] for h in history] == [before[0], "scanner"]
    assert [h["current"] for h in history] == [False, True]


def test_rejudging_after_a_settings_change(store: SqlStore) -> None:
    c, m = _copy(store)
    _hits(store, c, m, ("open", 3600, FIREFOX, 0))
    catch_up(store, Judge(), T0 + 4000)
    assert _current(store) == ["human"]
    mine = Judge(sender=SenderProfile.of(("198.51.100.0/24",)))
    assert rejudge_all(store, mine, T0 + 5000) == 1
    assert _current(store) == ["self"]
    assert rejudge_all(store, mine, T0 + 6000) == 0  # nothing changed: no new history


def test_concurrent_judges_never_double_a_verdict(store: SqlStore) -> None:
    c, m = _copy(store, links=50)
    _hits(store, c, m, *[("click", 86_400 * i, FIREFOX, i + 1) for i in range(40)])
    failures: list[BaseException] = []

    def judge_once() -> None:
        try:
            catch_up(store, Judge(), T0 + 10**7)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=judge_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    catch_up(store, Judge(), T0 + 10**7)
    with store.connect() as conn:
        per_event = conn.execute(sa.select(verdicts.c.event, sa.func.count())
                                 .where(verdicts.c.current.is_(True))
                                 .group_by(verdicts.c.event)).all()
    assert len(per_event) == 40 and all(n == 1 for _, n in per_event)


def test_anonymous_hits_are_judged_alone(store: SqlStore) -> None:
    c = store.campaign("anon", T0)
    _hits(store, c, 0, ("open", 10, "Mozilla/5.0", 0), ("open", 20, FIREFOX, 0))
    catch_up(store, Judge(), T0 + 100)
    assert _current(store) == ["prefetch", "human"]


def test_a_reread_elsewhere_is_reported_never_certain(store: SqlStore) -> None:
    c, m = _copy(store)
    iphone = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Mobile/15E148")
    _hits(store, c, m, ("open", 3600, FIREFOX, 0))
    append = store.appender()
    append([("open", T0 + 7200, c, m, 0, "", "GET", "203.0.113.9", iphone, "")])
    append.close()
    catch_up(store, Judge(), T0 + 8000)
    second = queries.list_events(store)[1]
    assert second.verdict == "human" and second.confidence is not None
    assert second.confidence < 1 and any("elsewhere" in r for r in second.reasons)
    assert engagement.engagement(store).opened_elsewhere == 1
