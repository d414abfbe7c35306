"""The event stream in commit order: writers that commit out of id order lose no event.

On PostgreSQL two connections commit on purpose in the "wrong" order (a lower id
after a higher one); on SQLite the same two writers are serialised by the
database, and the test shows the second one waits. Either way the judge,
``events --follow`` (a real process) and ``/api/events`` (a real server) see each
event exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from apikeys import api_headers
from mailbeacon.judging import Judge, catch_up
from mailbeacon.store import queries, stream
from mailbeacon.store.schema import MIGRATIONS, events, judge_cursor, messages, verdicts
from mailbeacon.store.sql import NewMessage, SqlStore, normalise_url, open_store
from mailbeacon.store.stream import BadCursor, Cursor
from serverproc import ServerProcess

T0 = 1_767_225_600.0
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _copy(store: SqlStore) -> tuple[int, int]:
    c = store.campaign("c", T0)
    [m] = store.add_messages([NewMessage(c, "me@example.com", "r@example.net", "s",
                                         "identified")], T0)
    with store.engine.begin() as conn:
        conn.execute(messages.update().where(messages.c.id == m).values(status="sent",
                                                                        sent_at=T0))
    return c, m


def _insert(conn: Connection, c: int, m: int, at: float) -> int:
    result = conn.execute(events.insert().values(
        kind="open", at=T0 + at, campaign=c, message=m, link=0, url="", method="GET",
        ip="198.51.100.4", user_agent=FIREFOX, detail=""))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def _judged(store: SqlStore) -> dict[int, int]:
    """Current verdicts per event id."""
    with store.connect() as conn:
        rows = conn.execute(sa.select(verdicts.c.event, sa.func.count())
                            .where(verdicts.c.current.is_(True))
                            .group_by(verdicts.c.event)).all()
    return {int(event): int(n) for event, n in rows}


class Follower:
    """What ``events --follow`` and an API client do: read on from the last page's cursor."""

    def __init__(self, store: SqlStore) -> None:
        self.store, self.at, self.seen = store, stream.START, list[int]()

    def read(self) -> list[int]:
        page = queries.event_page(self.store, after=self.at, limit=1000)
        self.at = page.next
        self.seen += [v.id for v in page.events]
        return [v.id for v in page.events]


def _two_writers(store: SqlStore, between: Callable[[], None]) -> tuple[int, int, bool]:
    """Writer A inserts, then writer B inserts and commits (on SQLite B must wait for A);
    ``between`` runs while A is still open; then A commits. Returns (a, b, b_went_first)."""
    c, m = _copy(store)
    b_id: list[int] = []
    b_done = threading.Event()

    def writer_b() -> None:
        with store.engine.begin() as conn:
            b_id.append(_insert(conn, c, m, 7200))
        b_done.set()

    with store.engine.connect() as a:
        with a.begin():
            a_id = _insert(a, c, m, 3600)
            b = threading.Thread(target=writer_b)
            b.start()
            b_went_first = b_done.wait(1.0)
            between()
        b.join(15)
    assert b_id, "writer B never committed"
    return a_id, b_id[0], b_went_first


def test_cursor_text_round_trips_and_refuses_junk() -> None:
    assert Cursor.parse("12.345") == Cursor(12, 345) and str(Cursor(12, 345)) == "12.345"
    assert Cursor.parse("42") == Cursor(0, 42) and Cursor.parse("42").is_plain_id
    assert Cursor.parse("0") == stream.START and not stream.START.is_plain_id
    for junk in ("", "x", "-1", "1.", ".1", "1.2.3", "1e3", "99999999999999999999",
                 "9223372036854775808", "١٢"):
        with pytest.raises(BadCursor, match=r"stream position|out of range"):
            Cursor.parse(junk)


def test_two_writers_out_of_id_order_each_event_judged_and_listed_once(
        store: SqlStore) -> None:
    follower = Follower(store)
    during: list[list[int]] = []

    def meanwhile() -> None:
        catch_up(store, Judge(), T0 + 10**5)
        during.append(follower.read())

    a_id, b_id, b_went_first = _two_writers(store, meanwhile)
    # PostgreSQL lets B commit first: its row is above the horizon A holds, not yet read.
    # SQLite serialises the writers: B waited for A, so nothing was committed yet.
    assert b_went_first == (store.dialect == "postgresql")
    assert during == [[]] and _judged(store) == {}
    assert a_id < b_id
    catch_up(store, Judge(), T0 + 10**5, settle=10)
    assert sorted(follower.read()) == [a_id, b_id]
    assert _judged(store) == {a_id: 1, b_id: 1}
    catch_up(store, Judge(), T0 + 10**5, settle=10)
    assert follower.read() == [] and _judged(store) == {a_id: 1, b_id: 1}
    assert sorted(follower.seen) == [a_id, b_id]


