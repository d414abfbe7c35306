"""Figures at size, written through the store's own write path (printed, never asserted).

    .venv/bin/python bench/scale.py judge [--sizes 10000,100000,1000000] [--flood 250000]
        [--db postgresql://postgres@127.0.0.1/mailbeacon_bench]

judge: the judge's throughput (hits judged per second of wall time) on a store
of C copies x 6 hits (a reader's opens and clicks, an MPP prefetch, a proxy
fetch), written with ``store.appender()`` as the tracking server writes them,
for each size C; and the per-hit cost at the largest C over that at the
smallest (1.0 is linear; the target is within 1.5). Then a hammered copy:
``--flood`` hits on one copy (one run of opens, one of clicks), judged in passes
as the server does, while another writer adds one hit every 0.2 s to other
copies: how long the flood takes, and how long the other copies' hits wait for
their verdicts (the target: under 10 s and under 2 s).

With ``--db`` on PostgreSQL every store is a new schema, dropped at the end;
without it, a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from mailbeacon.judging import Judge, catch_up
from mailbeacon.store.schema import verdicts
from mailbeacon.store.sql import NewMessage, SqlStore, open_store

T0 = 1_767_225_600.0
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Mobile/15E148")
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
PASS_EVENTS = 5000  # events per judge pass, as the server's judge takes them
WRITE_BATCH = 5000  # rows per appender batch (a group commit)


# -- stores ----------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_store(db: str | None) -> Iterator[SqlStore]:
    """An empty store: a SQLite file in a temporary directory, or a new PostgreSQL schema."""
    if db is None:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"sqlite:///{Path(tmp) / 'scale.db'}", now=T0)
            try:
                yield store
            finally:
                store.close()
        return
    schema = f"scale_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(db.replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in db else "?"
    store = open_store(f"{db}{sep}options=-csearch_path%3D{schema}", now=T0)
    try:
        yield store
    finally:
        store.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def add_copies(store: SqlStore, n: int, links: int = 3) -> list[int]:
    """``n`` sent copies with ``links`` links each, in transactions of 10,000."""
    campaign = store.campaign("scale", T0)
    ids: list[int] = []
    for start in range(0, n, 10_000):
        batch = [NewMessage(campaign, "me@example.com", f"r{i}@example.net", "s", "identified")
                 for i in range(start, min(n, start + 10_000))]
        made = store.add_messages(batch, T0)
        store.set_prepared_many([(m, f"<{m}@example.com>",
                                  [f"https://e.example/{k}" for k in range(links)])
                                 for m in made])
        ids.extend(made)
    return ids


def write(store: SqlStore, rows: Iterator[tuple[object, ...]]) -> int:
    """Rows (kind, at, campaign, copy, link, url, method, ip, user agent, detail) through
    the group commit's path, WRITE_BATCH at a time; returns how many."""
    append, batch, total = store.appender(), [], 0
    try:
        for row in rows:
            batch.append(row)
            if len(batch) == WRITE_BATCH:
                append(batch)
                total, batch = total + len(batch), []
        if batch:
            append(batch)
            total += len(batch)
    finally:
        append.close()
    return total


# -- judge: throughput at C copies -----------------------------------------------------------


def six_hits(copies: list[int], campaign: int, rng: random.Random) -> Iterator[tuple[object, ...]]:
    """Per copy: an MPP prefetch at delivery, a proxy fetch, two reader opens, two clicks."""
    for m in copies:
        at = T0 + 60 + rng.random() * 86_400
        ip = f"198.51.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        yield ("open", at, campaign, m, 0, "", "GET", "17.58.0.1", "Mozilla/5.0", "")
        yield ("open", at + 300, campaign, m, 0, "", "GET", "66.249.84.1", GMAIL, "")
        yield ("open", at + 3600, campaign, m, 0, "", "GET", ip, FIREFOX, "")
        yield ("click", at + 3630, campaign, m, 1, "https://e.example/0", "GET", ip, FIREFOX, "")
        yield ("open", at + 7200, campaign, m, 0, "", "GET", ip, IPHONE, "")
        yield ("click", at + 7260, campaign, m, 2, "https://e.example/1", "GET", ip, IPHONE, "")


def judge_throughput(db: str | None, size: int) -> float:
    """Judge a store of ``size`` copies x 6 hits; returns microseconds per hit."""
    with fresh_store(db) as store:
        started = time.perf_counter()
        copies = add_copies(store, size)
        hits = write(store, six_hits(copies, 1, random.Random(size)))
        wrote = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        catch_up(store, Judge(), T0 + 10**6, batch=PASS_EVENTS)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        judged = _judged(store)
    print(f"  {size:>9,} copies {hits:>10,} hits: written in {wrote:6.1f} s; judged "
          f"{judged:,} in {wall:6.1f} s ({cpu:5.1f} s CPU) = {hits / wall:>8,.0f} hits/s, "
          f"{wall / hits * 1e6:6.1f} us/hit", flush=True)
    return wall / hits * 1e6


