"""``bench/scale.py report``: ``report --campaign --json`` at 1M and 10M events.

Each store gets C copies (``--copies``, 100,000 by default) and E events
(``--sizes``): six hits per copy per round (an MPP prefetch, a proxy fetch, a
reader's opens and clicks), written through ``store.appender()`` as the
tracking server writes them and judged by the judge as it is, in passes. Then
``mailbeacon report --campaign scale --json`` runs in a subprocess: its wall
time and its peak RSS (``getrusage(RUSAGE_CHILDREN)``). Targets: under 1 s and
200 MB at both sizes. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import scale  # the judge section's store helpers (bench/scale.py)

from mailbeacon.judging import Judge, catch_up


def hits(copies: list[int], campaign: int, events: int,
         rng: random.Random) -> Iterator[tuple[object, ...]]:
    """``events`` hits, six per copy per round, round after round."""
    made = 0
    while True:
        for row in scale.six_hits(copies, campaign, rng):
            if made == events:
                return
            yield row
            made += 1


def report_once(db_url: str, data_dir: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``report --campaign --json`` process."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mailbeacon", "report", "--campaign", "scale",
                           "--json", "--db", db_url, "--data-dir", data_dir],
                          capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"report failed: {done.stderr.strip()}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KB on Linux
    return wall, rss


def one_size(db: str | None, copies: int, events: int) -> None:
    with scale.fresh_store(db) as store:
        ids = scale.add_copies(store, copies)
        campaign = store.campaign("scale", scale.T0)
        t = time.monotonic()
        written = scale.write(store, hits(ids, campaign, events, random.Random(events)))
        write_s = time.monotonic() - t
        t = time.monotonic()
        catch_up(store, Judge(), scale.T0 + 10 * 86_400, batch=scale.PASS_EVENTS)
        judge_s = time.monotonic() - t
        url = store.engine.url.render_as_string(hide_password=False)
        import tempfile
        with tempfile.TemporaryDirectory() as data_dir:
            runs = [report_once(url, data_dir) for _ in range(3)]
        best = min(w for w, _ in runs)
        print(f"  {written:>11,} events, {copies:,} copies: written in {write_s:.0f}s, "
              f"judged in {judge_s:.0f}s; report --campaign --json {best:.2f}s wall "
              f"(best of 3; {', '.join(f'{w:.2f}' for w, _ in runs)}), "
              f"peak RSS {max(r for _, r in runs):.0f} MB", flush=True)


def run(args: argparse.Namespace) -> None:
    where = "PostgreSQL" if args.db else "SQLite"
    print(f"report at size ({where}):", flush=True)
    for size in (int(s) for s in args.sizes.split(",") if s):
        one_size(args.db, args.copies, size)


def add_parser(sub: Any) -> None:
    r = sub.add_parser("report", help="report wall time and RSS at 1M and 10M events")
    r.add_argument("--sizes", default="1000000,10000000", help="events per store, comma-separated")
    r.add_argument("--copies", type=int, default=100_000, help="copies per store")
    r.add_argument("--db", default=None, help="a PostgreSQL URL (default: SQLite)")
    r.set_defaults(run=run)
