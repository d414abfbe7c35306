"""Report rollups: counters kept by delta in the judge's transaction.

The judge calls ``apply`` with every hit whose current verdict it sets or changes
(never for one whose verdict stays). A change takes the hit out of the counters
of its old verdict and puts it into those of the new one; a first verdict (old
None) also counts the raw hit. Unique figures ("copies opened") come from
per-copy counters (``rollup_copy``): when a copy's count of something flips
between 0 and 1, the campaign's unique counter moves. Every write is an upsert
(``n = n + excluded.n``), so concurrent transactions add up instead of
overwriting each other. ``rebuild`` recomputes everything from the raw events
and the current verdicts. The tables: ``store.schema`` (migration 0008).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from mailbeacon.core.metrics import BREAKDOWN_VERDICTS, OPENING_KINDS, best_verdict
from mailbeacon.core.verdicts import ELSEWHERE, Hit, Verdict, client_of, country
from mailbeacon.core.verdicts.geo import CountryLookup
from mailbeacon.store.schema import (
    events,
    rollup_copy,
    rollup_counters,
    rollup_flagged,
    rollup_hours,
    rollup_links,
    verdicts,
)

HIT_KINDS = ("open", "click", "download", "honeypot")
CHUNK = 500  # rows per statement: well inside SQLite's bound-parameter limit
REBUILD_CHUNK = 5000  # hits read per step of a rebuild


@dataclass(frozen=True, slots=True)
class HitChange:
    """One hit whose current verdict the judge sets or changes (old None: first verdict)."""

    event: int
    campaign: int
    message: int  # 0: anonymous
    kind: str
    link: int
    at: float
    ip: str
    user_agent: str
    old: str | None
    new: str


def url_key(url: str) -> str:
    """A fixed-size key for a link's URL (URLs can be longer than an index entry)."""
    return hashlib.sha1(url.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class _Deltas:
    """What a batch of changes adds to each table, summed per key before any write."""

    counters: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    links: Counter[tuple[int, str, str, int]] = field(default_factory=Counter)
    urls: dict[str, str] = field(default_factory=dict)
    hours: Counter[tuple[int, int, str, str]] = field(default_factory=Counter)
    copy: Counter[tuple[int, str, str]] = field(default_factory=Counter)


def apply(conn: Connection, changes: Sequence[HitChange], *,
          country_db: CountryLookup | None = None) -> None:
    """Move every rollup by the deltas of ``changes``, inside the caller's transaction.

    Call it after the new verdict rows are written (same transaction): the "opened
    elsewhere" figure reads the new current rows' reasons. ``country_db``: the
    user's ``--country-db`` (default: the bundled registry data).
    """
    if not changes:
        return
    d = _Deltas()
    urls = _urls(conn, [c.event for c in changes if c.kind == "click"])
    for c in changes:
        url = urls.get(c.event, "")
        if c.old is not None:
            _count(d, c, c.old, -1, url, country_db)
        _count(d, c, c.new, +1, url, country_db)
    _flag_elsewhere(conn, d, [c for c in changes if c.message])
    campaign_of = {c.message: c.campaign for c in changes if c.message}
    flips = _upsert_copies(conn, d.copy)
    _count_flips(conn, d, flips, campaign_of)
    _write(conn, d)


def _count(d: _Deltas, c: HitChange, verdict: str, sign: int, url: str,
           country_db: CountryLookup | None) -> None:
    anonymous = int(c.message == 0)
    d.counters[(c.campaign, "hits", f"{c.kind}/{anonymous}/{verdict}")] += sign
    d.hours[(c.campaign, int(c.at // 3600), c.kind, verdict)] += sign
    if c.kind == "click":
        key = url_key(url)
        d.urls[key] = url
        d.links[(c.campaign, key, verdict, anonymous)] += sign
    if anonymous:
        return
    if verdict in BREAKDOWN_VERDICTS:  # a machine's device and place describe the machine
        family, device = _reader(c.user_agent, verdict)
        d.counters[(c.campaign, "client", family)] += sign
        d.counters[(c.campaign, "device", device)] += sign
        place = _place(c.ip, country_db)
        if place:
            d.counters[(c.campaign, "country", place)] += sign
    _count_copy(d, c, verdict, sign, url)


def _count_copy(d: _Deltas, c: HitChange, verdict: str, sign: int, url: str) -> None:
    m = c.message
    if c.kind in ("open", "click"):
        d.copy[(m, c.kind, "")] += sign
        d.copy[(m, "seen", "")] += sign  # a click proves an open
    if c.kind == "click":
        d.copy[(m, "link", url_key(url))] += sign
        if verdict == "human":
            d.copy[(m, "human_link", url_key(url))] += sign
            d.copy[(m, "human_click", "")] += sign
    if c.kind in OPENING_KINDS:
        d.copy[(m, "opening", verdict)] += sign


@lru_cache(maxsize=4096)
def _reader(user_agent: str, verdict: str) -> tuple[str, str]:
    """Client family and device of a reader's user agent (ua-parser is slow: cached)."""
    seen = client_of(Hit(0, "open", 0.0, "GET", None, user_agent), Verdict(verdict, 0.0, ()))
    return (seen.family or "unknown")[:200], seen.device[:200]


_places: dict[tuple[int, str], str | None] = {}


def _place(ip: str, db: CountryLookup | None) -> str | None:
    """The hit's country, looked up once per address and country database."""
    if not ip:
        return None
    key = (id(db), ip)
    if key not in _places:
        if len(_places) > 100_000:
            _places.clear()
        _places[key] = country(ip, db)
    return _places[key]


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _urls(conn: Connection, ids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in _chunks(sorted(set(ids))):
        found.update((int(i), str(u)) for i, u in conn.execute(
            sa.select(events.c.id, events.c.url).where(events.c.id.in_(chunk))))
    return found


def _flag_elsewhere(conn: Connection, d: _Deltas, changes: list[HitChange]) -> None:
    """Keep ``rollup_flagged`` equal to the hits whose current reasons say "opened
    elsewhere", and count them per copy."""
    message_of = {c.event: c.message for c in changes}
    ids = sorted(message_of)
    now, before = set[int](), set[int]()
    for chunk in _chunks(ids):
        now.update(conn.scalars(sa.select(verdicts.c.event).where(
            verdicts.c.event.in_(chunk), verdicts.c.current.is_(True),
            verdicts.c.reasons.contains(ELSEWHERE))))
        before.update(conn.scalars(sa.select(rollup_flagged.c.event)
                                   .where(rollup_flagged.c.event.in_(chunk))))
    gained, lost = sorted(now - before), sorted(before - now)
    if gained:
        conn.execute(_insert(conn, rollup_flagged).on_conflict_do_nothing(),
                     [{"event": e, "message": message_of[e]} for e in gained])
    for chunk in _chunks(lost):
        conn.execute(rollup_flagged.delete().where(rollup_flagged.c.event.in_(chunk)))
    for e in gained:
        d.copy[(message_of[e], "elsewhere", "")] += 1
    for e in lost:
        d.copy[(message_of[e], "elsewhere", "")] -= 1


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def _adding(conn: Connection, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n, on either dialect."""
    ins = _insert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    return ins, ins.on_conflict_do_update(index_elements=keys,
                                          set_={"n": table.c.n + ins.excluded.n})


Flip = tuple[int, str, str, int]  # copy, family, key, +1 (0 -> some) or -1 (some -> 0)


def _upsert_copies(conn: Connection, deltas: Counter[tuple[int, str, str]]) -> list[Flip]:
    """Add the per-copy deltas; each row's count after the add comes back in the same
    statement, so a flip is seen by exactly one transaction even when two race."""
    moved = sorted((k, n) for k, n in deltas.items() if n)  # one lock order for all
    flips: list[Flip] = []
    _, stmt = _adding(conn, rollup_copy)
    stmt = stmt.returning(rollup_copy.c.message, rollup_copy.c.family, rollup_copy.c.key,
                          rollup_copy.c.n)
    for chunk in _chunks(moved):  # executemany with RETURNING: one compiled statement
        rows = [{"message": m, "family": f, "key": k, "n": n} for (m, f, k), n in chunk]
        for m, f, k, after in conn.execute(stmt, rows):
            before = after - deltas[(m, f, k)]
            if before <= 0 < after:
                flips.append((m, f, k, +1))
            elif after <= 0 < before:
                flips.append((m, f, k, -1))
    return flips


# A per-copy count that becomes non-zero makes the copy count in these campaign figures.
_UNIQUE = {"seen": ("copies", "opened"), "click": ("copies", "clicked"),
           "elsewhere": ("copies", "elsewhere")}


def _count_flips(conn: Connection, d: _Deltas, flips: list[Flip],
                 campaign_of: dict[int, int]) -> None:
    opening: dict[int, list[tuple[str, int]]] = {}
    for m, family, key, sign in flips:
        campaign = campaign_of[m]
        if family in _UNIQUE:
            fam, name = _UNIQUE[family]
            d.counters[(campaign, fam, name)] += sign
        elif family == "link":
            d.counters[(campaign, "link_copies", f"any/{key}")] += sign
        elif family == "human_link":
            d.counters[(campaign, "link_copies", f"human/{key}")] += sign
        elif family == "opening":
            opening.setdefault(m, []).append((key, sign))
    _count_best(conn, d, opening, campaign_of)


def _count_best(conn: Connection, d: _Deltas, opening: dict[int, list[tuple[str, int]]],
                campaign_of: dict[int, int]) -> None:
    """Which verdict speaks for a copy's opens moves only when one of its verdicts
    appeared or disappeared: compare the best before and after."""
    present: dict[int, set[str]] = {m: set() for m in opening}
    for chunk in _chunks(sorted(opening)):
        for m, verdict in conn.execute(sa.select(rollup_copy.c.message, rollup_copy.c.key)
                                       .where(rollup_copy.c.message.in_(chunk),
                                              rollup_copy.c.family == "opening",
                                              rollup_copy.c.n > 0)):
            present[m].add(verdict)
    for m, moves in opening.items():
        before = set(present[m])
        for verdict, sign in moves:
            (before.discard if sign > 0 else before.add)(verdict)
        old, new = best_verdict(before), best_verdict(present[m])
        if old != new:
            if old is not None:
                d.counters[(campaign_of[m], "copies", f"best/{old}")] -= 1
            if new is not None:
                d.counters[(campaign_of[m], "copies", f"best/{new}")] += 1


def _write(conn: Connection, d: _Deltas) -> None:
    _add(conn, rollup_counters, [{"campaign": c, "family": f, "key": k, "n": n}
                                 for (c, f, k), n in sorted(d.counters.items()) if n])
    _add(conn, rollup_links, [{"campaign": c, "url_key": u, "verdict": v, "anonymous": a,
                               "url": d.urls[u], "n": n}
                              for (c, u, v, a), n in sorted(d.links.items()) if n])
    _add(conn, rollup_hours, [{"campaign": c, "hour": h, "kind": k, "verdict": v, "n": n}
                              for (c, h, k, v), n in sorted(d.hours.items()) if n])


def _add(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        _, stmt = _adding(conn, table)
        for chunk in _chunks(rows):
            conn.execute(stmt, list(chunk))


# -- rebuild -------------------------------------------------------------------------------

ROLLUP_TABLES = (rollup_counters, rollup_links, rollup_hours, rollup_copy, rollup_flagged)


def rebuild(engine: sa.Engine, *, country_db: CountryLookup | None = None,
            chunk: int = REBUILD_CHUNK) -> int:
    """Recompute every rollup from the raw hits and their current verdicts, reading
    ``chunk`` hits at a time (nothing held whole in memory); returns the hits counted.

    One transaction: readers see the old figures until it commits, and a judge's pass
    waits for it (the judge's cursor is locked), so no delta lands on half a rebuild.
    """
    total = 0
    with engine.begin() as conn:
        _hold_the_judge(conn)
        for table in ROLLUP_TABLES:
            conn.execute(table.delete())
        for batch in _judged_hits(conn, chunk):
            apply(conn, batch, country_db=country_db)
            total += len(batch)
    return total


def _hold_the_judge(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        conn.exec_driver_sql("LOCK TABLE judge_cursor IN SHARE ROW EXCLUSIVE MODE")
    # SQLite: the first DELETE takes the one write lock; the judge waits on it


def _judged_hits(conn: Connection, chunk: int) -> Iterable[list[HitChange]]:
    """Every judged hit as a first verdict, in id order, ``chunk`` at a time."""
    current = sa.and_(verdicts.c.event == events.c.id, verdicts.c.current.is_(True))
    q = (sa.select(events.c.id, events.c.campaign, events.c.message, events.c.kind,
                   events.c.link, events.c.at, events.c.ip, events.c.user_agent,
                   verdicts.c.verdict)
         .select_from(events.join(verdicts, current))
         .where(events.c.kind.in_(HIT_KINDS)).order_by(events.c.id).limit(chunk))
    last = 0
    while True:
        rows = conn.execute(q.where(events.c.id > last)).all()
        if not rows:
            return
        last = rows[-1].id
        yield [HitChange(r.id, r.campaign, r.message, r.kind, r.link, r.at, r.ip or "",
                         r.user_agent or "", None, r.verdict) for r in rows]


# -- reading -------------------------------------------------------------------------------


def _scoped(q: Any, table: sa.Table, campaign: int | None) -> Any:
    return q if campaign is None else q.where(table.c.campaign == campaign)


def family(conn: Connection, campaign: int | None, name: str) -> dict[str, int]:
    """One family of ``rollup_counters`` (all campaigns summed when ``campaign`` is None)."""
    t = rollup_counters
    q = (sa.select(t.c.key, sa.func.sum(t.c.n)).where(t.c.family == name)
         .group_by(t.c.key).having(sa.func.sum(t.c.n) > 0))
    return {str(k): int(n) for k, n in conn.execute(_scoped(q, t, campaign))}


def hit_totals(conn: Connection, campaign: int | None) -> dict[tuple[str, bool, str], int]:
    """Judged hits by (kind, anonymous, verdict)."""
    found: dict[tuple[str, bool, str], int] = {}
    for key, n in family(conn, campaign, "hits").items():
        kind, anonymous, verdict = key.split("/", 2)
        found[(kind, anonymous == "1", verdict)] = n
    return found


@dataclass(frozen=True)
class LinkFigures:
    url: str
    clicks: int  # every click, anonymous ones too
    copy_clicks: int  # clicks tied to a copy
    human_clicks: int  # of those, judged human
    unique_copies: int  # copies with a click on it
    unique_human_copies: int  # copies a person clicked it in


def links(conn: Connection, campaign: int | None) -> list[LinkFigures]:
    t = rollup_links
    q = (sa.select(t.c.url_key, t.c.url, t.c.verdict, t.c.anonymous, sa.func.sum(t.c.n))
         .group_by(t.c.url_key, t.c.url, t.c.verdict, t.c.anonymous))
    per: dict[str, dict[str, Any]] = {}
    for key, url, verdict, anonymous, n in conn.execute(_scoped(q, t, campaign)):
        row = per.setdefault(key, {"url": url, "clicks": 0, "copy": 0, "human": 0})
        row["clicks"] += int(n)
        if not anonymous:
            row["copy"] += int(n)
            row["human"] += int(n) if verdict == "human" else 0
    copies = family(conn, campaign, "link_copies")
    return [LinkFigures(r["url"], r["clicks"], r["copy"], r["human"],
                        copies.get(f"any/{key}", 0), copies.get(f"human/{key}", 0))
            for key, r in per.items() if r["clicks"] > 0]


def copy_counts(conn: Connection, copy_ids: Sequence[int], name: str) -> dict[int, int]:
    """One per-copy counter (``open``, ``click``, ...) for these copies."""
    t = rollup_copy
    found: dict[int, int] = {}
    for chunk in _chunks(sorted(copy_ids)):
        found.update((int(m), int(n)) for m, n in conn.execute(sa.select(t.c.message, t.c.n)
                     .where(t.c.message.in_(chunk), t.c.family == name, t.c.key == "")))
    return found


def hourly(conn: Connection, campaign: int | None) -> list[tuple[int, str, str, int]]:
    """The time series: (hour start as a Unix time, kind, verdict, hits), oldest first."""
    t = rollup_hours
    q = (sa.select(t.c.hour, t.c.kind, t.c.verdict, sa.func.sum(t.c.n))
         .group_by(t.c.hour, t.c.kind, t.c.verdict).having(sa.func.sum(t.c.n) > 0)
         .order_by(t.c.hour, t.c.kind, t.c.verdict))
    return [(int(h) * 3600, str(k), str(v), int(n))
            for h, k, v, n in conn.execute(_scoped(q, t, campaign))]


def snapshot(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    """Every non-zero rollup row, table by table (to compare an incremental state with a
    rebuild)."""
    found: dict[str, set[tuple[Any, ...]]] = {}
    for table in ROLLUP_TABLES:
        q = sa.select(table)
        if "n" in table.c:
            q = q.where(table.c.n != 0)
        found[table.name] = {tuple(r) for r in conn.execute(q)}
    return found