@pytest.mark.postgres
def test_a_lower_transaction_with_a_higher_id_is_read_first(store: SqlStore) -> None:
    """B has the older transaction but inserts last: commit order is not id order either way."""
    if store.dialect != "postgresql":
        pytest.skip("two open writers exist only on PostgreSQL")
    c, m = _copy(store)
    follower = Follower(store)
    with store.engine.begin() as conn:
        before = _insert(conn, *_copy(store), 60)  # another copy, committed before both
    assert stream.settle(store, 10)  # no transaction older than this one is still running
    with store.engine.connect() as a, store.engine.connect() as b:
        tb = b.begin()
        b.execute(sa.text("SELECT pg_current_xact_id()"))  # B's transaction id comes first
        with a.begin():
            a_id = _insert(a, c, m, 3600)
        b_id = _insert(b, c, m, 7200)
        # A committed, but below B's open transaction: held back, the earlier event is not.
        catch_up(store, Judge(), T0 + 10**5)
        assert follower.read() == [before] and set(_judged(store)) == {before}
        tb.commit()
    assert a_id < b_id
    catch_up(store, Judge(), T0 + 10**5, settle=10)
    assert follower.read() == [b_id, a_id]  # commit order: B's transaction is the older
    assert _judged(store) == {before: 1, a_id: 1, b_id: 1}


def test_a_judge_cursor_saved_before_transactions_were_recorded(store_url: str) -> None:
    """Migration 0006 gave every existing event the migration's transaction; a cursor of
    (0, id) saved by the old judge resumes exactly after that id, not from the start."""
    old = SqlStore(sa.create_engine(normalise_url(store_url)))
    old.migrate(T0, upto=[name for name, _ in MIGRATIONS].index("0006_integrity"))
    copies = [_copy(old) for _ in range(4)]  # one copy per event: judged alone
    with old.engine.begin() as conn:
        ids = [_insert(conn, c, m, 3600) for c, m in copies[:3]]
        conn.execute(judge_cursor.insert().values(name="main", last_event=ids[1]))
    assert old.migrate(T0)[0] == "0006_integrity"  # and those after it
    old.close()
    store = open_store(store_url, now=T0)
    try:
        with store.engine.begin() as conn:
            later = _insert(conn, *copies[3], 3600)
        # read: the old event the old judge had not reached, and the new one
        assert catch_up(store, Judge(), T0 + 10**5, settle=10) == 2
        assert set(_judged(store)) == {ids[2], later}
        with store.connect() as conn:
            row = conn.execute(sa.select(judge_cursor)).one()
            assert (row.last_event, row.last_tx > 0) == (later, store.dialect == "postgresql")
        assert catch_up(store, Judge(), T0 + 10**5, settle=10) == 0
        # a plain id from an old API client resumes the same way
        assert [v.id for v in queries.list_events(store, after=ids[1])] == [ids[2], later]
    finally:
        store.close()


# -- real processes: events --follow and /api/events --------------------------------------


@pytest.fixture
def follow(tmp_path: Path, store: SqlStore, store_url: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbeacon", "events", "--follow", "--json", "--interval",
         "0.1", "--data-dir", str(tmp_path / "data"), "--db", store_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc
    proc.kill()
    proc.wait(10)


def _lines(proc: subprocess.Popen[str], n: int, timeout: float = 20.0) -> list[dict[str, object]]:
    """The next ``n`` JSON lines ``proc`` prints, within ``timeout``."""
    stdout = proc.stdout
    assert stdout is not None
    got: list[dict[str, object]] = []
    box: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        assert box and box[-1], f"events --follow printed {len(got)} of {n} lines"
        got.append(json.loads(box.pop()))
    return got


def test_events_follow_prints_a_late_commit_once(store: SqlStore,
                                                 follow: subprocess.Popen[str]) -> None:
    c, m = _copy(store)
    with store.engine.begin() as conn:
        marker = _insert(conn, c, m, 60)
    assert [e["id"] for e in _lines(follow, 1)] == [marker]  # following, not listing
    a_id, b_id, _ = _two_writers(store, lambda: time.sleep(0.5))
    printed = _lines(follow, 2)
    assert sorted(int(str(e["id"])) for e in printed) == [a_id, b_id]
    time.sleep(0.5)
    follow.kill()
    rest, _ = follow.communicate(timeout=10)
    assert rest == ""  # nothing printed twice


def test_api_events_pages_by_the_cursor_it_hands_out(tmp_path: Path, store: SqlStore,
                                                     store_url: str) -> None:
    with ServerProcess(tmp_path / "data", store_url) as server:
        auth = api_headers(store_url)
        seen: list[int] = []
        after = "0"

        def poll() -> None:
            nonlocal after
            r = httpx.get(f"{server.url}/api/events", params={"after": after}, headers=auth)
            assert r.status_code == 200, r.text
            seen.extend(int(e["id"]) for e in r.json())
            after = r.headers["x-next-cursor"]

        # On SQLite writer A holds the write lock, which a request that records its key's
        # use would wait for: poll while A is open only where writers do not exclude readers.
        a_id, b_id, _ = _two_writers(store, poll if store.dialect == "postgresql" else lambda: None)
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            poll()
            time.sleep(0.1)
        poll()
        assert sorted(seen) == [a_id, b_id]
        assert Cursor.parse(after) == max(Cursor(*_tx_id(store, i)) for i in seen)
        plain = httpx.get(f"{server.url}/api/events", params={"after": str(a_id)},
                          headers=auth)
        assert plain.status_code == 200 and a_id not in [e["id"] for e in plain.json()]
        bad = httpx.get(f"{server.url}/api/events", params={"after": "1.x"}, headers=auth)
        assert bad.status_code == 400 and "TX.ID" in bad.json()["error"]


def _tx_id(store: SqlStore, event: int) -> tuple[int, int]:
    with store.connect() as conn:
        row = conn.execute(sa.select(events.c.tx, events.c.id)
                           .where(events.c.id == event)).one()
    return int(row.tx), int(row.id)