def _judged(store: SqlStore) -> int:
    with store.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(verdicts)
                               .where(verdicts.c.current.is_(True))) or 0)


# -- judge: one hammered copy ----------------------------------------------------------------


def flood_rows(copy: int, n: int, kind: str) -> Iterator[tuple[object, ...]]:
    """``n`` hits of one client on one copy, 25,000 a second (what wrk makes of one pixel)."""
    for i in range(n):
        link = 1 + i % 3 if kind == "click" else 0
        yield (kind, T0 + 600 + i / 25_000, 1, copy, link, "", "GET", "203.0.113.7",
               "curl/8.0" if kind == "click" else FIREFOX, "")


def judge_flood(db: str | None, n: int, kind: str) -> None:
    """Write a flood on one copy, then judge as the server does (a pass, a pause) while
    other copies get a hit every 0.2 s; print how long each waited for its verdict."""
    with fresh_store(db) as store:
        copies = add_copies(store, 101)
        flood, others = copies[0], copies[1:]
        write(store, flood_rows(flood, n, kind))
        probes: dict[int, float] = {}  # event id -> when it was written
        stop = threading.Event()
        writer = threading.Thread(target=_probe, args=(store, others, probes, stop))
        started = time.perf_counter()
        writer.start()
        done_at = None
        try:
            while time.perf_counter() - started < 120:
                catch_up(store, Judge(), T0 + 10**6, batch=PASS_EVENTS, passes=1)
                if done_at is None and _flood_judged(store, flood) >= n:
                    done_at = time.perf_counter() - started
                    stop.set()
                left = _unjudged(store, probes)  # notes when each probe got its verdict
                if stop.is_set() and not left:
                    break
                time.sleep(0.05)
        finally:
            stop.set()
            writer.join()
        catch_up(store, Judge(), T0 + 10**6, batch=PASS_EVENTS)
        waits = _waits(store, probes)
    took = f"{done_at:.1f} s" if done_at is not None else "not within 120 s"
    print(f"  {n:,} {kind}s on one copy: judged in {took}; {len(waits)} hits of other copies "
          f"meanwhile waited at most {max(waits, default=0):.2f} s "
          f"(median {sorted(waits)[len(waits) // 2] if waits else 0:.2f} s)", flush=True)


_judged_at: dict[int, float] = {}


def _probe(store: SqlStore, others: list[int], probes: dict[int, float],
           stop: threading.Event) -> None:
    append, rng = store.appender(), random.Random(7)
    try:
        while not stop.is_set():
            m = rng.choice(others)
            key = f"probe-{uuid.uuid4().hex}"
            append([("open", T0 + 10**5, 1, m, 0, "", "GET", "198.51.100.4", FIREFOX, "",
                     key)])
            with store.connect() as conn:
                event = conn.scalar(sa.text("SELECT id FROM events WHERE key = :k"), {"k": key})
            probes[int(event)] = time.perf_counter()
            time.sleep(0.2)
    finally:
        append.close()


def _unjudged(store: SqlStore, probes: dict[int, float]) -> list[int]:
    now = time.perf_counter()
    waiting = [e for e in list(probes) if e not in _judged_at]
    if waiting:
        with store.connect() as conn:
            for e in conn.scalars(sa.select(verdicts.c.event).where(
                    verdicts.c.event.in_(waiting))):
                _judged_at[int(e)] = now
    return [e for e in waiting if e not in _judged_at]


def _waits(store: SqlStore, probes: dict[int, float]) -> list[float]:
    _unjudged(store, probes)
    return [_judged_at[e] - at for e, at in probes.items() if e in _judged_at]


def _flood_judged(store: SqlStore, copy: int) -> int:
    with store.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(verdicts).where(
            verdicts.c.message == copy, verdicts.c.current.is_(True))) or 0)


def run_judge(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    where = "PostgreSQL" if args.db else "SQLite"
    print(f"judge throughput ({where}, {PASS_EVENTS} events per pass):", flush=True)
    costs = {size: judge_throughput(args.db, size) for size in sizes}
    if len(costs) > 1:
        small, large = min(costs), max(costs)
        print(f"  per-hit cost at {large:,} copies / at {small:,}: "
              f"{costs[large] / costs[small]:.2f}x", flush=True)
    if args.flood:
        print(f"one hammered copy ({where}):", flush=True)
        for kind in ("open", "click"):
            _judged_at.clear()
            judge_flood(args.db, args.flood, kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="section", required=True)
    j = sub.add_parser("judge", help="judge throughput at size and one hammered copy")
    j.add_argument("--sizes", default="10000,100000,1000000",
                   help="copies per store, comma-separated")
    j.add_argument("--flood", type=int, default=250_000, help="hits on the hammered copy (0: skip)")
    j.add_argument("--db", default=None, help="a PostgreSQL URL (default: SQLite)")
    j.set_defaults(run=run_judge)
    import scale_report  # the report section (F2): bench/scale_report.py

    scale_report.add_parser(sub)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
